"""CNN training steps on a busy CPU: OpenMP's waiting threads, and digitlab's fitting of them to the free cores.

PyTorch's CPU kernels run on OpenMP threads, one per core. Between two parallel pieces of work a thread
that is done waits for the others; by default it waits *actively* (spins) before it sleeps. When another
program keeps a core busy, the thread being waited for shares its core with that program, while the
spinning one holds the other: every parallel region can cost a scheduler time slice. While a CNN trains,
digitlab measures twice a second how many cores other programs keep busy and uses the rest
(:mod:`digitlab.cores`).

Each variant is a fresh process that takes ``--steps`` training steps of the short CPU recipe (width 16,
batch 64, no augmentation) on random 28x28 images, with ``--busy`` other processes spinning beside it
(each a ``while True: pass`` loop: one busy core, as a video call or a build would make it; with
``--bursts S``, S seconds busy and S asleep in turn):

- *PyTorch's default*: OpenMP's default wait, the threads PyTorch starts with;
- *digitlab (now)*: the same, with :class:`digitlab.cores.CoreShare` ticking between the steps, as ``fit`` does;
- *sleep at once*: ``OMP_WAIT_POLICY=PASSIVE``, digitlab's setting before ``digitlab.cores``;
- *one thread*: ``torch.set_num_threads(1)``, for comparison.

Rounds are interleaved, and each figure is the median over them of the seconds the steps took in all
(a budgeted fit gets as many steps as fit in its seconds), with the median milliseconds of one step.

Examples
--------
    python benchmarks/bench_busy_cpu.py --steps 400       # idle and one busy core, 3 rounds: about 3 minutes
    python benchmarks/bench_busy_cpu.py --busy 0,1,2 --rounds 5 --steps 200
    python benchmarks/bench_busy_cpu.py --busy 1 --bursts 0.3 --steps 400   # a busy core that comes and goes
    python benchmarks/bench_busy_cpu.py --spins 3000,30000     # also shorter spins than OpenMP's default 300,000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
VARIANTS = {  # name -> its thread count (None: PyTorch's), its OpenMP settings, whether digitlab.cores watches
    "PyTorch's default": (None, {}, False),
    "digitlab (now)": (None, {}, True),
    "sleep at once": (None, {"OMP_WAIT_POLICY": "PASSIVE"}, False),
    "one thread": (1, {}, False),
}
CHILD = """
import json, statistics, sys, time
sys.path.insert(0, {src!r})
import torch
from digitlab.cores import CoreShare
from digitlab.models import cnn_optim as co, cnn_torch as ct
if {threads!r} is not None:
    torch.set_num_threads({threads!r})
ct.ready_for_training()
gen = torch.Generator().manual_seed(0)
x, y = torch.rand(54000, 1, 28, 28, generator=gen), torch.randint(0, 10, (54000,), generator=gen)
net = ct.place(ct.build_net(28, 16, 10), torch.device("cpu"))
share = CoreShare(watch={watch!r})
ticks = [time.perf_counter()]
ct.train_one_epoch(net, co.make_optimizer(net, 0.8, 5e-4), x, y, batch_size=64, peak_lr=0.8,
                   clock=ct.Clock({steps}, None, ticks[0]), gen=gen, bf16=ct.use_bf16(torch.device("cpu"), "auto"),
                   on_step=lambda frac: (share.tick(), ticks.append(time.perf_counter())))
steps = [b - a for a, b in zip(ticks, ticks[1:])]
print(json.dumps({{"seconds": ticks[-1] - ticks[0], "median_ms": 1000 * statistics.median(steps[5:]),
                  "threads": torch.get_num_threads(), "changes": share.changes}}))
"""


def one_run(variant: str, steps: int) -> dict:
    """The steps in a fresh process, its environment as this one's but without OpenMP's wait policy."""
    threads, settings, watch = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | settings
    code = CHILD.format(src=SRC, threads=threads, steps=steps, watch=watch)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"bench_busy_cpu: a timed process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def busy_code(bursts: float) -> str:
    """A busy process's code: always busy, or ``bursts`` seconds busy and as many asleep, in turn."""
    if not bursts:
        return "while True: pass"
    return ("import time\nwhile True:\n    end = time.perf_counter() + {b}\n"
            "    while time.perf_counter() < end: pass\n    time.sleep({b})").format(b=bursts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", default="0,1", help="numbers of busy processes beside the steps, e.g. 0,1,2")
    parser.add_argument("--bursts", type=float, default=0.0,
                        help="each busy process alternates this many seconds busy and as many asleep (0: always busy)")
    parser.add_argument("--spins", default="", help="also GNU OpenMP's GOMP_SPINCOUNT at each of these, e.g. 3000")
    args = parser.parse_args()
    for spins in filter(None, args.spins.split(",")):
        VARIANTS[f"GOMP_SPINCOUNT={int(spins)}"] = (None, {"GOMP_SPINCOUNT": str(int(spins))}, False)
    loads = [int(b) for b in args.busy.split(",")]
    results: dict[tuple[int, str], list[dict]] = {}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.steps} steps a run, "
          f"{args.rounds} rounds", flush=True)
    for rnd in range(args.rounds):
        for busy in loads:
            spinners = [subprocess.Popen([sys.executable, "-c", busy_code(args.bursts)]) for _ in range(busy)]
            try:
                for variant in VARIANTS:
                    run = one_run(variant, args.steps)
                    results.setdefault((busy, variant), []).append(run)
                    print(f"  round {rnd}, {busy} busy: {variant:>21}: {run['seconds']:6.2f} s, "
                          f"{run['median_ms']:6.1f} ms a step ({run['threads']} threads at the end, {run['changes']} changes)", flush=True)
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()
    print(f"\nmedians of {args.rounds} rounds ({args.steps} steps each):")
    for busy in loads:
        base = statistics.median(r["seconds"] for r in results[(busy, "PyTorch's default")])
        for variant in VARIANTS:
            runs = results[(busy, variant)]
            seconds = statistics.median(r["seconds"] for r in runs)
            ms = statistics.median(r["median_ms"] for r in runs)
            print(f"  {busy} busy core(s), {variant:>21}: {seconds:6.2f} s ({ms:6.1f} ms a step), "
                  f"{base / seconds:5.2f}x PyTorch's default")


if __name__ == "__main__":
    main()
