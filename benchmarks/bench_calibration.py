"""Calibration of every zoo model: test-set ECE and NLL before and after the temperature, accuracy unchanged.

Each model is trained and calibrated exactly as ``digitlab run`` does (3-fold out-of-fold
probabilities up to 10,000 training images, else a held-out 10%), then scored on the test set.

Examples
--------
    python benchmarks/bench_calibration.py                                   # the 8x8 digits, all six models
    python benchmarks/bench_calibration.py --dataset mnist --models logreg,cnn,mlp
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.data import load_dataset, split_validation  # noqa: E402
from digitlab.evaluate import evaluate_on_test  # noqa: E402
from digitlab.train import calibrate, calibration_split, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--models", default="logreg,svm,knn,forest,mlp,cnn")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    data = load_dataset(args.dataset, seed=args.seed)
    held_out = None
    if calibration_split(data) is not None:
        data, held_out = split_validation(data, calibration_split(data), seed=args.seed)
    print(f"{args.dataset}: {data.n_train:,} training images, {data.n_test:,} test images")
    print(f"{'model':>7} {'T':>6} {'accuracy':>9} {'same answers':>13} {'ECE before':>11} {'ECE after':>10} "
          f"{'NLL before':>11} {'NLL after':>10} {'unsure below':>13} {'test kept':>10} {'kept right':>11} {'seconds':>8}")
    for name in args.models.split(","):
        tick = time.perf_counter()
        fitted = train(name, data, seed=args.seed)
        fitted.calibration = calibration = calibrate(fitted, data, held_out)
        predictions, m = evaluate_on_test(fitted.model, data, fitted.temperature)
        raw_labels = predictions.classes[predictions.uncalibrated.argmax(axis=1)]
        same = (raw_labels == predictions.labels).mean()
        confidence = predictions.probabilities.max(axis=1)
        kept = confidence >= calibration.unsure_below
        kept_right = (predictions.labels[kept] == data.test_labels[kept]).mean() if kept.any() else float("nan")
        print(f"{name:>7} {calibration.temperature:6.3f} {m.accuracy:9.4f} {same:13.2%} {m.ece_uncalibrated:11.2%} "
              f"{m.ece:10.2%} {m.nll_uncalibrated:11.4f} {m.nll:10.4f} {calibration.unsure_below:13.4f} "
              f"{kept.mean():10.1%} {kept_right:11.2%} {time.perf_counter() - tick:8.1f}", flush=True)


if __name__ == "__main__":
    main()
