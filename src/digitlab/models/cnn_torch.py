"""The CNN's PyTorch side: the network, its augmentation, one training epoch, prediction.

The network is three stages of ``conv 3x3 → max-pool 2x2 → BatchNorm → ReLU`` with ``width``,
``2·width`` and ``4·width`` channels, the last ones optionally with a second conv-BN-ReLU, then one linear
layer: BatchNorm and ReLU work on the pooled quarter of the values (a training step about 15% shorter
than with BatchNorm before the pool, as accurate; models saved before have ``conv → BatchNorm → pool →
ReLU``, see :func:`build_net`). The same code serves the 8x8 digits (8 → 4 → 2 → 1 pixels) and MNIST
(28 → 14 → 7 → 3).

Training keeps the whole training set in one tensor on the device and works batch by batch:
a shuffled index, a random affine warp of the batch (shift, rotation, scale), one
forward/backward pass; no per-image Python. The learning rate follows a one-cycle schedule
(warm up, then anneal to zero); under a time budget the schedule runs on the clock, so
training ends on time *and* with the learning rate annealed. On one CUDA GPU the same step runs as
one CUDA graph (:mod:`digitlab.models.cnn_graph`).

:class:`digitlab.models.cnn.CNNClassifier` holds the scikit-learn side and imports this
module only when it fits or predicts, so ``import digitlab.models`` works without PyTorch.
Read it in order: the network, the schedule and the clock, augmentation, where tensors
live, then :func:`train_one_epoch` and :func:`predict_proba`, and finally loading weights.

Examples
--------
>>> net = build_net(side=8, width=4, n_classes=10)
>>> net(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from digitlab.cores import CoreShare
from digitlab.errors import DigitlabError
from digitlab.memory import tune_allocator

if TYPE_CHECKING:
    from digitlab.models.cnn_optim import NesterovSGD

PREDICT_BATCH = 256  # images per forward pass when predicting on the CPU: each layer's output stays in cache
PREDICT_BATCH_CUDA = 2048  # on a GPU, larger batches keep it busy
FEW_IMAGES = 16  # up to this many: one CPU thread, and the allocator left as the process has it

# ---------------------------------------------------------------- the network


def build_net(side: int, width: int, n_classes: int, seed: int = 0, *, norm_after_pool: bool = True,
              extra_convs: int = 0) -> nn.Sequential:
    """conv-pool-BN-ReLU three times (width, 2·width, 4·width channels), then one linear layer.

    The last ``extra_convs`` blocks end with a second conv-BN-ReLU at the pooled size and width (``conv3b``,
    ``bn3b``, ...; on MNIST two of them add 42% to the arithmetic). ``norm_after_pool=False`` builds
    conv-BN-pool-ReLU, the order of the networks saved before the parameter existed (the ReLU after the pool
    computes what it would before it). Either order has the same tensors under the same names (``bn1.weight``,
    ...), and draws the same weights from ``seed``, without touching PyTorch's global random state.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, out in enumerate((width, 2 * width, 4 * width), start=1):
            conv, bn = nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out)
            block = [("conv", conv), ("pool", nn.MaxPool2d(2)), ("bn", bn), ("relu", nn.ReLU(inplace=True))]
            if not norm_after_pool:
                block[1], block[2] = block[2], block[1]
            layers.update((f"{kind}{i}", module) for kind, module in block)
            if i > 3 - extra_convs:
                layers.update([(f"conv{i}b", nn.Conv2d(out, out, 3, padding=1, bias=False)),
                               (f"bn{i}b", nn.BatchNorm2d(out)), (f"relu{i}b", nn.ReLU(inplace=True))])
            channels = out
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(head_inputs(side, width), n_classes)
    return nn.Sequential(layers)


