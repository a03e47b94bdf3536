"""The marks in a number that are not digits: a decimal point or comma, a minus or dash, a colon.

Geometry only, from where a mark sits on its line of digits and what shape it is, so that ``3.14``, ``-40``,
``7:30``, ``1,000`` and ``555-1234`` are read with their separators instead of losing them as specks or
reading them as a ``?``. A line's *band* runs along the line through its digits' centres (a
number written uphill, or photographed turned, has a tilted band), one digit height (the median of its
full-height marks) tall:

- ``.`` a solid dark dot, 8-30% of a height across (from 5% when as wide as the pen and a tenth of a height
  from the digits) and roughly round, low in the band (its centre at 60% or lower), between two digits;
- ``,`` a small mark hanging from the band's bottom, 15-45% of a height tall, between two digits;
- ``:`` two such dots (or smaller, to 5% of a height: a thin pen's), one above the other, across the band's
  middle, between two digits;
- ``-`` a flat bar (at most a third of a height tall, twice as wide as tall and a fifth of a height or more wide, a
  minus before the number 15%) across the band's middle, with a digit on its right within 1.5 heights (a minus, or a
  dash between digits).

A dash's and a comma's sides are measured upright, along the band and (a dash's) along its own axis, and a colon's
dots are paired along the band: in a photo turned 20° they are found as level ones are.

Each stands a tenth of a digit's height or more apart from the digits' ink, as the crow flies; a point, a comma and a
colon's dots 6% (written closer, one was taken for part of the digit beside it: ``1,000`` read ``1000``; a point's
from the solid ink, not the soft rim a pen's anti-aliasing or a photo's blur leaves round it), a minus
before the number 3%. Nearer than that, a piece of ink is taken for part of a digit: a pen's broken stroke leaves
such gaps, and a 4's bar broken off its stem between two digits is a dash's shape. A piece of a digit's broken
stroke that is no such shape stays part of its digit (:func:`digitlab.segment.find_marks`: apart from it by a
tenth of its height or more to stand alone).

A separator may be a mark of its own or a piece of ink too small to be one (a speck to
:func:`~digitlab.segment.find_marks`); a piece of a digit's own is inside the digit's box and never one.

Not a slash: ``12/5`` reads ``1215``. A slash is a straight stroke, as a ``1`` is, and by shape alone they did not
part: on ``benchmarks/bench_read.py``'s numbers, thin straight 1s of MNIST's writers lean a median 26° (5% of them
over 42°), slashes drawn 20-35° further than the digits a median 27°; a rule that found 61% of the slashes (leaning
20° and 15° more than the line's digits) took 47% of such 1s for slashes, and 11 of 200 plain numbers gained one.

Examples
--------
>>> import numpy as np
>>> from digitlab.segment import find_marks, ink_of
>>> paper = np.zeros((60, 140), dtype=np.uint8)
>>> paper[10:50, 20:26] = paper[10:50, 75:81] = paper[10:50, 110:116] = 255     # 1 1 1
>>> paper[28:33, 38:62] = 255                              # a dash after the first
>>> paper[44:50, 92:98] = 255                              # a point after the second: 1-1.1
>>> ink = ink_of(paper)
>>> found, digits = find_separators(ink, find_marks(ink))
>>> [s.symbol for s in found], [m.box[0] for m in digits]
(['-', '.'], [20, 75, 110])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from digitlab.mark_shapes import DOT as _DOT, STEEPEST, level_bar, sides
from digitlab.segment import Box, Ink, Mark, centre_slope, full_height, paper_squared, writing

__all__ = ["Separator", "find_separators"]

_APART, _CLOSE, _MINUS = 0.1, 0.06, 0.03  # a separator stands a tenth of a digit's height apart from every digit's
# ink (6%: a point, a comma or a colon; 3%: a minus, with no digit before it); a piece of a digit's broken stroke stays
# nearer, and a dash between two digits has a broken bar's shape
_ROUND = 2.0  # a dot (mark_shapes.DOT: 8-30% of a digit height across) is at most twice as long as wide
_SOLID = 0.5  # a dot fills half its box or more, with ink half as strong as the strongest
_COMMA, _COMMA_LONG, _COMMA_TALL = 0.45, 0.15, 1.3  # a comma is 15-45% of a digit height, 1.3× as tall as wide...
_HANGS = (0.55, 0.9, 1.2)  # ...its top in the band's lower part, not far under it (the line below's comma went to
                           # the line above: "3.,14" of "3.14 ... 1,000"), its bottom at or below 90% of it
_SLANTED = (0.8, 1.1, 0.65)  # or a comma drawn slanting, 0.8× as tall as wide, reaching 10% of a height under the
# band, no solid dot (filling under 65% of its box): a pupil's hooked comma, "3,75", read 3175 with a sure 1
_DASH_TALL, _DASH_WIDE, _DASH_LONG = 1 / 3, 2.0, 0.2  # a dash: flat, twice as wide as tall, a fifth of a height
_MINUS_LONG = 0.15  # a minus before the number: 15% of a height long will do (a reader's "-42", its minus 18%, read 42)
_MIDDLE = (0.2, 0.8)  # a dash's and a colon's centre lie in this part of the band
_LEADS = 1.5  # a minus or a dash has a digit on its right within 1.5 digit heights
_LOW = 0.6  # a point's centre lies this low in the band or lower (a colon's lower dot: below the middle)
_STEEPEST = np.tan(np.radians(STEEPEST))  # a band rises or falls at most 25° (the lines' own limit)
_MAX_DOTS = 256  # more dot-like specks than this between digits is a texture: none is a point
_LEAST_PX = 3  # and no thinner than 3 px, beside strokes 3 px wide or more (a pencil's grains of a pixel or two, beside
# its strokes broken into 1-px pieces, were points and colons)
_COLON_DOT = 0.05  # a colon's dots and a point may be smaller than 8%, to 5% of a digit height across: a thin pen's
# two dots, one over the other, are a colon (its "7:30" read 730 at 6%), and one alone as wide as the pen or wider and
# a tenth of a height from the digits a point ("12.50" read 1250 at 5.5%: _small_point)


@dataclass(frozen=True)
class Separator:
    """A symbol between (or before) the digits of a number.

    Attributes
    ----------
    symbol : str
        One of ``. , - :``.
    box : Box
        Its box: in ink-map pixels from :func:`find_separators`, in the picture's own pixels in a
        :class:`~digitlab.read.NumberReading`.
    line : int
        Its line, 0 for the top one.
    """

    symbol: str
    box: Box
    line: int


@dataclass(frozen=True)
class _Band:
    """A line of digits: its centre ``y = a + b x`` and one digit's height."""

    a: float
    b: float
    height: float
    digits: list[Mark]

    def at(self, x: float, y: float) -> float:
        """Where ``y`` lies in the band at ``x``: 0 at its top, 1 at its bottom."""
        return (y - (self.a + self.b * x)) / self.height + 0.5

    def middle(self, x: float, y: float) -> bool:
        """Whether ``y`` lies in the band's middle (:data:`_MIDDLE`) at ``x``; for a band through two digits only,
        also at the nearer digit's centre when ``x`` is past them: two centres give a rough slope (a 5 written higher
        than the 9 after it tilted the band, and the minus before "-59" fell outside its middle: a reader's, 1 of
        20 right), or the number's own (written uphill: its minus on the slope)."""
        near = np.clip(x, *sorted((m.box[0] + m.box[2]) / 2 for m in self.digits)) if len(self.digits) == 2 else x
        return any(_MIDDLE[0] <= self.at(float(at), y) <= _MIDDLE[1] for at in {x, float(near)})

    def between(self, x: float) -> bool:
        """Whether digits of the line lie to the left and to the right of ``x``."""
        return any(m.box[2] <= x for m in self.digits) and any(m.box[0] >= x for m in self.digits)

    def clearance(self, box: Box) -> float:
        """The square of the paper between ``box`` and the nearest digit's ink on the line, as the crow flies (from its
        ink, not its box: a slanting 7's or 1's box reaches far past its ink); infinity beyond :data:`_APART`."""
        reach = int(np.ceil(_APART * self.height))  # the farthest a separator must stand
        return min((paper_squared(box, m.mask, reach, m.box[:2]) for m in self.digits if m.box != box),
                   default=float("inf"))

    def core_clearance(self, ink: Ink, box: Box) -> float:
        """:meth:`clearance` between the ink's solid cores (stronger than :data:`_SOLID`): the soft rim a pen's
        anti-aliasing or a photo's blur leaves round a stroke is no digit's. A point drawn on the drawing page 7% of
        a height from the 5 after it, measured from the rims, stood 4.8% away and was lost: "12.50" read ``1250``."""
        core = ink.map[box[1] : box[3], box[0] : box[2]] > _SOLID
        if not core.any():
            return self.clearance(box)
        rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
        inner = (box[0] + int(cols[0]), box[1] + int(rows[0]), box[0] + int(cols[-1]) + 1, box[1] + int(rows[-1]) + 1)
        reach = int(np.ceil(_APART * self.height))
        return min((paper_squared(inner, _core(ink, m), reach, m.box[:2]) for m in self.digits if m.box != box),
                   default=float("inf"))

    def apart(self, clearance: float, gap: float) -> bool:
        """Whether a ``clearance`` (:meth:`clearance`) is ``gap`` digit heights of paper or more."""
        least = gap * self.height
        return clearance >= least * least

    def level(self, mask: np.ndarray) -> tuple[int, int]:
        """A piece's height and width across and along the band: a dash in a photo turned 20° lies flat along it,
        though its upright box is under twice as wide as tall ("-54" read ``?54``)."""
        return sides(mask, self.b)

    @cached_property
    def pen(self) -> float:
        """How wide the line's strokes are, in pixels: twice the median distance from a stroke's middle (where the
        distance to the paper peaks) to its edge, less the middle pixel itself."""
        middles = []
        for mark in self.digits:
            distance = ndimage.distance_transform_edt(np.pad(mark.mask, 1))
            middles.append(distance[(distance == ndimage.maximum_filter(distance, size=3)) & (distance > 0)])
        return 2 * float(np.median(np.concatenate(middles))) - 1

    def along(self, x: float, y: float) -> float:
        """How far a point lies along the band (its distance from the y axis when the band is turned level)."""
        return (x + self.b * y) / float(np.hypot(1.0, self.b))

    def first(self, box: Box) -> bool:
        """Whether no digit of the line lies to the left of ``box``: a minus's place, before the number."""
        return not any(m.box[2] <= box[0] for m in self.digits)

    def leads(self, box: Box) -> bool:
        """Whether a digit of the line starts to the right of ``box`` within :data:`_LEADS` digit heights."""
        return any(0 <= m.box[0] - box[2] <= _LEADS * self.height for m in self.digits)


