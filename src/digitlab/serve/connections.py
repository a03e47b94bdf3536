"""What a connection may hold on the server: uvicorn's own limits, and the few it lacks.

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``) and the headers' size on its
h11 parser (``h11_max_incomplete_event_size``), but not the time a client takes to send its headers,
nor their size on the httptools parser, nor how many connections are open: a client that connects
and sends nothing, or half a header, held its connection forever. :func:`guarded` wraps uvicorn's
HTTP protocol with those three:

- a **header deadline**: a connection whose request headers are not complete ``header_s`` after it
  opened, or after its last answer, is closed (with a 408 if it had started a request);
- a **header size**: more than :data:`HEADER_BYTES` before the headers end is answered 431 and closed;
- a **connection limit**: past ``max_connections``, a new connection closes the oldest one that is
  only waiting for headers (a slow or vanished client), so ``/healthz`` and real clients still get
  in; only when every connection is busy with a request is the new one refused.

The body has its own timeouts in :mod:`digitlab.serve.limits`. :func:`uvicorn_settings` gathers
everything passed to uvicorn, and :func:`run_server` is what ``digitlab serve`` runs. Closing a
stalled connection is a normal event: nothing is logged per connection, at most one line a minute
while the limit is being reached.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import resource
import sys
import time
from collections import OrderedDict
from typing import Any

from digitlab.serve.budget import ServeLimits
from digitlab.terminal import Terminated

__all__ = ["HEADER_BYTES", "connection_limit", "guarded", "raise_open_file_limit", "run_server", "uvicorn_settings"]

HEADER_BYTES = 64 * 1024
"""Largest request line plus headers read (uvicorn's h11 parser allows 16 KiB; httptools has no limit)."""
_RESERVED_FILES = 256  # open files kept free for the model, the log, the threads
_WANTED_FILES = 16_384 + _RESERVED_FILES
log = logging.getLogger("digitlab.serve")


def run_server(application: Any, host: str, port: int, limits: ServeLimits, access_log: bool = False) -> None:
    """Serve ``application`` (from :func:`~digitlab.serve.app.create_app`) on uvicorn within ``limits``;
    ``access_log``: a line for every request."""
    import uvicorn

    raise_open_file_limit()
    gc.collect()
    gc.freeze()  # the model and the imports live as long as the server: the collector need not walk them again
    server = uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_level="info",
                                           **uvicorn_settings(limits, access_log)))
    try:  # as uvicorn.run, but for SIGTERM (terminal.Terminated), which goes on to end the command by that signal
        server.run()  # (uvicorn.run took it for Ctrl-C: exit 0, "failed" or restarted by a service manager)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


