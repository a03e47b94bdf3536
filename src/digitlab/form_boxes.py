"""Form boxes are not digits: the printed boxes of a form, one for each digit (apart, or a comb of cells sharing
their walls), found and left out before :func:`digitlab.segment.find_marks` looks for marks.

Left in, a box round a digit makes the two one mark that is no digit ("?"), an empty box reads as a "0" or as
nothing known, and an empty comb's walls as "1"s.

A box is a piece of ink shaped as a rectangle (:func:`smallest_rectangle`: filling :data:`_SQUARE` of the smallest
rectangle round it, turned or not), mostly hole, with a cell about as wide as tall that is a rectangle too (empty,
or holding a digit apart from its walls) and walls thin beside it. A digit written against a wall makes its cell a
rectangle no more: that box is taken when a box of its size was (a row of boxes). What goes is a box's walls: its
straight runs along it and across it nearly as long as its side, no thicker than its walls (found with the box
turned level). A digit written against them loses only what lies on them, and a "1" from wall to wall, thicker,
stays. A frame round a whole number is such a box too (or :mod:`digitlab.rules`' frame, as before).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from digitlab.rules import _only, _runs

__all__ = ["without_form_boxes", "rectangle_fill", "smallest_rectangle"]

_SQUARE = 0.9  # a box, and each of its empty cells, fills 90% of the smallest rectangle round it (a drawn 0: ~80%)
_HOLLOW = 0.5  # a box is at least half hole
_THIN = 0.15  # its walls are at most 15% of its cell's shorter side thick (a pen's 0 is thicker)
_SMALLEST = 12  # px: a box's cell is at least this wide and tall...
_SQUAT = 0.65  # ...and its width between 0.65 and 1/0.65 times its height (a 0 drawn as a rectangle is narrower)
_SAME = 0.15  # boxes of a row are the same size within 15%
_LINE = 0.9  # a wall runs straight from side to side (90% of a box's height or more: a 4's stroke against
             # its top wall does not)
_MORE = 0.05  # fainter ink is looked in when it is 5% more than the ink
_MANY = 100  # pieces: more, and the specks are left out before the pieces are measured
_EIGHT = np.ones((3, 3), dtype=bool)


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
    """
    fainter = faint is not None and faint.sum() > (1 + _MORE) * on.sum()  # not a drawing's soft edges alone
    found = [_pieces(on)] + ([_pieces(faint)] if fainter else [])
    sure = {(n, k): box for n, (labels, places) in enumerate(found) for k, where in places.items()
            if (box := _sure_box(labels[where] == k)) is not None}
    if not sure:
        return on
    sizes = [tuple(side.stop - side.start for side in found[n][1][k]) for n, k in sure]
    walls = np.zeros_like(on)
    for n, (labels, places) in enumerate(found):
        for k, where in places.items():
            box = sure.get((n, k))
            piece = labels[where] == k
            if box is None and any(_same_size(piece.shape, size) for size in sizes):
                box = _rectangle(piece)  # a box a digit was written against, in a row of boxes of its size
            if box is not None:
                walls[where] |= _walls(piece, *box)
    return on & ~walls if walls.any() else on


def _pieces(on: np.ndarray) -> tuple[np.ndarray, dict[int, tuple[slice, slice]]]:
    """The pieces of ``on``, numbered, and the place of each that could be a box (large enough)."""
    labels, count = ndimage.label(on, structure=_EIGHT)
    if count > _MANY:  # a box's walls are more ink than a speck: find_objects on 100,000s of specks takes long
        sizes = np.bincount(labels.ravel())
        big = np.flatnonzero(sizes >= 4 * _SMALLEST)
        labels = _only(labels, big[big > 0], count + 1)
    return labels, {k: where for k, where in enumerate(ndimage.find_objects(labels), start=1)
                    if min(where[0].stop - where[0].start, where[1].stop - where[1].start) >= _SMALLEST + 2}


def _sure_box(piece: np.ndarray) -> tuple[float, float] | None:
    """:func:`_rectangle` for a ``piece`` (cropped to its box) sure to be a form box: mostly hole, shaped as a
    rectangle, with thin walls and a cell about as wide as tall that is a rectangle too (empty, or holding a digit
    apart from its walls); else None."""
    filled = ndimage.binary_fill_holes(piece)
    holes = filled & ~piece
    if holes.sum() < _HOLLOW * filled.sum():
        return None
    box = _rectangle(piece, filled)
    if box is None:
        return None
    wall = _wall(piece, filled)
    cells, _ = ndimage.label(holes)
    for k, where in enumerate(ndimage.find_objects(cells), start=1):
        cell = ndimage.binary_fill_holes(cells[where] == k)  # specks in it, as holes
        wide = cell.shape[1] / cell.shape[0]
        if (min(cell.shape) >= _SMALLEST and max(cell.shape) >= box[1] / 2 and _SQUAT <= wide <= 1 / _SQUAT
                and wall <= _THIN * min(cell.shape) and rectangle_fill(cell) >= _SQUARE):
            return box
    return None