def find_separators(ink: Ink, marks: list[Mark], left: np.ndarray | None = None) -> tuple[list[Separator], list[Mark]]:
    """The separators among ``marks`` and among the specks too small to be marks, and the marks left to read
    as digits.

    Parameters
    ----------
    ink : Ink
        The picture's ink (:func:`~digitlab.segment.ink_of`).
    marks : list of Mark
        Its marks in reading order (:func:`~digitlab.segment.find_marks`).
    left : ndarray of bool, optional
        Its writing (:func:`~digitlab.segment.writing`), when the caller has it.

    Returns
    -------
    separators : list of Separator
        In no particular order.
    digits : list of Mark
        ``marks`` less the separators, in the same order.
    """
    if not marks:
        return [], []
    bands = {line: _band([m for m in marks if m.line == line]) for line in {m.line for m in marks}}
    found: list[Separator] = []
    digits: list[Mark] = []
    for mark in marks:
        symbol = _mark_symbol(ink, mark, bands[mark.line])
        if symbol:
            found.append(Separator(symbol, mark.box, mark.line))
        else:
            digits.append(mark)
    taken = [s.box for s in found] + [m.box for m in marks]
    left = writing(ink)[0] if left is None else left
    return found + _speck_symbols(ink, left, bands, taken), digits


