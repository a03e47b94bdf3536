"""The model card: what a saved model is, checked once when it is read.

Every saved model sits beside a ``model.json`` card: the model's registry name, the data it saw
(dataset, split, image shape, pixel maximum), its parameters, its test metrics, the library
versions, and the name and SHA-256 of its weights file. :class:`ModelCard` is that file as a
frozen dataclass. :meth:`ModelCard.from_file` is the only reader: it bounds the file's size and
nesting, refuses JSON's ``NaN``/``Infinity``, checks every field's type and range, and answers
anything else with one :class:`~digitlab.errors.DigitlabError` line. Everything downstream reads
attributes, never ``dict.get`` with a default.

Examples
--------
>>> card = ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16, sha256="0" * 64)
>>> card.image_shape, card.n_pixels
((8, 8), 64)
>>> ModelCard.from_json(card.to_json()) == card
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from digitlab.calibrate import Calibration
from digitlab.notdigit import NotDigitCheck
from digitlab.errors import DigitlabError

__all__ = ["CARD_NAME", "FORMATS", "MAX_CARD_BYTES", "ModelCard", "PREPROCESSING", "picture_preparation"]

CARD_NAME = "model.json"
FORMATS = {"skops": "model.skops", "safetensors": "model.safetensors"}
"""Weights format → the weights file's name, always beside the card."""
PREPROCESSING = "pixels / pixel_max as float32, flattened row by row (digitlab.preprocess.to_features)"
MAX_CARD_BYTES = 4 << 20
"""A card is a few kilobytes; anything this large is not one of ours."""
MAX_DEPTH = 16
"""Nesting depth of a card's JSON; ours reach 4."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


def picture_preparation(image_shape: tuple[int, ...]) -> str:
    """How a picture of one digit becomes the pixels a model of ``image_shape`` takes, in words (an exported ONNX
    graph's ``metadata_props``). An engineer fed photos merely resized to 28×28, as "raw pixels" had read: 9% right.

    >>> picture_preparation((28, 28)).split("; ")[1]
    'ink light on dark paper (paper 0)'
    """
    made = ("cropped to the ink; its longer side scaled to 20 px and placed in 28×28 with its centre of mass at the "
            "centre, as MNIST's digits were made" if tuple(image_shape) == (28, 28)
            else "cropped to the ink, fitted into 32×32, made binary and counted per 4×4 block (0..16), as "
                 "scikit-learn's 8×8 digits were made")
    return (f"a photo or scan of one digit becomes the input as digitlab.data.images.prepare_digit makes it: grey; "
            f"ink light on dark paper (paper 0); {made}; besides, uneven light is flattened, specks at the border and "
            "ruled lines removed, strokes thickened or thinned towards MNIST's and the brightest ink set to the "
            "maximum, so only pictures digitlab prepared get digitlab's answers exactly. A photo merely resized is "
            "not this input (dark ink on white reads as noise); `digitlab predict --save-prepared DIR` writes the "
            "prepared inputs of your pictures, as "
            "PNGs of 0..255 (an 8×8 model's 0..16 scaled by 255/16: round(png × 16 / 255) gives its input back)")


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """A saved model's card (``model.json``), validated.

    Attributes
    ----------
    model : str
        Registry name (``logreg``, ``cnn``, ...).
    dataset : str
        The dataset it was trained on.
    image_shape : tuple of int
        Height and width of the images it takes.
    pixel_max : int
        Brightest pixel value of its input (16 for the 8×8 digits, 255 for MNIST).
    id : str
        ``<model>-<dataset>-<first 12 hex digits of the weights' SHA-256>``.
    format, file, sha256, size_bytes
        The weights file: ``safetensors`` or ``skops``, its name beside the card, checksum, size.
    params : dict
        The estimator's ``get_params(deep=False)``, JSON values.
    state : dict or None
        For array-state models stored as safetensors: each learned attribute's kind.
    seed, split, n_train, classes
        How it was trained.
    metrics : dict
        Test metrics recorded at training (``accuracy``, ``n_errors``, ``n_test``, ``ci95``, ``ece``, ...).
    calibration : Calibration or None
        The temperature and "unsure" threshold fitted on held-out images; None for a model saved
        before digitlab calibrated (its probabilities are used as they are).
    not_a_digit : NotDigitCheck or None
        The digit-or-not detector saved beside the model and its threshold; None for a model saved
        before digitlab had one (its answers are never "not a digit").
    train_seconds, versions, created, estimator, preprocessing
        Provenance.
    finetuned_from : dict or None
        For a model fine-tuned to a handwriting set (``digitlab finetune``): the base model's id and
        folder, and how it was fine-tuned; None otherwise.
    """

    model: str
    dataset: str
    image_shape: tuple[int, int]
    pixel_max: int
    id: str = ""
    format: str = "safetensors"
    file: str = FORMATS["safetensors"]
    sha256: str = ""
    size_bytes: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    seed: int | None = None
    split: dict[str, Any] = field(default_factory=dict)
    n_train: int | None = None
    classes: tuple[int, ...] = tuple(range(10))
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    not_a_digit: NotDigitCheck | None = None
    train_seconds: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    estimator: str = ""
    preprocessing: str = PREPROCESSING
    finetuned_from: dict[str, Any] | None = None

    @property
    def n_pixels(self) -> int:
        """Features the model takes: height × width."""
        return self.image_shape[0] * self.image_shape[1]

    @property
    def accuracy(self) -> float | None:
        """Test accuracy recorded at training, if any."""
        value = self.metrics.get("accuracy")
        return float(value) if _is_number(value) and 0.0 <= value <= 1.0 else None

    @property
    def accuracy_measured(self) -> tuple[int, float, float] | None:
        """How many test images the accuracy was measured on, and its 95% interval, if recorded."""
        n, ci = self.metrics.get("n_test"), self.metrics.get("ci95")
        if type(n) is not int or n < 1 or not isinstance(ci, list) or len(ci) != 2:
            return None
        if not all(_is_number(v) and 0.0 <= v <= 1.0 for v in ci) or ci[0] > ci[1]:
            return None
        return n, float(ci[0]), float(ci[1])

    def to_json(self) -> str:
        """The card as indented JSON, the way ``model.json`` holds it."""
        doc = dataclasses.asdict(self)
        doc["image_shape"], doc["classes"] = list(self.image_shape), list(self.classes)
        for name in ("state", "calibration", "not_a_digit", "finetuned_from"):
            if doc[name] is None:
                del doc[name]
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "model card") -> "ModelCard":
        """Parse and validate a card's JSON text; ``where`` names it in error messages."""
        if len(text) > MAX_CARD_BYTES:
            raise DigitlabError(f"{where}: {len(text):,} bytes is far too large for a model card; the card is damaged")
        try:
            doc = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
        except RecursionError:
            raise DigitlabError(f"{where}: the model card is nested too deeply; the card is damaged") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DigitlabError(f"{where}: not a readable model card ({exc.__class__.__name__})") from None
        return cls.from_dict(doc, where)

    @classmethod
    def from_file(cls, path: str | Path) -> "ModelCard":
        """Read ``model.json`` at ``path``, bounded in size, and validate it."""
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                text = handle.read(MAX_CARD_BYTES + 1)
        except OSError as exc:
            raise DigitlabError(f"{path}: cannot read the model card ({exc.strerror or exc})") from None
        return cls.from_json(text, str(path))

    @classmethod
    def from_dict(cls, doc: Any, where: str = "model card") -> "ModelCard":
        """Validate a parsed card: required fields present, every field of the right type and range."""
        if not isinstance(doc, dict):
            raise DigitlabError(f"{where}: not a digitlab model card (not a JSON object)")
        required = {"format", "file", "sha256", "model", "dataset", "image_shape", "pixel_max", "params"}
        missing = sorted(required - set(doc))
        if missing:
            raise DigitlabError(f"{where}: not a digitlab model card (missing {', '.join(missing)})")
        if _depth(doc) > MAX_DEPTH:
            raise DigitlabError(f"{where}: the model card is nested too deeply; the card is damaged")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in doc.items() if key in known}  # newer fields are ignored
        _check_fields(values, where)
        values["image_shape"] = tuple(values["image_shape"])
        if "classes" in values:
            values["classes"] = tuple(values["classes"])
        if values.get("calibration") is not None:
            values["calibration"] = Calibration.from_dict(values["calibration"], where)
        if values.get("not_a_digit") is not None:
            values["not_a_digit"] = NotDigitCheck.from_dict(values["not_a_digit"], where)
        values.setdefault("id", f"{values['model']}-{values['dataset']}-{values['sha256'][:12]}")
        return cls(**values)


