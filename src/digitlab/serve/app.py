"""The web app: a drawing page and a small REST API over one saved model.

Routes
------
``GET /``                     the drawing page (plain HTML/CSS/JS from ``static/``, works offline)
``POST /api/predict``         multipart ``image`` file (what the page sends)
``POST /api/predict/pixels``  JSON ``{"pixels": 28×28 numbers 0-255}``
``POST /api/predict/image``   the image file itself as the body (``Content-Type: image/png``, ...)
``POST /api/read``            a whole number: the same pictures (multipart ``image`` or the file as the body);
                              the text and each digit's box, digit, probability, top 3 and kind
``GET /api/models``           the model being served and the other saved models under ``runs_dir``; the
                              predict and read routes take ``?model=ID`` to answer with one of them
                              (:mod:`digitlab.serve.choice`)
``GET|POST /api/samples``     with ``collect``: save the page's drawings, labelled, into a handwriting set;
``DELETE /api/samples/{id}``  undo one (:mod:`digitlab.serve.collect`); without it, 403
``GET /healthz``              liveness, the model id and what runs it (``onnxruntime`` or ``estimator``)
``GET /docs``                 OpenAPI docs (``/openapi.json`` is the schema)

FastAPI parses and documents each body; :mod:`digitlab.serve.limits` checks sizes and Content-Types before
that, and also lets ``/api/predict`` take a JSON or bare-image body. Every mistake a client can make is
answered 4xx with ``{"error": "one line"}`` (:mod:`digitlab.serve.errors`); the next request is served
normally. The drawing page's own request takes a lane past FastAPI's parameter machinery
(:mod:`digitlab.serve.lane`), to the same answer. Answers leave out the 28×28 ``input`` the model saw unless
asked for (``?input=true``: the drawing page asks, since it shows it). The model runs on ONNX Runtime where it
can (:mod:`digitlab.serve.engine`). What the server takes on at once is bounded
(:mod:`digitlab.serve.budget`): a picture is decoded only when its pixels fit the decode budget, else the
answer is 503 with ``Retry-After``; ``digitlab serve`` adds the connection limits
(:mod:`digitlab.serve.connections`).

Examples
--------
>>> from fastapi.testclient import TestClient            # doctest: +SKIP
>>> client = TestClient(create_app(Path("runs/20260101T000000Z-digits-logreg")))  # doctest: +SKIP
>>> client.get("/healthz").json()["status"]              # doctest: +SKIP
'ok'
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Body, Depends, FastAPI, File, Query, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from digitlab.data.images import WORK_SIDE, read_image
from digitlab.errors import DigitlabError
from digitlab.memory import tune_allocator
from digitlab.predict import predict_images, prepare_for
from digitlab.runs import find_latest_model
from digitlab.serve.budget import DecodeGate, ServeLimits, inline, pixels_to_decode
from digitlab.serve.choice import ModelChoice, Served, list_models, tune_threads
from digitlab.serve.collect import COLLECT_ID_ENV, CollectingOff, SameOriginSamples, collect_router, open_collecting
from digitlab.serve.engine import serving_export, serving_model
from digitlab.serve.errors import ApiError, FastJSONResponse, install_error_handlers, one_image
from digitlab.serve.files import WholeFiles
from digitlab.serve.lane import TOP_K, TOP_K_MAX, page_lane
from digitlab.serve.limits import FORM, IMAGE, MAX_BODY, PIXELS, READ, READ_IMAGE, HeadAsGet, PredictBodies
from digitlab.serve.schemas import PICTURE, ErrorResponse, ModelsResponse, PixelsBody, PredictResponse, ReadResponse
from digitlab.store import LoadedModel, load_model

__all__ = ["create_app", "app_from_env", "MAX_BODY"]

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("digitlab.serve")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 404, 408, 413, 415, 422, 503)
}
TopK = Annotated[int, Query(ge=1, le=TOP_K_MAX, description="How many digits `top` lists.")]
WithInput = Annotated[bool, Query(alias="input", description="Also answer the prepared image the model saw "
                                                              "(`input`, H×W); left out by default.")]
Explain = Annotated[bool, Query(description="Also answer what the model looks at: `saliency` (H×W, −1..1: "
                                            "positive for the answer, negative against it), `saliency_method` "
                                            "(or `saliency_note`: why none) and, "
                                            "for the CNN, `activations` (its first layer's maps, small 0..255 "
                                            "grids); left out by default.")]
ExplainDigit = Annotated[int | None, Query(ge=0, le=9, description="The digit the map explains (it implies `explain`): "
                                         "another asks why not it, against the answer (`saliency_against`).")]
ModelId = Annotated[str | None, Query(max_length=200, description="The id of the saved model to answer (one that "
                                      "`GET /api/models` lists); default: the model being served. Unknown: 404.")]


def create_app(model_path: Path | None = None, runs_dir: Path = Path("runs"),
               limits: ServeLimits | None = None, *, onnx: bool | None = None,
               collect: str | None = None, collect_identity: str | None = None) -> FastAPI:
    """Build the app around one saved model.

    Parameters
    ----------
    model_path : Path, optional
        A run folder, its ``model.json`` or the weights file. When None, the newest run under
        ``runs_dir`` is served.
    runs_dir : Path
        Where saved runs live; listed by ``GET /api/models``.
    limits : ServeLimits, optional
        How much the app decodes and reads at once, and how long it waits for a body; the defaults
        suit a laptop.
    onnx : bool, optional
        Run the model on ONNX Runtime (its ``model.onnx``, reused or exported; the estimator, with a
        log line, where that cannot be); False: the estimator. Default: True unless
        ``$DIGITLAB_SERVE_ONNX`` is ``0`` (:func:`digitlab.serve.engine.serving_model`).
    collect : str, optional
        The name of a handwriting set (created if new) that ``POST /api/samples`` saves the page's
        labelled drawings into; None (default): collecting is off and ``/api/samples`` answers 403.
    collect_identity : str, optional
        For a worker process: the identity of the set its parent opened (``DIGITLAB_COLLECT_ID``); if that
        set was deleted since, even if made anew, saves answer 409.

    Raises
    ------
    DigitlabError
        ``model_path`` is missing, corrupt or not a digitlab model; or it is None and there is
        no saved model under ``runs_dir`` (the message names the command that trains one); or
        ``collect`` cannot name a handwriting set.
    """
    _ensure_logging()
    limits = limits or ServeLimits()
    tune_allocator("serving")  # large decodes give their memory back when freed
    collecting = open_collecting(collect, collect_identity)  # a bad set name fails before any model work
    served = _serve(model_path, Path(runs_dir), onnx)
    from fastapi_offline import FastAPIOffline  # /docs with Swagger UI served locally: works offline

    app = FastAPIOffline(
        title="digitlab",
        summary="Handwritten-digit recognition: draw a digit, or POST an image or 28×28 pixels.",
        version=_version(),
    )
    app.state.served = served
    app.state.models = ModelChoice(served, onnx)
    app.state.gate = DecodeGate(limits)
    app.state.collect = collecting
    _add_middleware(app, limits, collecting is not None)
    install_error_handlers(app)
    _add_routes(app)
    if collecting is not None:
        app.include_router(collect_router())
    app.mount("/static", WholeFiles(directory=STATIC), name="static")
    return app


def _add_middleware(app: FastAPI, limits: ServeLimits, collecting: bool) -> None:
    """The ASGI layers in front of the routes, the last added outermost."""
    app.add_middleware(PredictBodies, limits=limits)
    if collecting:
        app.add_middleware(SameOriginSamples)  # another site's page may not post into the class's set
    else:
        app.add_middleware(CollectingOff)  # 403 before a body is read
    app.add_middleware(HeadAsGet)  # outermost: a HEAD request is answered as its GET, without the body


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory digitlab.serve.app:app_from_env`` (several workers).

    Reads ``DIGITLAB_MODEL`` (optional), ``DIGITLAB_RUNS`` (default ``runs``), ``DIGITLAB_COLLECT``
    (optional: the handwriting set to collect into) and ``DIGITLAB_COLLECT_ID`` (the identity of that set as
    the first process opened it: :meth:`~digitlab.data.handwriting.HandwritingSet.open`).
    """
    model = os.environ.get("DIGITLAB_MODEL")
    return create_app(Path(model) if model else None, Path(os.environ.get("DIGITLAB_RUNS", "runs")),
                      collect=os.environ.get("DIGITLAB_COLLECT") or None,
                      collect_identity=os.environ.get(COLLECT_ID_ENV))


