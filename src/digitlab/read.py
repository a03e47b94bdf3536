"""Read a whole handwritten number: find its digits, read each, in order.

The library behind ``digitlab read``::

    picture ──► ink_of ──► find_marks ──► find_separators ──► prepare_for ──► predict_images ──►
               (ink vs paper,  (pieces      (. , - : by their   (each mark    (all marks in
                faint removed)  merged,      shape and place,    the MNIST     one batch)
                                ordered)     not the model)      way)
    ──► cut wide marks? ──► NumberReading
        (cuts from the ink's profile; the surest halves win)

On a line that rises or falls (written uphill, or photographed turned: the line through its marks' centres,
3° or more; 8° for two marks), the marks are also read turned back level, and the line keeps whichever
reading the model is surer of in all: a turned photo's digits are turned, an uphill number's upright.

A mark may be two touching digits when it is wider than :data:`WIDE` times its line's digit height
(and, on a line of three marks or more, 1.5 times their median width). Its cuts are read, and the
one whose less sure half is surest wins, a cut through more than one stroke paying 3 log-odds for each
extra stroke and leaving halves of at least 75% of the height (a 6 leaning far is a wide mark, and a cut
through its loop leaves a short "(" and a "5" the model reads surely; two digits touch at one place); it
is taken when the model is surer of the two halves than of the whole, by a margin that shrinks as the
mark gets wider (in log-odds, ``6 × (1.2 - width / height)``, below zero past 1.2), and always for a mark
wider than :data:`TOO_WIDE` heights. Each half is looked at again, for three digits or more run together.
A digit whose prediction is not a plain ``"digit"`` (unsure, or not a digit at all) shows as ``?`` in the
text.

Examples
--------
>>> import numpy as np
>>> from PIL import Image, ImageDraw
>>> from digitlab.data import load_dataset
>>> from digitlab.train import train
>>> from digitlab.card import ModelCard
>>> model = train("logreg", load_dataset("digits")).model
>>> card = ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)
>>> picture = Image.new("L", (300, 120), 255)
>>> draw = ImageDraw.Draw(picture)
>>> draw.line([(60, 15), (60, 105)], fill=0, width=12); draw.line([(200, 15), (200, 105)], fill=0, width=12)
>>> reading = read_number(model, card, picture)
>>> len(reading.digits), [d.box for d in reading.digits]
(2, [(55, 15, 67, 106), (195, 15, 207, 106)])
>>> count_marks(picture)
2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from digitlab.card import ModelCard
from digitlab.errors import DigitlabError
from digitlab.predict import MIN_CONFIDENCE, Prediction, predict_images, prepare_for
from digitlab.cuts import split_candidates
from digitlab.segment import (MAX_MARKS, Box, Ink, Mark, centre_slope, digit_input, find_marks, full_height, ink_of,
                              writing)
from digitlab.separators import Separator, find_separators

__all__ = ["DigitReading", "NumberReading", "Separator", "read_number", "count_marks", "WIDE", "TOO_WIDE"]

WIDE = 0.8
"""A mark wider than this many times its line's digit height may be two touching digits: cuts are tried."""

TOO_WIDE = 2.0
"""A mark wider than this many times its line's digit height is never one digit: it is always cut."""

_WIDER = 1.5  # on a line of three marks or more, a mark 1.5 times the median width may be two digits
_HALF_HEIGHT = 0.6  # each half of a cut must be at least 60% of a digit's height
_EVIDENCE, _EVEN = 6.0, 1.2  # cut when the halves' log-odds beat the whole's by 6 × (1.2 - width/height)
_THROUGH = 3.0  # a cut through more strokes than one (a 6's loop, leaning far) pays 3 log-odds for each extra one,
_THROUGH_HEIGHT = 0.75  # and leaves halves of at least 75% of a digit's height (a 6's loop cut off is a short "(")
_MAX_DEPTH = 3  # a mark is cut at most three times deep: up to 8 digits run together
_MAX_CUTS = 6  # candidate cuts tried per mark
_TURNED = 3.0  # degrees: a line rising or falling more steeply has its digits read turned back too, if surer;
_TURNED_PAIR = 8.0  # a line of two marks more steeply than this (two centres give a rough angle)
_STEEPEST = 25.0  # degrees: lines rise or fall at most this steeply (digitlab.segment)
_SPACE = 1.4  # paper 1.4 digit heights wide parts two numbers on a line: within one, benchmarks/bench_read.py's
# pictures leave at most 1.21 (8,100 pictures of its 27 conditions not in form boxes)
_MAX_HALVES = 4 * MAX_MARKS  # halves predicted per picture: splitting stops there, so no picture costs more


