"""Phase 4: metrics from predictions. Nothing here trains a model or draws a figure."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from digitlab.calibrate import apply_temperature, brier_score, expected_calibration_error, log_loss
from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError, InvalidValueError, require_dataset
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
    ece: float | None = None  # expected calibration error of the (calibrated) probabilities, 15 bins
    nll: float | None = None  # mean negative log-likelihood of the true digit
    brier: float | None = None  # mean squared error of the probabilities against the one-hot truth
    ece_uncalibrated: float | None = None  # the same three before the temperature, for comparison
    nll_uncalibrated: float | None = None
    brier_uncalibrated: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    def for_card(self) -> dict[str, Any]:
        """The few a model card keeps (``digitlab serve``'s page and model menu show its accuracy)."""
        return {"accuracy": self.accuracy, "n_errors": self.n_errors, "n_test": self.n_test,
                "ci95": [self.ci_low, self.ci_high], "ece": self.ece}


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


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int] | None = None,
                    predictions: "Predictions | None" = None) -> Metrics:
    """Accuracy, error count, Wilson 95% CI, confusion matrix, per-class scores; with ``predictions``
    that carry probabilities, also the calibration measures (ECE, NLL, Brier) after and before the temperature.

    Examples
    --------
    >>> m = compute_metrics(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    >>> m.accuracy, m.n_errors, m.confusion
    (0.75, 1, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise InvalidValueError("scoring needs one label and one answer per image (1-D arrays)")
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise InvalidValueError(f"scoring needs as many answers as labels, at least one: got {len(y_pred):,} "
                                f"answers for {len(y_true):,} labels")
    whole = [a.dtype.kind in "iu" or (a.dtype.kind == "f" and np.array_equal(a, np.round(a))) for a in (y_true, y_pred)]
    if not all(whole):  # "3" and 3 cannot be compared, nor sorted (3.0 and 3 can)
        raise InvalidValueError(f"scoring needs digits as whole numbers; got labels of {y_true.dtype} and answers of "
                                f"{y_pred.dtype} (e.g. labels.astype(int))")
    y_true, y_pred = y_true.astype(np.int64, copy=False), y_pred.astype(np.int64, copy=False)
    if labels is not None and not np.isin(y_true, labels).all():
        raise InvalidValueError(f"the labels must be among {list(labels)}; got {sorted(set(y_true.tolist()) - set(labels))}")
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
        **_calibration_measures(y_true, predictions),
        accuracy=correct / n if n else 0.0,
        n_test=n,
        n_errors=n - correct,
        ci_low=low,
        ci_high=high,
        confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        per_class=per_class,
        **_macro(labels, y_true, y_pred, precision=precision, recall=recall, f1=f1),
    )


def _macro(labels: list[int], y_true: np.ndarray, y_pred: np.ndarray, **scores: np.ndarray) -> dict[str, float]:
    """Each score's mean over the labels that occur in ``y_true`` or ``y_pred``, as scikit-learn's macro average
    takes it: a digit a set lacks and no answer gave is not a zero in the mean.

    >>> _macro([0, 1, 2], np.array([0, 1]), np.array([0, 1]), f1=np.array([1.0, 1.0, 0.0]))
    {'macro_f1': 1.0}
    """
    seen = np.isin(labels, np.concatenate([y_true, y_pred]))
    return {f"macro_{name}": float(np.mean(values[seen])) if seen.any() else 0.0 for name, values in scores.items()}


def _calibration_measures(y_true: np.ndarray, predictions: "Predictions | None") -> dict[str, float]:
    if predictions is None or predictions.probabilities is None or len(y_true) == 0:
        return {}
    known = np.isin(y_true, predictions.classes)
    y_index = np.searchsorted(predictions.classes, y_true[known])
    after, before = predictions.probabilities[known], predictions.uncalibrated[known]
    return {"ece": expected_calibration_error(after, y_index), "nll": log_loss(after, y_index),
            "brier": brier_score(after, y_index), "ece_uncalibrated": expected_calibration_error(before, y_index),
            "nll_uncalibrated": log_loss(before, y_index), "brier_uncalibrated": brier_score(before, y_index)}


@dataclass
class Predictions:
    """A model's output on the test part."""

    labels: np.ndarray  # predicted digit per image
    probabilities: np.ndarray | None  # N×classes after the temperature, or None without predict_proba
    seconds: float
    uncalibrated: np.ndarray | None = None  # the model's own probabilities, before the temperature
    classes: np.ndarray | None = None  # the label of each probability column

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted digit (NaN when unknown)."""
        if self.probabilities is None:
            return np.full(len(self.labels), np.nan)
        return self.probabilities.max(axis=1)


def predict_test(model: Any, dataset: Dataset, temperature: float = 1.0) -> Predictions:
    """Predict the test part, timing it; probabilities (divided by ``temperature``) when the model offers them."""
    features, _ = test_features(dataset)
    start = time.perf_counter()
    try:
        if not hasattr(model, "predict_proba"):
            return Predictions(np.asarray(model.predict(features)), None, time.perf_counter() - start)
        raw = np.asarray(model.predict_proba(features))
        proba = apply_temperature(raw, temperature)
        classes = np.asarray(model.classes_)
    except ValueError as exc:  # e.g. k-NN asked for more neighbours than it has images
        raise DigitlabError(f"the model cannot predict the test images: {exc}") from None
    return Predictions(classes[proba.argmax(axis=1)], proba, time.perf_counter() - start, raw, classes)


def evaluate_on_test(model: Any, dataset: Dataset, temperature: float = 1.0) -> tuple[Predictions, Metrics]:
    """Predict the test part and score it over the ten digits: the predictions and their :class:`Metrics`."""
    require_dataset(dataset, "evaluate_on_test")
    predictions = predict_test(model, dataset, temperature)
    return predictions, compute_metrics(dataset.test_labels, predictions.labels, DIGITS, predictions)


UNSEEN_NONDIGITS = 600
"""Unseen non-digits (``make_nondigits(split="test")``) each run's detector is measured on."""
UNSEEN_SEED = 1