def _version() -> str:
    from digitlab import __version__

    return __version__


def _ensure_logging() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def _serve(model_path: Path | None, runs_dir: Path, onnx: bool | None) -> Served:
    """The model at ``model_path``, else the newest under ``runs_dir`` (serving never trains one): on its
    ``model.onnx`` alone when the run holds a reusable one, else loaded whole and exported
    (:mod:`digitlab.serve.engine`)."""
    if model_path is None:
        model_path = find_latest_model(runs_dir)
        if model_path is None:
            out = "" if runs_dir == Path("runs") else f" --out {runs_dir}"
            raise DigitlabError(
                f"no trained model under {runs_dir}/ to serve; train one first with `digitlab run{out}` "
                f"(logistic regression on the 8×8 digits, seconds) or `digitlab run --dataset mnist --model cnn{out}` "
                "(the better MNIST model), or pass --model RUN_FOLDER"
            )
        which = "the newest run's model "
    else:
        which = ""
    light = serving_export(Path(model_path), onnx=onnx)
    if light is not None:
        loaded, engine = light
        where = loaded.path if loaded.path.exists() else loaded.path.parent  # shipped with model.onnx alone
        log.info("serving %s%s from %s", which, loaded.id, where)  # its estimator: on a first ?explain=true
        return Served(loaded, runs_dir, engine)
    original = load_model(Path(model_path))
    log.info("serving %s%s from %s", which, original.id, original.path)
    loaded, engine = serving_model(original, onnx=onnx)
    tune_threads(original.model)  # the estimator: ?explain=true runs the CNN in PyTorch even under ONNX Runtime
    return Served(loaded, runs_dir, engine, original.model)