@dataclass(frozen=True)
class DigitReading:
    """One digit found in the picture, and what the model read there.

    Attributes
    ----------
    box : (int, int, int, int)
        ``(x0, y0, x1, y1)`` in the picture's own pixels, right and bottom excluded.
    digit : int
        The most probable digit.
    probability : float
        Its (calibrated) probability.
    top : tuple of (digit, probability)
        The three most probable digits.
    kind : str
        The prediction's kind: ``"digit"``, ``"unsure"`` or ``"not_a_digit"``; anything but
        ``"digit"`` is shown as ``?``.
    line : int
        The line it is on, 0 for the top one.
    prepared : ndarray
        The model's input for it (28×28 for MNIST), as :func:`~digitlab.predict.prepare_for` made it.
    unlike_a_digit : bool
        A digit the detector finds as unusual as few real ones: "might not be a digit"
        (:attr:`~digitlab.predict.Prediction.unlike_a_digit`); it is still read, and said so beside it.
    """

    box: Box
    digit: int
    probability: float
    top: tuple[tuple[int, float], ...]
    kind: str
    line: int = 0
    prepared: np.ndarray | None = field(default=None, repr=False, compare=False)
    unlike_a_digit: bool = False

    @property
    def shown(self) -> str:
        """The digit as the text shows it: ``"7"``, or ``"?"`` when it is not a sure digit."""
        return str(self.digit) if self.kind == "digit" else "?"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (without the prepared input)."""
        return {"digit": self.digit, "shown": self.shown, "probability": self.probability, "kind": self.kind,
                "box": list(self.box), "line": self.line, "unlike_a_digit": self.unlike_a_digit,
                "top": [{"digit": d, "probability": p} for d, p in self.top]}


@dataclass(frozen=True)
class NumberReading:
    """A whole number read from one picture.

    Attributes
    ----------
    text : str
        The digits and separators in reading order, ``?`` for a doubtful digit; two numbers on a line separated by
        a space (paper :data:`_SPACE` digit heights wide between them), lines by a new line (``"4071"``,
        ``"87 128"``, ``"12\n34"``, ``"3.14"``, ``"7:30"``).
    digits : tuple of DigitReading
        Each digit, in the same order.
    separators : tuple of Separator
        The separators in the text (:mod:`digitlab.separators`: ``. , - :``), in the same order, each box in
        the picture's own pixels.
    model_id : str
        The ``id`` of the model card.
    sure_from : float
        The top probability a digit needed not to be "unsure" (:attr:`~digitlab.predict.Prediction.sure_from`).
    dots : int
        How many of the separators are points (``.``: a decimal point or a thousands dot).
    calibrated : bool
        Whether the probabilities went through the card's temperature (False for a model saved uncalibrated).
    """

    text: str
    digits: tuple[DigitReading, ...]
    model_id: str
    sure_from: float = MIN_CONFIDENCE
    dots: int = 0
    calibrated: bool = False
    separators: tuple[Separator, ...] = ()

    @property
    def doubtful(self) -> int:
        """How many digits show as ``?``."""
        return sum(d.kind != "digit" for d in self.digits)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {"text": self.text, "model_id": self.model_id, "sure_from": self.sure_from, "dots": self.dots,
                "calibrated": self.calibrated, "digits": [d.to_dict() for d in self.digits],
                "separators": [{"symbol": s.symbol, "box": list(s.box), "line": s.line} for s in self.separators]}

    def in_picture(self, source: Any, decoded: tuple[int, int]) -> dict[str, Any]:
        """:meth:`to_dict` with each box in the pixels of the picture ``source`` (bytes or a path) and its
        ``width`` and ``height``: a large JPEG is decoded at a reduced scale (``draft``) of ``decoded`` pixels."""
        width, height = full_size(source, decoded)
        sx, sy = width / decoded[0], height / decoded[1]
        out = self.to_dict()
        for found, (x0, y0, x1, y1) in zip(out["digits"] + out["separators"],
                                           [thing.box for thing in self.digits + self.separators]):
            found["box"] = [int(x0 * sx), int(y0 * sy), min(width, round(x1 * sx)), min(height, round(y1 * sy))]
        return {**out, "width": width, "height": height}


def full_size(source: Any, decoded: tuple[int, int]) -> tuple[int, int]:
    """The picture's own size (``source``: bytes or a path), EXIF rotation applied: larger than ``decoded`` when
    a big JPEG was decoded at a reduced scale (``draft``), else ``decoded`` itself."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as header:
            width, height = header.size
            if header.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated a quarter turn
                width, height = height, width
    except Exception:  # noqa: BLE001 - it decoded once already; keep the decoded frame
        return decoded
    if (width, height) == decoded or width < decoded[0] or height < decoded[1]:
        return decoded
    return width, height