def head_inputs(side: int, width: int) -> int:
    """The linear head's inputs: 4·width channels of side // 8 pixels a side (three 2x2 poolings)."""
    return 4 * width * (side // 8) ** 2


def fuse_bn(net: nn.Module) -> nn.Module:
    """A copy of the trained network for inference, each BatchNorm that follows a convolution folded into it.

    A BatchNorm after the pool stays: its scale may be negative, and the pool does not commute with that.
    """
    fused = copy.deepcopy(net).eval()
    children = list(fused.named_children())
    for (name, module), (after, bn) in zip(children, children[1:]):
        if isinstance(module, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(fused, name, fuse_conv_bn_eval(module, bn))
            setattr(fused, after, nn.Identity())
    return fused


# --------------------------------------------------- the schedule and the clock


def one_cycle(frac: float, peak: float, warmup: float = 0.2) -> float:
    """Learning rate at ``frac`` (0..1) of training: linear warm-up from peak/25, cosine down to 0."""
    if frac < warmup:
        return peak * (0.04 + 0.96 * frac / warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (frac - warmup) / (1.0 - warmup))))


class Clock:
    """How far along training is, from 0 to 1: by steps, or by the clock when a time budget binds.

    Under a budget, the steps still to come are estimated from the recent seconds per step
    (the first steps, which warm up PyTorch, do not count), so the learning-rate schedule
    stretches or shrinks to end when the budget does.
    """

    def __init__(self, total_steps: int, time_budget: float | None, start: float):
        self.total_steps = max(total_steps, 1)
        self.budget = time_budget
        self.start = start
        self.step = 0
        self.warm_steps = 2  # the first steps warm PyTorch up: their seconds are not counted
        self.queued_steps = 0  # steps ticked but still running (a GPU's queue): their time is spent already
        self._last = time.perf_counter()
        self._per_step: float | None = None

    def tick(self) -> None:
        """Count one finished step and update the recent seconds per step."""
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.step += 1
        if self.step > self.warm_steps:
            self._per_step = seconds if self._per_step is None else 0.9 * self._per_step + 0.1 * seconds

    def progress(self) -> float:
        """How far along training is, from 0 to 1."""
        frac = self.step / self.total_steps
        if self.budget is None:
            return frac
        remaining = self.budget - (time.perf_counter() - self.start) - self.queued_steps * (self._per_step or 0.0)
        if remaining <= 0:
            return 1.0
        if self._per_step is None:
            return frac
        return max(frac, self.step / (self.step + remaining / self._per_step))


# ---------------------------------------------------------------- augmentation


def warp(x: torch.Tensor, shift: float, distort: float, gen: torch.Generator, *,
         shard: tuple[int, int] = (0, 1), batch: int | None = None) -> torch.Tensor:
    """Random affine warp of a batch N x 1 x H x W: shift up to ``shift`` px, rotate/scale by ``distort``.

    One ``affine_grid``/``grid_sample`` call for the whole batch, on its device: no per-image Python.
    Under DistributedDataParallel ``x`` is rank ``shard = (rank, size)``'s share (every size-th
    image) of a ``batch`` of images: the random numbers are drawn for the whole batch and shared
    out the same way, so the images are warped as a single process would warp them.
    """
    rank, size = shard
    return warp_by(x, warp_numbers(batch or x.shape[0], gen)[rank::size], shift, distort)


def warp_numbers(n: int, gen: torch.Generator) -> torch.Tensor:
    """The random numbers of :func:`warp` for ``n`` images: N x 4, uniform in [-1, 1], on the CPU."""
    return torch.rand(n, 4, generator=gen) * 2 - 1


def warp_by(x: torch.Tensor, r: torch.Tensor, shift: float, distort: float) -> torch.Tensor:
    """The warp of :func:`warp`, from its random numbers ``r`` (N x 4, uniform in [-1, 1], any device)."""
    side = x.shape[-1]
    if x.shape[-2] != side:
        raise ValueError(f"warp takes square images, got {tuple(x.shape[-2:])}")
    r = r.to(device=x.device, dtype=x.dtype)
    angle = r[:, 0] * distort
    scale = 1.0 + r[:, 1] * distort
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    t = r[:, 2:] * (2.0 * shift / side)  # shift in the [-1, 1] coordinates of affine_grid
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    return F.grid_sample(x, affine_grid(theta, side), mode="bilinear", padding_mode="zeros", align_corners=False)


