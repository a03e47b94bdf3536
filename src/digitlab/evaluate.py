"""Phase 4: metrics from predictions. Nothing here trains a model or draws a figure."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError
from digitlab.preprocess import test_features

DIGITS = list(range(10))
"""The classes every report scores, whether or not a model or a test part holds all of them."""


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall, F1 and support of one digit."""

    digit: int
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Metrics:
    """Everything the report says about a model's test predictions."""

    accuracy: float
    n_test: int
    n_errors: int
    ci_low: float
    ci_high: float
    confusion: list[list[int]]
    per_class: list[ClassScores]
    macro_precision: float
    macro_recall: float
    macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (SciPy's ``binomtest``).

    Examples
    --------
    >>> low, high = wilson_interval(348, 360)
    >>> round(low, 4), round(high, 4)
    (0.9426, 0.9808)
    """
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    interval = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int] | None = None) -> Metrics:
    """Accuracy, error count, Wilson 95% CI, confusion matrix and per-class scores.

    Examples
    --------
    >>> m = compute_metrics(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    >>> m.accuracy, m.n_errors, m.confusion
    (0.75, 1, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if labels is None:
        labels = sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))
    correct = int((y_true == y_pred).sum())
    n = len(y_true)
    low, high = wilson_interval(correct, n)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = [
        ClassScores(int(d), float(p), float(r), float(f), int(s))
        for d, p, r, f, s in zip(labels, precision, recall, f1, support)
    ]
    return Metrics(
        accuracy=correct / n if n else 0.0,
        n_test=n,
        n_errors=n - correct,
        ci_low=low,
        ci_high=high,
        confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        per_class=per_class,
        macro_precision=float(np.mean(precision)),
        macro_recall=float(np.mean(recall)),
        macro_f1=float(np.mean(f1)),
    )


@dataclass
class Predictions:
    """A model's output on the test part."""

    labels: np.ndarray  # predicted digit per image
    probabilities: np.ndarray | None  # N×10, or None when the model has no predict_proba
    seconds: float

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted digit (NaN when unknown)."""
        if self.probabilities is None:
            return np.full(len(self.labels), np.nan)
        return self.probabilities.max(axis=1)


def predict_test(model: Any, dataset: Dataset) -> Predictions:
    """Predict the test part, timing it; probabilities when the model offers them."""
    features, _ = test_features(dataset)
    start = time.perf_counter()
    try:
        if hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(features))
            labels = np.asarray(model.classes_)[proba.argmax(axis=1)]
        else:
            proba = None
            labels = np.asarray(model.predict(features))
    except ValueError as exc:  # e.g. k-NN asked for more neighbours than it has images
        raise DigitlabError(f"the model cannot predict the test images: {exc}") from None
    return Predictions(labels=labels, probabilities=proba, seconds=time.perf_counter() - start)


def evaluate_on_test(model: Any, dataset: Dataset) -> tuple[Predictions, Metrics]:
    """Predict the test part and score it over the ten digits: the predictions and their :class:`Metrics`."""
    predictions = predict_test(model, dataset)
    return predictions, compute_metrics(dataset.test_labels, predictions.labels, labels=DIGITS)


def evaluate_model(model: Any, dataset: Dataset) -> Metrics:
    """Predict the test part and compute :class:`Metrics`.

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> from digitlab.train import train
    >>> ds = load_dataset("digits")
    >>> evaluate_model(train("logreg", ds).model, ds).n_errors
    12
    """
    return evaluate_on_test(model, dataset)[1]
