"""The CNN trained by one process and by ``torchrun --nproc_per_node=N``: same total batch and epochs.

For each seed, trains the CNN (the dataset's defaults from the registry, plus ``--param``) in
this process, then starts ``torchrun --standalone --nproc_per_node=N`` on this very script,
which trains the same seeds with DistributedDataParallel (each rank a share of every batch).
Prints test accuracy per seed, mean ± sd, the difference in points, and the seconds.

On a machine with C cores, one process uses C threads and each of N processes C // N: on a
2-core CPU two processes are not faster than one (they split the same cores and add a gradient
all-reduce per step). ``torchrun`` pays off with GPUs or several machines.

Examples
--------
    python benchmarks/bench_torchrun.py                               # MNIST, 2 seeds, about 4 minutes on 2 cores
    python benchmarks/bench_torchrun.py --dataset digits --seeds 0 1 2 3 4 --param epochs=5
    python benchmarks/bench_torchrun.py --limit 10000 --param epochs=3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.data import load_dataset  # noqa: E402
from digitlab.models import ddp, parse_params  # noqa: E402
from digitlab.preprocess import test_features  # noqa: E402
from digitlab.train import train  # noqa: E402

RESULT = "RESULT "  # the line prefix of the worker's answers


def fit_seeds(args: argparse.Namespace) -> list[dict]:
    """Train one model per seed (together with the other ranks under torchrun); rank 0 scores them."""
    data = load_dataset(args.dataset, seed=0, limit=args.limit)
    params = parse_params(args.param)
    world = ddp.world()
    rows = []
    with ddp.session(world):
        for seed in args.seeds:
            fitted = train("cnn", data, seed=seed, params=params)
            if world is None or world.rank == 0:
                rows.append({"seed": seed, "accuracy": float(fitted.model.score(*test_features(data))),
                             "seconds": fitted.train_seconds, "world_size": fitted.model.world_size_})
    return rows


def run_torchrun(args: argparse.Namespace) -> tuple[list[dict], float]:
    """This script under torchrun, as a worker; its rows and the wall seconds (start-up included)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", f"--nproc_per_node={args.nproc}", __file__, "--worker",
               "--dataset", args.dataset, "--seeds", *map(str, args.seeds)]
    command += (["--limit", str(args.limit)] if args.limit else []) + [x for p in args.param for x in ("--param", p)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"torchrun failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line[len(RESULT):] for line in done.stdout.splitlines() if line.startswith(RESULT)]
    return json.loads(lines[-1]), seconds


def summary(values: list[float]) -> str:
    """``mean ± sd`` in percent."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f}"


def main() -> None:
    """Parse the options; as a worker, train and print; else compare one process with torchrun."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--limit", type=int, default=None, help="training images kept (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE for the CNN (repeatable)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        rows = fit_seeds(args)
        if rows:
            print(RESULT + json.dumps(rows), flush=True)
        return

    print(f"{args.dataset}, {args.limit or 'all'} training images, params {args.param or 'defaults'}, "
          f"seeds {args.seeds}; load average {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    single = fit_seeds(args)
    single_wall = time.perf_counter() - start
    multi, multi_wall = run_torchrun(args)
    print(f"{'seed':>4} {'1 process':>10} {f'{args.nproc} processes':>12} {'diff (pts)':>10} {'train s (1 / N)':>16}")
    for a, b in zip(single, multi):
        print(f"{a['seed']:>4} {100 * a['accuracy']:>9.2f}% {100 * b['accuracy']:>11.2f}% "
              f"{100 * (b['accuracy'] - a['accuracy']):>+10.2f} {a['seconds']:>7.1f} / {b['seconds']:<7.1f}")
    diffs = [b["accuracy"] - a["accuracy"] for a, b in zip(single, multi)]
    print(f"1 process: {summary([r['accuracy'] for r in single])} %, {single_wall:.1f} s wall")
    print(f"{args.nproc} processes: {summary([r['accuracy'] for r in multi])} %, {multi_wall:.1f} s wall "
          f"(torchrun start-up included), world_size {multi[0]['world_size']}")
    print(f"difference: {100 * statistics.mean(diffs):+.2f} points mean, {100 * max(map(abs, diffs)):.2f} largest; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