def _band(line: list[Mark]) -> _Band:
    full = full_height(line)
    b = float(np.clip(centre_slope(full), -_STEEPEST, _STEEPEST))
    a = float(np.mean([(m.box[1] + m.box[3]) / 2 - b * (m.box[0] + m.box[2]) / 2 for m in full]))
    return _Band(a=a, b=b, height=float(np.median([m.height for m in full])), digits=full)


def _mark_symbol(ink: Ink, mark: Mark, band: _Band) -> str | None:
    """The symbol a mark is, or None for a digit (or anything else the model should see)."""
    cx, clearance = (mark.box[0] + mark.box[2]) / 2, band.clearance(mark.box)
    if not band.apart(clearance, _MINUS):  # nearer than any separator stands
        return None
    if mark.pieces == 2 and band.between(cx) and band.apart(clearance, _CLOSE) and _colon(ink, mark, band):
        return ":"
    x0, y0, x1, y1 = mark.box
    symbol = _comma_or_dash(mark.box, band, mark.mask)
    if symbol is None and _dot_like(mark.box, float(mark.mask.mean()), float(ink.map[y0:y1, x0:x1][mark.mask].mean()),
                                    band):
        symbol = "." if band.between(cx) and _LOW <= band.at(cx, (y0 + y1) / 2) <= 1.1 else None
        clearance = band.core_clearance(ink, mark.box) if symbol else clearance
    return symbol if symbol and band.apart(clearance, _gap(symbol, mark.box, band)) else None


