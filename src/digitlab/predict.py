"""Predict digits in a person's own pictures: the library behind ``digitlab predict`` and the web app.

One picture goes through the same steps everywhere::

    read_image(bytes or path)  ──►  prepare_digit(image, card's shape)  ──►  predict_images(model, card, ...)
      (data.images: safe decode)      (MNIST-style centring, or 8×8 0..16)     (top-3, ten probabilities, unsure)

Examples
--------
>>> import numpy as np
>>> from digitlab.data import load_dataset
>>> from digitlab.train import train
>>> ds = load_dataset("digits")
>>> model = train("logreg", ds).model
>>> card = ModelCard(id="logreg-digits-demo", model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)
>>> [p] = predict_images(model, card, ds.test_images[:1])
>>> p.digit == ds.test_labels[0], len(p.probabilities), len(p.top)
(np.True_, 10, 3)
"""

from __future__ import annotations

import decimal
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.calibrate import apply_temperature, sure
from digitlab.card import ModelCard
from digitlab.data.images import WORK_SIDE, prepare_digit, read_image
from digitlab.errors import DigitlabError, estimator_of
from digitlab.notdigit import UNLIKE_RATE, NotDigitDetector
from digitlab.preprocess import to_features

__all__ = [
    "MIN_CONFIDENCE",
    "Prediction",
    "RUNNER_UP",
    "UNLIKE_WORDS",
    "a_digit",
    "features_of",
    "percent_needed",
    "predict_images",
    "prepare_for",
    "unsure_threshold",
    "predict_source",
]

MIN_CONFIDENCE = 0.5
"""Below this top probability a prediction is flagged ``unsure``, for a model saved without calibration.
A calibrated model's card holds its own threshold (:func:`unsure_threshold`)."""


def unsure_threshold(card: ModelCard) -> float:
    """The card's "unsure" threshold, chosen on held-out images; :data:`MIN_CONFIDENCE` without one."""
    return MIN_CONFIDENCE if card.calibration is None else card.calibration.unsure_below


RUNNER_UP = 0.05
"""An unsure answer names the second likeliest digit beside the first ("is it a 4 or a 9?") only from this
probability; below, the first alone ("a 1?"). The page does the same (``serve/static/app.js``)."""


def percent_needed(threshold: float) -> str:
    """An "unsure" threshold as the terminal and the page show it: rounded up to 0.1%, so that a confidence
    under it, shown rounded to 0.1%, never reads as more than it (the page's JavaScript rounds the same way).
    A threshold over 99.9% gets the decimals it needs not to read "100.0%", which no answer is shown as (a
    confidence that would round to it shows as ">99.9%"); only a threshold of 1 itself is "100.0%".

    >>> percent_needed(0.8929061828908649), percent_needed(0.893), percent_needed(0.5), percent_needed(0.9999)
    ('89.3%', '89.3%', '50.0%', '99.99%')
    >>> percent_needed(0.99996), percent_needed(0.9999999999), percent_needed(1.0)
    ('99.996%', '99.999999%', '100.0%')
    """
    for decimals in range(1, 7):
        scale = 10**decimals
        text = f"{math.ceil(threshold * (100 * scale) - 1e-9) / scale:.{decimals}f}"  # as the page computes it
        if float(text) < 100:
            return f"{text}%"
    return "100.0%" if threshold >= 1 else "99.999999%"


def shown_percent(probability: float, decimals: int = 1) -> str:
    """A probability as the terminal, the page and the figures show it: never certainty the model does not have.

    A model's probability that rounds to 100% (or to 0%) is shown as a bound, ">99.9%" ("<0.1%"), even when it
    is exactly 1 or 0 in floating point: a calibrated model is not certain, and "100.0% sure" on a projector says
    it is. The page's JavaScript shows percentages the same way.

    >>> shown_percent(0.8929), shown_percent(0.99951), shown_percent(1.0), shown_percent(0.0004), shown_percent(0.0)
    ('89.3%', '>99.9%', '>99.9%', '<0.1%', '<0.1%')
    >>> shown_percent(0.996, 0), shown_percent(0.994, 0), shown_percent(0.125, 0)  # a tie rounds up, as the page's
    ('>99%', '99%', '13%')
    """
    exact = decimal.Decimal(100 * float(probability))  # the double's own value, rounded as JavaScript's toFixed rounds it
    text, step = str(exact.quantize(decimal.Decimal(1).scaleb(-decimals), decimal.ROUND_HALF_UP)), 10 ** -decimals
    if text == f"{100:.{decimals}f}":
        return f">{100 - step:.{decimals}f}%"
    if text == f"{0:.{decimals}f}":
        return f"<{step:.{decimals}f}%"
    return f"{text}%"