def raise_open_file_limit(wanted: int = _WANTED_FILES) -> int:
    """Raise this process's soft open-file limit towards ``wanted`` (never above the hard one); the new soft limit.

    Linux laptops start processes at 1,024 open files, each connection takes one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. macOS refuses more than its per-process maximum
            pass
    return soft


def connection_limit(limits: ServeLimits) -> int:
    """Open connections allowed: ``limits.max_connections``, else what the open-file limit leaves."""
    if limits.max_connections is not None:
        return limits.max_connections
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    files = _WANTED_FILES if soft == resource.RLIM_INFINITY else soft
    return max(64, min(files, _WANTED_FILES) - _RESERVED_FILES)


def uvicorn_settings(limits: ServeLimits, access_log: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config``: the guarded protocol, uvicorn's own limits, and
    whether every request is logged (off by default: a class drawing sends over a thousand requests a second,
    and each line costs about a tenth of a prediction's CPU)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from digitlab.serve.quiet import quiet_logs

    quiet_logs()  # a scanner's "Invalid HTTP request" once a minute, not once a connection; a model's loading once
    cap = connection_limit(limits)
    return {
        "access_log": access_log,
        "http": guarded(AutoHTTPProtocol, limits, cap),
        "ws": "none",  # no route speaks WebSocket: an upgrade is a plain request, not two log lines and a 403
        "timeout_keep_alive": limits.keep_alive_s,
        "h11_max_incomplete_event_size": HEADER_BYTES,
        # uvicorn answers 503 to every request once connections or running requests reach this; above
        # our own cap it only acts on requests still running after their client left.
        "limit_concurrency": cap + 2 * limits.decode_slots + 64,
        "backlog": 2048,
    }


def guarded(base: type[asyncio.Protocol], limits: ServeLimits, cap: int) -> type[asyncio.Protocol]:
    """``base`` (uvicorn's httptools or h11 protocol) with the header deadline, header size and connection limit."""
    return type(f"Guarded{base.__name__}", (_Guarded, base), {"guard": _Guard(limits, cap)})


class _Guard:
    """What the connections of one server share: the limits, who waits for headers, the limit's counts."""

    def __init__(self, limits: ServeLimits, cap: int) -> None:
        self.limits, self.cap = limits, cap
        self.waiting: OrderedDict[_Guarded, None] = OrderedDict()  # waiting for headers, oldest first
        self.evicted = self.refused = 0
        self.reported: float | None = None

    def make_room(self) -> bool:
        """Close the connection that has waited longest for headers; False when none is waiting."""
        made = bool(self.waiting)
        if made:
            victim, _ = self.waiting.popitem(last=False)
            victim.stop_waiting()
            victim.transport.close_now()
            self.evicted += 1
        else:
            self.refused += 1
        now = time.monotonic()
        if self.reported is None or now - self.reported >= 60.0:  # one line a minute at most
            log.warning("connection limit (%d) reached: closed %d connections still waiting for their headers "
                        "and refused %d new ones", self.cap, self.evicted, self.refused)
            self.reported, self.evicted, self.refused = now, 0, 0
        return made


class _Guarded:
    """Mixed in before uvicorn's protocol class: the header deadline, the header size, the connection limit."""

    guard: _Guard
    _timer: asyncio.TimerHandle | None = None
    _armed_for: Any = None  # the request (uvicorn's cycle) that was current when waiting began
    _header_bytes = 0
    _tail = b""  # the last bytes of the headers so far: their blank line may arrive split
    _started = False  # a byte of the request line has arrived (blank lines before it cannot end the headers)

    _lingering = False  # the answer is out and closing: what the client still sends is read and dropped

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self.transport = _Lingering(self.transport, self)  # type: ignore[assignment]
        if len(self.connections) > self.guard.cap and not self.guard.make_room():
            self.transport.close_now()
            return
        self.await_headers()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self.transport.dropped()
            return
        if self in self.guard.waiting and self.cycle is self._armed_for and not self.transport.is_closing():
            self._count_header_bytes(data)  # before the parser: headers arriving whole would pass it unmeasured
            if self._header_bytes > HEADER_BYTES:
                self._refuse(431, f"the request's address and headers are over {HEADER_BYTES // 1024} KiB; "
                             "send a shorter query (the picture goes in the body) and fewer or shorter headers")
                return
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not self._armed_for:  # the headers are complete: a request has started
            self.stop_waiting()

    def _count_header_bytes(self, data: bytes) -> None:
        """Add the bytes of ``data`` up to the blank line that ends the headers (which may arrive split)."""
        if not self._started:  # blank lines before the request line are allowed, and count, but end nothing
            rest = data.lstrip(b"\r\n")
            self._header_bytes += len(data) - len(rest)
            data, self._started = rest, bool(rest)
            if not rest:
                return
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        self._header_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
        self._tail = seen[-3:]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_waiting()
        super().connection_lost(exc)  # type: ignore[misc]

    def await_headers(self) -> None:
        """Start the header deadline: the next request's headers must be complete within ``header_s``."""
        self.stop_waiting()
        self._armed_for, self._header_bytes, self._tail, self._started = self.cycle, 0, b"", False
        self.guard.waiting[self] = None
        self._timer = self.loop.call_later(self.guard.limits.header_s, self._headers_overdue)

    def stop_waiting(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_overdue(self) -> None:
        self._timer = None
        if self in self.guard.waiting and self.cycle is self._armed_for:
            if self._header_bytes:
                self._refuse(408, f"the request headers did not arrive within {self.guard.limits.header_s:g} s")
            else:
                self.transport.close()  # idle: nothing to answer
        self.guard.waiting.pop(self, None)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes its parser cannot read (a bad Content-Length, method or chunk), as the
        one-line JSON error of every other 4xx instead of plain text."""
        if self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete:
            self.transport.close()  # half an answer is out: a 400 spliced into it would only garble it
            return
        self._refuse(400, f"the request is not valid HTTP ({msg.rstrip('.')}); check its request line and headers")

    def _refuse(self, status: int, message: str) -> None:
        if getattr(self, "access_log", False):  # uvicorn's access log never sees an answer written here
            client = getattr(self, "client", None)
            self.access_logger.info('%s - "%s %s HTTP/%s" %d', "%s:%d" % client if client else "-", "-",
                                    "(refused before its request was read)", "1.1", status)  # uvicorn's 5 fields
        self.stop_waiting()
        self.transport.write(_plain_response(status, message))
        self.transport.close()


LINGER_IDLE_S, LINGER_MOST_S = 2.0, 30.0
"""A closing connection reads on (and drops) what its client still sends until it has sent nothing for
``LINGER_IDLE_S``, for ``LINGER_MOST_S`` at most (:class:`_Lingering`; nginx's lingering close, the same figures)."""


class _Lingering:
    """A connection's transport whose ``close`` ends the answer (FIN) but reads on, dropping what comes, until the
    client stops sending (:data:`LINGER_IDLE_S`), before it closes. Closed with a request body unread (a 503 for the
    body budget, a 413), the kernel reset the connection under a client still sending, and the answer was lost: 10
    of 200 uploads of a 4 MB photo at 50 clients saw "connection reset by peer". All else is the transport's own."""

    def __init__(self, transport: Any, protocol: _Guarded) -> None:
        self._transport, self._protocol, self._closing = transport, protocol, False
        self._timer: asyncio.TimerHandle | None = None
        self._until = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing or self._transport.is_closing():
            return
        self._closing = True
        try:
            if self._transport.can_write_eof():
                self._transport.write_eof()  # after what is written: the client reads the answer whole
                self._transport.resume_reading()  # uvicorn pauses reading a body nobody reads
                self._protocol._lingering = True
                self._until = self._protocol.loop.time() + LINGER_MOST_S
                self.dropped()
                return
        except (OSError, RuntimeError):  # the connection is gone already
            pass
        self._transport.close()

    def dropped(self) -> None:
        """More came while closing: wait for the client to stop sending (within the most)."""
        if self._timer is not None:
            self._timer.cancel()
        wait = max(0.0, min(LINGER_IDLE_S, self._until - self._protocol.loop.time()))
        self._timer = self._protocol.loop.call_later(wait, self._transport.close)

    def close_now(self) -> None:
        self._closing = True
        self._transport.close()


_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _plain_response(status: int, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    return head % (status, _REASONS[status], len(body)) + body