def count_marks(image: Any) -> int:
    """How many separate marks a picture holds: cheap (no model), for "one digit, or several?".

    Pieces of one digit (a 5's flag) count once, specks not at all, and digits that touch count
    as one mark, so a result above 1 means the picture surely holds several digits or symbols. A thin line cut by the
    picture's edge is no mark (a printed line of squared paper photographed turned 8°: one 4 counted 7 marks), unless
    it runs from one side to the opposite one (a 1 cropped to its ink).

    Parameters
    ----------
    image : PIL image or ndarray
        Anything :func:`~digitlab.data.images.prepare_digit` accepts.

    Returns
    -------
    int
        0 for a blank picture.

    Raises
    ------
    DigitlabError
        For more than :data:`~digitlab.segment.MAX_MARKS` marks (a page of text, a texture), as
        :func:`~digitlab.segment.find_marks` does, and for a picture that cannot be read.

    Examples
    --------
    >>> paper = np.full((50, 120), 255, dtype=np.uint8)
    >>> paper[10:40, 20:26] = 0; paper[10:40, 80:86] = 0
    >>> count_marks(paper), count_marks(np.full((50, 50), 255, dtype=np.uint8))
    (2, 0)
    """
    try:
        ink = ink_of(image)
        height, width = ink.map.shape
        return sum(not _edge_line(mark, width, height) for mark in find_marks(ink))
    except DigitlabError as exc:
        if str(exc).startswith("no ink found"):  # blank, or nothing but straight lines
            return 0
        raise


def _edge_line(mark: Mark, width: int, height: int) -> bool:
    """A thin line (four times as long as wide or more) cut by the picture's edge: touching one side of it, or two
    that meet; not two opposite ones (a 1 cropped to its ink, as tall as the picture)."""
    x0, y0, x1, y1 = mark.box
    left, top, right, bottom = x0 == 0, y0 == 0, x1 >= width, y1 >= height
    return (left or top or right or bottom) and not (left and right or top and bottom) and max(
        mark.width, mark.height) >= 4 * min(mark.width, mark.height)