def _page(collecting: Any) -> str:
    """The drawing page; a collecting server names its set on ``<body data-collect>`` (collect.js shows its
    controls then, and asks nothing of a server that does not collect)."""
    import html

    page = (STATIC / "index.html").read_text(encoding="utf-8")
    if collecting is None:
        return page
    return page.replace("<body>", f'<body data-collect="{html.escape(collecting.name)}">', 1)


def _add_routes(app: FastAPI) -> None:
    page = _page(app.state.collect)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        """``{"status": "ok", "model_id": ..., "engine": "onnxruntime" | "estimator"}`` while the server can answer."""
        served: Served = app.state.served
        return {"status": "ok", "model_id": served.loaded.id, "engine": served.engine}

    @app.get("/api/models", summary="Models", response_model=ModelsResponse)
    async def models() -> dict[str, Any]:
        """The model being served (``active``) and the other saved models under the runs folder; any of them
        answers a predict or read request that names its id (``?model=ID``)."""
        served: Served = app.state.served
        return {"active": served.loaded.id, "models": await run_in_threadpool(list_models, served)}

    _add_predict_routes(app)
    _add_read_routes(app)


def _add_predict_routes(app: FastAPI) -> None:
    app.router.routes.append(page_lane(_answer))  # the page's own request, tried before the FastAPI route below
    predicts = {"response_model": PredictResponse, "responses": _ERRORS}

    @app.post(FORM, summary="Predict the digit in an uploaded image", dependencies=[Depends(one_image)], **predicts,
              openapi_extra=_also_takes(pixels=True))
    async def predict(
        image: Annotated[UploadFile, File(description=PICTURE)],
        top_k: TopK = TOP_K,
        with_input: WithInput = False,
        explain: Explain = False,
        explain_digit: ExplainDigit = None,
        model: ModelId = None,
    ) -> JSONResponse:
        """What the drawing page sends: ``multipart/form-data`` with the picture in an ``image`` file
        field. It is prepared like MNIST (ink vs paper decided, cropped, scaled, centred) before the
        model sees it. A JSON or bare-image body posted here is answered as by ``/api/predict/pixels``
        or ``/api/predict/image``."""
        return await _answer(app, await image.read(), top_k, with_input, explain, model, explain_digit)

    @app.post(PIXELS, summary="Predict the digit in a 28×28 grid of pixels", **predicts)
    async def predict_pixels(body: PixelsBody, top_k: TopK = TOP_K, with_input: WithInput = False,
                             explain: Explain = False, explain_digit: ExplainDigit = None,
                             model: ModelId = None) -> JSONResponse:
        """``{"pixels": [[...28 numbers 0-255...] × 28]}``, prepared like MNIST before the model sees it (with
        ``"prepared": true``, a grid that already is the model's input, as ``?input=true`` answers it, is not)."""
        return await _answer(app, np.asarray(body.pixels, dtype=np.uint8), top_k, with_input, explain, model,
                             explain_digit, as_is=body.prepared)

    @app.post(IMAGE, summary="Predict the digit in an image sent as the body", **predicts)
    async def predict_image(
        image: Annotated[bytes, Body(media_type="image/*", description=f"The image file itself: {PICTURE}")],
        top_k: TopK = TOP_K,
        with_input: WithInput = False,
        explain: Explain = False,
        explain_digit: ExplainDigit = None,
        model: ModelId = None,
    ) -> JSONResponse:
        """The file as the whole body, e.g. ``curl --data-binary @digit.png -H 'Content-Type: image/png'``
        (``application/octet-stream`` is read too)."""
        return await _answer(app, image, top_k, with_input, explain, model, explain_digit)


