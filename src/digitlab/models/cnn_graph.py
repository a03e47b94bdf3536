"""The CNN's training step as one CUDA graph: on a big GPU, a small network's step is all launches.

On an H200 an eager training step of the MNIST CNN took 3.9-4.2 ms (BENCHMARKS.md), most of it
Python launching some two hundred tiny kernels one by one; the arithmetic takes a fraction of that.
:class:`GraphedEpochs` records one whole step (gather the batch, warp it, forward, backward, the
fused SGD update, the running loss) as a CUDA graph (``torch.cuda.graph``) and then replays it: one
launch a step. The graph reads its batch indices, warp numbers and learning rates from tensors
that stay put, refreshed before each replay, so it does the arithmetic of
:func:`digitlab.models.cnn_torch.train_one_epoch` with the same schedule and clock.

The first steps run uncaptured (PyTorch's rule: warm up before capturing, on a side stream), and
they are real training steps. On the CPU nothing is captured: the same step runs as it is, which is
how the tests check its arithmetic on a machine without a GPU. ``DIGITLAB_CUDA_GRAPHS=0`` turns the
graph off (then CUDA trains with the eager loop). A capture that fails falls back to eager steps
with a warning.
"""

from __future__ import annotations

import collections
import os
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.models import cnn_torch as ct

WARM_STEPS = 3  # uncaptured steps before the capture
IN_FLIGHT = 3  # steps the CPU may run ahead of the GPU, so that the clock measures finished work


def wanted(device: torch.device, shard: tuple[int, int]) -> bool:
    """Whether to train with a CUDA graph: on CUDA, in one process (not under torchrun), unless turned off."""
    return device.type == "cuda" and shard[1] == 1 and os.environ.get("DIGITLAB_CUDA_GRAPHS", "1") != "0"


class GraphedEpochs:
    """Epochs of training with the step in fixed tensors: captured as a CUDA graph on CUDA, run as is elsewhere.

    Call it once per epoch; it returns the mean loss and the steps taken, like
    :func:`digitlab.models.cnn_torch.train_one_epoch`, whose arguments it takes but ``shard`` (one process
    only). The optimizer must come from ``make_optimizer(..., graphable=True)``: fused SGD, each group's
    learning rate a tensor.
    """

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                 batch_size: int, peak_lr: float, clock: ct.Clock, gen: torch.Generator, augment: float = 0.0,
                 distort: float = 0.0, label_smoothing: float = 0.0, bf16: bool | None = None,
                 on_step: Callable[[float], None] = lambda frac: None):
        if not all(isinstance(group["lr"], torch.Tensor) for group in optimizer.param_groups):
            raise ValueError("GraphedEpochs needs make_optimizer(..., graphable=True): learning rates as tensors")
        self.net, self.optimizer, self.x, self.y = net, optimizer, x, y
        self.batch, self.peak_lr, self.clock, self.gen, self.on_step = batch_size, peak_lr, clock, gen, on_step
        self.augment, self.distort, self.label_smoothing, self.bf16 = augment, distort, label_smoothing, bf16
        self.warps = augment > 0 or distort > 0
        self.cuda = x.device.type == "cuda"
        self.idx = torch.zeros(batch_size, dtype=torch.int64, device=x.device)  # the fixed inputs of a step
        self.r = torch.zeros(batch_size, 4, device=x.device)
        self.loss_sum = torch.zeros((), device=x.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture, self.steps_run = self.cuda, 0  # capture: on CUDA, until a capture fails
        clock.warm_steps = max(clock.warm_steps, WARM_STEPS + 1)  # the seconds a step: not from warm-up or capture
        clock.queued_steps = IN_FLIGHT if self.cuda else 0  # a budget ends when the queued steps do
        self._events: collections.deque = collections.deque()

    def __call__(self) -> tuple[float, int]:
        self.net.train()
        n_steps = len(self.x) // self.batch
        order = torch.randperm(len(self.x), generator=self.gen).to(self.x.device)  # as train_one_epoch shuffles
        if self.warps:  # one draw a batch, as warp() does, sent to the device once
            r = torch.stack([ct.warp_numbers(self.batch, self.gen) for _ in range(n_steps)]).to(self.x.device)
        self.loss_sum.zero_()
        done = 0
        for b in range(n_steps):
            frac = self.clock.progress()
            if frac >= 1.0:
                break
            for group in self.optimizer.param_groups:  # one-cycle schedule, into the tensors the graph reads
                group["lr"].fill_(ct.one_cycle(frac, self.peak_lr) * group["lr_scale"])
            self.idx.copy_(order[b * self.batch : (b + 1) * self.batch])
            if self.warps:
                self.r.copy_(r[b])
            self._run()
            done += 1
            self.clock.tick()
            self.on_step(self.clock.progress())
        return (float(self.loss_sum.item()) / done if done else float("nan")), done

    def _step(self) -> None:
        """One training step on the fixed inputs: what the graph records."""
        xb, yb = self.x.index_select(0, self.idx), self.y.index_select(0, self.idx)
        if self.warps:
            xb = ct.warp_by(xb, self.r, self.augment, self.distort)
        with ct.autocast(self.x.device, self.bf16, cache=not self.cuda):
            loss = F.cross_entropy(self.net(ct.channels_last(xb)), yb, label_smoothing=self.label_smoothing)
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.detach()

    def _run(self) -> None:
        """This step: replay the graph; or run it uncaptured (warming up, on the CPU, after a failed capture)."""
        if self.graph is not None:
            self.graph.replay()
        elif self.capture and self.steps_run >= WARM_STEPS:
            self._capture()
        elif self.capture:
            side = torch.cuda.Stream()  # warm-up on a side stream, as torch.cuda.graph's documentation asks
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._eager()
            torch.cuda.current_stream().wait_stream(side)
        else:
            self._eager()
        self.steps_run += 1
        self._throttle()

    def _eager(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._step()

    def _capture(self) -> None:
        """Record the step (recording runs nothing), then replay it once for this step."""
        self.optimizer.zero_grad(set_to_none=True)  # the backward in the graph makes the gradients it reuses
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._step()
        except Exception as exc:  # noqa: BLE001 - any failure: train on without the graph
            warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); training on without it",
                          RuntimeWarning, stacklevel=2)
            torch.cuda.synchronize()
            self.capture = False
            self._eager()
            return
        self.graph = graph
        graph.replay()

    def _throttle(self) -> None:
        """Let the CPU run at most :data:`IN_FLIGHT` steps ahead of the GPU (the clock times real steps)."""
        if not self.cuda:
            return
        event = torch.cuda.Event()
        event.record()
        self._events.append(event)
        if len(self._events) > IN_FLIGHT:
            self._events.popleft().synchronize()