def _gap(symbol: str, box: Box, band: _Band) -> float:
    """How far (in digit heights) a ``symbol`` at ``box`` must stand from the digits' ink: a minus before the number
    3%, a dash between digits a tenth (a 4's broken bar has its shape), a point, comma or colon 6%."""
    if symbol == "-":
        return _MINUS if band.first(box) else _APART
    return _CLOSE


def _dot_like(box: Box, fill: float, strength: float, band: _Band, least: float = _DOT[0]) -> bool:
    """A pen's dot: 8% (or ``least``) to 30% of a digit's height, roughly round, solid and dark."""
    tall, wide = box[3] - box[1], box[2] - box[0]
    return max(tall, wide) <= _ROUND * min(tall, wide) and _solid_spot(max(tall, wide), fill, strength, band, least)


def _solid_spot(side: int, fill: float, strength: float, band: _Band, least: float = _DOT[0]) -> bool:
    """A spot 8% (or ``least``) to 30% of a digit's height on its longer ``side``, filling half its box, dark."""
    return least * band.height <= side < _DOT[1] * band.height and fill >= _SOLID and strength >= _SOLID


def _colon(ink: Ink, mark: Mark, band: _Band) -> bool:
    """Whether a mark of two pieces is two dots, one above the other, across the band's middle."""
    labels, count = ndimage.label(mark.mask, structure=np.ones((3, 3), dtype=bool))
    dots = [s for n, s in enumerate(ndimage.find_objects(labels), 1) if _dot(ink, mark, labels, n, s, band)]
    if len(dots) != 2:
        return False
    (upper, lower) = sorted(dots, key=lambda s: s[0].start)
    cx = (mark.box[0] + mark.box[2]) / 2
    return (band.at(cx, mark.box[1] + (upper[0].start + upper[0].stop) / 2) < 0.5
            <= band.at(cx, mark.box[1] + (lower[0].start + lower[0].stop) / 2))


def _dot(ink: Ink, mark: Mark, labels: np.ndarray, n: int, rows_cols: tuple[slice, slice], band: _Band) -> bool:
    rows, cols = rows_cols
    piece = labels[rows, cols] == n
    strength = ink.map[mark.box[1] + rows.start : mark.box[1] + rows.stop,
                       mark.box[0] + cols.start : mark.box[0] + cols.stop][piece]
    return _solid_spot(max(piece.shape), float(piece.mean()), float(strength.mean()), band)


def _speck_symbols(ink: Ink, left: np.ndarray, bands: dict[int, _Band], taken: list[Box]) -> list[Separator]:
    """Points, commas, minus signs and colons among the pieces of ink too small to be marks (left out by
    ``find_marks``): pieces of dark ink not inside a mark's box, apart from the digits, in the ink ``left`` as writing
    (:func:`~digitlab.segment.writing`: the paper's lines left out; a colon's dot on a ruled line was one with it)."""
    labels, _ = ndimage.label(left, structure=np.ones((3, 3), dtype=bool))
    tallest = max(band.height for band in bands.values())
    found: list[Separator] = []
    dots: list[tuple[int, Box, float, float, bool]] = []  # (line, box, where across the band, how far along it,
    # whether only a colon's dot: under 8% of a height and no point alone, _small_point)
    for n, (rows, cols) in enumerate(ndimage.find_objects(labels), 1):
        box = (cols.start, rows.start, cols.stop, rows.stop)
        if max(box[2] - box[0], box[3] - box[1]) >= tallest or any(_inside(box, other) for other in taken):
            continue
        piece = labels[rows, cols] == n
        strength = float(ink.map[rows, cols][piece].mean())
        if strength < _SOLID:
            continue  # a pen's mark is dark; a grain of noise or a faint smudge is not
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for line, band in bands.items():
            side = max(box[2] - box[0], box[3] - box[1])
            if side < _COLON_DOT * band.height or side < _DOT[0] * band.height and min(
                    box[2] - box[0], box[3] - box[1], band.pen) < _LEAST_PX:
                continue
            clearance = band.clearance(box)
            symbol = _comma_or_dash(box, band, piece)
            if symbol and not band.apart(clearance, _gap(symbol, box, band)):
                continue  # nearer a digit than its shape allows: part of it (a 4's bar broken between two digits)
            if symbol:
                found.append(Separator(symbol, box, line))
                break
            if not (_dot_like(box, float(piece.mean()), strength, band, _COLON_DOT) and band.between(cx)
                    and -0.1 <= band.at(cx, cy) <= 1.1):
                continue
            core = band.core_clearance(ink, box)
            if band.apart(core, _CLOSE):
                dots.append((line, box, band.at(cx, cy), band.along(cx, cy),
                             side < _DOT[0] * band.height and not _small_point(box, band, core)))
                break
    return found + _dots_and_colons(dots)


