"""Pictures of whole handwritten numbers with known digits and boxes, made from a seed: the
benchmark and test data for :func:`digitlab.read.read_number`.

Three kinds of picture, each returned as a :class:`NumberPicture` (the grayscale picture, the true
string, and each digit's true box):

:func:`mnist_number`
    A number composed from MNIST digits (give it the *test* images: the model never trained on
    them): each digit scaled (one size per number, each digit ±15%), slanted (one slant per number,
    each digit a little more or less), on its own baseline (±10% of the height), with random gaps
    between the digits' ink; or, for ``join="overlap"``, one pair whose ink boxes overlap by up to
    15% of a digit's width; or, for ``join="touch"``, one pair whose ink touches, their boxes
    overlapping by up to 15% of a digit's width. Light ink on dark as MNIST, or inverted.
:func:`mnist_form`
    MNIST digits written one to a box in a form's row of printed boxes, the boxes after the number empty.
:func:`drawn_number`
    A number drawn with a thick pen on a large canvas (digits 80-300 px tall, gaps between them),
    dark on light or light on dark, each digit from a ``draw_digit(digit, rng)`` function: the
    benchmark passes the pen-stroke templates of ``benchmarks/bench_handwriting.py``
    (``draw_template``) and its MNIST test digits redrawn large (``redraw_mnist``).

Same seed, same pictures.

Examples
--------
>>> import numpy as np
>>> def bars(digit, rng):                      # a stand-in pen: every digit a bar
...     ink = np.zeros((100, 60), np.float32); ink[5:95, 25:35] = 1; return ink
>>> picture = drawn_number(np.random.default_rng(0), bars, n_digits=3)
>>> len(picture.text), len(picture.boxes), picture.image.dtype
(3, 3, dtype('uint8'))
>>> again = drawn_number(np.random.default_rng(0), bars, n_digits=3)
>>> again.text == picture.text and bool((again.image == picture.image).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

from digitlab.errors import InvalidValueError

__all__ = ["NumberPicture", "DigitDrawer", "mnist_number", "mnist_text", "mnist_form", "drawn_number", "JOINS",
           "SYMBOLS"]

Box = tuple[int, int, int, int]
DigitDrawer = Callable[[int, np.random.Generator], np.ndarray]
"""``draw(digit, rng) -> ink``: one drawing of ``digit`` as a float map, 1 = ink, 0 = paper, any size."""

JOINS = ("gap", "overlap", "touch")
"""How :func:`mnist_number` places one pair of neighbours: apart, boxes overlapping, or ink touching."""

SYMBOLS = ".,-:/"
"""What :func:`mnist_text` draws between digits: a decimal point, a comma, a minus or dash, a colon, a slash."""

_TRUE_INK = 0.25  # a pixel belongs to a digit's true box when its ink is at least this strong
_MAX_OVERLAP = 0.15  # of a digit's width
_TRIES = 50  # partners tried for a touching pair


@dataclass(frozen=True)
class NumberPicture:
    """A picture of a number with the answer.

    Attributes
    ----------
    image : ndarray of uint8, shape (H, W)
        Grayscale, dark ink on light paper or light on dark.
    text : str
        The true digits, left to right.
    boxes : tuple of (x0, y0, x1, y1)
        Each digit's ink box in the picture's pixels (right and bottom excluded), in the same order.
    dark_on_light : bool
        The ink's polarity.
    """

    image: np.ndarray = field(repr=False, compare=False)
    text: str
    boxes: tuple[Box, ...]
    dark_on_light: bool


def mnist_number(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    n_digits: int = 4,
    join: str = "gap",
    dark_on_light: bool | None = None,
    rise: float = 0.0,
) -> NumberPicture:
    """A number composed from MNIST digits, with its true string and boxes.

    Parameters
    ----------
    images, labels : ndarray
        MNIST images (N×28×28 uint8, light ink on dark) and their labels: pass the test part.
    rng : numpy Generator
        Every random choice comes from it.
    n_digits : int
        How many digits, at least 1 (2 or more for ``join="overlap"`` or ``"touch"``).
    join : {"gap", "overlap", "touch"}
        ``"gap"``: every neighbour apart, gaps of 10-80% of the digit height. ``"overlap"``: one
        pair's ink boxes overlapping by 0-15% of their mean width. ``"touch"``: one pair pushed
        together until the ink touches, then further, the boxes overlapping by at most 15% of
        the width (a right-hand digit that cannot touch within that is drawn again).
    dark_on_light : bool, optional
        Invert to dark ink on light paper; random when not given.
    rise : float
        How much higher each digit sits per pixel along: ``tan(10°)`` is written 10° uphill, digits upright.

    Returns
    -------
    NumberPicture

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> ds = load_dataset("digits")                      # 8×8 stand-ins; benchmarks use MNIST
    >>> p = mnist_number(ds.test_images * 15, ds.test_labels, np.random.default_rng(1), n_digits=2)
    >>> len(p.text), len(p.boxes)
    (2, 2)
    """
    if join not in JOINS:
        raise InvalidValueError(f"join must be one of {', '.join(JOINS)}, got {join!r}")
    fewest = 1 if join == "gap" else 2
    if n_digits < fewest:
        raise InvalidValueError(f"n_digits must be at least {fewest} for join={join!r}, got {n_digits}")
    scale = rng.uniform(1.5, 4.0) * 28 / images.shape[1]
    slant = rng.uniform(-0.25, 0.25)

    def one_digit() -> tuple[int, np.ndarray]:
        return _mnist_digit(images, labels, rng, scale, slant)

    digits = [one_digit() for _ in range(n_digits)]
    height = float(np.median([ink.shape[0] for _, ink in digits]))
    joined = int(rng.integers(0, n_digits - 1)) if join != "gap" else -1
    lefts, tops = _place(digits, join, joined, height, one_digit, rng)
    tops = [int(round(top - rise * left)) for top, left in zip(tops, lefts)]
    return _compose([ink for _, ink in digits], [str(d) for d, _ in digits], lefts, tops, height, rng, dark_on_light)


def _mnist_digit(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: float, slant: float
                 ) -> tuple[int, np.ndarray]:
    """One MNIST digit at random, at the number's scale (±15%) and slant (±0.08), cropped to its ink."""
    i = int(rng.integers(len(images)))
    ink = _transform(images[i] / max(float(images[i].max()), 1.0), scale * rng.uniform(0.85, 1.15),
                     slant + rng.uniform(-0.08, 0.08))
    return int(labels[i]), _crop(ink)


