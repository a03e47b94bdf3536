"""How much work the server takes on at once, and the 503 it answers beyond that.

A picture costs memory for its pixels, not its file size: a 76 KB PNG of 4096×4096 RGBA decodes to
64 MB, and preparing it briefly needs about as much again. Every prediction therefore passes
:class:`DecodeGate` before its picture is decoded:

- a **turn**: at most ``decode_slots`` predictions work at once (they are CPU work); the others wait
  up to ``slot_wait_s`` for one, holding only their encoded bytes (which the body budget bounds). Small pictures
  explained (:func:`inline`, ``?explain=true``) take turns of their own, as many again, and no pixels; a small
  picture not explained is answered on the event loop, one at a time, with neither;
- **pixels**: the image header is read first (Pillow's ``Image.open`` is lazy: it reads the size and
  nothing else), and the picture takes width × height from a budget of ``decode_pixels`` shared by
  every decode running; one that does not fit now is answered 503 with ``Retry-After`` at once,
  instead of queueing its memory.

:class:`ServeLimits` holds every such number of the server in one place: these, the request-body
budget and timeouts (:mod:`digitlab.serve.limits`) and the connection limits
(:mod:`digitlab.serve.connections`).

Examples
--------
>>> budget = Budget(100)
>>> budget.take(60), budget.take(60), budget.in_use
(True, False, 60)
>>> budget.give(60)
>>> budget.in_use
0
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from PIL import Image
from starlette.exceptions import HTTPException

from digitlab.data.image_files import WORK_SIDE, decoded_size
from digitlab.data.images import FORMATS, MAX_SIDE
from digitlab.data.plain_png import plain_png_size
from digitlab.memory import give_back_memory

__all__ = ["INLINE_BYTES", "INLINE_PIXELS", "Budget", "Busy", "DecodeGate", "ServeLimits", "inline", "pixels_to_decode"]


@dataclass(frozen=True)
class ServeLimits:
    """Every bound of the server: how much it decodes, reads and keeps open at once, and for how long.

    The defaults suit a laptop: about 300 MB for decoding at the worst, 64 MiB of request bodies,
    and no client can hold a connection without sending for more than ``header_s``/``body_idle_s``.
    """

    decode_slots: int = max(2, os.cpu_count() or 2)
    """Predictions of large pictures working at once (decoding, preparing, predicting): the CPU. Small pictures
    explained have as many turns again (:class:`DecodeGate`)."""
    decode_pixels: int = 2 * MAX_SIDE * MAX_SIDE
    """Pixels being decoded at once, all requests together: two 4096×4096 pictures (≈ 8 bytes each at the worst)."""
    slot_wait_s: float = 5.0
    """How long a prediction waits for its turn before the answer is 503."""
    body_bytes: int = 64 * 2**20
    """Request bodies held in memory at once, all requests together."""
    body_idle_s: float = 10.0
    """A body that stops arriving for this long is answered 408 and its connection closed."""
    body_total_s: float = 60.0
    """The longest a whole body may take to arrive (408 after it)."""
    header_s: float = 10.0
    """A connection whose request headers are not complete this long after it opened, or after its
    last answer, is closed."""
    keep_alive_s: int = 5
    """An idle keep-alive connection is closed after this (uvicorn's ``timeout_keep_alive``)."""
    max_connections: int | None = None
    """Open connections; None: from the open-file limit (:func:`digitlab.serve.connections.connection_limit`)."""
    retry_after_s: int = 1
    """The ``Retry-After`` of a 503: a decode takes about half a second at the largest size."""


class Busy(HTTPException):
    """The server is at one of its budgets: 503 with ``Retry-After``; the client should retry."""

    def __init__(self, message: str, retry_after: int = 1, close: bool = False) -> None:
        headers = {"Retry-After": str(retry_after)}
        if close:  # the body was not read: the connection cannot carry another request
            headers["Connection"] = "close"
        super().__init__(503, message, headers=headers)


class Budget:
    """A total that requests take from and give back; ``take`` never waits (thread-safe)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._lock = threading.Lock()

    def take(self, amount: int) -> bool:
        """Take ``amount`` if it fits now; False (and nothing taken) if not."""
        with self._lock:
            if self.in_use + amount > self.total:
                return False
            self.in_use += amount
            return True

    def give(self, amount: int) -> None:
        """Give back what :meth:`take` took."""
        with self._lock:
            self.in_use -= amount


class DecodeGate:
    """Turns (how many predictions work at once) and pixels (how much they decode at once).

    Small pictures explained (``?explain=true`` on the page's drawing, :func:`inline`) take turns of their own, as
    many, so that they never wait behind large photos; they decode too little to take pixels.
    """

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.turns = anyio.Semaphore(limits.decode_slots)
        self.small_turns = anyio.Semaphore(limits.decode_slots)
        self.pixels = Budget(limits.decode_pixels)

    @asynccontextmanager
    async def turn(self, *, small: bool = False) -> AsyncIterator[None]:
        """Wait up to ``slot_wait_s`` for a turn (``small``: one of the small pictures'); :class:`Busy` if none came.

        A free turn is taken at once: no timer, no trip round the event loop (a fiftieth of a prediction).
        """
        turns = self.small_turns if small else self.turns
        try:
            turns.acquire_nowait()  # a free turn means nobody is waiting (a release hands it to a waiter)
        except anyio.WouldBlock:
            await self._wait_for_turn(turns)
        try:
            yield
        finally:
            turns.release()

    async def _wait_for_turn(self, turns: anyio.Semaphore) -> None:
        with anyio.move_on_after(self.limits.slot_wait_s):  # only the wait: never the work itself
            await turns.acquire()
            return
        raise Busy(f"the server is busy: {self.limits.decode_slots} predictions are running and more are "
                   "waiting; retry in a moment", self.limits.retry_after_s)

    @contextmanager
    def decoding(self, data: bytes, pixels: int | None = None) -> Iterator[int]:
        """Hold the pixels of the picture in ``data`` while it is decoded and prepared (in a worker thread).

        ``pixels``: :func:`pixels_to_decode` of ``data`` when the caller has it already. :class:`Busy` at once
        when they do not fit beside the decodes already running.
        """
        cost = pixels_to_decode(data) if pixels is None else pixels
        if not self.pixels.take(cost):
            raise Busy(f"the server is decoding other large pictures ({self.pixels.in_use:,} of "
                       f"{self.pixels.total:,} pixels at once); retry in a moment or send a smaller picture",
                       self.limits.retry_after_s)
        try:
            yield cost
        finally:
            self.pixels.give(cost)
            if cost >= _BIG:
                give_back_memory()


_BIG = 1024 * 1024  # pixels: after a decode this large, hand the freed memory back to the system

INLINE_PIXELS = 400 * 400
"""A picture this small (the page's drawing is 112×112) is decoded and predicted, or prepared to be saved, on the
event loop itself: a millisecond or two of work for a drawing (a 400×400 picture of noise, up to 80 ms), where
handing it to a worker thread and back costs a fair part of that and makes the threads take turns at the GIL.
Larger ones go to a worker thread, so the loop keeps answering while they decode. The loop does one at a time,
so a small one needs neither a turn of :class:`DecodeGate` nor pixels from its budget: it never waits behind, nor
is refused beside, large photos (an engineer: with every turn held by photos, drawings waited p50 0.87 s)."""
INLINE_BYTES = 256 * 1024


def inline(source: Any, pixels: int) -> bool:
    """True for a 28×28 grid (not bytes) and for an encoded picture of at most :data:`INLINE_PIXELS` pixels and
    :data:`INLINE_BYTES` bytes (``pixels``: :func:`pixels_to_decode`)."""
    if not isinstance(source, bytes):
        return True
    return len(source) <= INLINE_BYTES and 0 < pixels <= INLINE_PIXELS


def pixels_to_decode(data: bytes) -> int:
    """Width × height from the image header, without decoding.

    0 for bytes Pillow cannot open and for a size :func:`~digitlab.data.images.read_image` refuses
    before decoding: neither decodes anything. A PNG whose intact header chunk is followed by its pixels has
    its size read from that chunk (a fifteenth of the time of Pillow's ``open``); one broken further on is refused by
    ``read_image``, in one line, as before.

    Examples
    --------
    >>> buffer = io.BytesIO()
    >>> Image.new("RGBA", (300, 200)).save(buffer, "PNG")
    >>> pixels_to_decode(buffer.getvalue()), pixels_to_decode(b"not an image")
    (60000, 0)
    """
    size = plain_png_size(data)  # the page's PNGs: the size is at byte 16
    if size is not None:
        width, height = size
    else:
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = decoded_size(image, WORK_SIDE)  # a large JPEG decodes at reduced scale
        except Exception:  # not an image, or Pillow's own decompression-bomb refusal
            return 0
    if width > MAX_SIDE or height > MAX_SIDE:
        return 0
    return width * height
