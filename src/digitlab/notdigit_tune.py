"""A run's not-a-digit detector taught a person's handwriting, as ``finetune`` teaches the classifier.

The detector (:mod:`digitlab.notdigit`) learned what a digit looks like from MNIST's digits alone, so a writer
whose style MNIST rarely shows is turned away as "not a digit" even once the classifier reads them: of synthetic
writer emma's held-out digits, the MNIST CNN's detector turned away 41% before fine-tuning and 17.5% after, the
fine-tuned CNN then reading 99.5% of them right. So a fine-tuned run's detector continues from the base's network
for a few epochs (scikit-learn's own MLP, warm-started from its weights) on the writer's training samples, as
many MNIST digits replayed and twice as many non-digits; then its thresholds are set so that it turns away as
large a share of other MNIST digits, with the fine-tuned model, as the base detector did with the base model.
``benchmarks/bench_finetune.py`` measures it on six synthetic writers (``BENCHMARKS.md``).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from digitlab.calibrate import apply_temperature
from digitlab.notdigit import MIN_HELD_DIGITS, NotDigitDetector, _proba, nondigit_images
from digitlab.preprocess import to_features

__all__ = ["EPOCHS", "tune_detector"]

EPOCHS = 3
"""Passes over the tuning pictures. With :data:`LEARNING_RATE`, emma's turned-away digits went 17.5% → 1.5% with
the MNIST CNN's detector; 5 passes at 3e-4 reached 0.5% there, but moved a weaker detector (a logistic regression's
on 3,000 MNIST images) off the non-digits: 59% → 52% of them turned away, against 58% with these settings."""
LEARNING_RATE = 1e-4  # Adam's step size
NONDIGITS = 4_000  # at most; half of every batch: the writer's and MNIST's digits are a quarter each
HELD_NONDIGITS = 1_000  # from the non-digits' test split, which no detector learns from: the card's figure
HELD_DIGITS = 4_000  # replayed MNIST digits the tuning does not see: the thresholds are set on them


def tune_detector(base: NotDigitDetector, mine: np.ndarray, replay: np.ndarray, *, base_model: Any, model: Any,
                  temperature: float, pixel_max: int, seed: int = 0) -> NotDigitDetector:
    """``base`` continued on the writer's digits ``mine`` (images), with ``replay`` (MNIST's images) beside them.

    The thresholds (``threshold``, ``unlike_from``) are the tuned scores' quantiles at the shares of held-out
    replayed digits that ``base`` turned away, and marked, with ``base_model``'s probabilities; the tuned detector
    is scored with ``model``'s (the fine-tuned classifier's, after ``temperature``). ``base`` itself is returned
    when half the replay (at most :data:`NONDIGITS` / 2 are taught) is too few to hold out
    :data:`~digitlab.notdigit.MIN_HELD_DIGITS` digits.
    """
    half = min(NONDIGITS // 2, len(replay) // 2)  # a small run's replay: half taught, half held out
    if len(replay) - half < MIN_HELD_DIGITS or len(mine) == 0:
        return base
    taught, held = (to_features(part, pixel_max) for part in (replay[:half], replay[half:half + HELD_DIGITS]))
    others, held_others = (to_features(nondigit_images(n, replay.shape[1:], pixel_max, split=split), pixel_max)
                           for n, split in ((2 * half, "train"), (HELD_NONDIGITS, "test")))
    repeated = to_features(mine, pixel_max)[np.resize(np.arange(len(mine)), half)]  # to a quarter of the pictures
    x = np.concatenate([repeated, taught, others]).astype(np.float32)
    y = np.r_[np.zeros(2 * half, int), np.ones(2 * half, int)]
    weights, biases = _continue(base, x, y, seed)
    tuned = replace(base, weights=weights, biases=biases, n_digits=base.n_digits + len(mine))

    def proba(estimator: Any, features: np.ndarray) -> np.ndarray:
        return apply_temperature(_proba(estimator, features), temperature)

    before, after = base.scores(held, proba(base_model, held)), tuned.scores(held, proba(model, held))
    threshold = _same_share(after, float(np.mean(before > base.threshold)))
    unlike = (None if base.unlike_from is None
              else min(threshold, _same_share(after, float(np.mean(before >= base.unlike_from)))))
    caught = tuned.scores(held_others, proba(model, held_others)) > threshold
    return replace(tuned, threshold=threshold, unlike_from=unlike, digits_flagged=float(np.mean(after > threshold)),
                   nondigits_flagged=float(np.mean(caught)))


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
