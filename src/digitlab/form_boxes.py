"""Form boxes are not digits: the printed boxes of a form, one for each digit (apart, or a comb of cells sharing
their walls), found and left out before :func:`digitlab.segment.find_marks` looks for marks.

Left in, a box round a digit makes the two one mark that is no digit ("?"), an empty box reads as a "0" or as
nothing known, and an empty comb's walls as "1"s.

A box might be one: a piece of ink shaped as a rectangle (:func:`~digitlab.data.ink.smallest_rectangle`: filling
:data:`_SQUARE` of the smallest rectangle round it, turned or not), mostly hole, with a cell about as wide as tall
that is a rectangle too and walls thin beside it. But a 0 drawn square is one too, and an 8 of two squares; so a
box is taken only on evidence of a form: a digit written in one of its cells and another cell beside it, or another
box like it in its row (a box alone round a digit is :mod:`digitlab.rules`' frame; a ticked box beside a number
stays as it was), or three cells side by side (a comb), or a row of :data:`_ROW` such boxes alike and evenly
spaced as printed ones, with nothing else in the picture as tall as half of one (an empty form: four 0s drawn as
equal squares evenly spaced, and nothing else, are one too). Then, in its row, a box of its size (within
:data:`_SAME`) goes too: empty, or one a digit was written against.

What goes is a box's walls: its straight runs along it and across it nearly as long as its side, no thicker than
its walls (found with the box turned level), those down it beside a cell or its outside or a whole number of cells
from its first wall. A digit written against them loses only what lies on them; a "1" written from wall to wall,
in the middle of a cell, stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from digitlab.data.ink import rectangle_fill, smallest_rectangle
from digitlab.rules import _only, _runs

__all__ = ["without_form_boxes"]

_SQUARE = 0.9  # a box, and each of its empty cells, fills 90% of the smallest rectangle round it (a round 0: ~79%)
_HOLLOW = 0.5  # a box is at least half hole
_THIN = 0.15  # its walls are at most 15% of its cell's shorter side thick (a pen's narrow 0 is thicker)
_SMALLEST = 12  # px: a box's cell is at least this wide and tall...
_SQUAT = 0.7  # ...and its width between 0.7 and 1/0.7 times its height (a narrow 0 is narrower; so is the
              # wider part of a cell a "1" was written across, a third of the way in)
_WRITTEN = 0.3  # a cell holds a digit when a mark in it is 30% of its height or more
_COMB = 3  # cells side by side in one piece: a comb (an 8 drawn as two squares has two)
_ROW = 4  # empty boxes alike in a row: an empty form (a number of 0s drawn square seldom has that many)...
_TALL = 0.5  # ...when nothing else is as tall as half of one (a digit written beside them is)...
_PRINTED = 0.04  # ...and they are the same size and evenly spaced within 4% of a box (printed, not drawn)
_SAME = 0.08  # boxes of a row are the same size within 8% (printed; a pen's square 0 beside a box differs more)
_WHOLE = 0.8  # the straight runs are 80% of the ink along a box's edges and cells, or it has no such walls
_LINE = 0.9  # a wall runs straight from side to side (90% of a box's height or more: a 4's stroke against
             # its top wall does not)
_TOUCHED = 0.1  # a pixel a turned mask covers a tenth of is in it
_MORE = 0.05  # fainter ink is looked in when it is 5% more than the ink
_MANY = 100  # pieces: more, and the specks are left out before the pieces are measured...
_MOST = 64  # ...and only the largest 64 are looked at as boxes (a page of small squares took seconds)
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class _Box:
    """A piece of ink that might be a form box: where it is, how it is turned, its cells and what they hold."""

    n: int  # which ink it was found in (0: the ink; 1: with the fainter ink)
    k: int  # its number among that ink's pieces
    where: tuple[slice, slice]
    degrees: float  # as smallest_rectangle turns it level
    short: float  # its shorter side
    wall: int  # how thick its walls are
    cells: np.ndarray  # its cells (rectangular holes about as wide as tall), in its box
    count: int  # how many
    written: bool  # whether a mark as tall as a digit lies in one of them

    @property
    def size(self) -> tuple[int, int]:
        return self.where[0].stop - self.where[0].start, self.where[1].stop - self.where[1].start


def without_form_boxes(on: np.ndarray, faint: np.ndarray | None = None) -> np.ndarray:
    """``on`` (a number's ink, True where inked) without its form boxes; ``on`` itself when it has none. The boxes
    are looked for in ``faint`` too when given (``on`` and fainter ink with it): a form's boxes are often printed
    pale, and photographed, their lines break into dashes where they are palest (where a digit's blurred edge
    may join them to a wall, in ``on`` they are apart).

    >>> on = np.zeros((60, 130), dtype=bool)
    >>> for x in (5, 70):                                 # two boxes 50 px wide, 3 px walls...
    ...     on[5:55, x:x + 50] = True; on[8:52, x + 3:x + 47] = False
    >>> on[15:45, 25:30] = True                           # ...a "1" in the first, the second empty
    >>> left = without_form_boxes(on)
    >>> int(left.sum()) == 30 * 5, bool(left[15:45, 25:30].all())
    (True, True)
    >>> without_form_boxes(on[:, 65:]) is on[:, 65:] or "an empty box alone is a square 0, perhaps: it stays"
    'an empty box alone is a square 0, perhaps: it stays'
    """
    fainter = faint is not None and faint.sum() > (1 + _MORE) * on.sum()  # not a drawing's soft edges alone
    found = [_pieces(on)] + ([_pieces(faint)] if fainter else [])
    boxes = [box for n, (labels, places) in enumerate(found) for k, where in places.items()
             if (box := _box(labels[where], k, n, where)) is not None]
    sure = [box for box in boxes if box.count >= _COMB or box.written and (box.count > 1 or _partnered(box, found))]
    sure = sure or _empty_row(boxes, found[0][0])
    if not sure:
        return on
    taken = {(box.n, box.k): box for box in sure}
    walls = np.zeros_like(on)
    for n, (labels, places) in enumerate(found):
        for k, where in places.items():
            box = taken.get((n, k))
            if box is None and any(_in_row(where, other) for other in sure):
                box = _box(labels[where], k, n, where, any_cells=True)  # empty, or a digit written against it
            if box is not None:
                walls[where] |= _walls(labels[where] == k, box)
    return on & ~walls if walls.any() else on


def _pieces(on: np.ndarray) -> tuple[np.ndarray, dict[int, tuple[slice, slice]]]:
    """The pieces of ``on``, numbered, and the place of each that could be a box (large enough; the :data:`_MOST`
    largest)."""
    labels, count = ndimage.label(on, structure=_EIGHT)
    if count > _MANY:  # a box's walls are more ink than a speck: find_objects on 100,000s of specks takes long
        sizes = np.bincount(labels.ravel())
        big = np.flatnonzero(sizes >= 4 * _SMALLEST)
        labels = _only(labels, big[big > 0], count + 1)
    places = {k: where for k, where in enumerate(ndimage.find_objects(labels), start=1)
              if min(where[0].stop - where[0].start, where[1].stop - where[1].start) >= _SMALLEST + 2}
    largest = sorted(places, key=lambda k: -_area(places[k]))[:_MOST]
    return labels, {k: places[k] for k in sorted(largest)}


def _box(crop: np.ndarray, k: int, n: int, where: tuple[slice, slice], *, any_cells: bool = False) -> _Box | None:
    """Piece ``k`` of the pieces ``crop`` (cropped to its box) as a :class:`_Box` if it might be a form box: shaped
    as a rectangle, mostly hole, with a cell (a rectangle about as wide as tall, its walls thin beside it); else
    None. With ``any_cells``, one in a row of boxes: only shaped as a rectangle (a digit written against its wall
    leaves its hole no rectangle)."""
    piece = crop == k
    filled = ndimage.binary_fill_holes(piece)
    holes = filled & ~piece
    if not any_cells and holes.sum() < _HOLLOW * filled.sum():
        return None
    fill, degrees, short = smallest_rectangle(filled)
    if fill < _SQUARE:
        return None
    wall = _wall(piece, filled)
    labels, _ = ndimage.label(holes)
    cells, count, written = np.zeros_like(piece), 0, False
    for j, place in enumerate(ndimage.find_objects(labels), start=1):
        cell = labels[place] == j  # a digit written apart from its walls is in it (another piece, not this one)
        height, width = cell.shape
        if (min(height, width) >= _SMALLEST and max(height, width) >= short / 2
                and _SQUAT <= width / height <= 1 / _SQUAT and wall <= _THIN * min(height, width)
                and rectangle_fill(cell) >= _SQUARE):
            cells[place] |= cell
            count += 1
            rows = np.flatnonzero((cell & (crop[place] > 0) & (crop[place] != k)).any(axis=1))
            written |= len(rows) > 0 and rows[-1] - rows[0] + 1 >= _WRITTEN * height
    if count == 0 and not any_cells:
        return None
    return _Box(n, k, where, degrees, short, wall, cells, count, written)


def _partnered(box: _Box, found: list[tuple[np.ndarray, dict[int, tuple[slice, slice]]]]) -> bool:
    """Whether another piece shaped as a rectangle lies in ``box``'s row, its size (a box alone round a digit is
    :mod:`digitlab.rules`' frame; a ticked box beside a number, no form)."""
    return any(where != box.where and _in_row(where, box) and _box(labels[where], k, n, where, any_cells=True)
               for n, (labels, places) in enumerate(found) for k, where in places.items())


def _empty_row(boxes: list[_Box], labels: np.ndarray) -> list[_Box]:
    """The boxes of an empty form: :data:`_ROW` or more alike (one cell each, the same size within :data:`_PRINTED`,
    in a row, evenly spaced), with no other piece of ``labels`` (the ink's) :data:`_TALL` of their height tall or
    taller but one of their size in their row; else none."""
    if sum(box.count == 1 for box in boxes) < _ROW:
        return []
    places = ndimage.find_objects(labels)
    for box in boxes:
        row = [other for other in boxes if other.count == 1 and _in_row(other.where, box)
               and all(abs(a - b) <= _PRINTED * max(a, b) for a, b in zip(other.size, box.size))]
        if (len(row) >= _ROW and _evenly_spaced(row)
                and all(where[0].stop - where[0].start < _TALL * box.size[0] or _in_row(where, box)
                        for where in places)):  # a box a digit was written against is in the row
            return row
    return []


def _evenly_spaced(row: list[_Box]) -> bool:
    """Whether the boxes of ``row``, apart, are as evenly spaced as printed ones (the gaps within :data:`_PRINTED`
    of a box's width and 2 px)."""
    lefts = np.sort([box.where[1].start for box in row if box.n == row[0].n])
    steps = np.diff(lefts)
    return len(steps) > 0 and float(np.ptp(steps)) <= _PRINTED * row[0].size[1] + 2


def _in_row(where: tuple[slice, slice], box: _Box) -> bool:
    """Whether a piece at ``where`` is the size of ``box`` (within :data:`_SAME`) and in its row: its centre off the
    line through the box's centre, along the box (turned as it is), by under half its height."""
    size = (where[0].stop - where[0].start, where[1].stop - where[1].start)
    if not all(abs(a - b) <= _SAME * max(a, b) for a, b in zip(size, box.size)):
        return False
    dy = (where[0].start + where[0].stop - box.where[0].start - box.where[0].stop) / 2
    dx = (where[1].start + where[1].stop - box.where[1].start - box.where[1].stop) / 2
    angle = np.radians(box.degrees)
    return abs(dy * np.cos(angle) - dx * np.sin(angle)) < 0.5 * min(size[0], box.size[0])


def _walls(piece: np.ndarray, box: _Box) -> np.ndarray:
    """The walls of a box ``piece``: where it runs straight along the box or across it (turned level by
    ``box.degrees``) for :data:`_LINE` of its shorter side or more, no thicker than its walls (a "1" from wall to
    wall is often thicker); one down the box only beside a cell or its outside, or where a wall is, a whole number
    of cells from its first (:func:`_where_walls_are`: a thin "1" from wall to wall in a cell's middle is
    neither; a wall between two cells written against is the second). None unless they hold
    :data:`_WHOLE` of the ink along its outer edge and round its cells (a box with rounded corners, or drawn by
    hand, would leave pieces of its walls: as marks, they read as "1"s). Looked for with the box turned level
    (:func:`_turned`), then turned back (:func:`_back`)."""
    widest = box.wall + 5
    level = ndimage.binary_dilation(_turned(piece, box.degrees))  # a 1-px wall's steps, level, are 2 px high
    longest = _LINE * box.short
    near = np.pad(box.cells | ~ndimage.binary_fill_holes(piece), 1, constant_values=True)  # cells and outside
    edges = piece & ndimage.binary_dilation(near, iterations=box.wall + 3)[1:-1, 1:-1]
    down = _thin(_runs(level, 0, longest), 0, widest)
    spaced = _where_walls_are(level, _turned(box.cells, box.degrees), box.wall)
    across = _thin(_runs(level, 1, longest), 1, widest)
    straight = (_back(down & spaced | across, box.degrees, piece.shape)
                | _back(down, box.degrees, piece.shape) & edges)  # walls down: by a cell or where spaced
    walls = piece & straight
    return walls if (walls & edges).sum() >= _WHOLE * edges.sum() else np.zeros_like(piece)  # else: no such walls


def _back(level: np.ndarray, degrees: float, shape: tuple[int, ...]) -> np.ndarray:
    """A mask of a box turned level (:func:`_turned`) turned back, cropped to the box's ``shape``, two pixels
    wider (for the turns' rounding)."""
    back = _turned(level, -degrees)
    top, left = (back.shape[0] - shape[0]) // 2, (back.shape[1] - shape[1]) // 2
    return ndimage.binary_dilation(back[top : top + shape[0], left : left + shape[1]], iterations=2)


def _where_walls_are(level: np.ndarray, cells: np.ndarray, wall: int) -> np.ndarray:
    """The columns of a box turned level (``level``, its ``cells`` with it) where walls down it may be: its first
    ink's, and a whole number of cells on (a cell as wide as its cells' median and a wall; with no cell known, as
    the box), give or take a wall and 3 px, and 1% of the way."""
    columns = np.flatnonzero(level.any(axis=0))
    if len(columns) == 0:
        return np.ones_like(level)
    labels, count = ndimage.label(cells)
    widths = [where[1].stop - where[1].start for where in ndimage.find_objects(labels)]
    pitch = float(np.median(widths)) + wall if count else float(columns[-1] - columns[0] + 1 - wall)  # one cell
    x = np.arange(level.shape[1]) - columns[0]
    steps = np.round(x / pitch)
    allowed = np.abs(x - steps * pitch) <= wall + 3 + 0.01 * np.abs(x)
    return np.broadcast_to(allowed, level.shape)


def _turned(mask: np.ndarray, degrees: float) -> np.ndarray:
    """``mask`` turned ``degrees`` (enlarged to hold it all), every pixel it covers a tenth of: a thin line turned
    pixel by pixel (nearest neighbour) falls apart into steps with gaps."""
    if degrees == 0:
        return mask
    return ndimage.rotate(mask.astype(np.float32), degrees, reshape=True, order=1) > _TOUCHED


def _thin(runs: np.ndarray, axis: int, widest: float) -> np.ndarray:
    """The pieces of ``runs`` (straight along ``axis``) that are on average at most ``widest`` px thick."""
    labels, count = ndimage.label(runs)
    if count == 0:
        return runs
    extent = np.array([where[axis].stop - where[axis].start for where in ndimage.find_objects(labels)])
    thin = np.flatnonzero(np.bincount(labels.ravel())[1:] <= widest * extent) + 1
    return np.isin(labels, thin)


def _wall(piece: np.ndarray, filled: np.ndarray) -> int:
    """How thick the walls of a box ``piece`` are, in px: the ink each row of its middle half holds from its left
    edge inward, and each column from its top (the median)."""
    height, width = piece.shape
    runs = []
    for lines, start in ((piece[height // 4 : 3 * height // 4], filled[height // 4 : 3 * height // 4]),
                         (piece[:, width // 4 : 3 * width // 4].T, filled[:, width // 4 : 3 * width // 4].T)):
        for line, inside in zip(lines, start):
            first = np.flatnonzero(inside)
            if len(first):
                gaps = np.flatnonzero(~line[first[0]:])
                runs.append(gaps[0] if len(gaps) else len(line) - first[0])
    return int(np.median(runs)) if runs else 1


def _area(where: tuple[slice, slice]) -> int:
    return (where[0].stop - where[0].start) * (where[1].stop - where[1].start)