def _check_fields(doc: dict[str, Any], where: str) -> None:
    """Raise one line naming the first field of the wrong type or out of range."""

    def bad(name: str, expected: str) -> DigitlabError:
        return DigitlabError(f"{where}: field {name!r} of the model card must be {expected}; the card is damaged")

    for name in ("model", "dataset", "id", "estimator", "created", "preprocessing"):
        if name in doc and not (isinstance(doc[name], str) and len(doc[name]) <= 1000):
            raise bad(name, "a short string")
    if not (isinstance(doc["format"], str) and doc["format"] in FORMATS):
        raise bad("format", "'safetensors' or 'skops'")
    if doc["file"] != FORMATS[doc["format"]]:
        raise bad("file", f"{FORMATS[doc['format']]!r}, beside the card")
    if not (isinstance(doc["sha256"], str) and _SHA256.fullmatch(doc["sha256"])):
        raise bad("sha256", "64 lowercase hex digits")
    shape = doc["image_shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(v, 1, 4096) for v in shape)):
        raise bad("image_shape", "two integers from 1 to 4096")
    if not _is_int(doc["pixel_max"], 1, 255):
        raise bad("pixel_max", "an integer from 1 to 255")
    for name in ("params", "split", "metrics", "versions"):
        if name in doc and not isinstance(doc[name], dict):
            raise bad(name, "an object")
    if doc.get("finetuned_from") is not None and not isinstance(doc["finetuned_from"], dict):
        raise bad("finetuned_from", "an object")
    state = doc.get("state")
    if state is not None and not (isinstance(state, dict) and all(isinstance(v, dict) for v in state.values())):
        raise bad("state", "an object of objects")
    for name in ("size_bytes", "n_train", "seed"):
        if doc.get(name) is not None and not _is_int(doc[name], 0, 2**63):
            raise bad(name, "a non-negative integer")
    if doc.get("train_seconds") is not None and not (_is_number(doc["train_seconds"]) and doc["train_seconds"] >= 0):
        raise bad("train_seconds", "a number of seconds")
    classes = doc.get("classes", [])
    if not (isinstance(classes, list) and len(classes) <= 1000 and all(_is_int(c, -(2**31), 2**31) for c in classes)):
        raise bad("classes", "a list of integer labels")


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a model card holds")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19:  # beyond 64 bits: not a number a card holds, and float() would overflow
        raise ValueError(f"an integer of {len(text)} digits is out of range")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _depth(value: Any, level: int = 0) -> int:
    """Nesting depth of parsed JSON, stopping early once it passes MAX_DEPTH."""
    if level > MAX_DEPTH or not isinstance(value, (dict, list)):
        return level
    children = value.values() if isinstance(value, Mapping) else value
    return max((_depth(child, level + 1) for child in children), default=level + 1)
