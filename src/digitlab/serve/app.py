"""The web app: a drawing page and a small REST API over one saved model.

Routes
------
``GET /``                 the drawing page (plain HTML/CSS/JS from ``static/``, works offline)
``POST /api/predict``     multipart ``image`` file, or JSON ``{"pixels": 28×28 numbers 0-255}``
``GET /api/models``       the model being served and the other saved models under ``runs_dir``
``GET /healthz``          liveness and the model id
``GET /docs``             OpenAPI docs (``/openapi.json`` is the schema)

Every mistake a client can make is answered 4xx with ``{"error": "one line"}``; the next request
is served normally.

Examples
--------
>>> from fastapi.testclient import TestClient            # doctest: +SKIP
>>> client = TestClient(create_app(Path("runs/20260101T000000Z-digits-logreg")))  # doctest: +SKIP
>>> client.get("/healthz").json()["status"]              # doctest: +SKIP
'ok'
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitlab.data.images import MAX_BYTES, WORK_SIDE, ImageTooLargeError, prepare_pixels, read_image
from digitlab.errors import DigitlabError
from digitlab.predict import predict_images, prepare_for
from digitlab.store import CARD_NAME, LoadedModel, find_latest_model, load_model

__all__ = ["create_app", "app_from_env", "MAX_BODY"]

STATIC = Path(__file__).parent / "static"
MAX_BODY = MAX_BYTES + 64 * 1024
"""Largest request body read: a 5 MiB image plus room for the multipart envelope."""

DEFAULT_DATASET, DEFAULT_MODEL = "digits", "logreg"
log = logging.getLogger("digitlab.serve")


class ApiError(Exception):
    """A client mistake with its HTTP status; answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------
# Schemas (for the OpenAPI docs; responses are built as plain dicts)


class TopDigit(BaseModel):
    digit: int = Field(ge=0, le=9)
    probability: float


class PredictResponse(BaseModel):
    digit: int = Field(ge=0, le=9, description="The most probable digit.")
    probability: float = Field(description="Its probability.")
    top: list[TopDigit] = Field(description="The top_k digits, most probable first.")
    probabilities: list[float] = Field(description="All ten probabilities; index d is digit d.")
    unsure: bool = Field(description="True when the top probability is below min_confidence (0.5).")
    model_id: str = Field(description="The id of the model card that answered.")
    input: list[list[int]] = Field(description="The prepared image the model saw (H×W, 0..pixel_max).")
    pixel_max: int = Field(description="Brightest value of `input`: 255 for MNIST models, 16 for 8×8 ones.")
    milliseconds: float = Field(description="Server time spent on this prediction.")


class PixelsBody(BaseModel):
    pixels: list[list[float]] = Field(description="28 rows of 28 numbers from 0 to 255, any polarity.")


class ErrorResponse(BaseModel):
    error: str = Field(description="What was wrong, in one line.")


class ModelInfo(BaseModel):
    id: str
    model: str
    dataset: str
    image_shape: list[int]
    pixel_max: int
    accuracy: float | None
    path: str
    active: bool


class ModelsResponse(BaseModel):
    active: str
    notice: str | None = Field(description="Set when the server had to train a model at start-up.")
    models: list[ModelInfo]


_ERRORS = {status: {"model": ErrorResponse} for status in (400, 413, 415, 422)}

_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary",
                                             "description": "PNG, JPEG, BMP, GIF, WebP or TIFF; at most 5 MiB "
                                                            "and 4096×4096 pixels"}},
                }
            },
            "application/json": {"schema": PixelsBody.model_json_schema()},
        },
    }
}


# ---------------------------------------------------------------------------------------------
# The app


@dataclass
class _Served:
    """The model being served and what the page says about it."""

    loaded: LoadedModel
    notice: str | None
    runs_dir: Path