def shown_below(probability: float, threshold: float) -> str:
    """An unsure answer's confidence beside the bar it missed (:func:`percent_needed`): as :func:`shown_percent`,
    with more decimals, rounded down, where the two would read the same ("59.9%; sure from 59.9%").

    >>> shown_below(0.5985, 0.59852), shown_below(0.61, 0.8)
    ('59.85%', '61.0%')
    """
    shown, needed = shown_percent(probability), percent_needed(threshold)
    for decimals in range(2, 8):
        if shown != needed or probability >= threshold:
            break
        shown = f"{math.floor(probability * 100 * 10**decimals) / 10**decimals:.{decimals}f}%"
    return shown


def shown_top(top: list[tuple[int, float]], bar: float | None = None) -> list[str]:
    """Each (digit, probability) of ``top`` as :func:`shown_percent` shows it; the first, of an answer unsure under
    ``bar``, as :func:`shown_below` (the terminal's ``predict`` and ``read`` lines, as the page's ``below``).

    >>> shown_top([(1, 0.5985), (7, 0.387)], 0.59852), shown_top([(1, 0.5985), (7, 0.387)])
    (['59.85%', '38.7%'], ['59.9%', '38.7%'])
    """
    return [shown_below(p, bar) if n == 0 and bar is not None else shown_percent(p) for n, (_, p) in enumerate(top)]

UNLIKE_WORDS = f"might not be a digit: only {round(100 * UNLIKE_RATE)} in 100 digits look this unusual to it"
"""What the terminal adds to an answer marked :attr:`Prediction.unlike_a_digit` (the page says the same)."""


def a_digit(digit: int) -> str:
    """The digit with its article, as a sentence says it.

    >>> a_digit(3), a_digit(8)
    ('a 3', 'an 8')
    """
    return f"{'an' if digit == 8 else 'a'} {digit}"


