"""Phase 3: fit a model from the registry on a dataset's training part."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitlab.calibrate import Calibration, choose_threshold, expected_calibration_error, fit_temperature
from digitlab.calibrate import apply_temperature
from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError, InvalidValueError, require_dataset
from digitlab.models import make_model
from digitlab.models.classic import fit_threads
from digitlab.notdigit import MIN_HELD_DIGITS, NotDigitDetector
from digitlab.preprocess import to_features, train_features

CV_LIMIT = 10_000
"""Up to this many training images, calibration uses 3-fold out-of-fold probabilities of the whole
training part; above it, a held-out 10% (see :func:`calibration_split`)."""


@dataclass
class FittedModel:
    """A fitted estimator and how it came to be."""

    name: str
    model: Any
    params: dict[str, Any]
    seed: int
    train_seconds: float
    overrides: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    detector: NotDigitDetector | None = None

    @property
    def converged(self) -> bool:
        """False when the model's solver stopped at its iteration limit (see :func:`reached_iteration_limit`)."""
        return not reached_iteration_limit(self.model)

    def convergence_note(self, param: str = "max_iter") -> str | None:
        """One line when the solver stopped at ``max_iter``, with how to train longer (``--param PARAM=...``);
        None when it converged."""
        if self.converged:
            return None
        limit = self.model.max_iter
        return f"stopped at max_iter={limit} before it converged; --param {param}={2 * limit} trains longer"

    @property
    def temperature(self) -> float:
        """The fitted temperature, or 1 for an uncalibrated model."""
        return 1.0 if self.calibration is None else self.calibration.temperature


