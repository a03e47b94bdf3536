"""Find the separate marks in a picture of a handwritten number, in reading order.

The geometry behind :func:`digitlab.read.read_number`; nothing here asks a model.

1. :func:`ink_of`: the picture as an ink map, exactly as :func:`~digitlab.data.images.prepare_digit`
   sees it (grayscale, ink vs paper decided from the border, faint background removed), at most
   1024 px on its longer side.
2. :func:`find_marks`: the connected pieces (:func:`scipy.ndimage.label`, 8-connected) of the ink
   :func:`writing` leaves (no printed lines, form boxes, frame, ring, bar under it or rules), dust dropped;
   pieces that sit one above the other (a 5's detached flag, a 4 drawn in two strokes) merged; specks far
   smaller than the digits dropped; short fragments of a broken stroke joined to the digit next to them
   (not a point, comma, colon or dash beside it); marks grouped into lines (level, or rising or
   falling up to 25°: a number written uphill or photographed turned), ordered left to right, lines top
   to bottom.
3. :func:`digit_input`: one mark's ink alone, ready for :func:`digitlab.predict.prepare_for` (ways to cut a mark
   that may be two touching digits are :mod:`digitlab.cuts`').

Examples
--------
>>> import numpy as np
>>> paper = np.full((60, 200), 255, dtype=np.uint8)
>>> paper[10:50, 20:28] = 0              # a "1"
>>> paper[10:50, 80:110] = 0; paper[18:42, 88:102] = 255     # a "0"
>>> marks = find_marks(ink_of(paper))
>>> [m.box for m in marks]
[(20, 10, 28, 50), (80, 10, 110, 50)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from digitlab.data.images import _to_gray
from digitlab.data.ink import FAINT as _FAINT, ink_map as _ink_map
from digitlab.errors import DigitlabError
from digitlab.form_boxes import without_form_boxes
from digitlab.mark_shapes import STEEPEST, level_bar, two_dots
from digitlab.ruled_paper import sideways_lines_only, without_page_lines
from digitlab.rules import digit_height, tallest, without_rules, without_surround

__all__ = ["Box", "Ink", "Mark", "ink_of", "find_marks", "writing", "digit_input", "full_height", "centre_slope",
           "box_gap", "ink_and_gray", "reading_order", "MAX_MARKS"]

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)``: left, top, right, bottom, the right and bottom ends excluded (as Pillow's crop)."""

MAX_MARKS = 64
"""More marks than this is not a number; the picture is refused rather than read slowly."""

_INK = 0.1  # an ink-map pixel above this belongs to a mark
_FAINT_BOX = 0.02  # a form's boxes are looked for in ink this faint too: printed pale, their lines break
_DUST = 0.02  # pieces with less ink than 2% of the heaviest piece are dust
_MAX_PIECES = 400  # in a noisy photo only the heaviest pieces are looked at
_OVERLAP = 0.5  # pieces overlapping horizontally by half the narrower one's width are one digit...
_GAP = 0.3  # ...when the vertical gap between them is under 30% of a digit's height...
_TALLEST = 1.4  # ...and together they are at most 1.4 digit heights tall
_SAME_LINE = 0.5  # a mark is on a line when half its height lies within the line's rows
_FULL = 0.5  # a line's digits are its marks at least half as tall as its tallest
_STRAIGHT = 0.6  # a sloping line's digits' centres lie within 60% of a digit's height of one another
_SLOPES = sorted(np.tan(np.radians(np.union1d(np.arange(-STEEPEST, STEEPEST + 0.1, 2.5), np.arange(-5, 5.1, 0.5)))),
                 key=abs)
# lines rise or fall up to 25°, level first; within 5° (a photo held a little askew) in steps of 0.5°: a sheet
# photographed turned 1.5° had one line of ten split in two along 0° and 2.5°
_SPECK = 0.25  # a mark whose longer side is under 25% of the tallest mark's height (on a sheet, rules.tallest's)
_FRAGMENT = 0.5  # a mark under half a digit's height is a fragment of a digit...
_NEAR = 0.2  # ...and belongs to the nearest digit closer than 20% of a digit's height, unless it lies beside it
_LOW, _MIDDLE = 0.55, (0.2, 0.8)  # ...low, or flat across the middle: a separator's place (digitlab.separators)
_APART = 0.1  # ...a tenth of a digit's height apart from it or more...
_CLOSE = 0.06  # ...or 6% when shaped as a point (round) or a comma (hanging to the line's foot)...
_MINUS = 0.03  # ...or 3% for a minus: flat, with no digit before it on its line
_ALONG = (0.3, 0.7)  # a bar flat only along its own axis (turned) crosses the digit's middle, followed to it (a 5's
# flag broken off it, tilted, crossed 0.24: taken for a dash, "89.57" read 89.5-7; turned minuses 0.40-0.59)
_FOOT, _UPRIGHT = 0.9, 1.3  # a comma reaches down to 90% of the digit's height or lower, 1.3 times as tall as wide


