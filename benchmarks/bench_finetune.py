"""Does fine-tuning teach an MNIST model a person's handwriting without making it forget MNIST?

For each synthetic writer (:data:`digitlab.data.writers.WRITERS`): 40 pictures of each digit in
their hand, prepared as the app prepares an upload; the MNIST CNN of ``--model`` is fine-tuned
(:func:`digitlab.finetune.finetune_model`, MNIST training images as replay) on 20 of each digit
and tested on the other 20. The baseline, in the same run, is the same model before fine-tuning.
Beside it: how many of the writer's test digits the run's not-a-digit detector turns away, before, after with the
base's detector and after with the one taught the writer's digits (:mod:`digitlab.notdigit_tune`); how many of
1,000 non-digits (their test split) and of 52 kinds of letters and symbols in the writer's own pen (``pen_letters.py``,
10 each) each turns away; and how many of MNIST's 10,000 test digits.

Targets (issue 11):

- the writer's error at least halved, on average over writers (mean of after / before ≤ 0.5);
- MNIST test accuracy (the 10,000 official test images) down by at most 0.1 point, mean over writers;
- fine-tuning in at most 30 s (median over writers) on the CPU.

Usage::

    python benchmarks/bench_finetune.py --model runs/<mnist-cnn-run> [--seed 0] [--writers anna,emma]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from digitlab.data import load_dataset  # noqa: E402
from digitlab.data.writers import WRITERS, writer, writer_samples  # noqa: E402
from digitlab.calibrate import apply_temperature  # noqa: E402
from digitlab.finetune import finetune_model  # noqa: E402
from digitlab.notdigit import nondigit_images  # noqa: E402
from digitlab.notdigit_tune import held_digits, tune_detector  # noqa: E402
from pen_letters import LOOKALIKE, OTHER, letters  # noqa: E402
from digitlab.preprocess import to_features  # noqa: E402
from digitlab.store import load_model  # noqa: E402

TRAIN_PER_DIGIT = 20  # of the writer's 40 per digit; the other 20 test


def error(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``images`` the model gets wrong."""
    return float(np.mean(model.predict(to_features(images, 255)) != labels))


def turned_away(detector, model, temperature: float, images: np.ndarray) -> float:
    """Share of ``images`` the detector calls "not a digit", beside ``model``'s calibrated probabilities."""
    x = to_features(images, 255)
    return float(np.mean(detector.flags(x, apply_temperature(model.predict_proba(x), temperature))))


def verdicts(rows: list[dict]) -> list[tuple[bool, str]]:
    """The three targets, each as (met, one line with the figure)."""
    mean_ratio = statistics.mean(r["ratio"] for r in rows)
    mean_drop = statistics.mean(r["drop_points"] for r in rows)
    worst_drop = max(r["drop_points"] for r in rows)
    median_seconds = statistics.median(r["seconds"] for r in rows)
    checks = [
        (mean_ratio <= 0.5, f"writer error after / before, mean {mean_ratio:.2f} (target ≤ 0.50)"),
        (mean_drop <= 0.1, f"MNIST test accuracy drop, mean {mean_drop:.2f} pt, worst {worst_drop:.2f} pt "
                           f"(target ≤ 0.10)"),
        (median_seconds <= 30, f"fine-tuning time, median {median_seconds:.1f} s (target ≤ 30 s)"),
    ]
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder of an MNIST CNN (28×28)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the writers' samples and the fine-tuning")
    parser.add_argument("--writers", default=",".join(w.name for w in WRITERS), help="comma-separated names")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--blend", type=float, default=0.5)
    parser.add_argument("--person-share", type=float, default=0.5)
    parser.add_argument("--augment", type=float, default=2.0)
    parser.add_argument("--distort", type=float, default=0.15)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    base = load_model(args.model)
    model, temperature = base.model, base.temperature
    others = nondigit_images(1000, (28, 28), 255, split="test")
    mnist = load_dataset("mnist")
    replay = (mnist.train_images, mnist.train_labels)
    mnist_before = 1 - error(model, mnist.test_images, mnist.test_labels)
    recipe = dict(steps=args.steps, lr=args.lr, batch_size=args.batch_size, person_share=args.person_share,
                  augment=args.augment, distort=args.distort, blend=args.blend)
    print(f"model {args.model.name}: MNIST test accuracy {mnist_before:.2%}; recipe {recipe}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{'writer':8s} {'error before':>12s} {'after':>7s} {'ratio':>6s} {'MNIST test':>11s} "
          f"{'drop (pt)':>9s} {'seconds':>8s} {'load':>5s}   turned away: writer before / after / after, "
          "taught; non-digits, letters in their pen, MNIST: base's / taught")
    rows = []
    for name in args.writers.split(","):
        samples = writer_samples(writer(name.strip()), per_digit=40, seed=args.seed)
        n_train = 10 * TRAIN_PER_DIGIT  # sample i is of digit i % 10: the first 200 hold 20 of each
        train = samples.images[:n_train], samples.labels[:n_train]
        test = samples.images[n_train:], samples.labels[n_train:]
        before = error(model, *test)
        start = time.perf_counter()
        tuned = finetune_model(model, *train, replay=replay, seed=args.seed, **recipe)
        seconds = time.perf_counter() - start
        after = error(tuned, *test)
        mnist_after = 1 - error(tuned, mnist.test_images, mnist.test_labels)
        taught = tune_detector(base.detector, *train, replay[0], held_digits(replay[0], args.seed), base_model=model,
                               model=tuned, temperature=temperature, pixel_max=255, seed=args.seed)
        pen = letters(writer(name.strip()), OTHER + LOOKALIKE, 10, args.seed)
        away = [turned_away(base.detector, model, temperature, test[0]),
                turned_away(base.detector, tuned, temperature, test[0]),
                turned_away(taught, tuned, temperature, test[0]),
                turned_away(base.detector, tuned, temperature, others), turned_away(taught, tuned, temperature, others),
                turned_away(base.detector, tuned, temperature, pen), turned_away(taught, tuned, temperature, pen),
                turned_away(base.detector, tuned, temperature, mnist.test_images),
                turned_away(taught, tuned, temperature, mnist.test_images)]
        row = dict(writer=name, before=before, after=after, ratio=after / max(before, 1e-9),
                   mnist_after=mnist_after, drop_points=100 * (mnist_before - mnist_after), seconds=seconds,
                   load=os.getloadavg()[0], turned_away=away)
        rows.append(row)
        print(f"{name:8s} {before:12.2%} {after:7.2%} {row['ratio']:6.2f} {mnist_after:11.2%} "
              f"{row['drop_points']:9.2f} {seconds:8.1f} {row['load']:5.2f}   "
              f"{away[0]:.1%} / {away[1]:.1%} / {away[2]:.1%}; {away[3]:.1%} / {away[4]:.1%}, "
              f"{away[5]:.1%} / {away[6]:.1%}, {away[7]:.2%} / {away[8]:.2%}", flush=True)

    checks = verdicts(rows)
    for ok, line in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {line}")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"recipe": recipe, "mnist_before": mnist_before, "rows": rows,
                                         "command": " ".join([Path(sys.executable).name, *sys.argv])}, indent=2))
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
