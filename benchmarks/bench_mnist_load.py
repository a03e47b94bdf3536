"""How fast does ``load_dataset("mnist")`` load from the cache?

Baseline: what a newcomer writes first, reading the four official ``.gz`` files with
``gzip`` and ``np.frombuffer`` on every load. Both run in this process, on the same machine;
the script prints the median of each and the ratio.

Run::

    python benchmarks/bench_mnist_load.py                      # source: ../shared/data/mnist
    python benchmarks/bench_mnist_load.py --source DIR --repeats 15

The cache is a fresh temporary folder filled by ``fetch_mnist(--from SOURCE)``, so the
user's own cache is left alone.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path(os.environ.get("DIGITLAB_MNIST_SOURCE") or REPO.parent / "shared" / "data" / "mnist")


def load_gz_baseline(source: Path) -> tuple[np.ndarray, ...]:
    """Decompress the four .gz files and view them as arrays (no checks at all)."""

    def read(name: str, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        with gzip.open(source / f"{name}.gz", "rb") as handle:
            return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset).reshape(shape)

    return (
        read("train-images-idx3-ubyte", 16, (-1, 28, 28)),
        read("train-labels-idx1-ubyte", 8, (-1,)).astype(np.int64),
        read("t10k-images-idx3-ubyte", 16, (-1, 28, 28)),
        read("t10k-labels-idx1-ubyte", 8, (-1,)).astype(np.int64),
    )


def median_seconds(func, repeats: int) -> float:
    func()  # warm the page cache and imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the four .gz files")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if not (args.source / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"no MNIST .gz files in {args.source}; pass --source DIR")

    with tempfile.TemporaryDirectory(prefix="bench-mnist-") as root:
        os.environ["DIGITLAB_DATA"] = root
        from digitlab.data import load_dataset
        from digitlab.data.mnist import fetch_mnist

        fetch_mnist(args.source, log=lambda line: None)
        ours = median_seconds(lambda: load_dataset("mnist"), args.repeats)
        base = median_seconds(lambda: load_gz_baseline(args.source), args.repeats)
        check = load_dataset("mnist")
        assert np.array_equal(check.train_images, load_gz_baseline(args.source)[0])

    print(f"MNIST load, median of {args.repeats} (60,000 + 10,000 images, uint8 28x28)")
    print(f"  load_dataset('mnist') from the cache (raw IDX, checked): {ours * 1000:8.1f} ms")
    print(f"  baseline: gzip + np.frombuffer of the four .gz files:    {base * 1000:8.1f} ms")
    print(f"  ratio (baseline / ours): {base / ours:.1f}x faster")


if __name__ == "__main__":
    main()
