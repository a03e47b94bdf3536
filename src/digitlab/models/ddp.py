"""Training the CNN on several processes: PyTorch DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node=N -m digitlab run --model cnn ...`` starts N copies of the command
and tells each, through the environment, who it is (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
:func:`world` reads that; :func:`session` joins the process group (gloo on the CPU, NCCL on
GPUs) for the length of the training and leaves it after. While a group is joined,
:meth:`digitlab.models.cnn.CNNClassifier.fit` trains with the helpers below:

- every rank draws the same shuffled order and the same augmentation numbers (one seed) and
  keeps its share of each batch (:func:`shard`), so the total batch, the steps per epoch and
  the learning-rate schedule are those of the single-process run;
- :func:`wrap` puts the network in ``DistributedDataParallel``, which averages the gradients,
  so every rank holds the same weights after each step;
- the decisions that end training (time budget, target accuracy) are the same on every rank
  (:class:`SharedClock`, :func:`from_rank0`), so no rank waits for a step that never comes.

Without ``torchrun`` nothing here runs: :func:`world` is None and ``fit`` is unchanged.

Examples
--------
>>> world({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
World(rank=1, size=2, local_rank=1, local_size=2)
>>> world({}) is None
True
>>> shard(list(range(8)), rank=1, size=2)
[1, 3, 5, 7]
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence, TypeVar

from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    import torch

    from digitlab.models.cnn_torch import Clock

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the ``torchrun`` processes.

    Attributes
    ----------
    rank : int
        0 to ``size - 1``; rank 0 writes the run folder and prints.
    size : int
        Processes in all, on every machine.
    local_rank : int
        Place among the processes on this machine (its GPU, when there are GPUs).
    local_size : int
        Processes on this machine (they share its CPU cores).
    """

    rank: int
    size: int
    local_rank: int
    local_size: int


WAIT = 120
"""Seconds a process waits for the others to join, and for each exchange with them: one that stopped before it
joined (its command refused) had left the others waiting PyTorch's default 30 minutes, saying nothing."""


def world(environ: Mapping[str, str] | None = None) -> World | None:
    """Who this process is under ``torchrun``, or None when it runs alone (no ``WORLD_SIZE`` > 1).

    Examples
    --------
    >>> world({"WORLD_SIZE": "1", "RANK": "0"}) is None
    True
    >>> world({"WORLD_SIZE": "two"})
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be whole numbers; start distributed training with `torchrun`, which sets them
    """
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1") or 1)
        if size <= 1:
            return None
        if "RANK" not in env:
            raise DigitlabError(f"WORLD_SIZE={size} is set but RANK is not; start distributed training with "
                                "`torchrun`, which sets them, or unset WORLD_SIZE")
        return World(rank=int(env.get("RANK", "0")), size=size, local_rank=int(env.get("LOCAL_RANK", "0")),
                     local_size=int(env.get("LOCAL_WORLD_SIZE", str(size))))
    except ValueError:
        raise DigitlabError("WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be whole numbers; start "
                            "distributed training with `torchrun`, which sets them") from None


def threads_per_process(local_size: int, cores: int | None = None) -> int:
    """CPU threads for each of ``local_size`` processes sharing ``cores`` cores (this machine's by default).

    Examples
    --------
    >>> threads_per_process(2, cores=16), threads_per_process(4, cores=2)
    (8, 1)
    """
    if cores is None:
        from digitlab.cores import usable_cores

        cores = usable_cores()
    return max(1, cores // max(1, local_size))


@contextlib.contextmanager
def session(w: World | None) -> Iterator[World | None]:
    """Join the process group for the block, then leave it; without ``torchrun`` (``w`` None), do nothing.

    GPUs: each process takes the GPU of its local rank and NCCL carries its tensors (gloo its
    CPU ones). CPU: gloo, and the machine's cores are split between its processes for the
    block; after it, the process may use them all (the other ranks are done).
    """
    if w is None:
        yield None
        return
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(w.local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    torch.set_num_threads(threads_per_process(w.local_size))
    try:
        wait = float(os.environ.get("DIGITLAB_TORCHRUN_WAIT", WAIT))  # a test waits less
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=wait))
    except (ValueError, RuntimeError) as exc:  # no MASTER_ADDR, a rendezvous that never came, ...
        raise DigitlabError(f"cannot join the other torchrun processes ({_first_line(exc)}); start distributed "
                            "training with `torchrun`") from None
    try:
        yield w
    except RuntimeError as exc:
        if not _lost_peer(exc):
            raise
        raise DigitlabError(f"another torchrun process stopped during training ({_first_line(exc)}); nothing "
                            "was written") from None
    finally:
        dist.destroy_process_group()
        if w.local_size > 1 and os.environ.get("OMP_NUM_THREADS", "").strip() == "1":
            # torchrun's default for its ranks (a person's own 1 reads the same, and goes too): rank 0, alone now,
            # fits its threads to the busy cores as any run does (:class:`digitlab.cores.CoreShare`). Kept, it turned
            # that off, and two threads on a busy 2-core machine calibrated and evaluated 6-7 times slower (an engineer)
            os.environ.pop("OMP_NUM_THREADS")
        torch.set_num_threads(threads_per_process(1))  # rank 0 carries on alone: the cores are its own