def create_app(model_path: Path | None = None, runs_dir: Path = Path("runs")) -> FastAPI:
    """Build the app around one saved model.

    Parameters
    ----------
    model_path : Path, optional
        A run folder, its ``model.json`` or the weights file. When None, the newest run under
        ``runs_dir`` is served; when there is none, the default model (logreg on the 8×8 digits,
        a few seconds) is trained into ``runs_dir`` first, and the log and the page say so.
    runs_dir : Path
        Where saved runs live; listed by ``GET /api/models``.

    Raises
    ------
    DigitlabError
        ``model_path`` is missing, corrupt or not a digitlab model.
    """
    _ensure_logging()
    served = _load_or_train(model_path, Path(runs_dir))
    _tune_threads(served.loaded)
    from fastapi_offline import FastAPIOffline  # /docs with Swagger UI served locally: works offline

    app = FastAPIOffline(
        title="digitlab",
        summary="Handwritten-digit recognition: draw a digit, or POST an image or 28×28 pixels.",
        version=_version(),
    )
    app.state.served = served
    _install_error_handlers(app)
    _add_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory digitlab.serve.app:app_from_env`` (several workers).

    Reads ``DIGITLAB_MODEL`` (optional) and ``DIGITLAB_RUNS`` (default ``runs``).
    """
    model = os.environ.get("DIGITLAB_MODEL")
    return create_app(Path(model) if model else None, Path(os.environ.get("DIGITLAB_RUNS", "runs")))


def _version() -> str:
    from digitlab import __version__

    return __version__


def _ensure_logging() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def _load_or_train(model_path: Path | None, runs_dir: Path) -> _Served:
    if model_path is not None:
        loaded = load_model(Path(model_path))
        log.info("serving %s from %s", loaded.id, loaded.path)
        return _Served(loaded, None, runs_dir)
    latest = find_latest_model(runs_dir)
    if latest is not None:
        loaded = load_model(latest)
        log.info("serving the newest run's model %s from %s", loaded.id, loaded.path)
        return _Served(loaded, None, runs_dir)
    from digitlab.pipeline import run_pipeline

    log.warning("no trained model under %s: training the default (%s on %s) now, a few seconds…",
                runs_dir, DEFAULT_MODEL, DEFAULT_DATASET)
    start = time.perf_counter()
    result = run_pipeline(DEFAULT_DATASET, DEFAULT_MODEL, out=runs_dir)
    loaded = load_model(result.folder)
    notice = (f"No model was trained yet, so the server trained the default ({DEFAULT_MODEL} on the "
              f"{DEFAULT_DATASET} dataset, {time.perf_counter() - start:.0f} s) when it started. "
              f"For the MNIST CNN run `digitlab run --dataset mnist --model cnn`.")
    log.warning("trained %s (test accuracy %.2f%%) into %s", loaded.id,
                100 * result.metrics.accuracy, result.folder)
    return _Served(loaded, notice, runs_dir)


def _tune_threads(loaded: LoadedModel) -> None:
    """One intra-op thread per request for PyTorch models: requests already run side by side."""
    if "torch" in type(loaded.model).__module__ or loaded.card.get("format") == "safetensors":
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover - a safetensors model always comes with torch
            pass


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(DigitlabError)
    async def _digitlab_error(request: Request, exc: DigitlabError) -> JSONResponse:
        return _error(413 if isinstance(exc, ImageTooLargeError) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
            problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", "invalid"))
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            message = f"no such page: {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug, not bad input
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server log has the details")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def _add_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        """``{"status": "ok", "model_id": ...}`` while the server can answer."""
        return {"status": "ok", "model_id": app.state.served.loaded.id}

    @app.get("/api/models", summary="Models", response_model=ModelsResponse)
    async def models() -> dict[str, Any]:
        """The model being served (``active``) and the other saved models under the runs folder."""
        served: _Served = app.state.served
        return {"active": served.loaded.id, "notice": served.notice, "models": _list_models(served)}

    @app.post(
        "/api/predict",
        summary="Predict the digit in an image or a 28×28 pixel grid",
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_PREDICT_BODY,
    )
    async def predict(
        request: Request,
        top_k: int = Query(3, ge=1, le=10, description="How many digits `top` lists."),
    ) -> JSONResponse:
        """Send ``multipart/form-data`` with an ``image`` file (PNG, JPEG, BMP, GIF, WebP, TIFF; ≤ 5 MiB,
        ≤ 4096×4096), or ``application/json`` ``{"pixels": [[...28 numbers 0-255...] × 28]}``. Either is
        prepared like MNIST (ink vs paper decided, cropped, scaled, centred) before the model sees it."""
        start = time.perf_counter()
        kind, payload = await _read_payload(request)
        served: _Served = app.state.served
        result = await run_in_threadpool(_predict_sync, served.loaded, kind, payload, top_k)
        result["milliseconds"] = round((time.perf_counter() - start) * 1000, 3)
        return JSONResponse(result)


def _predict_sync(loaded: LoadedModel, kind: str, payload: Any, top_k: int) -> dict[str, Any]:
    """Decode, prepare and predict (CPU work, run off the event loop)."""
    if kind == "image":
        image: Any = read_image(payload, draft=WORK_SIDE)
    else:
        try:
            image = prepare_pixels(payload)
        except DigitlabError as exc:
            raise ApiError(422, str(exc)) from None
    try:
        prepared = prepare_for(loaded.card, image)
    except DigitlabError as exc:
        raise ApiError(422, str(exc)) from None
    [prediction] = predict_images(loaded.model, loaded.card, prepared, top_k=top_k)
    out = prediction.to_dict()
    out["input"] = prepared.tolist()
    out["pixel_max"] = loaded.pixel_max
    return out


# ---------------------------------------------------------------------------------------------
# Reading the request body within limits


async def _read_payload(request: Request) -> tuple[str, Any]:
    """``("image", bytes)`` or ``("pixels", grid)`` from the body, never reading past MAX_BODY."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"the request body is {int(declared) / 2**20:.1f} MiB; the limit is 5 MiB "
                            "for an image, send a smaller file")
    if content_type == "multipart/form-data":
        return "image", await _image_from_form(request)
    if content_type == "application/json" or content_type.endswith("+json"):
        return "pixels", await _pixels_from_json(request)
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        body = await _body(request)
        if not body:
            raise ApiError(400, "the request body is empty; send an image file")
        return "image", body
    if not content_type:
        body = await _body(request)
        raise ApiError(400 if not body else 415, "the request body is empty; send multipart/form-data with an "
                       "`image` file, or JSON {\"pixels\": 28×28 numbers}" if not body else
                       "no Content-Type; send multipart/form-data with an `image` file, or JSON {\"pixels\": ...}")
    raise ApiError(415, f"cannot read a {content_type} body; send multipart/form-data with an `image` file, "
                        "or JSON {\"pixels\": 28×28 numbers}")