def _place(digits: list, join: str, joined: int, height: float, one_digit, rng: np.random.Generator
           ) -> tuple[list[int], list[int]]:
    """Left and top of each digit: gaps, except the pair after ``joined`` (overlapping or touching; for
    "touch" the right-hand digit is drawn again, in place in ``digits``, until its ink can meet the left one's)."""
    lefts: list[int] = []
    tops: list[int] = []
    for n in range(len(digits)):
        top = int(round(height / 2 - digits[n][1].shape[0] / 2 + rng.uniform(-0.1, 0.1) * height))
        if n == 0:
            x = 0
        elif n - 1 != joined:
            x = lefts[-1] + digits[n - 1][1].shape[1] + int(round(rng.uniform(0.1, 0.8) * height))
        else:
            previous = digits[n - 1][1]
            for _ in range(_TRIES):  # for "touch", a partner whose ink meets the left digit's within the limit
                limit = int(_MAX_OVERLAP * (previous.shape[1] + digits[n][1].shape[1]) / 2)
                step = _contact(previous, digits[n][1], tops[-1], top) if join == "touch" else 0
                if step <= limit:
                    break
                digits[n] = one_digit()
                top = int(round(height / 2 - digits[n][1].shape[0] / 2 + rng.uniform(-0.1, 0.1) * height))
            step = min(step, limit)
            x = lefts[-1] + previous.shape[1] - step - int(rng.integers(0, limit - step + 1))
        lefts.append(x)
        tops.append(top)
    return lefts, tops


