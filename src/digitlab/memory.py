"""glibc's allocator tuned for what the process does: a server hands large buffers back, training keeps them.

glibc keeps freed memory for reuse, by rules of its own: its threshold for taking a buffer straight
from the system (``mmap``) rises by itself up to 32 MiB, and free memory at the top of a heap is
handed back above a trim threshold. Neither default suits both of digitlab's kinds of process, so
each sets the two thresholds for itself (:func:`tune_allocator`):

- **serving**: a decoded picture lives in a few large buffers, and a server should not keep the
  memory of its largest request. Buffers of 1 MiB or more are mapped and unmapped when freed, and
  :func:`give_back_memory` trims what the heaps still hold after a large decode. Measured with 32
  concurrent 4096×4096 uploads under the decode budget: 103 MB still held two seconds later with
  neither, 6 MB or less with either, 1 MB with both.
- **training**: a CNN step allocates and frees tensors of a few megabytes, again and again. With
  glibc's defaults many come fresh from the system each step, and touching their pages costs page
  faults: in a default MNIST run 8-12 s of system time and 2-5 s of its 30-37 s of training
  (more in a fresh process's first steps: ``benchmarks/bench_cnn_step.py --malloc``). Buffers under
  32 MiB now come from the heap, and up to 256 MiB of free heap is kept.

Serving's policy wins: once set it stays, and a server made in a process that has trained switches to
it, so a server never keeps its largest request's memory. Training's applies where nothing was set; it
overrides the environment's ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_`` (Dask's workers start
with the first, which freezes the mmap threshold at 128 KiB). Elsewhere (macOS, musl) nothing is changed.

Examples
--------
>>> sorted(POLICIES)
['serving', 'training']
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from functools import cache

__all__ = ["POLICIES", "give_back_memory", "glibc", "policy", "tune_allocator"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
POLICIES = {  # policy -> (mmap threshold, trim threshold), bytes
    "serving": (1 << 20, 4 << 20),  # buffers of 1 MiB or more mapped and unmapped; heaps trimmed above 4 MiB
    "training": (32 << 20, 256 << 20),  # buffers under 32 MiB from the heap; up to 256 MiB of free heap kept
}
_LOCK = threading.Lock()
_policy: str | None = None


@cache
def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (on Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt thresholds
        return libc
    except (OSError, AttributeError):
        return None


def tune_allocator(policy: str) -> bool:
    """Set glibc's mmap and trim thresholds for ``policy`` ("serving" or "training"); True when it is the one
    in force. "training" is not set over "serving" (see the module's docstring)."""
    global _policy
    mmap, trim = POLICIES[policy]
    libc = glibc()
    if libc is None:
        return False
    with _LOCK:
        if _policy != policy and _policy != "serving":
            if libc.mallopt(_M_MMAP_THRESHOLD, mmap) and libc.mallopt(_M_TRIM_THRESHOLD, trim):
                _policy = policy
        return _policy == policy


def policy() -> str | None:
    """The policy this process set ("serving", "training"), or None."""
    return _policy


def give_back_memory() -> None:
    """Return the free memory glibc's heaps still hold to the system (``malloc_trim``); takes milliseconds."""
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)
