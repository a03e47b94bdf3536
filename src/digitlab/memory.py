"""glibc's allocator tuned for what the process does: a server hands large buffers back, training keeps them.

glibc keeps freed memory for reuse, by rules of its own: its threshold for taking a buffer straight
from the system (``mmap``) rises by itself up to 32 MB, and free memory at the top of a heap is
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
  (more in a fresh process's first steps: ``benchmarks/bench_cnn_step.py --malloc``). Buffers under 32 MB now come from the heap, and up
  to 256 MB of free heap is kept.

The first policy set in a process stays: a server that also predicts a large batch keeps serving's.
Elsewhere (macOS, musl) nothing is changed.

Examples
--------
>>> tune_allocator("serving") in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from functools import cache

__all__ = ["POLICIES", "give_back_memory", "tune_allocator"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
POLICIES = {  # policy -> (mmap threshold, trim threshold), bytes
    "serving": (1 << 20, 4 << 20),  # buffers of 1 MiB or more mapped and unmapped; heaps trimmed above 4 MiB
    "training": (32 << 20, 256 << 20),  # buffers under 32 MB from the heap; up to 256 MB of free heap kept
}
_LOCK = threading.Lock()
_policy: str | None = None


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt thresholds
        return libc
    except (OSError, AttributeError):
        return None


def tune_allocator(policy: str) -> bool:
    """Set glibc's mmap and trim thresholds for ``policy`` ("serving" or "training"), unless this process
    already set one; True when ``policy`` is the one in force."""
    global _policy
    mmap, trim = POLICIES[policy]
    libc = _glibc()
    if libc is None:
        return False
    with _LOCK:
        if _policy is None and libc.mallopt(_M_MMAP_THRESHOLD, mmap) and libc.mallopt(_M_TRIM_THRESHOLD, trim):
            _policy = policy
        return _policy == policy


def give_back_memory() -> None:
    """Return the free memory glibc's heaps still hold to the system (``malloc_trim``); takes milliseconds."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
