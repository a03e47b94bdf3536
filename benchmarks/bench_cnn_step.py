"""Milliseconds per training step of the MNIST CNN, one change at a time, in one run.

Each variant trains the width-16 network on random 28x28 batches for ``--steps`` steps after 10 warm-up
steps and reports the median. The variants retrace issue 16's CPU changes: the ReLU before or after the
max-pool (the same function), channels-last or contiguous memory, fp32 or bf16 autocast, BatchNorm
before or after the pool (a different network, as accurate: BENCHMARKS.md). Interleaved
over ``--rounds`` so a noisy neighbour hits every variant alike.

Examples
--------
    python benchmarks/bench_cnn_step.py                 # about a minute on 2 CPU cores
    python benchmarks/bench_cnn_step.py --batch 256 --width 32
    python benchmarks/bench_cnn_step.py --malloc       # glibc's defaults against digitlab's training policy

``--malloc`` compares whole training steps as ``fit`` takes them (augmentation included, the first 300
steps of a 54,000-image set) with glibc's default allocator settings and with
:func:`digitlab.models.cnn_torch.ready_for_training` (``digitlab.memory``'s training policy). The setting
is process-wide, so each run is a fresh process, the two interleaved. A fresh process's first steps show
the most of it; in a whole run the gain is smaller (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.models import cnn_optim as co  # noqa: E402
from digitlab.models import cnn_torch as ct  # noqa: E402

VARIANTS = {  # name -> (ReLU after the pool, channels-last, bf16, BatchNorm after the pool)
    "before (ReLU → pool), fp32, channels-last": (False, True, False, False),
    "ReLU after the pool, fp32, contiguous": (True, False, False, False),
    "ReLU after the pool, fp32, channels-last": (True, True, False, False),
    "BatchNorm after the pool too, fp32, channels-last": (True, True, False, True),
    "ReLU after the pool, bf16, channels-last": (True, True, True, False),
    "BatchNorm after the pool too, bf16, channels-last (now)": (True, True, True, True),
}


def relu_first(net: nn.Sequential) -> nn.Sequential:
    """The same layers in the older order: conv, BatchNorm, ReLU, pool (from conv, BatchNorm, pool, ReLU)."""
    names = list(net._modules)
    for i in (1, 2, 3):
        p, r = names.index(f"pool{i}"), names.index(f"relu{i}")
        names[p], names[r] = names[r], names[p]
    return nn.Sequential(OrderedDict((n, net._modules[n]) for n in names))


def step_ms(width: int, batch: int, steps: int, relu_after: bool, cl: bool, bf16: bool, norm_after: bool) -> float:
    net = ct.build_net(28, width, 10, norm_after_pool=norm_after)
    net = net if relu_after else relu_first(net)
    net = net.to(memory_format=torch.channels_last) if cl else net
    optimizer = co.make_optimizer(net, 0.1, 5e-4)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(8192, 1, 28, 28, generator=gen), torch.randint(0, 10, (8192,), generator=gen)
    times = []
    for i in range(steps + 10):
        tick = time.perf_counter()
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        xb = x[idx].contiguous(memory_format=torch.channels_last) if cl else x[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = F.cross_entropy(net(xb), y[idx], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 10:
            times.append(time.perf_counter() - tick)
    return statistics.median(times) * 1000


def epoch_run(keep: bool, width: int, batch: int, steps: int = 300) -> tuple[float, float]:
    """Median ms a step and system seconds of ``steps`` training steps as ``fit`` takes them, in this process."""
    gen = torch.Generator().manual_seed(0)
    n = max(54_000, batch * steps)  # MNIST's training part, or enough for the steps
    x, y = torch.rand(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    net = ct.place(ct.build_net(28, width, 10), torch.device("cpu"))
    optimizer = co.make_optimizer(net, 0.4, 5e-4)
    if keep:
        ct.ready_for_training()  # the training allocator policy
    ticks: list[float] = []
    clock = ct.Clock(steps, None, time.perf_counter())
    before = os.times()
    ct.train_one_epoch(net, optimizer, x, y, batch_size=batch, peak_lr=0.4, clock=clock, gen=gen, augment=2,
                       distort=0.1, bf16=ct.use_bf16(torch.device("cpu"), "auto"),
                       on_step=lambda frac: ticks.append(time.perf_counter()))
    system = os.times().system - before.system
    return statistics.median(b - a for a, b in zip(ticks[10:], ticks[11:])) * 1000, system


def compare_malloc(args: argparse.Namespace) -> None:
    """glibc's defaults against the training policy, each in a fresh process, interleaved."""
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for keep in (False, True):
            out = subprocess.run([sys.executable, __file__, "--one-epoch-run", str(int(keep)), "--width",
                                  str(args.width), "--batch", str(args.batch)], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"bench_cnn_step: a timed process failed:\n{out.stderr}")
            ms, system = map(float, out.stdout.split())
            results[keep].append((ms, system))
    base = statistics.median(ms for ms, _ in results[False])
    for keep, label in ((False, "glibc defaults"), (True, "training policy (now)")):
        ms = statistics.median(m for m, _ in results[keep])
        system = statistics.median(s for _, s in results[keep])
        print(f"{label:>28}: {ms:6.1f} ms a step, {system:4.1f} s system time per 300 steps "
              f"(medians of {args.rounds} processes), {base / ms:4.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--malloc", action="store_true", help="compare glibc's allocator settings instead")
    parser.add_argument("--one-epoch-run", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_epoch_run is not None:
        print(*epoch_run(bool(args.one_epoch_run), args.width, args.batch))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {ct.native_bf16()}, "
          f"load average {os.getloadavg()[0]:.1f}; width {args.width}, batch {args.batch}")
    if args.malloc:
        compare_malloc(args)
        return
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, flags in VARIANTS.items():
            results[name].append(step_ms(args.width, args.batch, args.steps, *flags))
    base = statistics.median(results[next(iter(VARIANTS))])
    for name, values in results.items():
        ms = statistics.median(values)
        print(f"{name:>56}: {ms:6.1f} ms a step (median of {args.rounds} rounds), {base / ms:4.2f}x")


if __name__ == "__main__":
    main()
