"""How far to trust a probability: temperature scaling, calibration measures, and the "unsure" threshold.

A model's top probability is read literally ("92.6% sure"), so it should be right that often.
Temperature scaling divides the log-probabilities by one number ``T`` fitted on images the model
did not train on (``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident
one); it never changes which digit comes first. The measures say how well that worked: the expected
calibration error (ECE: the gap between confidence and accuracy, averaged over 15 equal-width
bins), the negative log-likelihood and the Brier score. The "unsure" threshold is chosen on the same
held-out images by a stated rule: the lowest confidence above which the kept answers are at least
99.5% right.

Examples
--------
>>> import numpy as np
>>> proba = np.array([[0.99, 0.01], [0.95, 0.05], [0.9, 0.1], [0.97, 0.03]])  # sure of 0 every time...
>>> y = np.array([0, 0, 1, 1])                                                   # ...right half the time
>>> t = fit_temperature(proba, y)
>>> bool(t > 1.0), expected_calibration_error(apply_temperature(proba, t), y) < expected_calibration_error(proba, y)
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from digitlab.errors import DigitlabError

__all__ = [
    "TIE", "Calibration", "answered", "apply_temperature", "brier_score", "choose_threshold", "expected_calibration_error",
    "fit_temperature", "log_loss", "reliability_bins", "risk_coverage", "sure",
]

EPS = 1e-12  # as scikit-learn's temperature scaling turns probabilities into logits: log(p + 1e-12)
BINS = 15
TARGET_ACCURACY = 0.995
TIE = 1e-9
"""A confidence this close below the "unsure" threshold counts as at it, so is kept, here and when the threshold
is chosen. The threshold is one of the held-out images' confidences, and the same confidence computed in another
batch can differ in its last digits: a k-NN's unanimous vote came out 0.9953539725324452 against its threshold's
...454, and was called unsure. (It does not cover float32 against float64: an ONNX export's probabilities differ
from the estimator's by up to ~1e-7.)"""


@dataclass(frozen=True)
class Calibration:
    """What was fitted on held-out images, stored in the model card.

    Attributes
    ----------
    temperature : float
        Log-probabilities are divided by it before the softmax.
    unsure_below : float
        A calibrated top probability under this marks the answer "unsure".
    kept_accuracy, coverage : float
        On the held-out images: the accuracy of the answers at or above ``unsure_below``, and their share.
    ece_before, ece_after : float
        Expected calibration error on the held-out images before and after the temperature.
    held_out : str
        Which images the temperature and threshold were fitted on.
    n_held_out : int
        How many.
    """

    temperature: float
    unsure_below: float
    kept_accuracy: float
    coverage: float
    ece_before: float
    ece_after: float
    held_out: str
    n_held_out: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for the model card."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any, where: str = "model card") -> "Calibration":
        """Validate the card's ``calibration`` object: positive finite temperature, shares in [0, 1]."""
        def bad(field: str, expected: str) -> DigitlabError:
            return DigitlabError(f"{where}: calibration field {field!r} must be {expected}; the card is damaged")

        if not isinstance(doc, dict):
            raise bad("calibration", "an object")
        numbers = ("temperature", "unsure_below", "kept_accuracy", "coverage", "ece_before", "ece_after")
        for name in numbers:
            value = doc.get(name)
            if type(value) not in (int, float) or not math.isfinite(value):
                raise bad(name, "a finite number")
        if not 0.01 <= doc["temperature"] <= 100:
            raise bad("temperature", "a positive number from 0.01 to 100")
        for name in numbers[1:]:
            if not 0.0 <= doc[name] <= 1.0:
                raise bad(name, "from 0 to 1")
        if not isinstance(doc.get("held_out"), str) or len(doc["held_out"]) > 500:
            raise bad("held_out", "a short string")
        if type(doc.get("n_held_out")) is not int or doc["n_held_out"] < 0:
            raise bad("n_held_out", "a non-negative integer")
        return cls(**{name: doc[name] for name in cls.__dataclass_fields__})


def _logits(proba: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(proba, dtype=np.float64) + EPS)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (``T > 1``) or sharpened (``T < 1``); the order of the classes is kept.

    ``T = 1`` returns the probabilities themselves.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if temperature == 1.0 or proba.size == 0:
        return proba
    z = _logits(proba) / temperature
    z -= z.max(axis=1, keepdims=True)
    out = np.exp(z)
    return out / out.sum(axis=1, keepdims=True)


def log_loss(proba: np.ndarray, y_index: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (columns indexed by ``y_index``)."""
    proba = np.asarray(proba, dtype=np.float64)
    return float(-np.mean(np.log(proba[np.arange(len(proba)), y_index] + EPS)))


def brier_score(proba: np.ndarray, y_index: np.ndarray) -> float:
    """Mean squared distance between the probabilities and the one-hot truth (0 is perfect, 2 the worst)."""
    proba = np.asarray(proba, dtype=np.float64)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(proba)), y_index] = 1.0
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def fit_temperature(proba: np.ndarray, y_index: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of held-out probabilities.

    The same fit as scikit-learn's ``CalibratedClassifierCV(method="temperature")`` (the tests check
    they agree), on probabilities that are already out-of-sample.
    """
    from scipy.optimize import minimize_scalar

    logits = _logits(proba)
    rows = np.arange(len(logits))

    def nll(log_beta: float) -> float:
        z = logits * math.exp(log_beta)
        z_max = z.max(axis=1)
        lse = z_max + np.log(np.exp(z - z_max[:, None]).sum(axis=1))
        return float(np.mean(lse - z[rows, y_index]))

    best = minimize_scalar(nll, bounds=(-10.0, 10.0), method="bounded", options={"xatol": 1e-10})
    return float(math.exp(-best.x))


def reliability_bins(proba: np.ndarray, y_index: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Per equal-width confidence bin: its range, image count, mean confidence and accuracy (empty bins left out)."""
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_index
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                        "confidence": float(confidence[mask].mean()), "accuracy": float(correct[mask].mean())})
    return out


def expected_calibration_error(proba: np.ndarray, y_index: np.ndarray, bins: int = BINS) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over equal-width bins."""
    table = reliability_bins(proba, y_index, bins)
    n = sum(row["count"] for row in table)
    return float(sum(row["count"] * abs(row["confidence"] - row["accuracy"]) for row in table) / max(n, 1))


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each threshold (the confidences, highest first): the share of answers kept and their accuracy.

    Returns ``(thresholds, coverage, accuracy)``, one entry per image, thresholds falling.
    """
    order = np.argsort(-np.asarray(confidence), kind="stable")
    kept_right = np.cumsum(np.asarray(correct)[order])
    kept = np.arange(1, len(order) + 1)
    return np.asarray(confidence)[order], kept / len(order), kept_right / kept


def choose_threshold(confidence: np.ndarray, correct: np.ndarray,
                     target: float = TARGET_ACCURACY) -> tuple[float, float, float]:
    """The lowest threshold whose kept answers are at least ``target`` right: ``(threshold, coverage, accuracy)``.

    Answers at or above the threshold (less :data:`TIE`) are kept. When even the most confident answers miss
    the target, the threshold is the highest confidence seen (the model answers almost nothing sure). The
    threshold is then made a figure of 0.1% (:func:`_round_bar`), as the terminal and the page show it.

    Examples
    --------
    >>> choose_threshold(np.array([1.0, 1.0 - 5e-10, 0.9]), np.array([True, False, True]), 0.995)
    (1.0, 0.6666666666666666, 0.5)
    """
    if len(confidence) == 0:
        return 0.5, 0.0, 0.0
    thresholds, coverage, accuracy = risk_coverage(confidence, correct)
    # a threshold keeps every confidence at or above it (less TIE): judge each by the last image it keeps
    last = np.searchsorted(-thresholds, TIE - thresholds, side="right") - 1
    ok = np.flatnonzero(accuracy[last] >= target)
    i = int(ok[-1]) if len(ok) else 0
    below = float(thresholds[last[i] + 1]) if last[i] + 1 < len(thresholds) else 0.0  # the next confidence let go
    confidence, correct = np.asarray(confidence), np.asarray(correct)
    bar = _round_bar(float(thresholds[i]), below, confidence, correct, target)
    kept = sure(confidence, bar)
    return bar, float(kept.mean()), float(correct[kept].mean()) if kept.any() else 0.0


def _round_bar(threshold: float, below: float, confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """``threshold`` as a figure of 0.1%, so that the answers at or over it never read under it, nor those under it
    over it, as the terminal and the page show both (k-NN's sure answers read "99.5%" beside a bar of 0.99535 shown
    "99.6%"; a logistic regression's, "99.3%" beside 0.99315 shown "99.4%"): rounded down where that keeps the
    same answers (no confidence between), else up where the answers still kept are ``target`` right (a few more
    called "unsure"), else rounded down as finely as keeps the same answers (:func:`_round_down`).

    >>> c, right = np.array([0.999, 0.9932, 0.99315, 0.9]), np.array([True, True, False, True])
    >>> _round_bar(0.99535, 0.8, c, right, 0.9), _round_bar(0.9932, 0.99315, c, right, 0.9)
    (0.995, 0.994)
    """
    down = _round_down(threshold, below)
    if down == round(down, 3):
        return down
    up = math.ceil(threshold * 1000 - 1e-6) / 1000
    kept = sure(confidence, up)
    return up if up <= 1.0 and kept.any() and correct[kept].mean() >= target else down


def _round_down(threshold: float, below: float) -> float:
    """The shortest threshold (0.1%, then 0.01%, …) at or under ``threshold`` that still lets go of ``below``:
    it keeps and lets go of the same answers.

    >>> _round_down(0.9953539725, 0.8), _round_down(0.98712345, 0.98712), _round_down(0.5, 0.4)
    (0.995, 0.987123, 0.5)
    """
    for decimals in range(3, 9):
        short = math.floor(threshold * 10**decimals + 1e-6) / 10**decimals
        if short > below + TIE:
            return short
    return threshold


def sure(confidence, threshold: float):
    """Whether a confidence (a float, or an array of them) is answered at ``threshold`` rather than called "unsure":
    at or above it, less :data:`TIE` (the bar's own value in float32 is answered, as in float64).

    >>> sure(0.95 - 1e-12, 0.95), sure(np.array([0.5, 0.96]), 0.95).tolist()
    (True, [False, True])
    """
    return confidence >= threshold - TIE


def answered(confidence: np.ndarray, right: np.ndarray, threshold: float) -> dict[str, float]:
    """The "unsure" threshold applied: the share of images answered (a confidence at or above ``threshold``)
    and how often those answers are right.

    >>> answered(np.array([0.99, 0.6, 0.95, 0.97]), np.array([True, False, True, False]), 0.95)
    {'threshold': 0.95, 'coverage': 0.75, 'n_kept': 3, 'accuracy': 0.6666666666666666, 'n_right': 2}
    """
    kept = sure(np.asarray(confidence), threshold)
    hits = np.asarray(right)[kept]
    return {"threshold": threshold, "coverage": float(kept.mean()) if len(kept) else 0.0, "n_kept": int(kept.sum()),
            "accuracy": float(hits.mean()) if kept.any() else 0.0, "n_right": int(hits.sum())}
