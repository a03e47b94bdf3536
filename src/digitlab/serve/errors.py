"""One-line JSON errors: every mistake a client can make is answered 4xx ``{"error": "..."}``.

FastAPI and Starlette parse the request bodies (:mod:`digitlab.serve.app`); their generic answers
("Field required", "There was an error parsing the body") become here a line that says what to
send instead. A client that hangs up in the middle of its body is a normal event: one debug line,
no traceback. Anything else unexpected is a bug: a 500 and the traceback in the server log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from digitlab.data.images import ImageTooLargeError
from digitlab.errors import DigitlabError
from digitlab.serve.limits import FORM, PIXELS, WANTED, empty_body, route_path

__all__ = ["ApiError", "FastJSONResponse", "error_response", "install_error_handlers", "one_image"]

log = logging.getLogger("digitlab.serve")

try:  # speed: orjson encodes an answer (with its 28×28 echo) about 10× faster than the json module
    import orjson
except ImportError:  # pragma: no cover - part of the serve extra; the json module does the same job
    orjson = None


class FastJSONResponse(JSONResponse):
    """A JSON answer encoded by orjson when it is installed (the ``serve`` extra), else by the json module."""

    def render(self, content: Any) -> bytes:
        """The content as compact UTF-8 JSON."""
        if orjson is None:
            return super().render(content)
        return orjson.dumps(content)


NEEDS_PIXELS = 'the JSON body needs a "pixels" key holding 28 rows of 28 numbers from 0 to 255'
NO_FILE = ("no whole file in the form (none sent, or the upload was cut off); send the picture in a file field named "
           "`image`")


class ApiError(Exception):
    """A client mistake with its HTTP status; answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def one_image(request: Request) -> None:
    """Refuse a form with more than one ``image`` file (400): FastAPI would quietly answer for the last one."""
    form = await request.form()  # already parsed for the route's ``image`` parameter; Starlette keeps it
    count = len(form.getlist("image"))
    if count > 1:
        raise ApiError(400, f"{count} files in the form's `image` field; send one picture per request "
                            "(a number of several digits is one picture to /api/read)")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"error": message}`` on one line, with ``status``."""
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception a request can raise as :func:`error_response`."""
    # python-multipart logs a client's malformed form as a bare warning ("Expected boundary character 90, got 88
    # at index 4"); the client gets its 400 here, and the server's log has nothing to act on
    logging.getLogger("python_multipart").setLevel(logging.ERROR)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(DigitlabError)
    async def _digitlab_error(request: Request, exc: DigitlabError) -> JSONResponse:
        return error_response(413 if isinstance(exc, ImageTooLargeError) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        answers = [_explain(err, exc.body, route_path(request.scope)) for err in exc.errors()]
        messages = list(dict.fromkeys(message for _, message in answers))  # unique, in order
        return error_response(answers[0][0] if answers else 422, "; ".join(messages) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI wraps it while reading the body
            return _client_gone(request)
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        route = route_path(request.scope)  # without the root_path a proxy mounts the app under
        if exc.status_code == 400 and route in WANTED:  # the body could not be parsed
            message = _unreadable(route, exc)
        elif exc.status_code == 404:
            message = f"no such page: {request.url.path}; see /docs for the API"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette's Allow names only the first route's methods (GET on /api/samples)
            allowed = _methods_on(request, (headers or {}).get("Allow", ""))
            takes = f"; it takes {', '.join(allowed)}" if allowed else ""
            message = f"{request.method} is not allowed on {request.url.path}{takes}; see /docs"
            headers = {**(headers or {}), "Allow": ", ".join(allowed)} if allowed else headers
        return error_response(exc.status_code, message, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def _disconnect(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return _client_gone(request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug, not bad input
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")


def _methods_on(request: Request, starlette: str = "") -> list[str]:
    """Every method the API documents for the request's path (from its OpenAPI schema: routes of included routers
    too, whose objects differ between FastAPI versions), with those Starlette's own ``Allow`` names (routes left out
    of the schema: the page, its files), HEAD wherever GET (both are answered), in a fixed order."""
    import re

    methods = {m.strip().upper() for m in starlette.split(",") if m.strip()}
    path = route_path(request.scope)
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


def _client_gone(request: Request) -> JSONResponse:
    """The client hung up before its body was read: nobody reads the answer, nothing went wrong."""
    log.debug("the client closed the connection during %s %s", request.method, request.url.path)
    return error_response(400, "the client closed the connection before sending the whole body")


def _explain(err: dict[str, Any], body: Any, path: str) -> tuple[int, str]:
    """Status and one line for one of pydantic's validation errors."""
    loc, kind = tuple(err.get("loc", ())), err.get("type")
    if kind == "json_invalid":  # FastAPI puts the character offset last in loc
        return 400, f"the body is not valid JSON{_position(body, loc[-1])}; send {{\"pixels\": 28×28 numbers}}"
    if loc == ("body",) and kind == "missing":  # a chunked body with no bytes in it
        return 400, empty_body(path)
    if loc[:2] == ("body", "image"):
        return 400, NO_FILE
    if loc[:2] == ("query", "label"):
        return 422, "label must be the digit the picture shows, a whole number from 0 to 9 (e.g. ?label=3)"
    if loc[:1] == ("body",) and path.startswith("/api/samples"):
        return 422, f"send {WANTED.get(path, 'the picture')}"
    if loc[:2] == ("body", "pixels") and kind == "value_error":  # PixelsBody's check says what is wrong
        return 422, str(err.get("ctx", {}).get("error", err.get("msg", "invalid")))
    if loc[:1] == ("body",) and kind == "extra_forbidden":
        return 422, f'unknown key {str(loc[-1])[:40]!r}: the JSON body holds "pixels" and, if wanted, "prepared"'
    if loc[:2] == ("body", "prepared"):
        return 422, '"prepared" is true or false: true when "pixels" already is the model\'s input (`?input=true`)'
    if loc[:1] == ("body",):
        return 422, NEEDS_PIXELS
    where = ".".join(str(part) for part in loc if part not in ("query", "body"))
    message = err.get("msg", "invalid")
    return 422, f"{where}: {message}" if where else message


def _position(document: Any, offset: Any) -> str:
    if not isinstance(document, str) or not isinstance(offset, int):
        return ""
    line = document.count("\n", 0, offset) + 1
    column = offset - document.rfind("\n", 0, offset)
    return f" at line {line}, column {column}"


def _unreadable(path: str, exc: HTTPException) -> str:
    """Why FastAPI or Starlette could not parse a predict route's body, in one line."""
    cause = exc.__cause__
    reason = type(cause).__name__ if cause is not None else str(exc.detail).rstrip(".")
    if isinstance(cause, RecursionError):
        return 'the JSON body is nested too deeply; send {"pixels": 28×28 numbers}'
    if path == PIXELS and isinstance(cause, UnicodeDecodeError):  # a PNG sent as JSON, say
        return ('the body is not JSON (not even UTF-8 text: a picture?); send {"pixels": 28×28 numbers}, or a '
                "picture to /api/predict with its own Content-Type (image/png, ...)")
    if path == PIXELS:
        return f'the body is not valid JSON ({reason}); send {{"pixels": 28×28 numbers}}'
    if path == FORM:
        return f"malformed multipart body ({reason}); send one `image` file field"
    return f"could not read the request body ({reason}); send {WANTED[path]}"