def _small_point(box: Box, band: _Band, core: float) -> bool:
    """Whether a dot under 8% of a digit's height may be a point alone: as wide as the pen or wider, and a tenth of a
    height apart from the digits (``core``: :meth:`_Band.core_clearance`; a piece broken off the end of a pencil's
    stroke, 6.6% from it, read ``423.3``)."""
    return min(box[2] - box[0], box[3] - box[1]) >= band.pen and band.apart(core, _APART)


def _comma_or_dash(box: Box, band: _Band, mask: np.ndarray) -> str | None:
    """``","`` for a small mark, clearly taller than wide, hanging from the band's bottom between two digits;
    ``"-"`` for a flat bar across the band's middle with a digit on its right (a minus, or a dash between). Its
    ``mask`` is measured upright and along the band (a number written uphill, or photographed turned), and a bar along
    its own axis too (as :func:`~digitlab.segment.find_marks` parts it from the digits): any of them will do."""
    cx, bar = (box[0] + box[2]) / 2, level_bar(mask)
    sizes = {(box[3] - box[1], box[2] - box[0]), band.level(mask)}
    slanted = band.at(cx, box[3]) >= _SLANTED[1] and float(mask.mean()) < _SLANTED[2]
    if (any(_COMMA_LONG * band.height <= tall <= _COMMA * band.height
            and tall >= (_SLANTED[0] if slanted else _COMMA_TALL) * wide for tall, wide in sizes)
            and band.between(cx) and _HANGS[0] <= band.at(cx, box[1]) <= _HANGS[2]
            and band.at(cx, box[3]) >= _HANGS[1]):
        return ","
    long = _MINUS_LONG if band.first(box) else _DASH_LONG  # a minus before the number may be shorter than a dash
    flat = any(tall <= _DASH_TALL * band.height and wide >= max(_DASH_WIDE * tall, long * band.height)
               for tall, wide in sizes | ({bar[1:]} if bar else set()))
    return "-" if flat and band.middle(cx, (box[1] + box[3]) / 2) and band.leads(box) else None


def _dots_and_colons(dots: list[tuple[int, Box, float, float, bool]]) -> list[Separator]:
    """A dot in the band's upper half over one in its lower half (their centres along the band, turned level, closer
    than their widths' mean less half the narrower's) is a colon; another dot in the lower half is a point unless it
    is too small for one; a dot alone in the upper half is nothing of a number's. Dots by the hundred are a
    texture: none."""
    if len(dots) > _MAX_DOTS:
        return []
    found, used = [], set()
    for i, (line, upper, place, along, _) in enumerate(dots):
        if place >= 0.5:
            continue
        for j, (other_line, lower, other_place, other_along, _) in enumerate(dots):
            if other_place < 0.5 or other_line != line or j in used:
                continue
            widths = (upper[2] - upper[0], lower[2] - lower[0])
            if abs(along - other_along) <= (widths[0] + widths[1]) / 2 - 0.5 * min(widths):
                found.append(Separator(":", (min(upper[0], lower[0]), upper[1], max(upper[2], lower[2]), lower[3]),
                                       line))
                used |= {i, j}
                break
    found += [Separator(".", box, line) for i, (line, box, place, _, small) in enumerate(dots)
              if i not in used and not small and _LOW <= place <= 1.1]
    return found


def _core(ink: Ink, mark: Mark) -> np.ndarray:
    """A mark's ink stronger than :data:`_SOLID`; all of it where none is (a pencil's digit: else a point beside it
    stood apart however close)."""
    x0, y0, x1, y1 = mark.box
    core = mark.mask & (ink.map[y0:y1, x0:x1] > _SOLID)
    return core if core.any() else mark.mask


def _inside(box: Box, other: Box) -> bool:
    return box[0] >= other[0] and box[1] >= other[1] and box[2] <= other[2] and box[3] <= other[3]