@dataclass(frozen=True)
class Ink:
    """A picture as ink strength in [0, 1] (0 is paper), and its scale to the picture's pixels.

    Attributes
    ----------
    map : ndarray of float32, shape (H, W)
        Light ink on a 0 background, faint background removed.
    size : (int, int)
        The picture's own width and height, in pixels.
    """

    map: np.ndarray = field(repr=False, compare=False)
    size: tuple[int, int]

    def to_picture(self, box: Box) -> Box:
        """A box in ink-map pixels as a box in the picture's own pixels.

        Examples
        --------
        >>> Ink(np.zeros((50, 100), np.float32), size=(200, 100)).to_picture((10, 5, 20, 15))
        (20, 10, 40, 30)
        """
        sx, sy = self.size[0] / self.map.shape[1], self.size[1] / self.map.shape[0]
        x0, y0, x1, y1 = box
        return (int(x0 * sx), int(y0 * sy), min(self.size[0], round(x1 * sx)), min(self.size[1], round(y1 * sy)))


@dataclass(frozen=True)
class Mark:
    """One mark on the paper, perhaps a digit: where it is, and which ink pixels are its own.

    Attributes
    ----------
    box : Box
        Its bounding box, in ink-map pixels.
    mask : ndarray of bool, shape (y1 - y0, x1 - x0)
        Its own pixels inside the box (a neighbour's ink reaching into the box is not).
    pieces : int
        How many connected pieces it is made of.
    line : int
        Its line, 0 for the top one.
    boxed : bool
        Written in a form's printed boxes (:func:`~digitlab.form_boxes.without_form_boxes` found them): one digit to a
        box, so the paper between two digits says nothing of a space between numbers.
    """

    box: Box
    mask: np.ndarray = field(repr=False, compare=False)
    pieces: int = 1
    line: int = 0
    boxed: bool = False

    @property
    def width(self) -> int:
        """Width of the box, in ink-map pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        """Height of the box, in ink-map pixels."""
        return self.box[3] - self.box[1]


def ink_of(image: Any) -> Ink:
    """The ink of any picture :func:`~digitlab.data.images.prepare_digit` accepts.

    Parameters
    ----------
    image : PIL image or ndarray
        Dark ink on light paper or light on dark, any mode or dtype ``prepare_digit`` takes.

    Returns
    -------
    Ink

    Raises
    ------
    DigitlabError
        The picture is blank, or cannot be an image.

    Examples
    --------
    >>> paper = np.full((30, 90), 255, dtype=np.uint8); paper[5:25, 40:45] = 0
    >>> ink = ink_of(paper)
    >>> ink.size, float(ink.map.max()), float(ink.map[0, 0])
    ((90, 30), 1.0, 0.0)
    """
    return ink_and_gray(image)[0]


def ink_and_gray(image: Any) -> tuple[Ink, np.ndarray, np.ndarray | None]:
    """:func:`ink_of`, with the grey picture (in [0, 1]) and alpha (None when opaque) it was found in, at the ink
    map's size: for a caller that shows the picture too (:mod:`digitlab.sheet` crops each digit from it)."""
    size = image.size if hasattr(image, "size") and not isinstance(image, np.ndarray) else None
    gray, alpha = _to_gray(image)
    if size is None:
        size = (int(image.shape[1]), int(image.shape[0]))
    try:
        ink = _ink_map(gray, alpha)
    except DigitlabError:
        raise DigitlabError("no ink found: the image is blank; write or photograph a number") from None
    return Ink(map=ink.astype(np.float32, copy=False), size=(int(size[0]), int(size[1]))), gray, alpha


