"""The drawing page's own request, answered without FastAPI's parameter machinery.

While the pen moves, every student's page sends the same request up to 12 times a second: the drawing as a
PNG body and ``?input=true``. FastAPI checks and converts each query parameter and the body through its
dependency system, about 0.08 ms a request, a fifteenth of the whole answer. :func:`page_lane` is a
plain Starlette route in front of ``POST /api/predict/image`` that takes only the query strings the page
can send (``input`` and ``top_k`` in their plain forms, nothing else); any other request falls through to
the FastAPI route, which documents and checks every parameter (``?model=``, ``?explain=``, ``?input=1``,
...). Both end in the same answer; the size limits, timeouts and Content-Type checks of
:mod:`digitlab.serve.limits` run before either.

Examples
--------
>>> plain_query(b"input=true"), plain_query(b""), plain_query(b"top_k=5&input=false")
((3, True), (3, False), (5, False))
>>> plain_query(b"input=1") is None, plain_query(b"explain=true") is None, plain_query(b"top_k=11") is None
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from digitlab.serve.errors import ApiError
from digitlab.serve.limits import IMAGE, empty_body

__all__ = ["TOP_K", "TOP_K_MAX", "page_lane", "plain_query"]

Answer = Callable[..., Awaitable[Response]]
TOP_K, TOP_K_MAX = 3, 10
"""``top_k``'s default and largest value, on the lane and on the FastAPI routes (``app.TopK``)."""
_TOP_K = {str(k).encode(): k for k in range(1, TOP_K_MAX + 1)}
_INPUT = {b"true": True, b"false": False}


def plain_query(query: bytes) -> tuple[int, bool] | None:
    """``(top_k, input)`` of a query string the lane answers; None for any other, which FastAPI answers."""
    top_k, with_input, seen = TOP_K, False, set()
    for pair in query.split(b"&") if query else ():
        key, _, value = pair.partition(b"=")
        if key in seen:
            return None
        seen.add(key)
        if key == b"input" and value in _INPUT:
            with_input = _INPUT[value]
        elif key == b"top_k" and value in _TOP_K:
            top_k = _TOP_K[value]
        else:
            return None
    return top_k, with_input


class _Lane(Route):
    """A route that matches only when the query string is one :func:`plain_query` reads."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and plain_query(scope.get("query_string", b"")) is None:
            return Match.NONE, {}
        return match, child


def page_lane(answer: Answer) -> Route:
    """The lane for ``POST /api/predict/image``; ``answer(app, body, top_k, with_input)`` makes the response.

    Put it before the FastAPI route in ``app.router.routes``.
    """

    async def endpoint(request: Request) -> Any:
        top_k, with_input = plain_query(request.scope.get("query_string", b""))  # type: ignore[misc]
        body = await request.body()
        if not body:  # a chunked body with no bytes in it (an empty Content-Length is refused before)
            raise ApiError(400, empty_body(IMAGE))
        return await answer(request.app, body, top_k, with_input)

    return _Lane(IMAGE, endpoint, methods=["POST"], name="page_lane", include_in_schema=False)