def affine_grid(theta: torch.Tensor, side: int) -> torch.Tensor:
    """``F.affine_grid(theta, (N, 1, side, side), align_corners=False)`` by broadcasting: 4x faster on the CPU.

    PyTorch's version multiplies every pixel's coordinates by ``theta`` in a batched matrix product,
    1.04-1.08 ms at batch 128 (28x28) on 2 cores; the same sums, written out, take 0.26-0.27 ms.
    """
    coords = (torch.arange(side, device=theta.device, dtype=theta.dtype) * 2 + 1) / side - 1  # pixel centres
    xs, ys = coords[None, None, :], coords[None, :, None]
    t = theta[:, :, :, None, None]  # N x 2 x 3 x 1 x 1
    return torch.stack([t[:, k, 0] * xs + t[:, k, 1] * ys + t[:, k, 2] for k in (0, 1)], dim=-1)


TTA_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))
"""Test-time augmentation: the image and these four one-pixel shifts (rows, columns), probabilities averaged."""
TTA_DIAGONALS = ((1, 1), (1, -1), (-1, 1), (-1, -1))  # the four diagonal one-pixel shifts 9 views add


def tta_shifts(tta: bool | int) -> tuple[tuple[int, int], ...]:
    """The shifts averaged with the image itself for the estimator's ``tta``: False or 1 (the image alone; 0
    and None too, as before views could be counted), True or 5 (:data:`TTA_SHIFTS`), 9 (those and
    :data:`TTA_DIAGONALS`). ``True == 1`` in Python, so booleans are told apart first.

    >>> [len(tta_shifts(t)) for t in (False, True, 1, 5, 9, None, 0)]
    [0, 4, 0, 4, 8, 0, 0]
    """
    views = (5 if tta else 1) if tta is None or isinstance(tta, (bool, np.bool_)) else tta
    if isinstance(views, (int, np.integer)) and views in (0, 1, 5, 9):
        return {0: (), 1: (), 5: TTA_SHIFTS, 9: TTA_SHIFTS + TTA_DIAGONALS}[int(views)]
    raise ValueError(f"tta must be True, False or the number of views, 1, 5 or 9, got {tta!r}")


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift a batch by whole pixels, filling with zeros (paper)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


# ------------------------------------------------------- where tensors live


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when PyTorch sees a GPU, else the CPU."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DigitlabError("device='cuda' was asked for, but PyTorch sees no CUDA GPU; use device='cpu'")
        return torch.device("cuda")
    return torch.device("cpu")