def find_marks(ink: Ink, *, most: int = MAX_MARKS, page: bool = False,
               written: tuple[np.ndarray, bool] | None = None) -> list[Mark]:
    """The separate marks of ``ink``, in reading order: lines top to bottom, each left to right.

    ``most`` is how many marks are looked at before the picture is refused: :data:`MAX_MARKS` for a number (a
    sheet of digits, :mod:`digitlab.sheet`, allows more). A ``page`` of lines of digits (a sheet) sets its few
    tallest pieces aside when it measures them (:func:`digitlab.rules.tallest`: a margin line, the page's edge).
    ``written`` is :func:`writing`'s answer for ``ink`` when the caller has it.

    Returns
    -------
    list of Mark
        Empty when no pixel is clearly ink.

    Raises
    ------
    DigitlabError
        More than ``most`` marks: a page of text or a texture, not a number; or nothing but
        straight lines (rules: :func:`digitlab.rules.without_rules`).

    Examples
    --------
    >>> paper = np.zeros((100, 100), dtype=np.uint8)
    >>> paper[10:40, 20:25] = paper[10:40, 60:65] = 255     # "1 1" on the first line
    >>> paper[60:90, 40:45] = 255                           # "1" on the second
    >>> [(m.line, m.box[0]) for m in find_marks(ink_of(paper))]
    [(0, 20), (0, 60), (1, 40)]
    """
    left, in_boxes = written or writing(ink, page=page)
    if (ink.map > _INK).any() and (not left.any() or sideways_lines_only(left)):
        raise DigitlabError("no ink found but straight lines (a ruled line, an underline, a frame, empty form boxes); "
                            "write or photograph a number")
    labels, count = ndimage.label(left, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    mass = ndimage.sum_labels(ink.map, labels, np.arange(1, count + 1))
    keep = np.flatnonzero(mass >= _DUST * mass.max())
    keep = keep[np.argsort(-mass[keep], kind="stable")][:_MAX_PIECES] + 1
    slices = ndimage.find_objects(labels)
    boxes = {int(i): _box(slices[i - 1]) for i in keep}
    heights = np.array([box[3] - box[1] for box in boxes.values()])
    typical = digit_height(heights, 0.5, page=page)  # most digits are one piece; a page edge's sliver is no digit
    groups = [(group, _union([boxes[i] for i in group])) for group in _merge_stacked(boxes, typical)]
    tall = tallest(np.array([box[3] - box[1] for _, box in groups]), page=page)
    groups = [(group, box) for group, box in groups if max(box[2] - box[0], box[3] - box[1]) >= _SPECK * tall]
    groups = _attach_fragments(groups, labels, page)
    if len(groups) > most:
        raise _too_many(len(groups), most)
    marks = [Mark(box, np.isin(labels[box[1] : box[3], box[0] : box[2]], group), len(group), boxed=in_boxes)
             for group, box in groups]
    return reading_order(marks)


def writing(ink: Ink, *, page: bool = False) -> tuple[np.ndarray, bool]:
    """Where ``ink`` may be writing (the paper's printed lines, a form's boxes unless on a ``page``, a frame whole, then
    the rules left out: :func:`~digitlab.rules.without_rules`), and whether a form's boxes were found."""
    lined = without_page_lines(ink.map > _INK)
    boxed = lined if page else without_form_boxes(lined, ink.map > _FAINT_BOX)
    return without_rules(without_surround(boxed), page_lines=False, tilted=True, page=page), boxed is not lined


def _too_many(count: int, most: int = MAX_MARKS) -> DigitlabError:
    return DigitlabError(f"found {count} separate marks (noise, a texture or a page of text, not a number); "
                         f"digitlab reads up to {most} digits in one picture: crop the picture to the number")


def _box(slices: tuple[slice, slice]) -> Box:
    return (slices[1].start, slices[0].start, slices[1].stop, slices[0].stop)


def _merge_stacked(boxes: dict[int, Box], typical: float) -> list[list[int]]:
    """Group piece labels whose boxes overlap horizontally and nearly touch vertically, and together
    are no taller than one digit can be (union-find); ``typical`` is a digit's height."""
    parent = {i: i for i in boxes}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    items = sorted(boxes.items(), key=lambda item: item[1][0])
    for n, (i, a) in enumerate(items):
        for j, b in items[n + 1 :]:
            if b[0] >= a[2]:
                break  # sorted by left edge: no later box overlaps ``a`` horizontally
            overlap = min(a[2], b[2]) - b[0]
            gap = max(a[1], b[1]) - min(a[3], b[3])
            height = max(a[3], b[3]) - min(a[1], b[1])
            if overlap >= _OVERLAP * min(a[2] - a[0], b[2] - b[0]) and gap <= _GAP * typical \
                    and height <= _TALLEST * typical:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in boxes:
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _attach_fragments(groups: list[tuple[list[int], Box]], labels: np.ndarray,
                      page: bool = False) -> list[tuple[list[int], Box]]:
    """Join each fragment (far shorter than a digit: a stroke left over from a broken digit) to the
    nearest full-height mark, when that one is close."""
    heights = np.array([box[3] - box[1] for _, box in groups])
    typical = digit_height(heights, 0.5, page=page)
    whole = [n for n, h in enumerate(heights) if h >= _FRAGMENT * typical]
    joined = {n: (list(group), box) for n, (group, box) in enumerate(groups) if n in whole}
    for n, (group, box) in enumerate(groups):
        if n in joined:
            continue
        distances = [box_gap(box, groups[m][1]) for m in whole]
        nearest = whole[int(np.argmin(distances))]
        leading = not any(groups[m][1][2] <= box[0] and groups[m][1][1] < box[3] and box[1] < groups[m][1][3]
                          for m in whole)  # no digit on its rows to its left: a minus's place
        if min(distances) <= _NEAR * typical and not _beside(box, groups[nearest], labels, leading, group):
            ids, other = joined[nearest]
            joined[nearest] = (ids + group, _union([other, box]))
        else:
            joined[n] = (group, box)
    return list(joined.values())


def _beside(fragment: Box, digit: tuple[list[int], Box], labels: np.ndarray, leading: bool = False,
            pieces: tuple[int, ...] | list[int] = ()) -> bool:
    """Whether a fragment lies beside a digit, not over or under any of it, low (a point, a comma), flat across
    its middle (a minus, a dash) or two round dots one over the other across it (a colon), and apart from its ink: a
    separator of :mod:`digitlab.separators`, not a piece of the digit. Apart is a tenth of the digit's height (more
    than a pen's broken stroke leaves), or 6% as the crow flies for a fragment shaped as a point, a comma or a colon:
    written that close, one was taken for part of the digit beside it (``1,000`` read ``1000``, ``12.05.2024`` read
    ``12.052024``, ``7:30`` with the colon 6-20% from the 3 read ``7?0``). A dash keeps the tenth: a 4's bar broken
    5% from its stem is no minus. A flat piece ``leading`` its line (no digit to its left) is a minus from 3%: no
    digit's own bar lies wholly before it ("-40" with the minus 4% from the 4 read ``40``). ``pieces`` are the
    fragment's own labels."""
    ids, (x0, y0, x1, y1) = digit
    if fragment[0] < x1 and x0 < fragment[2]:
        return False
    height = max(y1 - y0, 1)
    tall, wide = fragment[3] - fragment[1], fragment[2] - fragment[0]
    middle = ((fragment[1] + fragment[3]) / 2 - y0) / height
    own = np.isin(labels[fragment[1] : fragment[3], fragment[0] : fragment[2]], pieces)
    low, bar = middle >= _LOW, level_bar(own) if len(pieces) else None
    flat = wide >= 2 * tall and _MIDDLE[0] <= middle <= _MIDDLE[1] or bar is not None and _ALONG[0] <= (
        middle + bar[0] * ((x0 + x1) - (fragment[0] + fragment[2])) / 2 / height) <= _ALONG[1]  # followed to the digit
    colon = _MIDDLE[0] <= middle <= _MIDDLE[1] and two_dots(fragment, labels, pieces, height)
    if not (low or flat or colon):
        return False
    comma = (fragment[3] - y0) / height >= _FOOT and tall >= _UPRIGHT * wide  # a flat piece there: a broken foot
    shaped = colon or low and (max(tall, wide) <= 2 * min(tall, wide) or comma)
    gap = (_CLOSE if shaped else _MINUS if flat and leading else _APART) * height
    reach = int(np.ceil(gap))
    left, top = max(0, fragment[0] - reach), max(0, fragment[1] - reach)
    near = np.isin(labels[top : fragment[3] + reach, left : fragment[2] + reach], ids)
    if shaped or flat and leading:
        return paper_squared(fragment, near, reach, (left, top)) >= gap * gap
    return not near.any()


def paper_squared(box: Box, ink: np.ndarray, reach: int, origin: tuple[int, int] = (0, 0)) -> float:
    """The square of the paper between ``box`` and the nearest pixel of ``ink`` (a bool map whose top-left pixel is
    ``origin``, x and y, in ``box``'s pixels), as the crow flies (a pixel touching the box: 0), looking ``reach``
    pixels round the box; infinity when no ink lies that near.

    Examples
    --------
    >>> ink = np.zeros((10, 10), dtype=bool); ink[0, 0] = True
    >>> paper_squared((4, 4, 6, 6), ink, 5), paper_squared((4, 4, 6, 6), ink, 2)   # 3 across and 3 down
    (18.0, inf)
    """
    left, top = max(0, box[0] - reach - origin[0]), max(0, box[1] - reach - origin[1])
    ys, xs = np.nonzero(ink[top : max(0, box[3] + reach - origin[1]), left : max(0, box[2] + reach - origin[0])])
    xs, ys = xs + left + origin[0], ys + top + origin[1]
    dx = np.maximum(0, np.maximum(box[0] - xs, xs - (box[2] - 1)) - 1)  # paper between, across
    dy = np.maximum(0, np.maximum(box[1] - ys, ys - (box[3] - 1)) - 1)  # and up or down
    return float((dx * dx + dy * dy).min()) if len(xs) else float("inf")


def box_gap(a: Box, b: Box) -> float:
    """The gap between two boxes (0 when they touch or overlap)."""
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dx, dy))