def _also_takes(*, pixels: bool) -> dict[str, Any]:
    """What a form's URL takes besides multipart, for the schema (generated clients saw only multipart): the image
    itself as the body, and for predict the JSON pixel grid; :mod:`digitlab.serve.limits` sends them on."""
    content: dict[str, Any] = {"image/*": {"schema": {"type": "string", "format": "binary"}}}
    if pixels:
        content["application/json"] = {"schema": {"$ref": "#/components/schemas/PixelsBody"}}
    return {"requestBody": {"content": content}}


def _add_read_routes(app: FastAPI) -> None:
    reads = {"response_model": ReadResponse, "responses": _ERRORS}

    @app.post(READ, summary="Read a whole handwritten number in an uploaded image", dependencies=[Depends(one_image)],
              **reads, openapi_extra=_also_takes(pixels=False))
    async def read(
        image: Annotated[UploadFile, File(description=PICTURE)],
        model: ModelId = None,
    ) -> JSONResponse:
        """Find the digits in a picture of a number (one or more lines), read each, in order.
        ``multipart/form-data`` with the picture in an ``image`` file field; the image file itself as
        the body (``Content-Type: image/png``, ...) is read too. Each digit's ``box`` is in the
        picture's own pixels; a digit the model is unsure of, or that is not a digit, shows as ``?``
        in ``text``. A blank picture, or one with more marks than a number has, is answered 422."""
        return await _read_answer(app, await image.read(), model)

    @app.post(READ_IMAGE, summary="Read a whole number in an image sent as the body", **reads)
    async def read_image_body(
        image: Annotated[bytes, Body(media_type="image/*", description=f"The image file itself: {PICTURE}")],
        model: ModelId = None,
    ) -> JSONResponse:
        """The file as the whole body, e.g. ``curl --data-binary @number.png -H 'Content-Type: image/png'``;
        what ``POST /api/read`` does with a bare-image body."""
        return await _read_answer(app, image, model)


async def _chosen(app: FastAPI, model_id: str | None) -> Served:
    """The model a request names (``?model=ID``): the served one, a cached one, or one loaded now in a
    worker thread (404 for an id no saved run has)."""
    choice: ModelChoice = app.state.models
    return choice.pick(model_id) or await run_in_threadpool(choice.load, model_id)


async def _read_answer(app: FastAPI, source: bytes, model_id: str | None = None) -> JSONResponse:
    """Read the number once the decode gate gives a turn (503 when it does not), in a worker thread:
    finding and reading several digits is more work than one prediction."""
    start = time.perf_counter()
    gate: DecodeGate = app.state.gate
    loaded = (await _chosen(app, model_id)).loaded
    async with gate.turn():
        result = await run_in_threadpool(_read_sync, loaded, source, gate)
    result["milliseconds"] = round((time.perf_counter() - start) * 1000, 3)
    return FastJSONResponse(result)


def _read_sync(loaded: LoadedModel, source: bytes, gate: DecodeGate) -> dict[str, Any]:
    """Decode (within the pixel budget), find and read the digits; boxes in the picture's own pixels."""
    from digitlab.read import read_number

    with gate.decoding(source):
        picture = read_image(source, draft=WORK_SIDE)
        try:
            reading = read_number(loaded.model, loaded.card, picture, detector=loaded.detector)
        except DigitlabError as exc:  # no ink, too many marks: the picture is readable, its content is not
            raise ApiError(422, str(exc)) from None
    return reading.in_picture(source, picture.size)