def mnist_text(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, pattern: str, *,
               dark_on_light: bool | None = None, symbol_gap: tuple[float, float] = (0.1, 0.5)) -> NumberPicture:
    """A number with separators, from MNIST digits and pen-drawn :data:`SYMBOLS`: ``pattern`` is ``d`` for each
    digit and the symbols themselves (``"dd.dd"``, ``"-ddd"``, ``"dd/dd"``, ``"d:dd"``, ``"d,ddd"``).

    The digits are scaled, slanted and placed as :func:`mnist_number` places them (gaps of 10-50% of a digit's
    height); each symbol is drawn with a pen as thick as the digits' strokes (12% of their height, ±20%): a dot
    on the baseline, a comma hanging from it, a dash of 30-55% of a height across the middle (±6°), a colon's two
    dots, a slash 90-120% of a height tall leaning 20-35° further than the digits. ``symbol_gap``: the gaps beside a
    symbol, in digit heights (``(0.02, 0.1)``: a point or comma written close). ``text`` and ``boxes`` hold every
    character, symbols too.

    >>> from digitlab.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> p = mnist_text(ds.test_images * 15, ds.test_labels, np.random.default_rng(2), "d.d")
    >>> p.text[1], len(p.boxes)
    ('.', 3)
    """
    unknown = set(pattern) - set(SYMBOLS) - {"d"}
    if unknown or "d" not in pattern:
        raise InvalidValueError(f"a pattern is d for a digit and the symbols {SYMBOLS!r}, got {pattern!r}")
    scale, slant = rng.uniform(1.5, 4.0) * 28 / images.shape[1], rng.uniform(-0.25, 0.25)
    drawn: list[tuple[str, np.ndarray]] = []
    for char in pattern:
        if char == "d":
            digit, ink = _mnist_digit(images, labels, rng, scale, slant)
            drawn.append((str(digit), ink))
        else:
            drawn.append((char, np.zeros((0, 0))))
    height = float(np.median([ink.shape[0] for char, ink in drawn if char.isdigit()]))
    pen = 0.12 * height * rng.uniform(0.8, 1.2)
    lefts, tops, x = [], [], 0
    for n, (char, ink) in enumerate(drawn):
        if char.isdigit():
            top = height / 2 - ink.shape[0] / 2 + rng.uniform(-0.1, 0.1) * height
        else:
            ink, top = _symbol(char, height, pen, slant, rng)
            drawn[n] = (char, ink)
        lefts.append(x)
        tops.append(int(round(top)))
        beside = not char.isdigit() or (n + 1 < len(drawn) and not drawn[n + 1][0].isdigit())
        x += ink.shape[1] + int(round(rng.uniform(*(symbol_gap if beside else (0.1, 0.5))) * height))
    return _compose([ink for _, ink in drawn], [char for char, _ in drawn], lefts, tops, height, rng, dark_on_light)


