"""PyTorch's CPU threads fitted, while a CNN trains or predicts, to the cores other programs leave free.

PyTorch runs its CPU kernels on OpenMP threads, one per core. Between two parallel pieces of work a
thread that is done spins for a while before it sleeps: on an idle machine the fastest way to wait.
When another program keeps a core busy, the thread being waited for shares its core with that program
while the spinning one holds the other, at each of a step's many meeting points: a training step on
2 cores beside one busy process took 1.8-2.8x as long as on one thread (``benchmarks/bench_busy_cpu.py``).
Threads that sleep at once (``OMP_WAIT_POLICY=PASSIVE``, digitlab's setting before this module) lose
less there, but cost 23-32% of every step on an idle machine.

So OpenMP waits as it does by default, and a :class:`CoreShare` watches a loop of steps: every
``every`` seconds it reads how much CPU time the machine's cores spent busy (Linux's ``/proc/stat``,
the cores this process may run on) less this process's own, and sets PyTorch's thread count to the
cores the other programs left free (at least one, at most the count it started with). Beside one busy
core on 2 cores that is one thread; when the other program stops, two again. Elsewhere (macOS,
Windows) nothing is watched. A fit whose thread count changed computes in a different order, so its
last digits may differ from the same seed's fit on an idle machine.

Examples
--------
>>> share = CoreShare(watch=False, cpus={0, 1}, cap=2)
>>> [share.threads_for(others) for others in (0.0, 0.4, 0.6, 1.0, 1.7, 5.0)]
[2, 2, 1, 1, 1, 1]
"""

from __future__ import annotations

import os
import time
from typing import Callable

__all__ = ["CoreShare", "busy_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # /proc/stat: user nice system [idle iowait] irq softirq steal


def busy_seconds(cpus: set[int], stat: str = "/proc/stat") -> float | None:
    """Seconds the CPUs ``cpus`` have spent busy since boot (any process, the kernel, a hypervisor's
    steal), from ``stat``; None where it cannot be read (not Linux)."""
    try:
        with open(stat, encoding="ascii") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, _, values = line.partition(" ")
        if name[3:].isdigit() and name.startswith("cpu") and int(name[3:]) in cpus:
            fields = values.split()
            ticks += sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))
    return ticks / _TICKS


class CoreShare:
    """Sets PyTorch's CPU thread count, at most every ``every`` seconds of :meth:`tick`, to the cores
    other programs leave free; :meth:`close` (or the ``with`` block's end) sets back the count it found.

    ``cpus``, ``cap``: the cores to share and the most threads to use (default: this process's cores
    and PyTorch's thread count now, which torchrun's ranks or a person's ``torch.set_num_threads`` set).
    ``watch=False``: change nothing (a GPU's loop). ``stat``: where the kernel's CPU times are read.
    """

    def __init__(self, every: float = 0.5, *, watch: bool = True, cpus: set[int] | None = None,
                 cap: int | None = None, stat: str = "/proc/stat"):
        self.every, self.stat = every, stat
        self.cpus = set(cpus if cpus is not None else os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity")
                        else range(os.cpu_count() or 1))
        self.cap = cap if cap is not None else _torch().get_num_threads()
        self.changes = 0  # how many times the thread count was changed
        self._mark = self._sample() if watch else None  # (wall, busy, own CPU) seconds; None: not watched

    def _sample(self) -> tuple[float, float, float] | None:
        busy = busy_seconds(self.cpus, self.stat)
        return None if busy is None else (time.perf_counter(), busy, time.process_time())

    def threads_for(self, others: float) -> int:
        """The threads to use while other programs keep ``others`` cores busy (rounded to whole cores)."""
        return max(1, min(self.cap, len(self.cpus) - int(others + 0.5)))

    def tick(self) -> None:
        """Between two steps: when ``every`` seconds have passed, measure and set the thread count."""
        if self._mark is None or time.perf_counter() - self._mark[0] < self.every:
            return
        mark, self._mark = self._mark, self._sample()
        if self._mark is None:
            return
        wall, busy, own = (now - then for now, then in zip(self._mark, mark))
        threads = self.threads_for(max(0.0, busy - own) / wall)
        torch = _torch()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            self.changes += 1

    def ticking(self, then: Callable[[float], None]) -> Callable[[float], None]:
        """A step's callback that ticks, then calls ``then`` with the training's progress (a progress bar's)."""
        def step(frac: float) -> None:
            self.tick()
            then(frac)

        return step

    def close(self) -> None:
        """Set back the thread count this share started with."""
        torch = _torch()
        if self.changes and torch.get_num_threads() != self.cap:
            torch.set_num_threads(self.cap)
        self._mark = None

    def __enter__(self) -> "CoreShare":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _torch():
    import torch  # only when a CNN trains or predicts: ``import digitlab`` works without PyTorch

    return torch
