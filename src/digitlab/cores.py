"""PyTorch's CPU threads fitted, while a CNN trains or predicts, to the cores other programs leave free.

PyTorch runs its CPU kernels on OpenMP threads, one per core. Between two parallel pieces of work a
thread that is done spins for a while before it sleeps: on an idle machine the fastest way to wait.
When another program keeps a core busy, the thread being waited for shares its core with that program
while the spinning one holds the other, at each of a step's many meeting points: a training step on
2 cores beside one busy process took 2.4-2.6x as long as on one thread (``benchmarks/bench_busy_cpu.py``).
Threads that sleep at once (``OMP_WAIT_POLICY=PASSIVE``, digitlab's setting before this module) lose
less there, but cost 23-32% of every step on an idle machine.

So OpenMP waits as it does by default, and a :class:`CoreShare` watches a loop of steps: every
``every`` seconds it reads how much CPU time the machine's cores spent busy (Linux's ``/proc/stat``,
the cores this process may run on) less this process's own, and sets PyTorch's thread count to the
cores the other programs left free (at least one, at most the count it started with). Beside one busy
core on 2 cores that is one thread; when the other program stops, two again. Niced programs (``nice``)
are not counted unless this process is niced too: they give way to it. Elsewhere (macOS, Windows), and
where ``OMP_NUM_THREADS`` sets the count, nothing is watched. A fit whose thread count changed adds its
numbers in another order: on the 8x8 digits a probability moved by up to 0.023, so a seed's fit on a busy
machine can differ from its fit on an idle one, even in a prediction; set ``OMP_NUM_THREADS`` to keep a
seed's fit the same to the bit. scikit-learn's own OpenMP loops (the k-NN's distances) are not watched.

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

__all__ = ["CoreShare", "busy_seconds", "fixed_threads", "usable_cores"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_BUSY_FIELDS = (0, 2, 5, 6, 7)  # /proc/stat: user [nice] system [idle iowait] irq softirq steal
_NICE = 1  # time of niced processes: they yield to a process that is not niced, so count it only when we are


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS tells it (Linux), else the core count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_seconds(cpus: set[int], stat: str = "/proc/stat", *, niced: bool = False) -> float | None:
    """Seconds the CPUs ``cpus`` have spent busy since boot (processes, the kernel, a hypervisor's steal;
    niced processes only when ``niced``), from ``stat``; None where it cannot be read (not Linux)."""
    fields = (*_BUSY_FIELDS, _NICE) if niced else _BUSY_FIELDS
    ticks = 0
    try:
        with open(stat, encoding="ascii") as file:
            for line in file:
                name, _, values = line.partition(" ")
                if name[3:].isdigit() and name.startswith("cpu") and int(name[3:]) in cpus:
                    columns = values.split()
                    ticks += sum(int(columns[i]) for i in fields if i < len(columns))
    except (OSError, ValueError):  # not Linux, or a file of another format (ValueError covers bad bytes too)
        return None
    return ticks / _TICKS


def fixed_threads() -> bool:
    """True where the environment sets the thread count (``OMP_NUM_THREADS``): a share then keeps it, so
    a seed's fit repeats to the bit whatever else runs."""
    return bool(os.environ.get("OMP_NUM_THREADS", "").strip())


class CoreShare:
    """Sets PyTorch's CPU thread count, at most every ``every`` seconds of :meth:`tick`, to the cores
    other programs leave free; :meth:`close` (or the ``with`` block's end) sets back the count it found.

    ``cpus``, ``cap``: the cores to share and the most threads to use (default: this process's cores
    and PyTorch's thread count now, which torchrun's ranks or a person's ``torch.set_num_threads`` set).
    ``watch=False``, or ``OMP_NUM_THREADS`` set (:func:`fixed_threads`): change nothing.
    ``stat``: where the kernel's CPU times are read. ``niced``: count niced programs (default: when this
    process is niced itself).
    """

    def __init__(self, every: float = 0.5, *, watch: bool = True, cpus: set[int] | None = None,
                 cap: int | None = None, stat: str = "/proc/stat", niced: bool | None = None):
        self.every, self.stat = every, stat
        self.cpus = set(cpus if cpus is not None else os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity")
                        else range(os.cpu_count() or 1))
        self.cap = cap if cap is not None else _torch().get_num_threads()
        self.changes = 0  # how many times the thread count was changed
        if niced is None:
            niced = hasattr(os, "getpriority") and os.getpriority(os.PRIO_PROCESS, 0) > 0
        self.niced = niced
        self._mark = self._sample() if watch and not fixed_threads() else None  # (wall, busy, own CPU) seconds

    def _sample(self) -> tuple[float, float, float] | None:
        busy = busy_seconds(self.cpus, self.stat, niced=self.niced)
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