def read_number(model: Any, card: ModelCard, image: Any, *, detector: Any = None,
                min_confidence: float | None = None) -> NumberReading:
    """Find the digits in a picture of a handwritten number and read them in order.

    Parameters
    ----------
    model : estimator
        A fitted digitlab model (``predict_proba``), e.g. ``load_model(path).model``.
    card : ModelCard
        Its card: the input shape, pixel maximum, calibration and "unsure" threshold.
    image : PIL image or ndarray
        Anything :func:`~digitlab.data.images.prepare_digit` accepts; digits on one or more lines.
    detector : optional
        The run's not-a-digit detector (``LoadedModel.detector``), passed on to
        :func:`~digitlab.predict.predict_images`: a mark it flags shows as ``?``.
    min_confidence : float, optional
        The top probability a digit needs not to be "unsure" (``?``); default: the card's own threshold.

    Returns
    -------
    NumberReading

    Raises
    ------
    DigitlabError
        The picture is blank or cannot be an image, or holds more than
        :data:`~digitlab.segment.MAX_MARKS` marks.
    """
    ink = ink_of(image)
    written = writing(ink)  # once, for the digits and the specks that may be points
    marks = find_marks(ink, written=written)
    if not marks:
        raise DigitlabError("no ink found: the image is blank; write or photograph a number")
    separators, marks = find_separators(ink, marks, written[0])
    if not marks:
        raise DigitlabError(f"no digits found, only {' '.join(sorted({s.symbol for s in separators}))}; "
                            "write or photograph a number")
    lines = _line_sizes(marks)
    options = {"detector": detector, **({} if min_confidence is None else {"min_confidence": min_confidence})}
    predict = _Predictor(model, card, ink, options, {n: line.angle for n, line in lines.items()})
    found: list[tuple[Mark, Prediction, np.ndarray]] = []
    for mark, single in zip(marks, _upright_or_not(predict, marks)):
        found += _read_mark(predict, mark, single, lines[mark.line], depth=0)
    if len(found) > MAX_MARKS:
        raise DigitlabError(f"found {len(found)} digits once touching ones were cut apart; digitlab reads up to "
                            f"{MAX_MARKS} digits in one picture: crop it to the number")
    digits = tuple(
        DigitReading(box=ink.to_picture(mark.box), digit=p.digit, probability=p.probability,
                     top=tuple(p.top), kind=p.kind, line=mark.line, prepared=prepared, unlike_a_digit=p.unlike_a_digit)
        for mark, p, prepared in found
    )
    separators = [Separator(s.symbol, ink.to_picture(s.box), s.line) for s in separators]
    order = _in_order(digits, separators)
    boxed = {m.line for m in marks if m.boxed}
    scale = ink.size[1] / ink.map.shape[0]  # the lines' digit heights in the picture's pixels, as the boxes are
    text = "\n".join(_line_text([t for t in order if t.line == n], None if n in boxed else lines[n].height * scale)
                     for n in sorted({t.line for t in order}))
    return NumberReading(text=text, digits=digits, model_id=card.id, sure_from=found[0][1].sure_from,
                         dots=sum(s.symbol == "." for s in separators), calibrated=found[0][1].calibrated,
                         separators=tuple(t for t in order if isinstance(t, Separator)))


def _line_text(tokens: list[DigitReading | Separator], height: float | None) -> str:
    """One line's digits and separators as text, a space where the paper between two is :data:`_SPACE` digit
    ``height`` s wide or more (in the picture's pixels; None, in a form's boxes: no space). A reader's "87 128" had
    read ``87128``, and two columns of answers four heights apart one number a line."""
    text, right = "", None
    for t in tokens:
        if right is not None and height is not None and t.box[0] - right >= _SPACE * height:
            text += " "
        text += t.shown if isinstance(t, DigitReading) else t.symbol
        right = t.box[2] if right is None else max(right, t.box[2])
    return text


def _in_order(digits: tuple[DigitReading, ...], separators: list[Separator]) -> list[DigitReading | Separator]:
    """The digits in their reading order, each separator placed before the first digit of its line whose centre
    lies right of its own (after them all when none does), and the lines in order."""
    order: list[DigitReading | Separator] = []
    for line in sorted({t.line for t in [*digits, *separators]}):
        rest = sorted((s for s in separators if s.line == line), key=lambda s: s.box[0] + s.box[2])
        for digit in (d for d in digits if d.line == line):
            while rest and rest[0].box[0] + rest[0].box[2] < digit.box[0] + digit.box[2]:
                order.append(rest.pop(0))
            order.append(digit)
        order += rest
    return order


@dataclass(frozen=True)
class _Line:
    """The size of one digit on a line: the median height of its marks, and their median width
    when the line has enough marks for a median to mean something (three or more); and how many
    degrees the line rises (:func:`_angle`)."""

    height: float
    width: float | None
    angle: float = 0.0


def _line_sizes(marks: list[Mark]) -> dict[int, _Line]:
    sizes: dict[int, _Line] = {}
    for line in {m.line for m in marks}:
        full = full_height([m for m in marks if m.line == line])  # its digits' size: not a minus sign, a flag
        width = float(np.median([m.width for m in full])) if len(full) >= 3 else None
        sizes[line] = _Line(height=float(np.median([m.height for m in full])), width=width, angle=_angle(full))
    return sizes


