"""Does "might not be a digit" mean something? Digits and non-digits through a run's detector, its mark counted.

A digit answer whose detector score only 3% of held-out digits reach is marked "might not be a digit"
(`Prediction.unlike_a_digit`, the card's `not_a_digit.unlike_from`). For one saved MNIST run this prints:

- the MNIST test digits: the share marked, and how often the sure answers are right, marked and not;
- unseen non-digits (`make_nondigits(split="test")`) the detector lets through as a digit: how many are marked,
  per kind.

Usage::

    python benchmarks/bench_unlike.py --model runs/<mnist-cnn-run> [--n 3000]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from digitlab.data import load_dataset  # noqa: E402
from digitlab.data.nondigits import make_nondigits  # noqa: E402
from digitlab.predict import predict_images  # noqa: E402
from digitlab.store import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder of an MNIST model (28×28)")
    parser.add_argument("--n", type=int, default=3000, help="unseen non-digit pictures")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    loaded = load_model(args.model)
    if loaded.detector is None or loaded.detector.unlike_from is None:
        sys.exit(f"{args.model}: its detector marks nothing (saved before digitlab marked answers); train a new run")
    print(f"model {loaded.card.id}: detector threshold {loaded.detector.threshold:.3f}, "
          f"'might not be a digit' from {loaded.detector.unlike_from:.3f}")
    digits = load_dataset(loaded.card.dataset)
    answers = predict_images(loaded.model, loaded.card, digits.test_images, detector=loaded.detector)
    kind = np.array([a.kind for a in answers])
    marked = np.array([a.unlike_a_digit for a in answers])
    right = np.array([a.digit for a in answers]) == np.asarray(digits.test_labels)
    sure = kind == "digit"
    print(f"MNIST test digits ({len(answers):,}): marked {marked.mean():.2%}; sure answers right "
          f"{right[sure & marked].mean():.2%} when marked ({int((sure & marked).sum())}), "
          f"{right[sure & ~marked].mean():.2%} when not ({int((sure & ~marked).sum()):,})")
    others, kinds = make_nondigits(args.n, seed=args.seed, split="test")
    said = predict_images(loaded.model, loaded.card, others, detector=loaded.detector)
    through = Counter(k for a, k in zip(said, kinds) if a.kind != "not_a_digit")
    caught = Counter(k for a, k in zip(said, kinds) if a.kind != "not_a_digit" and a.unlike_a_digit)
    total = sum(through.values())
    print(f"unseen non-digits ({args.n:,}): {total} answered as a digit (sure or unsure), "
          f"{sum(caught.values())} of them marked ({sum(caught.values()) / max(total, 1):.0%})")
    for name in sorted(through):
        print(f"  {name:9s} {caught[name]:4d} of {through[name]:4d} marked")


if __name__ == "__main__":
    main()
