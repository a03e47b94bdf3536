"""Ways to cut a mark that may be two touching digits into a left and a right one.

:func:`split_candidates`: where the column ink profile is lowest or changes most steeply, along the path
down that crosses the least ink, and between its pieces. :func:`digitlab.read.read_number` keeps the cut
whose halves a model reads most confidently.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitlab.segment import Mark

__all__ = ["split_candidates"]

_CENTRE = (0.2, 0.8)  # cuts at the thinnest ink, and cut paths, lie between 20% and 80% of a mark's width
_THINNEST = 0.1  # cuts where the ink changes steeply leave a tenth of the mark's height on either side
_CUTS = 4  # at most this many straight cuts, and as many path cuts, per mark
_STEEP = 2  # and this many where the profile changes most steeply
_SIDESTEP = 0.25  # a cut path pays this (in pixels of ink) for each pixel it moves sideways
_PIECES = 12  # a mark of more pieces than this (a page of hatching, not two digits) is not cut between them: each cut
              # is a mask the mark's size, and 250 pieces of a 1024 px mark took 500 MB


def split_candidates(mark: Mark) -> list[tuple[Mark, Mark, int]]:
    """Ways to cut ``mark`` into a left and a right digit, each half trimmed to its own ink, and how many strokes
    each cut goes through (:func:`crossings`).

    Three kinds of cut:

    - straight down, at the lowest points of the column ink profile between 20% and 80% of the
      width (where two touching digits meet, the ink is often thinnest), and where the profile
      changes most steeply, anywhere that leaves a tenth of the mark's height on either side (a
      "1" standing against a "0");
    - along a path from top to bottom that crosses the least ink, moving at most one pixel
      sideways per row (two slanted or overlapping digits are not parted by a straight line),
      ending between 20% and 80% of the width;
    - for a mark of several pieces (at most :data:`_PIECES`), between the pieces ordered by their centres.

    Examples
    --------
    >>> from digitlab.segment import find_marks, ink_of
    >>> paper = np.zeros((40, 70), dtype=np.uint8)
    >>> paper[5:35, 10:30] = 255; paper[5:35, 40:60] = 255; paper[18:22, 30:40] = 255   # two blocks joined
    >>> [mark] = find_marks(ink_of(paper))
    >>> left, right, strokes = split_candidates(mark)[0]
    >>> left.box, right.box, strokes
    ((10, 5, 35, 35), (35, 5, 60, 35), 1)
    """
    edge = max(2, int(_THINNEST * mark.height))  # the widest zone: a "1" may be cut off either end
    lo, hi = max(edge, int(_CENTRE[0] * mark.width)), min(mark.width - edge, int(_CENTRE[1] * mark.width)) + 1
    if mark.width - 2 * edge < 0 or hi <= lo:
        return []
    cuts = _column_cuts(mark.mask, lo, hi, edge) + _path_cuts(mark.mask, lo, hi)
    columns = np.arange(mark.width)[None, :]
    halves = [mark.mask & (columns < cut[:, None]) for cut in cuts]
    if 1 < mark.pieces <= _PIECES:
        labels, count = ndimage.label(mark.mask, structure=np.ones((3, 3), dtype=bool))
        centres = [c[1] for c in ndimage.center_of_mass(mark.mask, labels, np.arange(1, count + 1))]
        order = np.argsort(centres, kind="stable") + 1
        halves += [np.isin(labels, order[:k]) for k in range(1, count)]
    pairs = []
    for left in halves:
        a, b = _trimmed(left, mark), _trimmed(mark.mask & ~left, mark)
        if a is not None and b is not None:
            pairs.append((a, b, crossings(mark.mask & left, mark.mask & ~left)))
    return pairs


def crossings(left: np.ndarray, right: np.ndarray) -> int:
    """Where a cut parts ``left`` from ``right`` (two masks of one mark): how many strokes it goes through (the
    separate places where ink on one side touches ink on the other)."""
    seam = left & ndimage.binary_dilation(right, structure=np.ones((3, 3), dtype=bool))
    return int(ndimage.label(ndimage.binary_dilation(seam, structure=np.ones((3, 3), dtype=bool)))[1])


def _distinct(order: np.ndarray, spacing: int) -> list[int]:
    """The first :data:`_CUTS` columns of ``order`` at least ``spacing`` apart."""
    taken: list[int] = []
    for column in order:
        if all(abs(int(column) - t) >= spacing for t in taken):
            taken.append(int(column))
            if len(taken) == _CUTS:
                break
    return taken


def _column_cuts(mask: np.ndarray, lo: int, hi: int, edge: int) -> list[np.ndarray]:
    """Straight cuts (one column per row) where the column ink profile is lowest between ``lo`` and ``hi``
    (the central one first among equals), and where it changes most steeply at least ``edge`` from the ends."""
    height, width = mask.shape
    profile = ndimage.uniform_filter1d(mask.sum(axis=0).astype(np.float32), size=3)
    columns = np.arange(lo, hi)
    thinnest = columns[np.lexsort((np.abs(columns - width / 2), profile[lo:hi]))]
    columns = np.arange(edge, width - edge + 1)
    change = np.abs(profile[edge : width - edge + 1] - profile[edge - 1 : width - edge])
    steepest = columns[np.argsort(-change, kind="stable")]
    spacing = max(2, width // 10)
    cuts = _distinct(thinnest, spacing) + _distinct(steepest, spacing)[:_STEEP]
    return [np.full(height, c) for c in dict.fromkeys(cuts)]


def _path_cuts(mask: np.ndarray, lo: int, hi: int) -> list[np.ndarray]:
    """Cuts along top-to-bottom paths crossing the least ink (dynamic programming, one step per row)."""
    height = mask.shape[0]
    cost = mask[:, lo:hi].astype(np.float32)
    total = cost.copy()
    step = np.zeros(cost.shape, dtype=np.int8)  # -1, 0 or +1: where the path came from in the row above
    for y in range(1, height):
        above = total[y - 1]
        options = np.stack([np.r_[np.inf, above[:-1]] + _SIDESTEP, above, np.r_[above[1:], np.inf] + _SIDESTEP])
        choice = options.argmin(axis=0)
        total[y] += options[choice, np.arange(len(above))]
        step[y] = choice - 1
    columns = np.arange(hi - lo)
    order = columns[np.lexsort((np.abs(columns + lo - mask.shape[1] / 2), total[-1]))]
    cuts = []
    for end in _distinct(order, max(2, mask.shape[1] // 10)):
        path = np.empty(height, dtype=np.int64)
        path[-1] = end
        for y in range(height - 1, 0, -1):
            path[y - 1] = path[y] + step[y, path[y]]
        cuts.append(path + lo)
    return cuts


def _trimmed(mask: np.ndarray, mark: Mark) -> Mark | None:
    """The part ``mask`` of ``mark`` as a mark of its own, its box trimmed to its ink; None if empty."""
    x0, y0 = mark.box[:2]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    pieces = ndimage.label(mask[r0:r1, c0:c1], structure=np.ones((3, 3), dtype=bool))[1]
    return Mark((x0 + c0, y0 + r0, x0 + c1, y0 + r1), mask[r0:r1, c0:c1], pieces, mark.line)
