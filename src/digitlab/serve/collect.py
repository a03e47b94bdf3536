"""Collecting a class's handwriting from the drawing page: ``digitlab serve --collect NAME``.

Routes (only while the server collects; otherwise each answers 403 with how to turn it on):
``GET /api/samples``           the set's name, total, samples per digit and per writer (``?writer=`` counts one)
``POST /api/samples``          save a picture with its true ``label`` (0-9), ``writer`` and ``source``, all in
                               the query: a multipart ``image`` file, or the image file itself as the body
                               (which goes on to ``/api/samples/image``); 201 when new, 200 when this exact
                               picture is in the set already (409 if with another label or writer)
``DELETE /api/samples/{id}``   undo: remove one sample; 404 for an id the set does not hold

The samples go into a :class:`~digitlab.data.handwriting.HandwritingSet`, which keeps them safe when
several browsers (and several ``--workers`` processes) save at once. Bodies pass the same limits as the
predict routes (:mod:`digitlab.serve.limits`) and pictures the same decode gate; saving is disk work,
done in a worker thread.

Examples
--------
>>> client.post("/api/samples?label=3&writer=Ada", content=png,      # doctest: +SKIP
...             headers={"Content-Type": "image/png"}).json()["counts"][3]
1
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import shutil
import socket
from dataclasses import asdict
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, Body, Depends, File, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from digitlab.data.handwriting import HandwritingSet, Sample, SampleNotFoundError, SetDeletedError, StoreWriteError
from digitlab.data.handwriting_io import one_digit
from digitlab.data.handwriting_names import NO_NAME, check_new_writer, written_by
from digitlab.data.images import WORK_SIDE, ImageTooLargeError, prepare_digit, read_image
from digitlab.data.plain_png import without_trailer
from digitlab.errors import DigitlabError
from digitlab.predict import a_digit
from digitlab.serve.budget import DecodeGate, inline, pixels_to_decode
from digitlab.serve.errors import ApiError, error_response, one_image
from digitlab.serve.limits import SAMPLES, SAMPLES_IMAGE, route_path
from digitlab.serve.quiet import say_once
from digitlab.serve.schemas import PICTURE, ErrorResponse, SampleRemoved, SampleSaved, SamplesResponse

__all__ = ["ALLOW_HOSTS_ENV", "OFF", "CollectingOff", "SameOriginSamples", "check_allowed_host", "collect_router",
           "cross_site", "foreign_host", "host_name", "open_collecting", "COLLECT_ID_ENV"]

OFF = ("collecting samples is off; start the server with `digitlab serve --collect NAME` "
       "to save drawings into the handwriting set NAME")

log = logging.getLogger("digitlab.serve")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 403, 408, 409, 413, 415, 422, 503, 507)
}
Label = Annotated[int, Query(ge=0, le=9, description="The digit the picture shows (what the person says it is).")]
Writer = Annotated[str | None, Query(description="Who wrote it (optional): at most 64 characters, no '/', '\\\\' "
                                                 "or control characters.")]
Source = Annotated[Literal["drawn", "photo"], Query(description="'drawn' on the page (default) or 'photo' "
                                                                "(a picture file the page sent).")]


MIN_FREE = 256 << 20  # free bytes a save leaves on the set's disk at least (507 below it)
COLLECT_ID_ENV = "DIGITLAB_COLLECT_ID"  # a worker's pin on the set its parent opened (HandwritingSet.identity)


def open_collecting(name: str | None, identity: str | None = None) -> HandwritingSet | None:
    """The handwriting set ``name`` (created when new) to collect into; None when ``name`` is None. With
    ``identity`` (a worker's: its parent's set), that very set, never one made anew under its name.

    Raises
    ------
    DigitlabError
        ``name`` cannot name a handwriting set.
    """
    if name is None:
        return None
    store = HandwritingSet.open(name, create=identity is None, identity=identity)
    if identity is None:  # a set on a read-only share started in silence, then refused every student's drawing
        _check_saves_land(store)
    log.info("collecting samples into handwriting set %r (%s)", store.name, store.folder)
    return store


def _check_saves_land(store: HandwritingSet) -> None:
    """Refuse, in one line, a set whose folders this server could not save a sample into."""
    import tempfile

    for folder in (store.folder, store.folder / "originals", store.folder / "prepared"):
        try:
            tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-").close()
        except OSError as exc:
            why = exc.strerror or exc
            raise DigitlabError(f"handwriting set {store.name!r}: no sample could be saved in {folder} ({why}); "
                                "collect into a writable data folder ($DIGITLAB_DATA)") from None


class CollectingOff:
    """ASGI middleware for a server that does not collect: every ``/api/samples`` request is answered 403.

    It answers before a byte of the body is read, whatever the body or the query holds.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 403 on the collecting routes; pass everything else on."""
        if _collecting_route(scope):
            await error_response(403, OFF)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SameOriginSamples:
    """ASGI middleware for a collecting server: a request that would change the set must come from its own page.

    Another web site open in a student's browser could otherwise post pictures into (or delete samples
    from) the class's set: a form post needs no permission from this server. A browser says where a
    request comes from (``Sec-Fetch-Site``, ``Origin``); a POST or DELETE of ``/api/samples`` that another
    site sent is answered 403 before its body is read. Requests without those headers (curl, scripts) pass,
    when they address the server as below. So that another site cannot pass as this one by pointing its
    own name at this server, the Host a request is addressed to, and the Origin of the page that sent it,
    must name this server by address or by one of its names (:func:`foreign_host`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        _own_names()  # now, not in the event loop: the fully qualified name may wait on a DNS server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 403 to a cross-site change of the set, and to any request of it addressed by a name that is not
        this server's; pass everything else on."""
        if _collecting_route(scope):
            headers = Headers(scope=scope)
            origin = headers.get("origin", "")  # a proxy may rewrite Host; the browser's Origin it passes on
            refusal = foreign_host(headers.get("host"))  # a rebound page could read the writers' names, too
            if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
                refusal = refusal or cross_site(headers) or foreign_host(
                    urlsplit(origin).netloc if origin.startswith(("http://", "https://")) else None)
            if refusal is not None:
                await error_response(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _collecting_route(scope: Scope) -> bool:
    """An HTTP request for ``/api/samples`` or a path under it (as the routes see it, without a root path)."""
    path = route_path(scope) if scope["type"] == "http" else ""
    return path == SAMPLES or path.startswith(SAMPLES + "/")


def cross_site(headers: Headers) -> str | None:
    """Why a request that says it comes from another site is refused, or None.

    >>> cross_site(Headers({"origin": "http://evil.example", "host": "localhost:8000"}))[:45]
    'samples are saved only from the drawing page '
    >>> cross_site(Headers({"origin": "http://localhost:8000", "host": "localhost:8000"})) is None
    True
    >>> cross_site(Headers({"sec-fetch-site": "cross-site"})) is None, cross_site(Headers({})) is None
    (False, True)
    """
    site = headers.get("sec-fetch-site")  # every current browser sends it; a proxy leaves it alone
    origin = headers.get("origin")
    if site is not None:
        foreign = site not in ("same-origin", "none")
    else:  # an older browser: compare the page's origin with the address it asked for
        foreign = origin is not None and not _same_host(origin, headers.get("host", ""))
    if not foreign:
        return None
    return (f"samples are saved only from the drawing page this server sends; a request from "
            f"{origin or 'another site'} was refused")


ALLOW_HOSTS_ENV = "DIGITLAB_ALLOW_HOSTS"  # `digitlab serve --allow-host NAME`, passed on to the workers


def foreign_host(host: str | None) -> str | None:
    """Why a request addressed to a name that is not this server's is refused (DNS rebinding), or None.

    A page on another site can make its own name point at this server's address; the browser then
    calls it the same origin as the page. The Host header still carries that name, so the set is
    shown or changed only when it names an IP address, ``localhost``, this machine's own name, or a name
    given with ``--allow-host`` (``$DIGITLAB_ALLOW_HOSTS``, comma-separated). No Host header (None): a
    script speaking HTTP/1.0. A Host header that names nothing is refused: no browser sends one.

    >>> foreign_host("127.0.0.1:8000"), foreign_host("[::1]:8000"), foreign_host("localhost:8000"), foreign_host(None)
    (None, None, None, None)
    >>> foreign_host("attacker.example:8000")[:48], foreign_host(" ")[-33:]
    ('the set is open only to requests addressed to th', "' ' names nothing and was refused")
    """
    if host is None:
        return None
    try:
        name = host_name(urlsplit("//" + host.strip()).hostname or "")
    except ValueError:  # a port that is not a number, brackets round nothing
        name = ""
    if not name:
        return (f"the set is open only to requests addressed to this server by name or address; {host!r} "
                "names nothing and was refused")
    if _is_address(name):
        return None
    if name == "localhost" or name.endswith(".localhost"):
        return None
    if name in _own_names() | {host_name(n) for n in os.environ.get(ALLOW_HOSTS_ENV, "").split(",") if n.strip()}:
        return None
    return (f"the set is open only to requests addressed to this server by IP address, localhost or "
            f"{socket.gethostname()}; the name {name!r} was refused (start the server with --allow-host {name} "
            "to accept it)")


def host_name(name: str) -> str:
    """A host name as a browser sends it: lower case, no trailing dot, international names in ASCII (IDNA).

    >>> host_name("Schule.Example."), host_name("bücher.example")
    ('schule.example', 'xn--bcher-kva.example')
    """
    name = name.strip().lower().rstrip(".")
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:  # not a name IDNA can write: compared as it is
        return name


def check_allowed_host(name: str) -> str:
    """An ``--allow-host`` value as :func:`host_name` keeps it; one line for what is not a bare host name."""
    if not name.strip() or any(ch in name.strip() for ch in ":/@ ,\\"):
        raise DigitlabError(f"--allow-host {name!r}: give a bare host name such as school.example "
                            "(no scheme, port or path)")
    return host_name(name)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


@functools.cache  # the fully qualified name may ask a DNS server: once
def _own_names() -> set[str]:
    """This machine's own names, as a browser on the network might address it."""
    short = host_name(socket.gethostname())
    return {short, f"{short}.local", host_name(socket.getfqdn())}


def _same_host(origin: str, host: str) -> bool:
    """Whether ``Origin`` names the host and port of the ``Host`` header (a default port may be left out).

    >>> _same_host("https://school.example", "school.example:443"), _same_host("http://[::1]:8000", "[::1]:8000")
    (True, True)
    >>> _same_host("null", "localhost:8000"), _same_host("http://localhost:9000", "localhost:8000")
    (False, False)
    """
    try:
        page, asked = urlsplit(origin), urlsplit("//" + host)
        default = {"http": 80, "https": 443}.get(page.scheme)
        return (page.hostname is not None and page.hostname == asked.hostname
                and (page.port or default) == (asked.port or default))
    except ValueError:  # a port that is not a number
        return False


def collect_router() -> APIRouter:
    """The collecting routes, for an app whose ``state.collect`` is the set to collect into."""
    router = APIRouter(tags=["collect"])
    saves = {"response_model": SampleSaved, "status_code": 201, "responses": {
        **_ERRORS, 200: {"model": SampleSaved, "description": "This exact picture is in the set already"}}}

    @router.get(SAMPLES, summary="Count the samples collected", response_model=SamplesResponse, responses=_ERRORS)
    async def samples(request: Request, writer: Writer = None) -> dict[str, Any]:
        """The handwriting set being collected: its name, total, samples per digit and per writer; with
        ``writer``, also that writer's samples per digit (for a student's progress)."""
        store = _store(request)
        return await run_in_threadpool(_counts, store, _writer(writer))

    @router.post(SAMPLES, summary="Save a labelled picture (multipart)", dependencies=[Depends(one_image)], **saves)
    async def save(request: Request,
                   image: Annotated[UploadFile, File(description=PICTURE)],
                   label: Label, writer: Writer = None, source: Source = "drawn") -> JSONResponse:
        """Save the picture in the ``image`` file field as a sample of the digit ``label``. The picture is
        kept as it came (the original) beside its 28×28 MNIST form. A picture without ink is 422."""
        return await _save(request, await image.read(), label, writer, source)

    @router.post(SAMPLES_IMAGE, summary="Save a labelled picture sent as the body", **saves)
    async def save_image(request: Request,
                         image: Annotated[bytes, Body(media_type="image/*",
                                                               description=f"The image file itself: {PICTURE}")],
                         label: Label, writer: Writer = None, source: Source = "drawn") -> JSONResponse:
        """The picture file as the whole body (``Content-Type: image/png``, ...); what ``POST /api/samples``
        does with a bare-image body."""
        return await _save(request, image, label, writer, source)

    @router.delete(SAMPLES + "/{sample_id}", summary="Remove a sample (undo)", response_model=SampleRemoved,
                   responses={**_ERRORS, 404: {"model": ErrorResponse}})
    async def remove(request: Request,
                     sample_id: Annotated[str, Path(max_length=64, description="The id a save answered.")],
                     ) -> dict[str, Any]:
        """Remove one sample (its picture and its 28×28 form) from the set; the answer holds it and the
        counts without it (its writer's too)."""
        store = _store(request)
        return await run_in_threadpool(_remove_sync, store, sample_id)

    return router


def _store(request: Request) -> HandwritingSet:
    store = request.app.state.collect
    if store is None:
        raise ApiError(403, OFF)
    return store


def _writer(writer: str | None) -> str | None:
    try:
        return check_new_writer(writer)
    except DigitlabError as exc:
        raise ApiError(422, str(exc)) from None


async def _save(request: Request, picture: bytes, label: int, writer: str | None, source: str) -> JSONResponse:
    """Prepare a drawing on the event loop (:func:`~digitlab.serve.budget.inline`), a larger picture once the
    decode gate gives a turn (503 when it does not) in a worker thread; then save it in a worker thread."""
    store, writer = _store(request), _writer(writer)
    picture = without_trailer(picture)  # bytes after a PNG's end are not kept (5 MiB behind a drawing filled a disk)
    gate: DecodeGate = request.app.state.gate
    pixels = pixels_to_decode(picture)  # read from the header once
    if pixels and len(picture) > 8 * pixels + (64 << 10):  # 8 bytes a pixel: 16-bit RGBA, stored uncompressed
        raise ApiError(413, f"the file is {len(picture):,} bytes, far more than its {pixels:,} pixels need; save the "
                            "picture again as a plain PNG or JPEG")  # padding in a chunk or after a JPEG (a reviewer)
    drawn = source == "drawn"  # a digit drawn in taps is many marks: only a photo is counted (a row of ten went in)
    if inline(picture, pixels):
        prepared = _prepare_sync(None, picture, pixels, drawn)
    else:
        async with gate.turn():  # decoding and preparing take a turn; waiting for the set's lock and the disk do not
            prepared = await run_in_threadpool(_prepare_sync, gate, picture, pixels, drawn)
    sample, added, counts = await run_in_threadpool(_save_sync, store, picture, label, writer, source, prepared)
    return JSONResponse({**counts, "sample": _info(sample), "added": added}, status_code=201 if added else 200)


def _prepare_sync(gate: DecodeGate | None, picture: bytes, pixels: int, drawn: bool = True) -> np.ndarray:
    """Decode within the pixel budget (``gate`` None: a small picture, outside it) and prepare the 28×28 MNIST
    form (422 for a picture it cannot use, or a photo of several digits, as ``data import`` refuses it: a row of ten
    went into a class's set as one sample); ``pixels``: :func:`pixels_to_decode` of it."""
    with contextlib.nullcontext() if gate is None else gate.decoding(picture, pixels):
        try:
            image = read_image(picture, draft=WORK_SIDE)
            if not drawn:
                one_digit(image)
            return prepare_digit(image, (28, 28), 255)
        except ImageTooLargeError:
            raise
        except DigitlabError as exc:  # not a picture, no ink: nothing is saved
            raise ApiError(422, str(exc)) from None


def _save_sync(store: HandwritingSet, picture: bytes, label: int, writer: str | None, source: str,
               prepared: np.ndarray) -> tuple[Sample, bool, dict[str, Any]]:
    """Save the sample (the set's lock, the files, the index), then count the set; none under MIN_FREE (a flood)."""
    try:
        free = shutil.disk_usage(store.folder).free
    except OSError:  # the set deleted meanwhile: store.add says so
        free = MIN_FREE
    if free < MIN_FREE:
        raise ApiError(507, f"the disk holding the set has under {MIN_FREE >> 20} MiB free; nothing was saved: "
                            "ask your teacher to free some space")
    try:
        sample, added = store.add(picture, label, writer=writer, source=source, prepared=prepared)
    except SetDeletedError as exc:
        raise _gone(store, exc) from None
    except StoreWriteError as exc:  # a full disk: not the client's doing, nothing was saved
        raise ApiError(507, str(exc)) from None
    except DigitlabError as exc:  # a label or writer the route did not catch: nothing was saved
        raise ApiError(422, str(exc)) from None
    if added:
        log.info("saved sample %s (%d) into %r", sample.id, sample.label, store.name)  # no writer's name: a log
        # kept by a service manager would hold every student's (a privacy audit); `data info` counts them
    elif sample.label != label or not written_by([writer or NO_NAME])(sample):
        # someone else's sample: no id to undo it with, and neither its writer nor (theirs) its label is told
        mine = written_by([writer or NO_NAME])(sample)
        said = (f" as {a_digit(sample.label)}" if mine
                else " by another writer" if sample.writer else " without a writer's name")
        raise ApiError(409, f"this exact picture is in the set already{said}; nothing was saved")
    return sample, added, _counts(store, writer)


def _remove_sync(store: HandwritingSet, sample_id: str) -> dict[str, Any]:
    try:
        sample = store.remove(sample_id)
    except SampleNotFoundError as exc:
        raise ApiError(404, f"{exc}; it may have been removed already") from None
    except SetDeletedError as exc:
        raise _gone(store, exc) from None
    except StoreWriteError as exc:  # a full disk: not the client's doing
        raise ApiError(507, str(exc)) from None
    except DigitlabError as exc:  # the index cannot be read now (permissions): nothing was changed
        raise ApiError(422, str(exc)) from None
    log.info("removed sample %s (%d) from %r", sample.id, sample.label, store.name)
    return {**_counts(store, sample.writer), "sample": _info(sample)}


def _gone(store: HandwritingSet, exc: SetDeletedError) -> ApiError:
    """409: the set was deleted (``digitlab data remove NAME --all``) while the server collected into it."""
    return ApiError(409, f"{exc}; restart `digitlab serve --collect {store.name}` to collect into a new one")


def _counts(store: HandwritingSet, writer: str | None) -> dict[str, Any]:
    """The set's totals per digit, how many named writers it holds, and ``writer``'s per digit."""
    try:
        samples = store.samples()
    except SetDeletedError as exc:
        raise _gone(store, exc) from None
    except DigitlabError as exc:  # a sample this server may not read (its owner's umask 077): counted from the index,
        say_once(log, f"handwriting set {store.name!r}", exc)  # not a 400 "nothing was changed" after a save landed
        samples = store.records()
    for problem in store.problems:  # once each: every count said them all again (a soak: 200 lines for 10 GETs)
        say_once(log, f"handwriting set {store.name!r}", problem)
    per_digit, mine = [0] * 10, [0] * 10
    theirs = written_by([] if writer is None else [writer])
    is_theirs: dict[str | None, bool] = {}  # by name: comparing names costs more than counting (0.03 s at 10,000)
    for sample in samples:
        per_digit[sample.label] += 1
        by_them = is_theirs.get(sample.writer)
        if by_them is None:
            by_them = is_theirs[sample.writer] = theirs(sample)
        if by_them:
            mine[sample.label] += 1
            writer = sample.writer or writer  # as the set spells it: "ada" is counted, and shown, as "Ada"
    named = len(is_theirs.keys() - {None, "", NO_NAME})  # how many, not who: any device on the network may ask
    return {"name": store.name, "total": len(samples), "counts": per_digit, "named_writers": named,
            "writer": writer, "writer_counts": mine if writer is not None else None}


def _info(sample: Sample) -> dict[str, Any]:
    doc = asdict(sample)
    return {key: doc[key] for key in ("id", "label", "writer", "source", "created")}
