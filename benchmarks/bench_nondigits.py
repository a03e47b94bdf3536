"""Time to draw the not-a-digit detector's non-digits for an MNIST run, in one process against worker processes.

A first run on MNIST draws 20,000 non-digit pictures before its detector can be fitted (then they are cached).
Each repeat draws them once in this process and once in one worker per core (`notdigit.MAX_WORKERS` at most),
alternately, checks that both gave the same pictures, and the medians are printed with their ratio.

    python benchmarks/bench_nondigits.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from digitlab.data.nondigits import make_nondigits
from digitlab.notdigit import NONDIGIT_SEED, draw_workers


def timed(n: int, workers: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    images, _ = make_nondigits(n, seed=NONDIGIT_SEED, system_fonts=False, workers=workers)
    return time.perf_counter() - start, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000, help="pictures (an MNIST run's detector draws 20,000)")
    args = parser.parse_args()
    workers = draw_workers()
    one, many = [], []
    for _ in range(args.repeats):
        seconds, alone = timed(args.n, 1)
        one.append(seconds)
        seconds, together = timed(args.n, workers)
        many.append(seconds)
        assert np.array_equal(alone, together), "the workers drew other pictures"
    for name, times in (("1 process", one), (f"{workers} workers", many)):
        print(f"{name:11s} median {statistics.median(times):6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"speed-up {statistics.median(one) / statistics.median(many):.2f}x on {workers} cores; the same pictures")


if __name__ == "__main__":
    main()