def reading_order(marks: list[Mark]) -> list[Mark]:
    """Marks grouped into lines, lines top to bottom, each left to right.

    A number written uphill or photographed turned is one line: the lines are looked for along slopes from
    level to 25° either way, and the slope that makes the fewest lines wins (the levelest of those: a level
    number is grouped as it always was), if along it each line's digits lie straight (:func:`_straight`: two
    level lines close together are not one line zigzagging down the slope).
    """
    best: list[list[Mark]] | None = None
    for slope in _SLOPES:
        lines = _lines_along(marks, slope)
        if best is None or (len(lines) < len(best) and all(_straight(line, slope) for line in lines)):
            best, levelled = lines, slope
    assert best is not None
    best.sort(key=lambda line: float(np.mean([m.box[1] + m.box[3] + levelled * (m.box[0] + m.box[2]) for m in line])))
    return [Mark(m.box, m.mask, m.pieces, n, m.boxed) for n, line in enumerate(best)
            for m in sorted(line, key=lambda m: m.box[0] + m.box[2])]


def _straight(line: list[Mark], slope: float) -> bool:
    """Whether the full-height marks of a line (:func:`full_height`) have their centres, levelled by ``slope``,
    within :data:`_STRAIGHT` of their median height of one another."""
    full = full_height(line)
    centres = [(m.box[1] + m.box[3]) / 2 + slope * (m.box[0] + m.box[2]) / 2 for m in full]
    return max(centres) - min(centres) <= _STRAIGHT * float(np.median([m.height for m in full]))