def _lost_peer(exc: RuntimeError) -> bool:
    """Whether ``exc`` is the process group's report of a rank that went away (gloo, NCCL, the store)."""
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, dist.DistError) or any(word in text for word in ("gloo", "NCCL", "Connection reset"))


def _first_line(exc: BaseException) -> str:
    """An exception's first sentence, without the C++ source location PyTorch puts in front, at most 160 characters.

    >>> _first_line(RuntimeError("[/pytorch/gloo/pair.cc:537] Read error [::1]:23: Connection reset by peer. GLHF!"))
    'Read error [::1]:23: Connection reset by peer'
    """
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return line.split(". ", 1)[0].rstrip(".")[:160]


def active() -> World | None:
    """The process group this process has joined (by :func:`session` or its own code), or None."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return None
    size = dist.get_world_size()
    return World(rank=dist.get_rank(), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                 local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))))


def prepare(net: torch.nn.Module, clock: Clock, device: torch.device, batch: int,
            data: tuple[Any, Any, Any] | None = None) -> tuple[torch.nn.Module, Clock | SharedClock, tuple[int, int]]:
    """What this rank trains with: ``(network, clock, (rank, size))``.

    Outside a process group, ``(net, clock, (0, 1))`` unchanged. Inside, the network in
    ``DistributedDataParallel`` (:func:`wrap`) and a clock all ranks agree on (:func:`shared_clock`), once
    every rank is known to hold the same training ``data`` (images, labels) (:func:`same_data`).
    """
    group = active()
    if group is None:
        return net, clock, (0, 1)
    if why := too_small(batch, group.size):
        from digitlab.errors import InvalidValueError

        raise InvalidValueError(why)
    if data is not None:
        same_data(*data, device)  # images, labels, the estimator
    return wrap(net, device), shared_clock(clock, device), (group.rank, group.size)


MIN_SHARE = 16
"""Images a step each process needs at least: BatchNorm normalises each process's share by itself, and a scale-out
audit's total batch of 4 on 2 processes learnt nothing on the 8×8 digits (14-28% against 85-90% in one process;
8: 90% against 95%; 32: the same)."""


def too_small(batch: int, size: int) -> str | None:
    """One line when ``batch`` gives each of ``size`` processes under :data:`MIN_SHARE` images a step, else None."""
    if batch >= MIN_SHARE * size:
        return None
    return (f"batch_size {batch} gives each of the {size} processes {batch // size} images a step, and each normalises "
            f"its own (BatchNorm): give --param batch_size={MIN_SHARE * size} or more")


def die_with_launcher() -> None:
    """Have the kernel kill this process when its parent (torchrun's launcher) dies, on Linux.

    A scale-out audit killed the launcher (SIGKILL, as an out-of-memory kill does): its ranks, waiting for the
    launcher's store in C, were orphans for 3-4 minutes, holding memory and the port, and then blamed the user for
    not starting them with torchrun. A signal they could handle would wait for that C call to return, so it is
    SIGKILL: a rank writes nothing that another does not wait for, and rank 0 writes its run by renaming."""
    import signal
    import sys

    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:  # started by torchrun only
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl to be had: as before
        return
    if os.getppid() == 1:  # the launcher died before the line above: the kernel will not say so now
        os.kill(os.getpid(), signal.SIGKILL)


def fingerprint(images: Any, labels: Any) -> int:
    """A 63-bit digest of the training set: its size, every label and every 97th image.

    >>> import numpy as np
    >>> x, y = np.zeros((4, 8, 8)), np.array([0, 1, 2, 3])
    >>> fingerprint(x, y) == fingerprint(x.copy(), y.copy()), fingerprint(x, y) == fingerprint(x, y[::-1])
    (True, False)
    """
    import hashlib

    import numpy as np

    digest = hashlib.blake2b(repr(np.shape(images)).encode(), digest_size=8)
    digest.update(np.ascontiguousarray(labels).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(images)[::97]).tobytes())
    return int.from_bytes(digest.digest(), "big") >> 1


def same_data(images: Any, labels: Any, estimator: Any, device: torch.device) -> None:
    """Refuse, on every rank, training sets that differ between ranks (another machine's MNIST cache or handwriting
    set, another --seed), or ``estimator``'s parameters that do: batches of different lengths, or one
    rank's clock against another's steps, left the processes waiting for each other forever; another --param
    trained silently on one rank's recipe, and a learning rate that diverged on one side crashed the other."""
    import hashlib

    import torch
    import torch.distributed as dist

    # how each shows its progress, and its own GPU, may differ
    settings = {k: v for k, v in estimator.get_params().items() if k not in ("verbose", "device")}
    recipe = hashlib.blake2b(repr(sorted(settings.items())).encode(), digest_size=7).digest()
    mine = torch.tensor([fingerprint(images, labels), len(labels), int.from_bytes(recipe, "big")], dtype=torch.int64,
                        device=device)
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    sizes = [int(t[1]) for t in every]
    if len({int(t[0]) for t in every}) > 1:
        held = (f"the same number of images, {sizes[0]:,}, but not the same ones" if len(set(sizes)) == 1
                else f"{', '.join(f'{n:,}' for n in sizes)} images, by rank")
        raise DigitlabError(f"the torchrun processes hold different training sets ({held}): give every machine "
                            "the same dataset (the same MNIST cache or handwriting set) and command line")
    if len({int(t[2]) for t in every}) > 1:
        raise DigitlabError("the torchrun processes were given different settings (--param, --time-budget, "
                            "--target-accuracy): give every machine the same command line")


def shard(batch: Sequence[T], rank: int, size: int) -> Sequence[T]:
    """Rank ``rank``'s share of a batch: every ``size``-th item from its own place; the shares are disjoint."""
    return batch[rank::size]


def wrap(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` in ``DistributedDataParallel``: gradients averaged over the ranks after each backward pass."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(net, device_ids=[torch.cuda.current_device()])
    return DistributedDataParallel(net)


def mean(value: float, device: torch.device) -> float:
    """The mean of ``value`` over the ranks (every rank gets it)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def from_rank0(choice: str | None, choices: Sequence[str | None], device: torch.device) -> str | None:
    """Rank 0's ``choice`` (one of ``choices``) on every rank: one decision for all."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([choices.index(choice)], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return choices[int(t.item())]


def shared_clock(clock: Clock, device: torch.device) -> Clock | SharedClock:
    """``clock``, made one for all ranks: counted in steps it already is; under a time budget each
    rank's own clock differs, and a :class:`SharedClock` keeps one schedule (and equal weights)."""
    if clock.budget is None:
        return clock  # progress counts steps: the same on every rank, no need to talk
    return SharedClock(clock, device)


class SharedClock:
    """A :class:`~digitlab.models.cnn_torch.Clock` whose :meth:`progress` is the maximum over the ranks.

    Parameters
    ----------
    clock : Clock
        This rank's own clock; it keeps counting steps and seconds.
    device : torch.device
        Where the one-number tensor of the all-reduce lives (a GPU under NCCL).
    """

    def __init__(self, clock: Clock, device: torch.device):
        self.clock, self.device = clock, device

    @property
    def step(self) -> int:
        """Steps finished (the same on every rank)."""
        return self.clock.step

    @property
    def total_steps(self) -> int:
        """Steps in all, when the time budget does not bind first."""
        return self.clock.total_steps

    def tick(self) -> None:
        """Count one finished step on this rank's clock."""
        self.clock.tick()

    def progress(self) -> float:
        """The furthest progress of any rank (an all-reduce: every rank must call it alike)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([self.clock.progress()], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())