async def _answer(app: FastAPI, source: bytes | np.ndarray, top_k: int, with_input: bool = False,
                  explain: bool = False, model_id: str | None = None, explain_digit: int | None = None, *,
                  as_is: bool = False) -> JSONResponse:
    """Predict once the decode gate gives a turn (503 when it does not): a small picture on the event loop,
    a larger one in a worker thread; with ``explain`` (or ``explain_digit``, the digit the map explains), always
    in a worker thread (a saliency map is milliseconds of CPU work), a small picture then taking one of the
    small pictures' turns and no pixels. ``as_is``: the grid is already the model's input (not prepared again)."""
    start = time.perf_counter()
    explain = explain or explain_digit is not None
    gate: DecodeGate = app.state.gate
    served = await _chosen(app, model_id)
    loaded = served.loaded
    pixels = pixels_to_decode(source) if isinstance(source, bytes) else 0  # read from the header once
    small = inline(source, pixels)
    if not explain and small:  # on the event loop, one at a time: no turn, no pixels taken
        result = _predict_sync(loaded, source, top_k, None, with_input, pixels=pixels, as_is=as_is)
    else:
        async with gate.turn(small=small):
            if explain:
                result = await run_in_threadpool(_explained_sync, served, source, top_k, None if small else gate,
                                                 with_input, pixels, explain_digit, as_is)
            else:
                result = await run_in_threadpool(_predict_sync, loaded, source, top_k, gate, with_input, None, pixels,
                                                 as_is)
    result["milliseconds"] = round((time.perf_counter() - start) * 1000, 3)
    return FastJSONResponse(result)


def _predict_sync(loaded: LoadedModel, source: bytes | np.ndarray, top_k: int, gate: DecodeGate | None,
                  with_input: bool = False, keep: list | None = None, pixels: int | None = None,
                  as_is: bool = False) -> dict[str, Any]:
    """Decode (an encoded file, within the pixel budget), prepare and predict: CPU work, off the event loop.

    ``keep``, when given, receives the prepared image (for :func:`_explained_sync`); ``pixels``, the picture's
    size from its header when already read."""
    if isinstance(source, bytes):
        # the decoded picture and its copies live only inside; gate None: a small one, inline (budget.inline)
        with contextlib.nullcontext() if gate is None else gate.decoding(source, pixels):
            prepared = _prepare(loaded, read_image(source, draft=WORK_SIDE))
    else:
        prepared = _as_is(loaded, source) if as_is else _prepare(loaded, source)
    [prediction] = predict_images(loaded.model, loaded.card, prepared, top_k=top_k, detector=loaded.detector)
    out = prediction.to_dict()
    if with_input:
        out["input"] = prepared.tolist()
    out["pixel_max"] = loaded.pixel_max
    out["sure_right"] = loaded.sure_right
    if keep is not None:
        keep.append(prepared)
    return out


def _explained_sync(served: Served, source: bytes | np.ndarray, top_k: int, gate: DecodeGate | None,
                    with_input: bool, pixels: int | None = None, digit: int | None = None,
                    as_is: bool = False) -> dict[str, Any]:
    """The prediction, and what the estimator looks at for its answer, or for ``digit``
    (:func:`digitlab.explain.live.explain_one`)."""
    from digitlab.explain.live import explain_one
    from digitlab.explain.model import Explainable

    keep: list[np.ndarray] = []
    out = _predict_sync(served.loaded, source, top_k, gate, with_input, keep, pixels, as_is)
    card = served.loaded.card
    model = Explainable(served.explainable(), card.pixel_max, tuple(card.image_shape), card.id)
    target = int(out["digit"]) if digit is None else digit
    explained = explain_one(model, keep[0], target, against=int(out["digit"]))  # weighed against the answer
    against = None if target == out["digit"] or explained.saliency is None else int(out["digit"])  # (with a map)
    mapped = None if explained.saliency is None else target  # no map explains no digit (the page marked one)
    out.update(explained.to_dict(), saliency_digit=mapped, saliency_against=against)
    return out


def _prepare(loaded: LoadedModel, image: Any) -> np.ndarray:
    try:
        return prepare_for(loaded.card, image)
    except DigitlabError as exc:
        raise ApiError(422, str(exc)) from None


def _as_is(loaded: LoadedModel, grid: np.ndarray) -> np.ndarray:
    """A grid sent as the model's own input (``"prepared": true``): only a model of its size takes it as it is."""
    if grid.shape != tuple(loaded.card.image_shape):
        shape = "×".join(map(str, loaded.card.image_shape))
        raise ApiError(422, f"\"prepared\": true sends the model's own input, and this model takes {shape} images, "
                            "not 28×28: leave \"prepared\" out to have the grid prepared for it")
    return grid