async def _body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "the request body is over 5 MiB; send a smaller image")
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_from_form(request: Request) -> bytes:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    body = await _body(request)
    if not body:
        raise ApiError(400, "the request body is empty; send multipart/form-data with an `image` file")

    async def replay() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=4, max_fields=16, max_part_size=MAX_BYTES)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart body ({exc.message}); send one `image` file field") from None
    except Exception as exc:  # python-multipart raises its own types on garbage
        raise ApiError(400, f"malformed multipart body ({type(exc).__name__}); send one `image` file field") from None
    try:
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        upload = form.get("image") if isinstance(form.get("image"), UploadFile) else (files[0] if files else None)
        if upload is None:
            raise ApiError(400, "no file in the form; send the picture in a file field named `image`")
        data = await upload.read()
    finally:
        await form.close()
    if not data:
        raise ApiError(400, "the uploaded image is empty (0 bytes); choose a PNG, JPEG, BMP, GIF, WebP or TIFF file")
    return data


async def _pixels_from_json(request: Request) -> Any:
    body = await _body(request)
    if not body.strip():
        raise ApiError(400, "the request body is empty; send JSON {\"pixels\": 28×28 numbers from 0 to 255}")
    try:
        document = json.loads(body)
    except RecursionError:
        raise ApiError(400, "the JSON body is nested too deeply; send {\"pixels\": 28×28 numbers}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, f"the body is not valid JSON{where}; send {{\"pixels\": 28×28 numbers}}") from None
    if not isinstance(document, dict) or "pixels" not in document:
        raise ApiError(422, "the JSON body needs a \"pixels\" key holding 28 rows of 28 numbers from 0 to 255")
    return document["pixels"]


# ---------------------------------------------------------------------------------------------
# The models listing


def _summary(card: dict[str, Any], path: Path, active: bool) -> dict[str, Any]:
    accuracy = (card.get("metrics") or {}).get("accuracy")
    return {
        "id": str(card.get("id", path.parent.name)),
        "model": str(card.get("model", "?")),
        "dataset": str(card.get("dataset", "?")),
        "image_shape": [int(v) for v in card.get("image_shape", [0, 0])],
        "pixel_max": int(card.get("pixel_max", 0)),
        "accuracy": float(accuracy) if isinstance(accuracy, (int, float)) else None,
        "path": str(path),
        "active": active,
    }


def _list_models(served: _Served) -> list[dict[str, Any]]:
    active = served.loaded
    listed = [_summary(active.card, active.path.parent, True)]
    seen = {active.path.parent.resolve()}
    if served.runs_dir.is_dir():
        for folder in sorted(served.runs_dir.iterdir(), reverse=True):
            card_path = folder / CARD_NAME
            if folder.resolve() in seen or not card_path.is_file():
                continue
            try:
                card = json.loads(card_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(card, dict):
                try:
                    listed.append(_summary(card, folder, False))
                except (TypeError, ValueError, AttributeError):
                    continue  # a damaged card is not listed; loading it would refuse it too
    return listed
