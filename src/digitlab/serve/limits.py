"""What a prediction request may send, checked before FastAPI reads a byte of the body.

Three routes read three kinds of body (FastAPI parses and documents each one):

- ``POST /api/predict``: ``multipart/form-data`` with an ``image`` file (what the page sends);
- ``POST /api/predict/pixels``: ``application/json`` ``{"pixels": 28×28 numbers}``;
- ``POST /api/predict/image``: the image file itself (``image/png``, ``image/jpeg``, ...).

``POST /api/read`` (a whole number) takes the same pictures: a multipart ``image`` file, or the
image file itself as the body, which goes on to ``/api/read/image``; so does ``POST /api/samples``
(a labelled picture saved into a handwriting set), whose bare-image bodies go on to ``/api/samples/image``.

:class:`PredictBodies`, a small ASGI middleware in front of them, makes sure no request holds
more than :data:`MAX_BODY` in memory: a ``Content-Length`` over it is answered 413 at once, and a
body sent without one (chunked) is cut off with 413 as soon as it passes it. It answers an empty
body 400, and a Content-Type the route cannot read or a compressed body (``Content-Encoding: gzip``) 415.
And it lets one URL take all three kinds: a JSON or bare-image body posted to ``/api/predict`` goes on to
the route that reads it.

It also bounds what bodies cost the server as a whole (:class:`~digitlab.serve.budget.ServeLimits`):
all requests together hold at most ``body_bytes`` of body (503 with ``Retry-After`` beyond), and a
body that stops arriving for ``body_idle_s`` (or takes longer than ``body_total_s``) is answered
408 and its connection closed. A client that hangs up mid-body is a normal event, not an error.

:class:`HeadAsGet`, outermost, answers a ``HEAD`` request on any route as its ``GET``, without the body.

Examples
--------
>>> route_for("application/json"), route_for("image/png"), route_for("text/plain")
('/api/predict/pixels', '/api/predict/image', None)
"""

from __future__ import annotations

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab.data.images import MAX_BYTES
from digitlab.serve.budget import Budget, Busy, ServeLimits

__all__ = ["BodyReader", "FORM", "IMAGE", "MAX_BODY", "PIXELS", "PredictBodies", "READ", "READ_IMAGE", "SAMPLES",
           "SAMPLES_IMAGE", "WANTED", "empty_body", "route_for", "route_path"]

MAX_BODY = MAX_BYTES + 64 * 1024
"""Largest request body read: a 5 MiB image plus room for the multipart envelope."""

FORM, PIXELS, IMAGE = "/api/predict", "/api/predict/pixels", "/api/predict/image"
WANTED = {
    FORM: ('multipart/form-data with an `image` file, the image file itself with a Content-Type such as image/png '
           '(curl: -H "Content-Type: image/png"), or JSON {"pixels": 28×28 numbers}'),
    PIXELS: 'JSON {"pixels": 28×28 numbers from 0 to 255}',
    IMAGE: "the image file itself, with a Content-Type such as image/png",
}
"""Each predict route, and what to send it (for the error messages)."""

READ, READ_IMAGE = "/api/read", "/api/read/image"
WANTED[READ] = "multipart/form-data with an `image` file, or the image file itself (Content-Type image/png, ...)"
WANTED[READ_IMAGE] = WANTED[IMAGE]
SAMPLES, SAMPLES_IMAGE = "/api/samples", "/api/samples/image"
WANTED[SAMPLES] = WANTED[READ]
WANTED[SAMPLES_IMAGE] = WANTED[IMAGE]

_ENTRIES = {FORM: {FORM: FORM, PIXELS: PIXELS, IMAGE: IMAGE}, READ: {FORM: READ, IMAGE: READ_IMAGE},
            SAMPLES: {FORM: SAMPLES, IMAGE: SAMPLES_IMAGE}}
"""The URLs that take several kinds of body: the kind (as :func:`route_for` names it) → the route that reads it."""
_KIND = {PIXELS: PIXELS, IMAGE: IMAGE, READ_IMAGE: IMAGE, SAMPLES_IMAGE: IMAGE}
"""The URLs that take one kind of body, and that kind."""


def destination(path: str, content_type: str) -> str | None:
    """The route that reads a body of this media type posted to ``path``; None when none does.

    >>> destination("/api/read", "image/png"), destination("/api/read", "application/json")
    ('/api/read/image', None)
    """
    kind = route_for(content_type)
    if kind is None:
        return None
    if path in _ENTRIES:
        return _ENTRIES[path].get(kind)
    return path if _KIND.get(path) == kind else None


def route_for(content_type: str) -> str | None:
    """The predict route that reads a body of this media type (lower case, no parameters)."""
    if content_type == "multipart/form-data":
        return FORM
    if content_type == "application/json" or content_type.endswith("+json"):
        return PIXELS
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return IMAGE
    return None


