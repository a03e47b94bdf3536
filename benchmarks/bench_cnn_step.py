"""Milliseconds per training step of the MNIST CNN, one change at a time, in one run.

Each variant trains the width-16 network on random 28x28 batches for ``--steps`` steps after 10 warm-up
steps and reports the median. The variants retrace issue 16's CPU changes: the ReLU before or after the
max-pool (the same function), channels-last or contiguous memory, fp32 or bf16 autocast. Interleaved
over ``--rounds`` so a noisy neighbour hits every variant alike.

Examples
--------
    python benchmarks/bench_cnn_step.py                 # about a minute on 2 CPU cores
    python benchmarks/bench_cnn_step.py --batch 256 --width 32
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.models import cnn_torch as ct  # noqa: E402

VARIANTS = {  # name -> (ReLU after the pool, channels-last, bf16)
    "before (ReLU → pool), fp32, channels-last": (False, True, False),
    "ReLU after the pool, fp32, contiguous": (True, False, False),
    "ReLU after the pool, fp32, channels-last": (True, True, False),
    "ReLU after the pool, bf16, channels-last (now)": (True, True, True),
}


def relu_first(net: nn.Sequential) -> nn.Sequential:
    """The same layers in the older order: conv, BatchNorm, ReLU, pool."""
    names = list(net._modules)
    for i in (1, 2, 3):
        p, r = names.index(f"pool{i}"), names.index(f"relu{i}")
        names[p], names[r] = names[r], names[p]
    return nn.Sequential(OrderedDict((n, net._modules[n]) for n in names))


def step_ms(width: int, batch: int, steps: int, relu_after: bool, cl: bool, bf16: bool) -> float:
    net = ct.build_net(28, width, 10)
    net = net if relu_after else relu_first(net)
    net = net.to(memory_format=torch.channels_last) if cl else net
    optimizer = ct.make_optimizer(net, 0.1, 5e-4)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import os

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {ct.native_bf16()}, "
          f"load average {os.getloadavg()[0]:.1f}; width {args.width}, batch {args.batch}")
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, flags in VARIANTS.items():
            results[name].append(step_ms(args.width, args.batch, args.steps, *flags))
    base = statistics.median(results[next(iter(VARIANTS))])
    for name, values in results.items():
        ms = statistics.median(values)
        print(f"{name:>48}: {ms:6.1f} ms a step (median of {args.rounds} rounds), {base / ms:4.2f}x")


if __name__ == "__main__":
    main()
