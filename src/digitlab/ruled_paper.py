"""The printed lines of ruled or squared paper, photographed level or askew, found and left out of the ink:
:func:`page_lines` (with their slope), which :func:`digitlab.rules.leave_out_rules_and_slant` runs first for one
digit's picture, and :func:`without_page_lines`, which :func:`digitlab.segment.find_marks` runs first for a
number. (Not :mod:`digitlab.data.paper`, which draws blank paper for the not-a-digit detector.)

Left in, the squares of squared paper join into one piece taller than any digit, and a ruled line joins the
digits it crosses; a photo of one digit on squared paper was "not a digit" (27 of 30, BENCHMARKS.md, "Phone-like
photos, part 2").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

__all__ = ["RAGGED", "page_lines", "sharpest_rows", "sideways_lines_only", "without_page_lines"]

_PAGE_LINE, _REACH = 0.8, 0.1  # a row inked across 80% of the picture, to within 10% of both its ends...
_LINE_THICK = 0.03  # ...at most 3% of the picture thick, is a printed line of the paper...
_PAGE_LINES = 4  # ...when there are at least 4 of them: ruled or squared paper, whatever the digits' height;
_CUT_SHORT = 0.5  # then a row inked across half of it, at their spacing and as thin, is one cut short by a corner
_SQUARES, _FILLED = 0.5, 0.6  # then columns inked across half of it, at the rows' spacing, filling 60% of the
                              # places at that spacing are too (squared paper's upright lines, often fainter)
_SIDEWAYS = 8  # lines down a page turned sideways run at least 8 times as long as they lie apart
RAGGED = 0.05  # ink left beside the lines or rules, under 5% of all the ink, is their ragged edges: no writing
_ASKEW, _ASKEW_SIDE = 15, 128  # lines slanting up to 15 degrees are looked for in pictures 128 px or more a side,
_SHARPER = 1.05  # when their rows are 5% more sharply peaked than level ones


def without_page_lines(on: np.ndarray) -> np.ndarray:
    """``on`` without the printed lines of ruled or squared paper; ``on`` itself when it has none
    (:func:`page_lines`, without their slope).

    A printed line is a row inked across :data:`_PAGE_LINE` of the picture and to near both its ends
    (:data:`_REACH`), at most :data:`_LINE_THICK` of it thick, when there are :data:`_PAGE_LINES` or more (with
    the row on each side, blurred); beyond the first and the last of them, a row inked across :data:`_CUT_SHORT`
    of it, on their spacing, is one cut short by a corner (:func:`_continued`). Then a column inked across
    :data:`_SQUARES` of it is one too when the columns so inked lie as far apart as the rows and fill most
    places at that spacing (:data:`_FILLED`): squared paper, where a number's tall 1s on ruled paper fill
    few. A digit has three bars at most (a block
    3 or 8 drawn across the page). In a picture :data:`_ASKEW_SIDE` px or more a side the lines may slant (a
    photo taken askew, up to :data:`_ASKEW` degrees: :func:`_slant`). Where a stroke crosses a line, the
    line's pixels next to it stay, so the digit stays one piece. The squares of squared paper join into one
    piece taller than any digit, which :func:`~digitlab.rules.without_rules`, judging a rule by the digits'
    height, cannot see.

    >>> page = np.zeros((100, 100), dtype=bool)
    >>> page[::20] = page[:, ::20] = True                   # squared paper...
    >>> page[30:70, 48:53] = True                           # ...with a "1" on it
    >>> left = without_page_lines(page)
    >>> bool(left[30:70, 48:53].all()), int(left.sum() - left[30:70, 48:53].sum())   # the whole "1", no line
    (True, 0)
    """
    return page_lines(on)[0]


def sideways_lines_only(on: np.ndarray) -> bool:
    """Whether ``on`` holds nothing but a page's printed lines running down it (the page photographed sideways, level
    or askew: a learner's empty ruled page read as 19 sure 1s), each :data:`_SIDEWAYS` times as long as the lines lie
    apart. Thin 1s cropped to their ink, as long as the picture is tall, lie further apart than that: 1s written
    an eighth of their height apart would be taken for lines.

    >>> page = np.zeros((900, 1200), dtype=bool)
    >>> page[:, 50::45] = True                              # an empty ruled page, turned
    >>> ones = np.zeros((60, 200), dtype=bool)
    >>> ones[:, 20::40] = True                              # "11111", the picture cropped to them
    >>> sideways_lines_only(page), sideways_lines_only(ones)
    (True, False)
    """
    if not on.any() or without_page_lines(on.T).sum() > RAGGED * on.sum():
        return False
    lines = ndimage.label(on, structure=np.ones((3, 3), dtype=bool))[1]  # pieces: slanted lines share columns
    return bool(on.shape[0] >= _SIDEWAYS * on.shape[1] / lines)


def page_lines(on: np.ndarray) -> tuple[np.ndarray, float]:
    """``on`` without the paper's printed lines (:func:`without_page_lines`), and their slope (rows down per
    column along them: a page photographed turned clockwise slopes down to the right); ``(on, 0.0)`` when it
    has none."""
    side = max(1, round(_REACH * on.shape[1]))
    if not (on[:, :side].any() and on[:, -side:].any()):
        return on, 0.0  # no line runs across the picture (a drawing): nothing to count
    ys, xs = np.nonzero(on)
    slope = _slant(ys, xs) if min(on.shape) >= _ASKEW_SIDE else 0.0
    window = 3 if slope else 1  # a thin slanting line's pixels fall into two neighbouring rows
    rows = _printed(ys - slope * xs, xs, on.shape[1], _PAGE_LINE, window)
    if rows is None:
        return on, 0.0
    taken, thickest, spacing = rows
    columns = _printed(xs + slope * ys, ys, on.shape[0], _SQUARES, window, skip=taken, spacing=spacing)
    if columns is not None:
        taken, thickest = taken | columns[0], max(thickest, columns[1])
    lines = np.zeros(on.shape, dtype=bool)
    lines[ys[taken], xs[taken]] = True
    left = on & ~lines
    return left | (on & lines & ndimage.binary_dilation(left, iterations=thickest // 2 + 1)), slope  # across them


def _printed(across: np.ndarray, along: np.ndarray, extent: int, least: float, window: int, *,
             skip: np.ndarray | None = None, spacing: float | None = None) -> tuple[np.ndarray, int, float] | None:
    """Which ink pixels lie on printed lines (:func:`without_page_lines`), their thickness and spacing; None when
    too few lines. ``across``: each pixel's place across the lines (slanted or not); ``along``: its place along
    them, over ``extent``. A line's ink is the places along it inked in any of ``window`` neighbouring rows (a
    thin slanting line falls into two), so that a thick stroke lying along it counts no more than once.
    Without ``spacing`` (rows) a line reaches near both ends, and beyond the first and last such lines those cut
    short count too (:func:`_continued`); with it (columns, the rows' pixels ``skip`` left out) the lines lie
    about as far apart as the rows, and fill most places at their spacing."""
    shift = window // 2
    every = np.round(across).astype(np.int64)
    every -= every.min() - shift  # room for the window on either side
    size = int(every.max()) + shift + 1
    index, places = (every, along) if skip is None else (every[~skip], along[~skip])
    inked = np.zeros((size, extent), dtype=bool)  # each line's places with ink: a place counts once
    for offset in range(-shift, shift + 1):
        inked[index + offset, places] = True
    full = inked.view(np.uint8).sum(axis=1, dtype=np.int32) >= least * extent
    if spacing is None:
        reach = max(1, round(_REACH * extent))
        full &= inked[:, :reach].any(axis=1) & inked[:, -reach:].any(axis=1)
    groups, _ = ndimage.label(full)
    thick = np.bincount(groups)[1:]
    lines = np.flatnonzero(thick <= max(window, 2, _LINE_THICK * extent)) + 1  # a band is no line
    centres = np.array([float(np.mean(np.flatnonzero(groups == k))) for k in lines])
    if spacing is not None:
        lines, centres = _evenly_spaced(lines, centres, spacing, size)
    if len(lines) < _PAGE_LINES:
        return None
    chosen = np.isin(groups, lines)
    if spacing is None:  # rows: and those the lines' spacing goes on to, cut short by a corner turned into view
        chosen |= _continued(inked, chosen, centres, int(thick[lines - 1].max()))
    taken = ndimage.binary_dilation(chosen)[every]
    return taken, int(thick[lines - 1].max()) + 2, float(np.median(np.diff(np.sort(centres))))


def _continued(inked: np.ndarray, chosen: np.ndarray, centres: np.ndarray, thickest: int) -> np.ndarray:
    """The rows of ``inked`` (each line's places with ink, :func:`_printed`) that are printed lines cut short:
    beyond the first or the last whole line (their ``centres``), on their spacing counted from it (within a
    quarter of it), no thicker than they are (``thickest``), and inked across :data:`_CUT_SHORT` of the picture.
    A page photographed askew, turned in a frame with blank corners, has its first and last lines end in the
    corners, short of :data:`_PAGE_LINE` and of the edges. Between whole lines nothing is cut short: a digit's
    bar or base lying along a line there stays (a first version took it, when its pen was a little thicker
    than the line, for what stuck out of the line)."""
    own = float(np.median(np.diff(np.sort(centres))))
    part = inked.view(np.uint8).sum(axis=1, dtype=np.int32) >= _CUT_SHORT * inked.shape[1]
    groups, count = ndimage.label(part & ~ndimage.binary_dilation(chosen))
    if count == 0:
        return np.zeros_like(chosen)
    numbers = np.arange(1, count + 1)
    thick = np.bincount(groups)[1:]
    middle = np.asarray(ndimage.mean(np.arange(len(part)), groups, numbers))
    first, last = float(centres.min()), float(centres.max())
    beyond = (middle < first) | (middle > last)
    phase = np.where(middle < first, first - middle, middle - last) / own  # from the nearest whole line
    on_spacing = np.abs(phase - np.round(phase)) <= 0.25
    return np.isin(groups, numbers[beyond & on_spacing & (thick <= thickest)])


def _evenly_spaced(lines: np.ndarray, centres: np.ndarray, spacing: float,
                   length: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``lines`` a neighbour of which lies their usual distance away (within a quarter), when that distance
    is within 15% of ``spacing`` (the rows') and they fill :data:`_FILLED` of its places over ``length``; none
    otherwise. A number's tall 1s on ruled paper are few, and seldom a line's spacing apart."""
    order = np.argsort(centres)
    lines, centres = lines[order], centres[order]
    if len(centres) < _PAGE_LINES:
        return lines[:0], centres[:0]
    gaps = np.diff(centres)
    own = float(np.median(gaps))
    near = np.abs(gaps - own) <= 0.25 * own
    regular = np.r_[near, False] | np.r_[False, near]
    if abs(own - spacing) > 0.15 * spacing or regular.sum() < _FILLED * length / own:
        return lines[:0], centres[:0]
    return lines[regular], centres[regular]


def _slant(ys: np.ndarray, xs: np.ndarray) -> float:
    """The slope, within :data:`_ASKEW` degrees of level, along which the ink's rows are most sharply peaked
    (:func:`sharpest_rows`, a degree at a time, then a tenth: a pixel's drift over a 600-px line): on lined or
    squared paper, the lines'."""
    best, rows = sharpest_rows(ys, xs, _ASKEW, 1.0)
    level = rows(0.0) @ rows(0.0)  # level, unless a slant is clearly sharper: a level grid is as sharp a hair off it
    return float(np.tan(np.radians(best))) if rows(best) @ rows(best) > _SHARPER * level else 0.0


def sharpest_rows(ys: np.ndarray, xs: np.ndarray, limit: float,
                  step: float) -> tuple[float, Callable[[float], np.ndarray]]:
    """The angle in degrees, within ``limit`` of level, along which the rows of the pixels ``ys, xs`` (sheared
    level along it) peak most sharply, by the sum of their squared counts: every ``step`` degrees, then every
    tenth within a step of the best, rounded to the tenth (3.0, not the 2.999999999999999 of the steps added up);
    from at most 20,000 of the pixels (every second, ...). With it, the rows' counts along any angle, scaled to
    all the pixels. Also :func:`digitlab.rules.without_rules`' search for an underline drawn at a slant."""
    every = -(-len(ys) // 20_000)
    ys, xs = ys[::every].astype(np.float64), xs[::every].astype(np.float64)

    def rows(degrees: float) -> np.ndarray:
        index = np.round(ys - np.tan(np.radians(degrees)) * xs).astype(np.int64)
        return np.bincount(index - index.min()).astype(np.float64) * every

    def sharpness(degrees: float) -> float:
        counts = rows(degrees)
        return float(counts @ counts)

    best = max(np.arange(-limit, limit + step / 2, step), key=sharpness)
    best = max(np.arange(max(best - step, -limit), min(best + step, limit) + 0.05, 0.1), key=sharpness)
    return round(float(best), 1), rows