class PredictBodies:
    """ASGI middleware: size limits, empty bodies and Content-Types of the predict routes; the body budget."""

    def __init__(self, app: ASGIApp, limits: ServeLimits | None = None) -> None:
        self.app = app
        self.limits = limits or ServeLimits()
        self.bodies = Budget(self.limits.body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if scope["type"] != "http" or scope["method"] != "POST" or path not in WANTED:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        coding = headers.get("content-encoding", "identity").strip().lower() or "identity"
        refusal = _refusal(path, content_type, headers.get("content-length"), coding)
        if refusal is not None:
            status, message = refusal
            close = {"Connection": "close"} if status == 413 else {}  # do not read the rest of it
            if coding != "identity":  # RFC 7694: the codings this server reads
                close["Accept-Encoding"] = "identity"
            await JSONResponse({"error": message}, status_code=status, headers=close)(scope, receive, send)
            return
        target = destination(path, content_type)
        if target is not None and target != path:  # JSON or a bare image sent to a form's URL
            full = scope.get("root_path", "") + target if path != scope["path"] else target
            scope = {**scope, "path": full, "raw_path": full.encode()}
        body = BodyReader(receive, self.limits, self.bodies, json="json" in content_type)
        try:
            await self.app(scope, body.receive, send)
        finally:
            body.release()


def route_path(scope: Scope) -> str:
    """The path the app's routes match: ``scope["path"]`` without the ``root_path`` a proxy mounts the app under
    (``uvicorn --root-path /digits`` puts ``/digits/api/predict`` in the path; the routes see ``/api/predict``).

    >>> route_path({"path": "/digits/api/predict", "root_path": "/digits"}), route_path({"path": "/api/read"})
    ('/api/predict', '/api/read')
    """
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("/", ""):
        return path[len(root):]
    return path


def _refusal(path: str, content_type: str, declared: str | None, coding: str = "identity") -> tuple[int, str] | None:
    """Status and message for a request refused on its headers alone, or None."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        size = f"the request body is {int(declared) / 2**20:.1f} MiB; the limit is 5 MiB"
        if "json" in content_type.lower():  # an engineer's 67 MiB of JSON was told "the limit is 5 MiB for an image"
            return 413, f"{size}; {WANTED[PIXELS]} take a few KB"
        return 413, f"{size} for an image, send a smaller file"
    if declared == "0":
        return 400, empty_body(path)
    if coding != "identity":  # a gzipped picture was told "not an image", gzipped JSON "not JSON"
        return 415, f"cannot read a body sent with Content-Encoding: {coding}; send it uncompressed: {WANTED[path]}"
    if not content_type:
        return 415, f"no Content-Type; send {WANTED[path]}"
    if destination(path, content_type) is None:
        return 415, f"cannot read a body of type {content_type} here; send {WANTED[path]}"
    return None


def empty_body(path: str) -> str:
    """The answer to a request to ``path`` with no body."""
    return f"the request body is empty; send {WANTED.get(path, 'a body')}"


class BodyReader:
    """``receive`` for one request body: its size limit, its share of the body budget, its timeouts.

    FastAPI passes an HTTPException raised while it reads the body on as it is, so each refusal
    here becomes its JSON answer: 413 past :data:`MAX_BODY`, 503 when the bodies of all requests
    together would pass ``body_bytes``, 408 when the client stops sending. Every one closes the
    connection, whose unread rest cannot carry another request.
    """

    def __init__(self, receive: Receive, limits: ServeLimits, bodies: Budget, *, json: bool = False) -> None:
        self._receive = receive
        self.json = json  # a JSON body (pixels) is not told to send a smaller image
        self.limits = limits
        self.bodies = bodies
        self.size = 0  # bytes received, all held against ``bodies`` until release()
        self.complete = False
        self.deadline: float | None = None

    async def receive(self) -> Message:
        """The next chunk of the body, within the size, byte-budget and time limits."""
        if self.complete:  # after the body: only a disconnect can come, with no deadline
            return await self._receive()
        now = anyio.current_time()
        if self.deadline is None:
            self.deadline = now + self.limits.body_total_s
        message = None
        with anyio.move_on_after(max(0.0, min(self.limits.body_idle_s, self.deadline - now))):
            message = await self._receive()
        if message is None:
            raise HTTPException(408, self._too_slow(now), headers={"Connection": "close"})
        if message["type"] == "http.request":
            self._hold(len(message.get("body", b"")))
            self.complete = not message.get("more_body", False)
        return message

    def _hold(self, chunk: int) -> None:
        if self.size + chunk > MAX_BODY:
            wanted = f"{WANTED[PIXELS]} take a few KB" if self.json else "send a smaller image"
            raise HTTPException(413, f"the request body is over 5 MiB; {wanted}", headers={"Connection": "close"})
        if not self.bodies.take(chunk):
            raise Busy(f"the server is reading many uploads at once ({self.bodies.total // 2**20} MiB of request "
                       "bodies); retry in a moment", self.limits.retry_after_s, close=True)
        self.size += chunk

    def _too_slow(self, now: float) -> str:
        if self.deadline is not None and self.deadline - now <= self.limits.body_idle_s:
            return (f"the request body took longer than {self.limits.body_total_s:g} s to arrive; "
                    "send it in one go, or a smaller file")
        return (f"the request body stopped arriving (nothing for {self.limits.body_idle_s:g} s after "
                f"{self.size:,} bytes); send the whole body at once")

    def release(self) -> None:
        """Give the body's bytes back to the budget (the request is over)."""
        self.bodies.give(self.size)
        self.size = 0


class HeadAsGet:
    """ASGI middleware: ``HEAD`` on any route is its ``GET`` (health checks and link checkers send it).

    The app sees a GET; uvicorn, which knows the request was a HEAD, sends the headers without the body.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        """Pass the request on, a HEAD as a GET."""
        head = scope["type"] == "http" and scope["method"] == "HEAD"
        await self.app({**scope, "method": "GET"} if head else scope, receive, send)