def _rectangle(piece: np.ndarray, filled: np.ndarray | None = None) -> tuple[float, float] | None:
    """How ``piece`` (``filled``: with its holes filled) is turned (:func:`smallest_rectangle`'s degrees) and its
    shorter side, if it is shaped as a rectangle; else None."""
    fill, degrees, short = smallest_rectangle(ndimage.binary_fill_holes(piece) if filled is None else filled)
    return (degrees, short) if fill >= _SQUARE else None


def _walls(piece: np.ndarray, degrees: float, short: float) -> np.ndarray:
    """The walls of a box ``piece`` turned ``degrees`` (as :func:`smallest_rectangle` gives it, its shorter side
    ``short``): where it runs straight along the box or across it for :data:`_LINE` of ``short`` or more, no
    thicker than its walls (:func:`_wall`; a "1" written from wall to wall is thicker). Looked for with the box
    turned level, a pixel wider (a thin line's steps, turned, leave gaps), then turned back, two pixels wider
    still (for the turns' rounding)."""
    widest = _wall(piece, ndimage.binary_fill_holes(piece)) + 4
    level = ndimage.rotate(piece.view(np.uint8), degrees, reshape=True, order=0).astype(bool)
    level = ndimage.binary_dilation(level)
    runs = _thin(_runs(level, 0, _LINE * short), 0, widest) | _thin(_runs(level, 1, _LINE * short), 1, widest)
    back = ndimage.rotate(runs.view(np.uint8), -degrees, reshape=True, order=0).astype(bool)
    top, left = (back.shape[0] - piece.shape[0]) // 2, (back.shape[1] - piece.shape[1]) // 2
    return piece & ndimage.binary_dilation(back[top : top + piece.shape[0], left : left + piece.shape[1]],
                                           iterations=2)


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


def _same_size(shape: tuple[int, int], other: tuple[int, int]) -> bool:
    return all(abs(a - b) <= _SAME * max(a, b) for a, b in zip(shape, other))


def rectangle_fill(shape: np.ndarray) -> float:
    """How much of the smallest rectangle round ``shape`` (True pixels, turned at any angle) it fills: 1.0 for a
    rectangle, π/4 for an ellipse.

    >>> square = np.ones((20, 20), dtype=bool)
    >>> rectangle_fill(square), round(rectangle_fill(ndimage.rotate(square, 30, order=0)), 2) >= 0.9
    (1.0, True)
    >>> yy, xx = np.mgrid[-20:21, -30:31]
    >>> round(rectangle_fill((xx / 30) ** 2 + (yy / 20) ** 2 <= 1), 2)
    0.76
    """
    return smallest_rectangle(shape)[0]


def smallest_rectangle(shape: np.ndarray) -> tuple[float, float, float]:
    """The smallest rectangle round ``shape`` (True pixels), turned at any angle: how much of it ``shape`` fills;
    and, of the rectangle along the longest side of its convex hull, the angle in degrees (-45 to 45) that
    :func:`scipy.ndimage.rotate` turns it level by and its shorter side.

    >>> bar = np.zeros((60, 100), dtype=bool); bar[20:40, 10:90] = True
    >>> fill, degrees, short = smallest_rectangle(ndimage.rotate(bar, 10, order=0))
    >>> fill >= 0.9, round(degrees), round(short)
    (True, -10, 21)
    """
    ys, xs = np.nonzero(shape & ~ndimage.binary_erosion(shape))
    if len(ys) < 3:
        return 1.0, 0.0, float(min(shape.shape))
    points = np.stack([xs, ys], axis=1).astype(float)  # pixel centres; each side one pixel longer below
    try:
        hull = points[ConvexHull(points).vertices]
    except QhullError:  # all in a line: a bar one pixel thin
        return 1.0, 0.0, 1.0
    edges = np.diff(np.vstack([hull, hull[:1]]), axis=0)  # the smallest rectangle round a convex hull has a
    angles = np.arctan2(edges[:, 1], edges[:, 0])            # side along one of its edges
    along = np.ptp(hull @ np.stack([np.cos(angles), np.sin(angles)]), axis=0) + 1
    across = np.ptp(hull @ np.stack([-np.sin(angles), np.cos(angles)]), axis=0) + 1
    area = float((along * across).min())
    side = int(np.argmax(np.hypot(edges[:, 0], edges[:, 1])))  # a box's corners cut off may turn the smallest
    degrees = (np.degrees(angles[side]) + 45) % 90 - 45          # rectangle: turned as the longest side is
    return float(min(1.0, shape.sum() / area)), float(degrees), float(min(along[side], across[side]))