def full_height(line: list[Mark]) -> list[Mark]:
    """The marks of a line at least half as tall as its tallest: its digits, not a minus sign, a comma, a flag."""
    tallest = max(m.height for m in line)
    return [m for m in line if m.height >= _FULL * tallest]


def centre_slope(marks: list[Mark]) -> float:
    """The slope (down per pixel across, as the picture's rows run) of the line fitted through the marks' centres;
    0 when they lie one above the other (or there is one)."""
    x = np.array([(m.box[0] + m.box[2]) / 2 for m in marks])
    y = np.array([(m.box[1] + m.box[3]) / 2 for m in marks])
    return float(np.polyfit(x, y, 1)[0]) if np.ptp(x) >= 1 else 0.0


def _lines_along(marks: list[Mark], slope: float) -> list[list[Mark]]:
    """Marks grouped into lines by shared rows once the picture is sheared by ``slope`` (rise over run) to
    level them. The tallest marks are placed first, so that whole digits, not a stray stroke, decide the lines."""
    def rows(mark: Mark) -> tuple[float, float]:
        lift = slope * (mark.box[0] + mark.box[2]) / 2
        return mark.box[1] + lift, mark.box[3] + lift

    lines: list[list[tuple[Mark, float, float]]] = []
    for mark in sorted(marks, key=lambda m: -m.height):
        top, bottom = rows(mark)
        for line in lines:
            shared = min(bottom, max(b for _, _, b in line)) - max(top, min(t for _, t, _ in line))
            if shared >= _SAME_LINE * mark.height:
                line.append((mark, top, bottom))
                break
        else:
            lines.append([(mark, top, bottom)])
    return [[m for m, _, _ in line] for line in lines]


def digit_input(ink: Ink, mark: Mark) -> np.ndarray:
    """The mark's own ink, alone on a margin of paper, for :func:`digitlab.predict.prepare_for`.

    Ink that is not the mark's (a neighbour reaching into its box) is left out. The values are put
    back on the scale ``prepare_digit`` expects of a picture, so that its own faint-background step
    gives back exactly this ink.

    Examples
    --------
    >>> paper = np.zeros((40, 40), dtype=np.uint8); paper[5:35, 18:22] = 255
    >>> ink = ink_of(paper)
    >>> [mark] = find_marks(ink)
    >>> digit_input(ink, mark).shape
    (36, 10)
    """
    x0, y0, x1, y1 = mark.box
    crop = np.where(mark.mask, _FAINT + (1.0 - _FAINT) * ink.map[y0:y1, x0:x1], 0.0).astype(np.float32)
    margin = 2 + max(mark.width, mark.height) // 20
    return np.pad(crop, margin)
