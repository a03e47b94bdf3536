"""What a prediction request may send, checked before FastAPI reads a byte of the body.

Three routes read three kinds of body (FastAPI parses and documents each one):

- ``POST /api/predict``: ``multipart/form-data`` with an ``image`` file (what the page sends);
- ``POST /api/predict/pixels``: ``application/json`` ``{"pixels": 28×28 numbers}``;
- ``POST /api/predict/image``: the image file itself (``image/png``, ``image/jpeg``, ...).

:class:`PredictBodies`, a small ASGI middleware in front of them, makes sure no request holds
more than :data:`MAX_BODY` in memory: a ``Content-Length`` over it is answered 413 at once, and a
body sent without one (chunked) is cut off with 413 as soon as it passes it. It answers an empty
body 400 and a Content-Type the route cannot read 415. And it lets one URL take all three
kinds: a JSON or bare-image body posted to ``/api/predict`` goes on to the route that reads it.

Examples
--------
>>> route_for("application/json"), route_for("image/png"), route_for("text/plain")
('/api/predict/pixels', '/api/predict/image', None)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab.data.images import MAX_BYTES

__all__ = ["FORM", "IMAGE", "MAX_BODY", "PIXELS", "PredictBodies", "WANTED", "route_for"]

MAX_BODY = MAX_BYTES + 64 * 1024
"""Largest request body read: a 5 MiB image plus room for the multipart envelope."""

FORM, PIXELS, IMAGE = "/api/predict", "/api/predict/pixels", "/api/predict/image"
WANTED = {
    FORM: 'multipart/form-data with an `image` file, or JSON {"pixels": 28×28 numbers}',
    PIXELS: 'JSON {"pixels": 28×28 numbers from 0 to 255}',
    IMAGE: "the image file itself, with a Content-Type such as image/png",
}
"""Each predict route, and what to send it (for the error messages)."""


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
    """ASGI middleware: size limits, empty bodies and Content-Types of the predict routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in WANTED:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        refusal = _refusal(scope["path"], content_type, headers.get("content-length"))
        if refusal is not None:
            status, message = refusal
            await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
            return
        target = route_for(content_type)
        if scope["path"] == FORM and target != FORM:  # JSON or a bare image sent to the page's URL
            scope = {**scope, "path": target, "raw_path": str(target).encode()}
        await self.app(scope, _within_limit(receive), send)


def _refusal(path: str, content_type: str, declared: str | None) -> tuple[int, str] | None:
    """Status and message for a request refused on its headers alone, or None."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return 413, (f"the request body is {int(declared) / 2**20:.1f} MiB; the limit is 5 MiB for an image, "
                     "send a smaller file")
    if declared == "0":
        return 400, f"the request body is empty; send {WANTED[path]}"
    if not content_type:
        return 415, f"no Content-Type; send {WANTED[path]}"
    target = route_for(content_type)
    if target is None or (path != FORM and target != path):
        return 415, f"cannot read a {content_type} body here; send {WANTED[path]}"
    return None


def _within_limit(receive: Receive) -> Receive:
    """``receive`` that raises 413 once the body passes :data:`MAX_BODY`, whatever its headers said."""
    size = 0

    async def receive_within_limit() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > MAX_BODY:  # FastAPI passes an HTTPException from reading the body on as it is
                raise HTTPException(413, "the request body is over 5 MiB; send a smaller image")
        return message

    return receive_within_limit