@dataclass(frozen=True)
class NotDigitResult:
    """How a run's not-a-digit detector does on pictures it never met.

    Attributes
    ----------
    test_digits_flagged : float
        Share of the test digits it calls "not a digit".
    nondigits_flagged : float
        Share of :data:`UNSEEN_NONDIGITS` unseen non-digits it calls "not a digit".
    per_kind : dict
        The same share per kind of non-digit.
    images, kinds, guesses, guess_probability, flagged : ndarray
        The unseen non-digits themselves, their kinds, the classifier's digit and its (calibrated)
        probability for each, and the detector's flag: for the report's figure.
    test_flagged : ndarray of bool
        The detector's flag on each test digit: the report leaves them out of the answers a person gets.
    """

    test_digits_flagged: float
    nondigits_flagged: float
    per_kind: dict[str, float]
    images: np.ndarray
    kinds: np.ndarray
    guesses: np.ndarray
    guess_probability: np.ndarray
    flagged: np.ndarray
    test_flagged: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """The figures for ``metrics.json`` (no pictures)."""
        return {"test_digits_flagged": self.test_digits_flagged, "unseen_nondigits_flagged": self.nondigits_flagged,
                "n_unseen_nondigits": int(len(self.flagged)), "per_kind": self.per_kind}


def evaluate_not_a_digit(detector: Any, model: Any, dataset: Dataset, predictions: Predictions,
                         temperature: float = 1.0) -> NotDigitResult:
    """Measure ``detector`` on the test digits (``predictions``: the model's on them) and on unseen
    non-digits; also what the classifier alone would say to each non-digit."""
    from digitlab.data.nondigits import nondigit_kinds
    from digitlab.notdigit import nondigit_images
    from digitlab.preprocess import to_features

    images = nondigit_images(UNSEEN_NONDIGITS, dataset.image_shape, dataset.pixel_max, split="test", seed=UNSEEN_SEED)
    kinds = nondigit_kinds(UNSEEN_NONDIGITS, seed=UNSEEN_SEED, split="test")
    features = to_features(images, dataset.pixel_max)
    if hasattr(model, "predict_proba"):
        proba = apply_temperature(model.predict_proba(features), temperature)
        guesses, probability = np.asarray(model.classes_)[proba.argmax(axis=1)], proba.max(axis=1)
    else:
        guesses, probability = np.asarray(model.predict(features)), np.full(len(features), np.nan)
        proba = np.ones((len(features), 1))  # no probabilities: as sure as can be, entropy 0
    flagged = detector.flags(features, proba)
    test_proba = predictions.probabilities if predictions.probabilities is not None else np.ones((len(predictions.labels), 1))
    test_flagged = detector.flags(test_features(dataset)[0], test_proba)
    per_kind = {str(k): float(flagged[kinds == k].mean()) for k in dict.fromkeys(kinds.tolist())}
    return NotDigitResult(float(test_flagged.mean()), float(flagged.mean()), per_kind, images, kinds,
                          guesses, probability, flagged, test_flagged)


def evaluate_model(model: Any, dataset: Dataset) -> Metrics:
    """Predict the test part and compute :class:`Metrics`.

    ``model`` is what :func:`~digitlab.train.train` or :func:`~digitlab.store.load_model` gave (its calibration is
    applied, so ``ece``, ``nll`` and ``brier`` are the run's own), or a bare fitted estimator (none is).

    Examples
    --------
    >>> from digitlab.evaluate import evaluate_model
    >>> from dataclasses import replace
    >>> from digitlab.data import load_dataset
    >>> from digitlab.train import calibrate, train
    >>> ds = load_dataset("digits")
    >>> fitted = train("logreg", ds)
    >>> evaluate_model(fitted, ds).n_errors
    12
    >>> calibrated = replace(fitted, calibration=calibrate(fitted, ds))  # as `digitlab run` does
    >>> ece_calibrated = evaluate_model(calibrated, ds).ece  # about 0.02 (0.015 on AMD, 0.017 on Intel)
    >>> ece_bare = evaluate_model(calibrated.model, ds).ece  # about 0.06: the model alone, not calibrated
    >>> ece_calibrated < ece_bare / 2
    True
    """
    from digitlab.errors import estimator_of

    require_dataset(dataset, "evaluate_model")
    estimator = estimator_of(model, "evaluate_model")
    temperature = getattr(model, "temperature", 1.0) if estimator is not model else 1.0  # train's, load_model's
    return evaluate_on_test(estimator, dataset, temperature)[1]
