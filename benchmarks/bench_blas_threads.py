"""Fitting each zoo model with OpenBLAS (and OpenMP) limited to one thread against two, in one process.

scikit-learn's L-BFGS solver alternates between NumPy's OpenBLAS and SciPy's, each with its own thread
pool; :func:`digitlab.models.classic.fit_threads` gives such fits one thread. This script measures why:
each model is fitted under ``threadpool_limits(1)`` and ``threadpool_limits(2)``, interleaved (1, 2, 1, 2),
and the median of each is printed with ``predict_proba`` on up to 2,000 test images.

Examples
--------
    python benchmarks/bench_blas_threads.py digits 100000 logreg,svm,knn,forest,mlp 3   # the 8x8 digits, 3 fits each
    python benchmarks/bench_blas_threads.py mnist 10000 logreg,mlp 1                    # 10,000 MNIST digits
"""

from __future__ import annotations

import statistics
import sys
import time

from threadpoolctl import threadpool_limits

from digitlab.data import load_dataset
from digitlab.models import make_model
from digitlab.preprocess import to_features


def timed(work, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``work``."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main(dataset: str, n: int, models: list[str], repeats: int) -> None:
    data = load_dataset(dataset)
    x, y = to_features(data.train_images, data.pixel_max)[:n], data.train_labels[:n]
    x_test = to_features(data.test_images, data.pixel_max)[:2000]
    for name in models:
        fits, predicts = {1: [], 2: []}, {1: [], 2: []}
        for limit in (1, 2, 1, 2):
            with threadpool_limits(limit):
                model = make_model(name, dataset=dataset, seed=0)
                fits[limit].append(timed(lambda: model.fit(x, y), repeats))
                predicts[limit].append(timed(lambda: model.predict_proba(x_test), repeats))
        one, two = statistics.median(fits[1]), statistics.median(fits[2])
        print(f"{dataset} n={len(y)} {name:7s} fit: 1 thread {one:.3f} s, 2 threads {two:.3f} s ({two / one:.2f}x) | "
              f"predict_proba of {len(x_test):,}: {statistics.median(predicts[1]) * 1e3:.1f} ms against "
              f"{statistics.median(predicts[2]) * 1e3:.1f} ms", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]))
