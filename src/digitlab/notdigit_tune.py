"""A run's not-a-digit detector taught a person's handwriting, as ``finetune`` teaches the classifier.

The detector (:mod:`digitlab.notdigit`) learned what a digit looks like from MNIST's digits alone, so a writer
whose style MNIST rarely shows is turned away as "not a digit" even once the classifier reads them: of synthetic
writer emma's held-out digits, the MNIST CNN's detector turned away 41% before fine-tuning and 17.5% after, the
fine-tuned CNN then reading 99% of them right. So a fine-tuned run's detector continues from the base's network
for a few epochs (scikit-learn's own MLP, warm-started from its weights) on the writer's training samples, as
many MNIST digits replayed and as many non-digits as both, some of them drawn in the writer's own pen; then its
thresholds are set so that it turns away as large a share of other MNIST digits, with the fine-tuned model, as the
base detector did with the base model. ``benchmarks/bench_finetune.py`` on six synthetic writers (``BENCHMARKS.md``):
emma's digits turned away 17.5% → 5.5%, letters in each writer's pen about as often or more (but emma's: 75.6% →
66.8%), MNIST's test digits 0.64-0.91% (0.81-0.85% before), the test split's non-digits up to 6 points less often
(86.2-92.3%, from 92.1-92.9%).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from digitlab.calibrate import apply_temperature
from digitlab.notdigit import NotDigitDetector, _proba, nondigit_images
from digitlab.preprocess import to_features

__all__ = ["EPOCHS", "held_digits", "tune_detector"]

EPOCHS = 3
"""Passes over the tuning pictures. With :data:`LEARNING_RATE`, emma's turned-away digits went 17.5% → 1.5% with
the MNIST CNN's detector (before :data:`CHIMERAS`); 5 passes at 3e-4 reached 0.5% there, but moved a weaker
detector (a logistic regression's on 3,000 MNIST images) off the non-digits: 59% → 52% of them turned away."""
LEARNING_RATE = 1e-4  # Adam's step size
NONDIGITS = 4_000  # at most; half of every batch: the writer's and MNIST's digits are a quarter each
CHIMERAS = 0.25
"""Non-digits in the writer's own pen (:func:`_overlaid`), as a share of the writer's digits taught. None: emma's
digits 1.0% turned away, but letters in her pen 47% (the base's detector: 76%); 0.25: 5.5% and 66%."""
MIN_REPLAY = 500  # MNIST images replayed beside the writer's: fewer, and the base detector is kept
HELD_NONDIGITS = 1_000  # from the non-digits' test split, which no detector learns from: the card's figure
HELD_DIGITS = 6_000  # MNIST training images: the thresholds set on two thirds, the card's figure on the rest


def tune_detector(base: NotDigitDetector, mine: np.ndarray, labels: np.ndarray, replay: np.ndarray, held: np.ndarray,
                  *, base_model: Any, model: Any, temperature: float, pixel_max: int,
                  seed: int = 0) -> NotDigitDetector:
    """``base`` continued on the writer's digits ``mine`` (images, their digits ``labels``), with ``replay`` (MNIST's
    images) beside them.

    The thresholds (``threshold``, ``unlike_from``) are the tuned scores' quantiles at the shares of ``held`` (other
    MNIST images, drawn from all of its training part: a classic model's replay is its own training images, of which
    its detector turned away almost none) that ``base`` turned away, and marked, with ``base_model``'s
    probabilities; the tuned detector is scored with ``model``'s (the fine-tuned classifier's, after
    ``temperature``). The card's ``digits_flagged`` is measured on the last third of ``held`` (not on the images the
    thresholds were set on), its ``nondigits_flagged`` on the non-digits' test split (the base's card: on non-digits
    of the train split it did not learn from). ``base`` itself is returned when the replay is too small to teach
    from (:data:`MIN_REPLAY`).
    """
    half = min(NONDIGITS // 2, len(replay))
    if half < MIN_REPLAY or len(mine) == 0:
        return base
    rng = np.random.default_rng(seed)
    chosen = np.resize(rng.permutation(len(mine)), half)  # every sample once before any twice: all writers
    others, held_others = (to_features(nondigit_images(n, replay.shape[1:], pixel_max, split=split), pixel_max)
                           for n, split in ((2 * half, "train"), (HELD_NONDIGITS, "test")))
    pens = to_features(_overlaid(mine, labels, int(half * CHIMERAS), rng), pixel_max)
    x = np.concatenate([to_features(mine[chosen], pixel_max), to_features(replay[:half], pixel_max),
                        others[:len(others) - len(pens)], pens]).astype(np.float32)
    y = np.r_[np.zeros(2 * half, int), np.ones(2 * half, int)]
    weights, biases = _continue(base, x, y, seed)
    tuned = replace(base, weights=weights, biases=biases, n_digits=base.n_digits + min(len(mine), half))

    def proba(estimator: Any, features: np.ndarray) -> np.ndarray:
        return apply_temperature(_proba(estimator, features), temperature)

    held, judged = (to_features(part, pixel_max) for part in np.array_split(held, [len(held) * 2 // 3]))
    before, after = base.scores(held, proba(base_model, held)), tuned.scores(held, proba(model, held))
    threshold = _same_share(after, float(np.mean(before > base.threshold)))
    unlike = (None if base.unlike_from is None
              else min(threshold, _same_share(after, float(np.mean(before >= base.unlike_from)))))
    # the card's figures: on digits the thresholds were not set on, and on non-digits no detector learned from
    flagged = tuned.scores(judged, proba(model, judged)) > threshold
    caught = tuned.scores(held_others, proba(model, held_others)) > threshold
    return replace(tuned, threshold=threshold, unlike_from=unlike, digits_flagged=float(np.mean(flagged)),
                   nondigits_flagged=float(np.mean(caught)))


def _overlaid(mine: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` non-digits in the writer's own pen: two of their digits of different values drawn over each other
    (their pixel-wise maximum). Taught only the writer's digits, the detector had learned "this pen is a digit": of
    letters written in emma's pen it turned away 65% where the base's detector had 84%; with these, 77%."""
    first, second = rng.integers(len(mine), size=(2, n))
    differ = labels[first] != labels[second]
    return np.maximum(mine[first[differ]], mine[second[differ]])


def held_digits(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """:data:`HELD_DIGITS` of ``images`` (MNIST's training part), drawn with ``seed``, for :func:`tune_detector`."""
    rng = np.random.default_rng(seed)
    return images[np.sort(rng.choice(len(images), min(HELD_DIGITS, len(images)), replace=False))]


def _same_share(scores: np.ndarray, share: float) -> float:
    """The score above which about ``share`` of ``scores`` lie."""
    return float(np.quantile(scores, 1.0 - share, method="higher"))


def _continue(base: NotDigitDetector, x: np.ndarray, y: np.ndarray,
              seed: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """:data:`EPOCHS` of Adam on ``x``, ``y`` from ``base``'s weights: scikit-learn's MLP with ``warm_start``, its
    shapes set by a first fit on two pictures whose weights are then replaced by the base's."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    hidden = tuple(w.shape[1] for w in base.weights[:-1])
    mlp = MLPClassifier(hidden, learning_rate_init=LEARNING_RATE, batch_size=256, max_iter=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the first fit's one pass; the epochs are set below
        warnings.filterwarnings("ignore", message="Got `batch_size` less than 1 or larger than sample size")
        mlp.fit(x[[0, -1]], y[[0, -1]])
        mlp.coefs_ = [w.astype(np.float32) for w in base.weights]  # copies: the base's arrays are left alone
        mlp.intercepts_ = [b.astype(np.float32) for b in base.biases]
        mlp.set_params(warm_start=True, max_iter=EPOCHS, n_iter_no_change=EPOCHS + 1, tol=0.0).fit(x, y)
    return (tuple(w.astype(np.float32) for w in mlp.coefs_),
            tuple(b.astype(np.float32) for b in mlp.intercepts_))