def _angle(marks: list[Mark]) -> float:
    """How many degrees a line of two marks or more rises, left to right: the line through their centres;
    0 under :data:`_TURNED` degrees (:data:`_TURNED_PAIR` for two marks)."""
    angle = float(np.degrees(np.arctan(-centre_slope(marks))))  # 0 for one mark
    if abs(angle) > _STEEPEST:  # no line of digits is this steep (marks nearly one above the other)
        return 0.0
    return angle if abs(angle) >= (_TURNED_PAIR if len(marks) == 2 else _TURNED) else 0.0


@dataclass
class _Predictor:
    """Marks of one picture → (prediction, prepared input), each prepared the model's way, in one batch;
    ``predicted`` counts the images, so that splitting can stop at :data:`_MAX_HALVES`."""

    model: Any
    card: ModelCard
    ink: Ink
    options: dict
    angles: dict[int, float]
    predicted: int = 0

    def __call__(self, marks: list[Mark]) -> list[tuple[Prediction, np.ndarray]]:
        self.predicted += len(marks)
        prepared = np.stack([prepare_for(self.card, self._upright(m), rules=False) for m in marks])
        return list(zip(predict_images(self.model, self.card, prepared, **self.options), prepared))

    def _upright(self, mark: Mark) -> np.ndarray:
        """The mark's ink, turned back by its line's angle."""
        crop = digit_input(self.ink, mark)
        angle = self.angles.get(mark.line, 0.0)
        return np.clip(ndimage.rotate(crop, -angle, order=1), 0, None) if angle else crop


def _upright_or_not(predict: _Predictor, marks: list[Mark]) -> list[tuple[Prediction, np.ndarray]]:
    """Each mark read turned back by its line's angle, or as it is, whichever way its whole line reads surer:
    a photo taken turned has its digits turned, a number written uphill has them upright. Sets
    ``predict.angles`` to the choice, for the halves of any mark cut later."""
    turned = predict(marks)
    tilted = [i for i, mark in enumerate(marks) if predict.angles.get(mark.line)]
    if not tilted:
        return turned
    angles = dict(predict.angles)
    predict.angles = {}
    level = dict(zip(tilted, predict([marks[i] for i in tilted])))
    for line in {marks[i].line for i in tilted}:
        on = [i for i in tilted if marks[i].line == line]
        if sum(_log_odds(level[i][0]) for i in on) >= sum(_log_odds(turned[i][0]) for i in on):
            del angles[line]
            for i in on:
                turned[i] = level[i]
    predict.angles = angles
    return turned


def _read_mark(predict: _Predictor, mark: Mark, single: tuple[Prediction, np.ndarray], line: _Line,
               depth: int) -> list[tuple[Mark, Prediction, np.ndarray]]:
    """The mark read as one digit or, if it is too wide for one, as the best pair of halves (recursively)."""
    keep = [(mark, *single)]
    wide = mark.width > WIDE * line.height and (line.width is None or mark.width > _WIDER * line.width)
    if not wide or depth >= _MAX_DEPTH:
        return keep
    cuts = [(a, b, n) for a, b, n in split_candidates(mark)
            if min(a.height, b.height) >= (_HALF_HEIGHT if n <= 1 else _THROUGH_HEIGHT) * line.height][:_MAX_CUTS]
    pairs, through = [(a, b) for a, b, _ in cuts], [_THROUGH * max(0, n - 1) for _, _, n in cuts]
    if not pairs or predict.predicted + 2 * len(pairs) > _MAX_HALVES:  # the picture's budget is spent
        return keep
    read = predict([half for pair in pairs for half in pair])
    scores = [min(_log_odds(read[2 * k][0]), _log_odds(read[2 * k + 1][0])) - through[k] for k in range(len(pairs))]
    best = int(np.argmax(scores))
    evidence = scores[best] - _log_odds(single[0])
    if mark.width <= TOO_WIDE * line.height and evidence <= _EVIDENCE * (_EVEN - mark.width / line.height):
        return keep
    (left, right), (lp, rp) = pairs[best], (read[2 * best], read[2 * best + 1])
    return _read_mark(predict, left, lp, line, depth + 1) + _read_mark(predict, right, rp, line, depth + 1)


def _log_odds(prediction: Prediction) -> float:
    """How sure the model is of a digit: the log-odds of its top probability."""
    p = min(max(prediction.probability, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))