def train(
    name: str, dataset: Dataset, *, seed: int = 42, params: dict[str, Any] | None = None
) -> FittedModel:
    """Build model ``name`` with the defaults for ``dataset`` and fit it on the training part.

    Examples
    --------
    >>> from digitlab.train import train
    >>> from digitlab.data import load_dataset
    >>> fitted = train("logreg", load_dataset("digits"))
    >>> fitted.model.classes_.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    from sklearn.utils._param_validation import InvalidParameterError

    require_dataset(dataset, "train")
    from digitlab.models.cnn import CNNClassifier  # here: scikit-learn stays out of the lean path (predict, serve)

    model = make_model(name, dataset=dataset.name, seed=seed, params=params)
    height, width = dataset.image_shape
    if height != width and isinstance(model, CNNClassifier):  # it would read the rows wrapped into a square
        raise DigitlabError(f"model {name!r} takes square images; {dataset.name}'s are {height}×{width}")
    features, labels = train_features(dataset)
    two_digits_at_least(name, dataset)
    if why := too_many_neighbours(model, len(labels), "it trains on"):  # scikit-learn says so only when predicting
        raise DigitlabError(f"model {name!r}: {why}")
    start = time.perf_counter()
    try:
        with fit_threads(model):
            model.fit(features, labels)
    except (InvalidParameterError, InvalidValueError) as exc:  # parameter values checked when fitting
        # scikit-learn names the function that checked it: "of cross_val_predict" for the calibrated SVM's C
        said = re.sub(r"(The '[^']+' parameter) of \w+ (must)", r"\1 \2", str(exc))
        raise DigitlabError(f"model {name!r}: {said}") from None
    except ValueError as exc:  # a combination of parameters and data the model cannot fit
        raise DigitlabError(f"model {name!r} cannot be trained on this data: {exc}") from None
    except (MemoryError, RuntimeError) as exc:
        # PyTorch reports an impossible allocation (say width=100000) as a RuntimeError
        if not isinstance(exc, MemoryError) and "alloc" not in str(exc).lower() and "memory" not in str(exc).lower():
            raise
        raise DigitlabError(f"model {name!r} needs more memory than this machine has with these parameters; "
                            "choose smaller ones (e.g. a smaller width or batch size)") from None
    seconds = time.perf_counter() - start
    return FittedModel(
        name=name,
        model=model,
        params=plain_params(model),
        seed=seed,
        train_seconds=seconds,
        overrides=dict(params or {}),
    )


def two_digits_at_least(name: str, dataset: Dataset) -> None:
    """Refuse a training part of one digit in one line (a handwriting set's ``--test-size 0.999``): scikit-learn's
    was "This solver needs samples of at least 2 classes in the data, but the data contains only one class"."""
    labels = dataset.train_labels
    if len(digits := np.unique(labels)) < 2:
        raise DigitlabError(f"model {name!r} needs training images of two digits or more; {dataset.name}'s training "
                            f"part holds {len(labels):,} image{'s' * (len(labels) != 1)}, all "
                            f"{digits[0] if len(digits) else '-'}s: hold fewer out (a smaller --test-size, such as 0.2) "
                            "or collect other digits too")


def too_many_neighbours(model: Any, images: int, where: str) -> str | None:
    """Why a k-nearest-neighbours model cannot answer when it learns from ``images`` images; None when it can."""
    k = model.get_params().get("n_neighbors") if hasattr(model, "get_params") else None
    if isinstance(k, int) and k > images:
        return f"n_neighbors={k} is more than the {images:,} images {where}; choose at most {images:,}"
    return None


def reached_iteration_limit(model: Any) -> bool:
    """True when a fitted model's solver used all of its ``max_iter`` iterations: scikit-learn's MLP and logistic
    regression then warn that it has not converged (ConvergenceWarning). Models without both attributes: False.

    >>> from sklearn.linear_model import LogisticRegression
    >>> from digitlab.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> features = ds.train_images.reshape(len(ds.train_images), -1) / ds.pixel_max
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # the ConvergenceWarning this asks for
    ...     stopped = LogisticRegression(max_iter=3).fit(features, ds.train_labels)
    >>> reached_iteration_limit(stopped)
    True
    >>> reached_iteration_limit(LogisticRegression(max_iter=1000).fit(features, ds.train_labels))
    False
    """
    limit, done = getattr(model, "max_iter", None), getattr(model, "n_iter_", None)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0 or done is None:
        return False
    return int(np.max(done)) >= limit


def plain_params(model: Any) -> dict[str, Any]:
    """``get_params(deep=False)`` with values made JSON-friendly (a value a card cannot hold: its ``repr``)."""
    out: dict[str, Any] = {}
    for key, value in model.get_params(deep=False).items():
        plain = plain_value(value)
        if plain is NOT_PLAIN:  # a generator object: the seed that made it is not known, so none is kept
            plain = None if key == "random_state" else repr(value)
        out[key] = plain
    return out


NOT_PLAIN = object()


def plain_value(value: Any) -> Any:
    """``value`` as JSON gives it back (NumPy scalars as Python numbers, tuples as lists), or ``NOT_PLAIN``
    for one a model card cannot hold and give back as it was: a dict, an object, an infinity or NaN.

    >>> plain_value(np.int64(3)), plain_value((1, np.float32(0.5))), plain_value({0: 2.0}) is NOT_PLAIN
    (3, [1, 0.5], True)
    """
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return NOT_PLAIN
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [plain_value(v) for v in value]
        return NOT_PLAIN if any(v is NOT_PLAIN for v in items) else items
    return NOT_PLAIN


def calibration_split(dataset: Dataset) -> float | None:
    """The share of training images to hold out for calibration: None (out-of-fold) up to CV_LIMIT, else 0.1."""
    return None if dataset.n_train <= CV_LIMIT else 0.1


@dataclass(frozen=True)
class HeldOut:
    """Images the model did not train on, with its probabilities for them (before any temperature).

    Attributes
    ----------
    images, labels : ndarray
        The images (N×H×W) and their true digits.
    proba : ndarray
        N×classes probabilities from a model that had not seen each image.
    out_of_fold : bool
        True when the images are the whole training part predicted fold by fold (the final model
        did train on them), False for a part held out before fitting.
    where : str
        The same in words, for the report.
    """

    images: np.ndarray
    labels: np.ndarray
    proba: np.ndarray
    out_of_fold: bool
    where: str


def held_out_predictions(fitted: FittedModel, dataset: Dataset,
                         held_out: tuple[np.ndarray, np.ndarray] | None = None) -> HeldOut | None:
    """The model's probabilities on images it did not train on; None for a model without ``predict_proba``.

    With ``held_out`` (images, labels carved from the training part before fitting) the fitted model
    predicts them. Without, the model's recipe is refitted on three folds of the training part and each
    fold's images are predicted by the model that did not see them (the final model keeps all the
    data, so the lesson's numbers do not move).
    """
    if not hasattr(fitted.model, "predict_proba"):
        return None
    if held_out is not None:
        images, labels = held_out
        proba = np.asarray(fitted.model.predict_proba(to_features(images, dataset.pixel_max)))
        return HeldOut(images, labels, proba, False, f"{len(labels):,} training images held out before fitting")
    proba, labels = _out_of_fold(fitted, dataset)
    return HeldOut(dataset.train_images, labels, proba, True,
                   f"out-of-fold predictions of the {len(labels):,} training images (3 folds)")


def calibrate(fitted: FittedModel, dataset: Dataset, held_out: tuple[np.ndarray, np.ndarray] | None = None,
              *, predictions: HeldOut | None = None) -> Calibration | None:
    """Fit the temperature and the "unsure" threshold on images the model did not train on.

    ``predictions`` (from :func:`held_out_predictions`) saves predicting them again; otherwise they are
    made from ``held_out`` as that function does. A model without ``predict_proba`` returns None, and so do fewer
    held-out images than :data:`~digitlab.notdigit.MIN_HELD_DIGITS` (as for the not-a-digit detector): too few
    to say how often a percentage is right.
    """
    require_dataset(dataset, "calibrate")
    if predictions is None:
        predictions = held_out_predictions(fitted, dataset, held_out)
    if predictions is None:
        return None
    classes = np.asarray(fitted.model.classes_)
    known = np.isin(predictions.labels, classes)
    proba, y_index = predictions.proba[known], np.searchsorted(classes, predictions.labels[known])
    if len(y_index) < MIN_HELD_DIGITS:  # a learner's 64 images, all right: a temperature of 0.022 and "sure from
        return None                     # 100.0%", a >99.9% answer called unsure beside another called sure
    if not np.isfinite(proba).all():  # an engineer's --param lr=1000: a traceback from the threshold's NaN
        raise DigitlabError(f"{fitted.name}'s probabilities are not numbers (NaN) on the held-out images: its training "
                            "diverged; train it again with a smaller learning rate (--param lr=...)")
    temperature = fit_temperature(proba, y_index)
    scaled = apply_temperature(proba, temperature)
    threshold, coverage, accuracy = choose_threshold(scaled.max(axis=1), scaled.argmax(axis=1) == y_index)
    return Calibration(
        temperature=temperature, unsure_below=threshold, kept_accuracy=accuracy, coverage=coverage,
        ece_before=expected_calibration_error(proba, y_index), ece_after=expected_calibration_error(scaled, y_index),
        held_out=predictions.where, n_held_out=int(len(y_index)),
    )


def check_folds(name: str, model: Any, dataset: Dataset, seed: int, held_out: Any = None) -> Any:
    """The 3 folds that calibrate ``model`` when no images were held out, or one line on why they cannot: too few
    of a digit, or more neighbours than a fold's images. ``run`` asks before training, so that its advice for
    n_neighbors is the bound that calibrating will take (958 of the 8x8 digits' 1,437), not the bound that
    training alone would. Nothing to check (None) with images ``held_out`` or a model without probabilities."""
    from sklearn.model_selection import StratifiedKFold

    if held_out is not None or not hasattr(model, "predict_proba"):
        return None

    two_digits_at_least(name, dataset)
    features, labels = train_features(dataset)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    fewest = int(np.unique(labels, return_counts=True)[1].min())
    if fewest < folds.n_splits:  # each of the 3 folds holds out some of every digit
        raise DigitlabError(f"cannot calibrate {name!r}: it needs at least {folds.n_splits} training images "
                            f"of every digit, and one digit has {fewest}; train on more (a larger --limit or a "
                            "smaller --test-size)")
    fold = min(len(kept) for kept, _ in folds.split(features, labels))
    if why := too_many_neighbours(model, fold, "each of its 3 folds trains on"):
        raise DigitlabError(f"cannot calibrate {name!r}: {why}")
    return folds


def _out_of_fold(fitted: FittedModel, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_predict

    features, labels = train_features(dataset)
    model = clone(fitted.model)
    if "verbose" in model.get_params():
        model.set_params(verbose=False)  # one progress bar per fold would only confuse
    folds = check_folds(fitted.name, model, dataset, fitted.seed)
    try:
        with fit_threads(model):
            proba = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")
    except ValueError as exc:  # e.g. more neighbours than a fold's images
        raise DigitlabError(f"cannot calibrate {fitted.name!r}: {exc}") from None
    return np.asarray(proba), np.asarray(labels)
