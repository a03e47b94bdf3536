"""Inference speed of every registered model: images/s in batches, milliseconds for one image.

Each model is trained with its defaults (``digitlab.train.train``) on the 8x8 digits, or with
``--dataset mnist`` on a stratified subset of MNIST (``--limit``), then timed on the test part:
``predict_proba`` on the whole test set (median of ``--repeats``) and ``predict`` on one image
at a time (median of 300 calls). The baseline of the ratio column is logistic regression,
measured in the same run.

Examples
--------
    python benchmarks/bench_inference.py
    python benchmarks/bench_inference.py --dataset mnist --limit 10000 --models logreg,cnn
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.data import load_dataset  # noqa: E402
from digitlab.models import MODELS  # noqa: E402
from digitlab.preprocess import test_features  # noqa: E402
from digitlab.train import train  # noqa: E402


def time_model(model, X, repeats: int) -> tuple[float, float]:
    """Median images/s of ``predict_proba(X)``, median ms of ``predict`` on one row."""
    model.predict_proba(X[:64])
    rates = []
    for _ in range(repeats):
        tick = time.perf_counter()
        model.predict_proba(X)
        rates.append(len(X) / (time.perf_counter() - tick))
    for i in range(20):
        model.predict(X[i : i + 1])
    times = []
    for i in range(300):
        row = X[i % len(X) : i % len(X) + 1]
        tick = time.perf_counter()
        model.predict(row)
        times.append(time.perf_counter() - tick)
    return statistics.median(rates), 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    parser.add_argument("--limit", type=int, default=10000, help="MNIST training images (stratified subset)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    limit = args.limit if args.dataset == "mnist" else None
    dataset = load_dataset(args.dataset, limit=limit, seed=args.seed)
    X_test, y_test = test_features(dataset)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    print(f"{args.dataset}: {dataset.n_train} training images, {dataset.n_test} test images")
    print(f"{'model':<8} {'train s':>8} {'accuracy':>9} {'images/s':>10} {'vs logreg':>10} {'1 image ms':>11}")
    base = None
    for name in ["logreg"] + [n for n in names if n != "logreg"]:  # the baseline first
        fitted = train(name, dataset, seed=args.seed)
        accuracy = fitted.model.score(X_test, y_test)
        rate, ms = time_model(fitted.model, X_test, args.repeats)
        if name == "logreg":
            base = rate
        if name in names:
            print(
                f"{name:<8} {fitted.train_seconds:8.1f} {accuracy:9.4f} {rate:10,.0f} {rate / base:9.2f}x {ms:11.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