def place(net: nn.Module, device: torch.device) -> nn.Module:
    """Move the network to ``device``, in channels-last memory (faster on CPU's oneDNN and on CUDA)."""
    return net.to(device=device, memory_format=torch.channels_last)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """A batch in the memory layout the network expects."""
    return x.contiguous(memory_format=torch.channels_last)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where oneDNN's bf16 kernels pay."""
    cpu = torch.cpu
    return any(getattr(cpu, check, lambda: False)() for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def use_bf16(device: torch.device, precision: str) -> bool:
    """Whether to train in bf16 autocast: ``"auto"`` on CUDA and on CPUs with native bf16; ``"bf16"``; never for ``"fp32"``.

    On a CPU with AVX512-BF16 a training step of the MNIST CNN takes about two thirds of the fp32 time
    (benchmarks/bench_cnn_step.py); elsewhere bf16 is emulated and slower, so ``"auto"`` keeps fp32.
    """
    if precision == "auto":
        return device.type == "cuda" or native_bf16()
    return precision == "bf16"


def autocast(device: torch.device, bf16: bool | None = None, cache: bool = True):
    """bf16 autocast when ``bf16`` (default: on CUDA only, as prediction uses it); plain fp32 otherwise.
    ``cache=False`` for a step captured in a CUDA graph (PyTorch's rule for autocast in graphs)."""
    if bf16 if bf16 is not None else device.type == "cuda":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def ready_for_training() -> None:
    """Once per process, before the clock starts: where a CUDA graph's ``torch.optim.SGD`` or
    DistributedDataParallel may train, import the torch._dynamo they load on first use (1.4-2.6 s), so
    a time budget counts training; and have glibc keep the memory a step frees for the next one
    (:mod:`digitlab.memory`)."""
    import importlib

    import torch.distributed as dist

    if torch.cuda.is_available() or (dist.is_available() and dist.is_initialized()):
        importlib.import_module("torch._dynamo")
    tune_allocator("training")


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def threads_for(n_images: int, device: torch.device):
    """One CPU thread for a few images: waking a second thread costs more than it saves,
    and on a busy machine it can stall a single prediction for 100 ms."""
    if device.type != "cpu" or n_images > FEW_IMAGES:
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def as_images(X: np.ndarray, side: int) -> np.ndarray:
    """Rows of float32 features as images N x 1 x side x side; a shorter row is zero-padded at its end."""
    n, d = X.shape
    if d == side * side and X.flags.c_contiguous and X.flags.writeable:
        return X.reshape(n, 1, side, side)  # no copy
    images = np.zeros((n, side * side), dtype=np.float32)
    images[:, :d] = X
    return images.reshape(n, 1, side, side)


def to_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Images N x 1 x H x W and integer labels as tensors on ``device``: the whole set stays there."""
    return torch.from_numpy(images).to(device), torch.from_numpy(labels.astype(np.int64)).to(device)


def seeded_generator(seed: int) -> torch.Generator:
    """The generator behind the shuffling and the augmentation."""
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------- train and predict


def train_one_epoch(
    net: nn.Module,
    optimizer: NesterovSGD | torch.optim.SGD,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    peak_lr: float,
    clock: Clock,
    gen: torch.Generator,
    augment: float = 0.0,
    distort: float = 0.0,
    label_smoothing: float = 0.0,
    on_step: Callable[[float], None] = lambda frac: None,
    shard: tuple[int, int] = (0, 1),
    bf16: bool | None = None,
) -> tuple[float, int]:
    """One shuffled pass over ``x``, ``y`` (on the device); stops early when the clock says training is over.

    Returns the mean loss and the number of steps taken (``len(x) // batch_size`` for a whole epoch).
    ``bf16``: the forward pass in bf16 autocast (see :func:`use_bf16`; default: on CUDA only).
    Under DistributedDataParallel (``shard = (rank, size)``), every rank draws the same order and
    takes its share of each batch of ``batch_size`` images: the steps are those of one process.
    """
    net.train()
    order = torch.randperm(len(x), generator=gen).to(x.device)  # shuffle an index, not the data
    loss_sum = torch.zeros((), device=x.device)
    done = 0
    for b in range(len(x) // batch_size):
        frac = clock.progress()
        if frac >= 1.0:
            break
        for group in optimizer.param_groups:  # one-cycle schedule, set every step
            group["lr"] = one_cycle(frac, peak_lr) * group["lr_scale"]
        idx = order[b * batch_size : (b + 1) * batch_size][shard[0] :: shard[1]]  # this rank's share
        xb, yb = x[idx], y[idx]
        if augment > 0 or distort > 0:
            xb = warp(xb, augment, distort, gen, shard=shard, batch=batch_size)
        with autocast(x.device, bf16):
            loss = F.cross_entropy(net(channels_last(xb)), yb, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()  # summed on the device: no GPU sync per step
        done += 1
        clock.tick()
        on_step(clock.progress())
    return (float(loss_sum.item()) / done if done else float("nan")), done


def predict_proba(net: nn.Module, images: np.ndarray, device: torch.device, tta: bool | int) -> np.ndarray:
    """Softmax probabilities for images N x 1 x H x W (numpy), in large batches, without autograd.

    With ``tta``, the average over the image and its one-pixel shifts (:func:`tta_shifts`).
    """
    shifts = tta_shifts(tta)
    net.eval()
    if len(images) > FEW_IMAGES:
        tune_allocator("training")  # batches of megabytes: keep freed memory (a server keeps its own policy)
    images = torch.from_numpy(images)
    out = []
    with threads_for(len(images), device), torch.inference_mode(), autocast(device), \
            CoreShare(watch=device.type == "cpu" and len(images) > FEW_IMAGES) as share:
        batch = PREDICT_BATCH if device.type == "cpu" else PREDICT_BATCH_CUDA
        for i in range(0, len(images), batch):
            share.tick()  # PyTorch's threads fitted to the cores other programs leave free
            xb = images[i : i + batch].to(device)
            if shifts:  # test-time augmentation: 5x (or 9x) the work for a steadier answer
                views = [xb] + [shift(xb, dy, dx) for dy, dx in shifts]
                proba = sum(torch.softmax(net(channels_last(v)).float(), dim=1) for v in views) / len(views)
            else:
                proba = torch.softmax(net(channels_last(xb)).float(), dim=1)
            out.append(proba.cpu())
    return torch.cat(out).numpy()


# --------------------------------------------------------------- saved weights


def state_arrays(net: nn.Module) -> dict[str, np.ndarray]:
    """The network's ``state_dict`` as numpy arrays under its own names (``conv1.weight``, ...)."""
    return {name: t.detach().cpu().contiguous().numpy().copy() for name, t in net.state_dict().items()}


def load_net(tensors: dict[str, np.ndarray], side: int, width: int, n_classes: int, *,
             norm_after_pool: bool, extra_convs: int) -> nn.Module:
    """A network for ``side`` x ``side`` images with exactly the weights in ``tensors``, built as
    :func:`build_net` builds it (no defaults: the weights alone do not tell the order, and must fit the depth).

    Refuses, with a :class:`~digitlab.errors.DigitlabError`, a foreign or missing tensor, or
    one of the wrong shape or kind.
    """
    first, head = np.shape(tensors.get("conv1.weight")), np.shape(tensors.get("fc.weight"))
    if first[:1] != (width,):  # check before building: a lying width, side or class count could ask for gigabytes
        raise DigitlabError(f"CNN tensor 'conv1.weight' has shape {first}, but the card says width={width}")
    if head != (n_classes, head_inputs(side, width)):
        raise DigitlabError(f"CNN tensor 'fc.weight' has shape {head}, which does not fit {n_classes} classes "
                            f"of {side}x{side} images")
    net = build_net(side, width, n_classes, norm_after_pool=norm_after_pool, extra_convs=extra_convs)
    expected = net.state_dict()
    foreign, missing = sorted(set(tensors) - set(expected)), sorted(set(expected) - set(tensors))
    if foreign or missing:  # a second convolution in a block the card does not name (or the other way round)?
        depth = sum(f"conv{i}b.weight" in tensors for i in (1, 2, 3))
        hint = f" (the card says extra_convs={extra_convs}; the weights have {depth})" if depth != extra_convs else ""
        what = f"has foreign tensor(s): {', '.join(foreign)}" if foreign else f"lacks tensor(s): {', '.join(missing)}"
        raise DigitlabError(f"CNN weights file {what}{hint}")
    state = {}
    for name, ref in expected.items():
        array = np.asarray(tensors[name])
        if tuple(array.shape) != tuple(ref.shape):
            raise DigitlabError(
                f"CNN tensor {name!r} has shape {tuple(array.shape)}, expected {tuple(ref.shape)} "
                f"(width={width}, {side}x{side} images, {n_classes} classes)"
            )
        if array.dtype.kind != ("i" if ref.dtype == torch.int64 else "f"):
            raise DigitlabError(f"CNN tensor {name!r} has dtype {array.dtype}, expected {ref.dtype}")
        state[name] = torch.from_numpy(np.ascontiguousarray(array)).to(ref.dtype)
    net.load_state_dict(state, strict=True)
    return net