def _symbol(char: str, height: float, pen: float, slant: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One pen-drawn symbol as an ink map, and where its top goes (the digits span 0 to ``height``)."""
    from PIL import ImageDraw

    zoom = 4  # drawn 4 times larger, then reduced: smooth edges
    dot = pen * rng.uniform(1.1, 1.8)
    if char in ".,:":
        spots = [0.0] if char != ":" else [0.0, rng.uniform(0.35, 0.55) * height]
        tail = rng.uniform(0.15, 0.25) * height if char == "," else 0.0
        points = [[(0.0, y), (0.0, y)] for y in spots] + ([[(0.0, 0.0), (-0.35 * tail, tail)]] if tail else [])
        top = {".": rng.uniform(0.9, 1.0) * height - dot, ",": rng.uniform(0.85, 0.95) * height - dot / 2,
               ":": rng.uniform(0.2, 0.35) * height}[char]
    elif char == "-":
        length, tilt = rng.uniform(0.3, 0.55) * height, np.tan(np.radians(rng.uniform(-6, 6)))
        points, top = [[(0.0, 0.0), (length, tilt * length)]], rng.uniform(0.45, 0.6) * height - pen / 2
    else:  # "/": leaning 20-35 degrees further than the digits
        tall = rng.uniform(0.9, 1.2) * height
        lean = np.tan(np.arctan(slant) + np.radians(rng.uniform(20, 35)))
        points, top = [[(lean * tall, 0.0), (0.0, tall)]], height / 2 - tall / 2
    xs = [x for stroke in points for x, _ in stroke]
    ys = [y for stroke in points for _, y in stroke]
    margin = dot
    size = (int((max(xs) - min(xs) + 2 * margin) * zoom) + 1, int((max(ys) - min(ys) + 2 * margin) * zoom) + 1)
    canvas = Image.new("F", size, 0.0)
    draw = ImageDraw.Draw(canvas)
    for stroke in points:
        (x0, y0), (x1, y1) = (((x - min(xs) + margin) * zoom, (y - min(ys) + margin) * zoom) for x, y in stroke)
        draw.line([(x0, y0), (x1, y1)], fill=1.0, width=max(1, round(pen * zoom)))
        start = (dot if char in ".,:" else pen) * zoom / 2  # a dot's spot; the round ends of a stroke
        draw.ellipse((x0 - start, y0 - start, x0 + start, y0 + start), fill=1.0)
        end = pen * zoom / 2
        draw.ellipse((x1 - end, y1 - end, x1 + end, y1 + end), fill=1.0)
    ink = _crop(_resize(np.asarray(canvas, dtype=np.float32), 1 / zoom))
    return ink, top


def mnist_form(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> NumberPicture:
    """A number of 1-8 MNIST digits written one to a box, left to right, in a form's row of 3-8 printed boxes
    60-120 px square (apart by 10-50% of a box, or a comb sharing its walls; walls 2-4 px, black to mid grey), the
    boxes after the number empty; dark on light. Each digit's ink is 55-95% of its box tall, anywhere inside it:
    the tallest may touch a wall.

    >>> from digitlab.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> p = mnist_form(ds.test_images, ds.test_labels, np.random.default_rng(0))
    >>> 1 <= len(p.text) == len(p.boxes) <= 8, p.dark_on_light
    (True, True)
    """
    count = int(rng.integers(3, 9))
    digits, side, wall = int(rng.integers(1, count + 1)), int(rng.integers(60, 121)), int(rng.integers(2, 5))
    step = side - wall if rng.integers(2) else side + int(rng.uniform(0.1, 0.5) * side)  # a comb shares its walls
    margin = side // 3
    image = np.full((side + 2 * margin, margin * 2 + step * (count - 1) + side), 255, dtype=np.uint8)
    gray = int(rng.integers(0, 130))
    text, boxes = "", []
    for n in range(count):
        x = margin + n * step
        image[margin : margin + side, x : x + side] = gray
        image[margin + wall : margin + side - wall, x + wall : x + side - wall] = 255
        if n >= digits:
            continue
        i = int(rng.integers(len(images)))
        ink = images[i] if images.dtype == np.uint8 else (images[i] * (255 / max(float(images[i].max()), 1.0))
                                                          ).astype(np.uint8)  # MNIST's bytes, or 8×8's 0-16
        rows, cols = np.flatnonzero(ink.max(axis=1)), np.flatnonzero(ink.max(axis=0))
        ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        tall = rng.uniform(0.55, 0.95) * (side - 2 * wall)
        wide = min(side - 2 * wall, max(2, int(round(tall * ink.shape[1] / ink.shape[0]))))
        ink = np.asarray(Image.fromarray(ink).resize((wide, int(round(tall))), Image.Resampling.BILINEAR))
        top = margin + wall + int(rng.integers(0, side - 2 * wall - ink.shape[0] + 1))
        left = x + wall + int(rng.integers(0, side - 2 * wall - ink.shape[1] + 1))
        spot = image[top : top + ink.shape[0], left : left + ink.shape[1]]
        spot[...] = np.minimum(spot, 255 - ink)
        text += str(int(labels[i]))
        boxes.append((left, top, left + ink.shape[1], top + ink.shape[0]))
    return NumberPicture(image=image, text=text, boxes=tuple(boxes), dark_on_light=True)


def drawn_number(
    rng: np.random.Generator,
    draw_digit: DigitDrawer,
    *,
    n_digits: int = 4,
    dark_on_light: bool | None = None,
) -> NumberPicture:
    """A number drawn with a thick pen on a large canvas, digits apart, with its true string and boxes.

    Parameters
    ----------
    rng : numpy Generator
    draw_digit : callable
        ``draw_digit(digit, rng)`` returns one drawing of ``digit`` as a float ink map (1 = ink),
        any size; it is scaled to the number's digit height.
    n_digits : int
        How many digits, at least 1.
    dark_on_light : bool, optional
        Dark ink on light paper, or light on dark; random when not given.

    Returns
    -------
    NumberPicture

    Examples
    --------
    >>> def bar(digit, rng):
    ...     ink = np.zeros((90, 40), np.float32); ink[:, 15:25] = 1; return ink
    >>> p = drawn_number(np.random.default_rng(3), bar, n_digits=2, dark_on_light=True)
    >>> p.image.shape[0] >= 120, int(p.image[0, 0]) >= 200      # a large canvas, light paper
    (True, True)
    """
    if n_digits < 1:
        raise InvalidValueError(f"n_digits must be at least 1, got {n_digits}")
    digits = [int(d) for d in rng.integers(0, 10, n_digits)]
    height = rng.uniform(80, 300)
    inks = []
    for digit in digits:
        ink = _crop(np.asarray(draw_digit(digit, rng), dtype=np.float32))
        inks.append(_crop(_resize(ink, height * rng.uniform(0.9, 1.1) / ink.shape[0])))
    lefts, tops, x = [], [], 0
    for ink in inks:
        lefts.append(x)
        tops.append(int(round(height / 2 - ink.shape[0] / 2 + rng.uniform(-0.1, 0.1) * height)))
        x += ink.shape[1] + int(round(rng.uniform(0.15, 0.8) * height))
    return _compose(inks, [str(d) for d in digits], lefts, tops, height, rng, dark_on_light)


def _transform(digit: np.ndarray, scale: float, slant: float) -> np.ndarray:
    """A float ink map scaled by ``scale`` and slanted (``slant`` > 0 leans the top to the right)."""
    h, w = digit.shape
    out_h = int(np.ceil(h * scale))
    out_w = int(np.ceil(w * scale + abs(slant) * out_h))
    # output (x, y) reads input ((x - out_w/2 + slant * (y - out_h/2)) / scale + w/2, y / scale)
    data = (1 / scale, slant / scale, w / 2 - (out_w / 2 + slant * out_h / 2) / scale, 0.0, 1 / scale, 0.0)
    image = Image.fromarray(digit.astype(np.float32), "F")
    out = image.transform((out_w, out_h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out), 0, 1)


def _resize(ink: np.ndarray, factor: float) -> np.ndarray:
    h, w = ink.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    method = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    return np.clip(np.asarray(Image.fromarray(ink, "F").resize(size, method)), 0, 1)


def _crop(ink: np.ndarray) -> np.ndarray:
    """The ink map cut to the box of its visible ink."""
    rows, cols = np.flatnonzero((ink > 0.05).any(axis=1)), np.flatnonzero((ink > 0.05).any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _contact(left: np.ndarray, right: np.ndarray, left_top: int, right_top: int) -> int:
    """How far ``right``, placed just after ``left``, must move left for their inks to touch."""
    gaps = []
    for row in range(max(left_top, right_top), min(left_top + left.shape[0], right_top + right.shape[0])):
        a = np.flatnonzero(left[row - left_top] >= _TRUE_INK)
        b = np.flatnonzero(right[row - right_top] >= _TRUE_INK)
        if len(a) and len(b):
            gaps.append(left.shape[1] - 1 - a[-1] + b[0])
    return int(min(gaps)) if gaps else 0


def _compose(inks: list[np.ndarray], text: list[str], lefts: list[int], tops: list[int], height: float,
             rng: np.random.Generator, dark_on_light: bool | None) -> NumberPicture:
    """Lay the inks on one canvas with margins; the true boxes from each digit's own ink."""
    margin = int(round(height * rng.uniform(0.3, 1.0)))
    shift_x, shift_y = margin - min(lefts), margin - min(tops)
    width = max(x + ink.shape[1] for x, ink in zip(lefts, inks)) + shift_x + margin
    tall = max(y + ink.shape[0] for y, ink in zip(tops, inks)) + shift_y + margin
    canvas = np.zeros((tall, width), dtype=np.float32)
    boxes = []
    for ink, x, y in zip(inks, lefts, tops):
        x, y = x + shift_x, y + shift_y
        region = canvas[y : y + ink.shape[0], x : x + ink.shape[1]]
        np.maximum(region, ink, out=region)
        rows, cols = np.flatnonzero((ink >= _TRUE_INK).any(axis=1)), np.flatnonzero((ink >= _TRUE_INK).any(axis=0))
        boxes.append((x + int(cols[0]), y + int(rows[0]), x + int(cols[-1]) + 1, y + int(rows[-1]) + 1))
    if dark_on_light is None:
        dark_on_light = bool(rng.integers(2))
    if dark_on_light:
        paper, pen = rng.uniform(200, 255), rng.uniform(0, 60)
    else:
        paper, pen = rng.uniform(0, 40), rng.uniform(200, 255)
    image = np.clip(np.rint(paper + (pen - paper) * canvas), 0, 255).astype(np.uint8)
    return NumberPicture(image=image, text="".join(text), boxes=tuple(boxes), dark_on_light=dark_on_light)