@dataclass(frozen=True)
class Prediction:
    """What a model says about one picture.

    Attributes
    ----------
    digit : int
        The most probable digit.
    probability : float
        Its probability.
    top : list of (digit, probability)
        The ``top_k`` most probable digits, most probable first.
    probabilities : list of float
        All ten probabilities; index ``d`` is digit ``d`` (0 for digits the model never saw).
    unsure : bool
        True when ``probability < min_confidence`` (by more than rounding: :data:`digitlab.calibrate.TIE`).
    sure_from : float
        That ``min_confidence``: the card's "unsure" threshold, or the one asked for. Shown beside an unsure
        answer, so that "unsure" at 98% says why.
    calibrated : bool
        True when the probabilities went through the card's temperature (False for models saved
        before digitlab calibrated: their percentages are the model's own, often over- or under-confident).
    model_id : str
        The ``id`` of the model card.
    kind : {"digit", "unsure", "not_a_digit"}
        How to show the answer: a digit; "unsure" (a digit, but not sure which: show the top two);
        "not_a_digit" (the detector says the picture is not a digit at all, or it has no ink: show no digit).
    nondigit_score : float or None
        The not-a-digit detector's score (0..1; above the card's threshold means "not a digit");
        None when the model was saved without a detector or none was given.
    unlike_a_digit : bool
        A digit answer (sure or unsure) whose picture the detector finds as unusual as only 3% of real digits
        (:data:`digitlab.notdigit.UNLIKE_RATE`): "might not be a digit". False without a detector that marks them.
    """

    digit: int
    probability: float
    top: list[tuple[int, float]]
    probabilities: list[float]
    unsure: bool
    model_id: str
    calibrated: bool = False
    kind: str = "digit"
    nondigit_score: float | None = None
    sure_from: float = MIN_CONFIDENCE
    unlike_a_digit: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; ``top`` as ``[{"digit": d, "probability": p}, ...]``."""
        data = dict(self.__dict__)  # speed: not asdict's deep copy (0.1 ms)
        data["top"] = [{"digit": d, "probability": p} for d, p in self.top]
        data["probabilities"] = list(self.probabilities)
        return data


def features_of(prepared: np.ndarray, pixel_max: int) -> np.ndarray:
    """Model features of prepared image(s) (H×W or N×H×W), exactly as the models were trained.

    Examples
    --------
    >>> features_of(np.full((8, 8), 16, dtype=np.uint8), 16).shape
    (1, 64)
    """
    prepared = np.asarray(prepared)
    if prepared.ndim == 2:
        prepared = prepared[None]
    return to_features(prepared, pixel_max)


def prepare_for(card: ModelCard, image: Any, *, rules: bool = True) -> np.ndarray:
    """Prepare a PIL image or array for the model described by ``card`` (its shape and pixel maximum);
    ``rules=False`` for a mark :mod:`digitlab.read` has already cut from its rules (a minus sign is not one).

    Examples
    --------
    >>> from digitlab.predict import prepare_for
    >>> stroke = np.zeros((100, 100), dtype=np.uint8); stroke[10:90, 45:55] = 255
    >>> prepare_for(ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16), stroke).shape
    (8, 8)
    """
    return prepare_digit(image, card.image_shape, card.pixel_max, rules=rules)


_UNSET: Any = object()  # predict_images' detector when not given


def predict_images(
    model: Any,
    card: ModelCard,
    prepared: np.ndarray,
    *,
    top_k: int = 3,
    min_confidence: float | None = None,
    detector: NotDigitDetector | None = _UNSET,  # type: ignore[assignment]
) -> list[Prediction]:
    """Predict prepared images (N×H×W uint8, from :func:`~digitlab.data.images.prepare_digit`).

    Parameters
    ----------
    model : estimator
        Fitted, with ``predict_proba`` and ``classes_`` (or at least ``predict``); or ``load_model``'s or
        ``train``'s answer, whose detector (if it has one) is then used unless ``detector`` is given.
    card : ModelCard
        The model's card: ``image_shape``, ``pixel_max`` and ``id`` are used.
    prepared : ndarray of uint8, shape (N, H, W) or (H, W)
    top_k : int
        How many (digit, probability) pairs ``top`` holds.
    min_confidence : float, optional
        A top probability below this marks the prediction ``unsure``; default: the card's threshold.
    detector : NotDigitDetector, optional
        The run's digit-or-not detector (``LoadedModel.detector``); its flag makes the kind "not_a_digit". Not
        given, with a bare estimator whose card names a detector, a warning says none is used (an engineer passed
        ``loaded.model``: a checkerboard was a sure 8, the card still saying the run had a detector).

    Returns
    -------
    list of Prediction
        One per image, in order. An image with no ink (every pixel 0) is "not_a_digit", whatever the model
        answers: ``prepare_digit`` refuses a blank picture, so only an array made by hand is one, and a model
        answered it with a sure digit (the 8×8 lesson's: a 4 at 96%).
    """
    if detector is _UNSET and hasattr(model, "predict") and card.not_a_digit is not None:
        warnings.warn("predict_images: the card names a not-a-digit detector, but none was given, so no picture is "
                      "called 'not a digit': pass load_model's answer itself, or detector=loaded.detector (None: "
                      "none, on purpose)", UserWarning, stacklevel=2)
    if detector is _UNSET or (detector is None and not hasattr(model, "predict")):  # load_model's or train's
        detector = getattr(model, "detector", None)  # answer: its detector, as the CLI's predict uses it
    card = _with_its_calibration(model, card)
    model = estimator_of(model, "predict_images")
    prepared = _checked(np.asarray(prepared), card, top_k, min_confidence)
    if len(prepared) == 0:
        return []  # no pictures, no answers (a model's own checks refuse an empty batch)
    temperature = 1.0 if card.calibration is None else card.calibration.temperature
    features = features_of(prepared, card.pixel_max)
    probabilities, scores = _scored(model, features, temperature, detector)
    threshold = unsure_threshold(card) if min_confidence is None else min_confidence
    calibrated = card.calibration is not None
    if detector is None:
        answers = [_one(row, top_k, threshold, card.id, calibrated) for row in probabilities]
    else:
        answers = [_one(row, top_k, threshold, card.id, calibrated, score, detector.threshold, detector.unlike_from)
                   for row, score in zip(probabilities, scores.tolist())]
    blank = ~prepared.reshape(len(prepared), -1).any(axis=1)
    return [replace(a, kind="not_a_digit", unlike_a_digit=False) if empty else a
            for a, empty in zip(answers, blank.tolist())]  # "not a digit" says it all (a reviewer: both were said)


def _with_its_calibration(model: Any, card: ModelCard) -> ModelCard:
    """``card`` with the calibration of train()'s or load_model()'s answer when ``card`` has none (one made by hand:
    the answer was scored uncalibrated, 0.68 where it said 0.9958)."""
    own = getattr(model, "calibration", None)  # a FittedModel's own, a LoadedModel's card's
    return replace(card, calibration=own) if card.calibration is None and own is not None else card


def _checked(prepared: np.ndarray, card: ModelCard, top_k: int, min_confidence: float | None) -> np.ndarray:
    """``prepared`` as N×H×W, or one line on what is wrong: the shape, a type or range other than the card's
    pixels (whole numbers from 0 to ``pixel_max``), ``top_k`` under 1, ``min_confidence`` outside [0, 1]."""
    if prepared.ndim == 2:
        prepared = prepared[None]
    expected, shape = card.image_shape, "×".join(map(str, prepared.shape[1:] if prepared.ndim == 3 else prepared.shape))
    if prepared.ndim != 3 or prepared.shape[1:] != expected:
        raise DigitlabError(f"the model takes {expected[0]}×{expected[1]} images, got {shape or 'a single number'}; "
                            "prepare pictures with prepare_for(card, image)")
    numeric = prepared.dtype.kind in "uif"
    if prepared.size and (not numeric or not np.all(np.isfinite(prepared)) or prepared.min() < 0
                          or prepared.max() > card.pixel_max or not np.array_equal(prepared, np.round(prepared))):
        got = f"{prepared.dtype} values from {prepared.min()} to {prepared.max()}" if numeric else f"{prepared.dtype}"
        raise DigitlabError(f"the model takes whole-number pixels from 0 to {card.pixel_max}, got {got}; give the "
                            f"images as the dataset holds them (e.g. images.astype(np.uint8)), or prepare pictures "
                            "with prepare_for(card, image)")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise DigitlabError(f"top_k must be a whole number of at least 1, got {top_k!r}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:  # NaN too
        raise DigitlabError(f"min_confidence must be from 0 to 1, got {min_confidence!r}")
    return prepared


def _scored(model: Any, features: np.ndarray, temperature: float,
            detector: NotDigitDetector | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Ten calibrated probabilities per row, and the detector's scores (None without a detector).

    A served ONNX model with both in its graph (:class:`digitlab.onnx_head.OnnxHeadModel`) answers in one call.
    """
    scored = getattr(model, "scored", None)
    answer = scored(features, temperature, detector) if scored is not None else None
    if answer is not None:
        return answer
    probabilities = _ten_probabilities(model, features, temperature)
    return probabilities, None if detector is None else detector.scores(features, probabilities)


def _ten_probabilities(model: Any, features: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """N×10 probabilities (after ``temperature``), column ``d`` for digit ``d``, whatever digits the model knows."""
    out = np.zeros((len(features), 10), dtype=np.float64)
    if hasattr(model, "predict_proba"):
        proba = apply_temperature(model.predict_proba(features), temperature)
        classes = np.asarray(model.classes_).astype(int)
        out[:, classes] = proba
    else:  # a model without probabilities: all mass on its answer
        out[np.arange(len(features)), np.asarray(model.predict(features)).astype(int)] = 1.0
    return out


def _one(row: np.ndarray, top_k: int, min_confidence: float, model_id: str, calibrated: bool,
         score: float | None = None, flag_above: float = 0.0, unlike_from: float | None = None) -> Prediction:
    """One row of ten probabilities as a Prediction; with the detector's ``score``, "not_a_digit" above
    ``flag_above``, and a digit answer "unlike a digit" from ``unlike_from``."""
    order = np.argsort(-row, kind="stable")[: max(1, top_k)].tolist()
    probabilities = row.tolist()  # Python floats, in one call
    best = order[0]
    unsure = not sure(probabilities[best], min_confidence)
    if score is not None and score > flag_above:
        kind = "not_a_digit"
    else:
        kind = "unsure" if unsure else "digit"
    return Prediction(digit=best, probability=probabilities[best], top=[(d, probabilities[d]) for d in order],
                      probabilities=probabilities, unsure=unsure, model_id=model_id, calibrated=calibrated,
                      kind=kind, nondigit_score=score, sure_from=min_confidence,
                      unlike_a_digit=kind != "not_a_digit" and unlike_from is not None and score >= unlike_from)


def predict_source(
    model: Any,
    card: ModelCard,
    source: bytes | str | Path,
    *,
    top_k: int = 3,
    min_confidence: float | None = None,
    detector: NotDigitDetector | None = _UNSET,  # type: ignore[assignment]
) -> tuple[Prediction, np.ndarray]:
    """Read, prepare and predict one picture file or its bytes; also return the prepared input.

    ``model`` may be ``load_model``'s answer: its run's not-a-digit detector is then used unless ``detector`` is
    given (:func:`predict_images`).

    Examples
    --------
    >>> from digitlab.predict import predict_source
    >>> import io
    >>> from PIL import Image, ImageDraw
    >>> from digitlab.data import load_dataset
    >>> from digitlab.train import train
    >>> picture = Image.new("L", (200, 200), 255)
    >>> ImageDraw.Draw(picture).line([(100, 20), (100, 180)], fill=0, width=18)
    >>> buffer = io.BytesIO(); picture.save(buffer, "PNG")
    >>> model = train("logreg", load_dataset("digits")).model
    >>> card = ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)
    >>> prediction, seen = predict_source(model, card, buffer.getvalue())
    >>> prediction.digit, seen.shape
    (1, (8, 8))
    """
    prepared = prepare_for(card, read_image(source, draft=WORK_SIDE))
    [prediction] = predict_images(model, card, prepared, top_k=top_k, min_confidence=min_confidence,
                                  detector=detector)
    return prediction, prepared
