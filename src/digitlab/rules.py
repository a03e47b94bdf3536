"""Rules are not digits: the straight lines around a handwritten number (an underline, a frame or box, a ruled
line, a scanner's dark edge), found and left out before :func:`digitlab.segment.find_marks` looks for marks; and
for one digit's picture (:func:`leave_out_rules`, before it is prepared) also the printed lines of ruled or
squared paper, photographed level or askew (:mod:`digitlab.ruled_paper`, and their slant,
:func:`leave_out_rules_and_slant`), a frame or ring round the digit, a line under it, flecks on the edge.

Left in, a rule joins the digits it touches into one mark, a frame becomes the tallest mark (and the digits its
fragments), and a lone rule is cut into sure-looking "1"s: a user's audit found 0 of 33 underlined or framed
numbers read right (BENCHMARKS.md, "Reading whole numbers").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitlab.ruled_paper import RAGGED, page_lines as _page_lines_and_slope, sharpest_rows, without_page_lines

__all__ = ["digit_height", "tallest", "leave_out_rules", "leave_out_rules_and_slant", "without_page_lines",
           "without_rules", "without_surround"]

_RULE_ACROSS = 2.0  # a straight run of ink across longer than 2 digit heights is a rule (an underline, a frame)...
_RULE_DOWN = 1.5  # ...and one down longer than 1.5 that is a frame's side or along the picture's side edge...
_EDGE = 0.05  # ...within 5% of its width (a tall "1" elsewhere stays)...
_RULE_DOWN_ANYWHERE = 5.0  # ...or longer than 5 anywhere (a margin line, the page's edge: no "1" is that tall,
                           # even beside 0s broken in two)
_OUTLIERS, _MOST_OUTLIERS = 0.05, 3  # a piece is as tall as a digit when it is 30% (50%) as tall as the tallest but
                                     # 5% of the pieces, at most 3 (a margin line, the page's edges; not squared
                                     # paper's many pieces of line)
_TILT, _TILTED_ACROSS = 15, 3.0  # under a number, a run across may slant up to 15 degrees (an underline drawn
                                 # freehand) when it is 3 digit heights long: a long 2's base slants too;
_TILTED_PIECES, _TILTED_LEAST = 8, 16  # looked for in the 8 widest pieces, at least 16 px long
_ANY_INK = 0.02  # for one digit's picture, any ink this strong may be part of a rule (a faint blue ruled line)
_LEVEL = 3.0  # a digit on paper whose lines slant 3 degrees or more is turned back level with them
_EDGE_SPECK, _THIN, _FAINT_EDGE = 0.05, 3, 0.35  # one digit's edge pieces: under 5% of its ink, 3 px thick, 35% as dark
_SPECK = 0.01  # for one digit: a piece under 1% of the ink is a speck...
_BAR, _GAP = 4.0, 0.03  # ...a piece 4 times as wide as tall, 3% of the digit's height below the rest, underlines it
_THIN_BAR = 0.25  # ...(under a number: its ink on average at most 25% as thick as the rest is tall, not digits)
_SOLID = 0.4  # ...(and filling 40% of its box along its slope: a row of small 0s joined is no bar)
_FOOT = 0.08  # (unless the rest comes down to it within 8% of one of its ends: a 2's base drawn apart)...
_HELD, _INSIDE = 0.9, 0.5  # ...and one holding 90% of the rest in its hole, half as tall or wide as it, frames it
# round one digit of a number: 1.25 times as tall as the digits beside it, 30% as tall or wide as it, 90% of its ink
_RING, _INSIDE_RING, _OFF_EDGE = 1.25, 0.3, 0.1  # along its outer edge (a band as thick as its ink)...
_HELD_DIGIT = 0.75  # ...round a digit 3/4 as tall as those beside it, at least (a slashed 0 holds a slash half as tall)
_SIDE = 0.5  # a run down half a digit's height or more touching two runs across at both ends is a box's side


def leave_out_rules(ink: np.ndarray) -> np.ndarray:
    """One digit's ink map (:func:`~digitlab.data.ink.ink_map`) with its rules left out, and with them the faint ink
    away from what is left: a digit on ruled paper, or underlined, is cropped to the digit, not the page
    (:func:`leave_out_rules_and_slant`, without the slant).

    >>> page = np.zeros((80, 200), dtype=np.float32)
    >>> page[10:60, 95:102] = 1.0; page[[30, 70], :] = 0.3      # a "1" on ruled paper
    >>> left = leave_out_rules(page)
    >>> float(left[70].max()), float(left[40, 98]), round(float(left[30, 98]), 2)   # the rule gone, the stroke kept
    (0.0, 1.0, 0.3)
    """
    return leave_out_rules_and_slant(ink)[0]


def leave_out_rules_and_slant(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`leave_out_rules`, and the angle in degrees by which :func:`scipy.ndimage.rotate` turns the digit
    back level with the paper's printed lines, as it was written, when they slant :data:`_LEVEL` degrees or more
    (a photo taken askew); else 0.0."""
    every = ink > _ANY_INK
    lined, slope = _page_lines_and_slope(every)
    degrees = float(np.degrees(np.arctan(slope)))
    return _left_out(ink, every, lined), degrees if abs(degrees) >= _LEVEL else 0.0


def _left_out(ink: np.ndarray, every: np.ndarray, lined: np.ndarray) -> np.ndarray:
    """:func:`leave_out_rules`' work: ``ink`` (above :data:`_ANY_INK`: ``every``; without the paper's lines:
    ``lined``) with the rest of its rules, and the faint ink away from what is left, left out."""
    on = _without_edge_specks(lined, ink, threads=lined is not every)
    rows, columns = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    if len(rows) == 0:
        return ink
    box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    inked = on[box]
    labels, count = ndimage.label(inked, structure=np.ones((3, 3), dtype=bool))
    if count > 1:
        inner = _without_surround(inked, labels)
        if inner is not inked:  # a frame round the digit, or a line under it: what it held is the digit
            on = np.zeros_like(on)
            on[box] = inner
            return ink * ndimage.binary_dilation(on, iterations=2)
    as_it_was = ink if on is every else ink * ndimage.binary_dilation(on, iterations=2)  # the paper's lines gone
    if rows[-1] - rows[0] + 1 > (columns[-1] - columns[0] + 1) / _RULE_ACROSS and count == 1:
        return as_it_was  # one piece, not wide enough to hold a rule: without_rules would leave it all
    left = without_rules(on, ruled_page=False, page_lines=False)  # left out above
    if left is on or not left.any() or not (on & ~left).any():
        return as_it_was  # nothing was a rule, or all of it (a lone bar, half a 7 on the page)
    return ink * ndimage.binary_dilation(left, iterations=2)


def _without_edge_specks(on: np.ndarray, ink: np.ndarray, *, threads: bool = False) -> np.ndarray:
    """``on`` without the pieces on the picture's edge (not the largest) under :data:`_EDGE_SPECK` of the ink, or
    under :data:`_FAINT_EDGE` as strong as the largest (``ink``), or, with ``threads`` (the paper's lines left out),
    a line of :data:`_THIN` px on average: a fleck where a shadow crosses the edge, a printed line's end cut off by
    a slant, a grid line's faint remnant along the top (a teacher's photos on squared paper, "not a digit"): the
    digit was cropped with them, small and off-centre. ``on`` itself when it has none (no ink on the edge)."""
    if not (on[0].any() or on[-1].any() or on[:, 0].any() or on[:, -1].any()):
        return on
    labels, count = ndimage.label(on, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())
    small, largest = _EDGE_SPECK * sizes[1:].sum(), sizes[1:].max()
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[(edge > 0) & (sizes[edge] < largest)]
    boxes = ndimage.find_objects(_only(labels, edge, len(sizes)))
    length = [max(rows.stop - rows.start, columns.stop - columns.start) for rows, columns in boxes]
    thread = _THIN if threads else 0  # a pen's thin stroke may touch the edge: only once printed lines were found
    strongest = ndimage.maximum(ink, labels, np.arange(len(sizes)))
    faint = _FAINT_EDGE * strongest[np.argmax(sizes[1:]) + 1]
    specks = [k for k, long in zip(edge, length)
              if sizes[k] < small or sizes[k] <= thread * long or strongest[k] < faint]
    return on & ~np.isin(labels, specks) if specks else on


def _only(labels: np.ndarray, kept: np.ndarray, count: int) -> np.ndarray:
    """``labels`` (``count`` of them, 0 included) with only the ``kept`` pieces, numbered 1, 2, ... in their order,
    the rest 0: find_objects on a speckled picture's 100,000s of pieces took seconds."""
    renumber = np.zeros(count, dtype=np.int32)
    renumber[kept] = np.arange(1, len(kept) + 1)
    return renumber[labels]


def _without_surround(on: np.ndarray, labels: np.ndarray, *, number: bool = False) -> np.ndarray:
    """``on`` (one digit's ink, in pieces ``labels``) without a frame or a ring drawn round the rest, or a bar
    drawn under it and apart from it, at least half as wide (an underline); ``on`` itself when it has neither.
    Rules across longer than two digit heights are :func:`without_rules`' to find; these are as short as the
    digit. A bar above is left (the top of a 5 or a 7 is often drawn apart), and so is a bar the rest comes down
    to at one end only (a 2's base). For a ``number`` (:func:`without_surround`), of a frame only its outer band
    goes (:func:`_outline`), and a bar is measured along its own slope, and must be thin and solid
    (:func:`_underlines`): an underline drawn freehand slants, a second line of digits is no bar."""
    sizes = np.bincount(labels.ravel())
    big = np.flatnonzero(sizes >= _SPECK * sizes[1:].sum())  # specks are neither: numbered 0 with the paper
    big = big[big > 0]
    if len(big) < 2:
        return on
    labels = _only(labels, big, len(sizes))
    boxes = np.array([(r.start, r.stop, c.start, c.stop) for r, c in ndimage.find_objects(labels)])
    # only the piece that starts highest can be round the rest, and only the one that starts lowest under it
    for k in sorted({int(np.argmin(boxes[:, 0])), int(np.argmax(boxes[:, 0]))}):
        others = np.delete(boxes, k, axis=0)
        top, bottom, left, right = others[:, 0].min(), others[:, 1].max(), others[:, 2].min(), others[:, 3].max()
        start, stop, first, last = boxes[k]
        height, width = stop - start, last - first
        if number:  # first what the boxes can tell, before the pixels are measured along the bar's slope
            flat = height <= (np.tan(np.radians(_TILT)) + 1 / _BAR) * width and width >= (right - left) / 2
            if (k == int(np.argmax(boxes[:, 0])) and start > top and flat
                    and _underlines(labels, k + 1, several=_side_by_side(others))):
                return on & (labels != k + 1)  # an underline, level or not
        elif _BAR * height <= width and width >= (right - left) / 2 and start >= bottom + max(2, _GAP * (bottom - top)):
            if _under_the_middle((labels > 0) & (labels != k + 1), bottom - top, slice(first, last)):
                return on & (labels != k + 1)  # an underline
            continue
        if start < top and bottom < stop and first < left and right < last:
            piece = labels[start:stop, first:last] == k + 1
            filled = ndimage.binary_fill_holes(piece)
            holes, count = ndimage.label(filled & ~piece)
            rest = (labels > 0) & (labels != k + 1)
            held = np.bincount(holes[rest[start:stop, first:last]], minlength=count + 1)[1:]  # the rest, by hole
            if (count and held.max() >= _HELD * rest.sum()  # in one hole: a frame, not a grid of cells
                    and max((bottom - top) / height, (right - left) / width) >= _INSIDE):
                if number:  # only the frame's own band: ink inside that touches it (a digit) stays
                    band = np.zeros_like(on)
                    band[start:stop, first:last] = _outline(piece, filled)
                    return on & ~band
                return on & (labels != k + 1)  # a frame or a ring round the digit
    return on


def without_surround(on: np.ndarray) -> np.ndarray:
    """``on`` without a frame or a ring drawn round all the rest of its ink, or a thin bar drawn apart under all of
    it (:func:`_without_surround`): a frame round one digit, or a short underline, that :func:`without_rules`' runs
    longer than two digit heights do not reach. Of a frame only its band goes, as thick as its ink is on average:
    a digit written against it stays, less what lies in that band. Then a frame or ring drawn round one digit of
    the number, apart from it (:func:`_without_rings`)."""
    labels = ndimage.label(on, structure=np.ones((3, 3), dtype=bool))[0]
    kept = _without_surround(on, labels, number=True)
    return _without_rings(kept, labels if kept is on else None)


def _without_rings(on: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """``on`` without each piece drawn round one digit of a number, apart from it, as a teacher marks it (``2384``
    read ``23804``): its hole holds :data:`_HELD` of each piece inside, they are :data:`_INSIDE_RING` as tall or wide
    as it, its ink lies along its own outer edge (:func:`_outline`), it is :data:`_RING` times as tall as the digits
    beside it, and what it holds :data:`_HELD_DIGIT` as tall as they are. A slashed 0 (its slash short of a digit's
    height) or a digit's loop holding a speck stays; a lone digit has none beside it (:func:`_without_surround` takes
    its frame). Specks (under :data:`_SPECK` of the ink) are not looked at: a speckled picture's 10,000s of pieces
    would each be; nor, so, is a long number's or a sheet's each digit under 1% of the ink. ``labels``: ``on``'s
    pieces, when already numbered."""
    if labels is None:
        labels = ndimage.label(on, structure=np.ones((3, 3), dtype=bool))[0]
    sizes = np.bincount(labels.ravel())
    big = np.flatnonzero(sizes >= _SPECK * sizes[1:].sum())
    big = big[big > 0]
    if len(big) < 3:  # a ring, the digit in it, and a digit beside it at least
        return on
    labels, count, sizes = _only(labels, big, len(sizes)), len(big), np.append(0, sizes[big])
    slices = ndimage.find_objects(labels)
    boxes = np.array([(r.start, r.stop, c.start, c.stop) for r, c in slices])
    rings = []
    for k, (rows, columns) in enumerate(slices, start=1):
        top, bottom, left, right = boxes[k - 1]
        within = (boxes[:, 0] > top) & (boxes[:, 1] < bottom) & (boxes[:, 2] > left) & (boxes[:, 3] < right)
        if not within.any():  # cheap first: no piece's box lies inside this one's
            continue
        piece = labels[rows, columns] == k
        filled = ndimage.binary_fill_holes(piece)
        inside = np.bincount(labels[rows, columns][filled & ~piece], minlength=count + 1)
        held = np.flatnonzero(inside[1:] >= _HELD * sizes[1:]) + 1
        beside = np.setdiff1d(np.arange(1, count + 1), np.append(held, k))
        if not len(held) or not len(beside):
            continue
        height, width = bottom - top, right - left
        tall = boxes[held - 1, 1].max() - boxes[held - 1, 0].min()
        wide = boxes[held - 1, 3].max() - boxes[held - 1, 2].min()
        digits = digit_height(boxes[beside - 1, 1] - boxes[beside - 1, 0], 0.5)
        round_a_digit = height >= _RING * digits and tall >= _HELD_DIGIT * digits
        if (round_a_digit and max(tall / height, wide / width) >= _INSIDE_RING
                and (piece & ~_outline(piece, filled)).sum() <= _OFF_EDGE * piece.sum()):
            rings.append(k)
    return on & ~np.isin(labels, rings) if rings else on


def _underlines(labels: np.ndarray, k: int, *, several: bool) -> bool:
    """Whether piece ``k`` of ``labels`` underlines all the rest, measured along its own slope (within
    :data:`_TILT` degrees of level: a line drawn freehand slants): a bar :data:`_BAR` times as long as thick,
    at least half as wide as the rest, apart below it, thin (its ink on average at most :data:`_THIN_BAR` of the
    rest's height thick) and solid (filling :data:`_SOLID` of its box along the slope: not a second line of small
    digits joined), running on past the rest's lowest ink at both ends (:data:`_FOOT`: not a 2's base drawn
    apart). Under ``several`` pieces side by side (:func:`_side_by_side`: digits, whose last one may reach the
    bar's end) it must instead reach to within :data:`_FOOT` of the ends of that lowest ink (a 2's base beside a
    1 starts at the 2, right of the 1's foot), and a pixel apart is enough."""
    ys, xs = np.nonzero(labels == k)
    if np.ptp(xs) < _BAR:
        return False
    slope = float(np.polyfit(xs, ys, 1)[0])
    if abs(slope) > np.tan(np.radians(_TILT)):
        return False
    rest_ys, rest_xs = np.nonzero((labels > 0) & (labels != k))
    along, rest = (np.round(y - slope * x, 6) for y, x in ((ys, xs), (rest_ys, rest_xs)))  # along the bar's slope
                                                                      # (a level bar's slope is 1e-16, not 0)
    top, bottom, width = float(rest.min()), float(rest.max()) + 1, int(np.ptp(xs)) + 1
    thick = np.ptp(along) + 1
    if not (_BAR * thick <= width and width >= (np.ptp(rest_xs) + 1) / 2
            and along.min() >= bottom + (0 if several else max(2, _GAP * (bottom - top)))
            and len(ys) / width <= _THIN_BAR * (bottom - top) and len(ys) >= _SOLID * width * thick):
        return False
    reach = _FOOT * width
    lowest = rest_xs[rest >= bottom - max(1, (bottom - top) // 10)]  # the rest's lowest tenth
    if several:  # under all the digits' feet, give or take
        return bool(xs.min() <= lowest.min() + reach and xs.max() >= lowest.max() - reach)
    return bool(lowest.min() > xs.min() + reach and lowest.max() < xs.max() - reach)


def _side_by_side(boxes: np.ndarray) -> bool:
    """Whether some of the pieces of ``boxes`` (rows start, stop, columns start, stop) lie wholly right of all
    those before them: digits side by side, not one digit in pieces."""
    order = np.argsort(boxes[:, 2], kind="stable")
    starts, stops = boxes[order, 2], np.maximum.accumulate(boxes[order, 3])
    return bool((starts[1:] >= stops[:-1]).any())


def _outline(piece: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """The band of a frame ``piece`` (``filled``: with its holes filled) along its outer edge, as thick as the
    piece's ink spread along its whole edge would be (one pixel more)."""
    edge = filled & ~ndimage.binary_erosion(filled)
    thick = int(np.ceil(piece.sum() / max(int(edge.sum()), 1))) + 1
    return piece & ~ndimage.binary_erosion(filled, iterations=thick)


def _under_the_middle(rest: np.ndarray, height: int, bar: slice) -> bool:
    """Whether ``rest``'s lowest ink (its bottom tenth) starts and ends away from the ``bar``'s ends (beyond
    :data:`_FOOT` of its width): an underline runs on past the digit, where a 2's base drawn apart starts at
    the digit's foot."""
    rows = np.flatnonzero(rest.any(axis=1))
    columns = np.flatnonzero(rest[max(rows[0], rows[-1] + 1 - max(1, height // 10)) : rows[-1] + 1].any(axis=0))
    reach = _FOOT * (bar.stop - bar.start)
    return bool(columns[0] > bar.start + reach and columns[-1] < bar.stop - 1 - reach)


def without_rules(on: np.ndarray, *, ruled_page: bool = True, page_lines: bool = True,
                  tilted: bool = False, page: bool = False) -> np.ndarray:
    """``on`` without its rules: straight runs of ink across longer than :data:`_RULE_ACROSS` digit heights (an
    underline, a ruled line, a frame's top and bottom), and runs down longer than :data:`_RULE_DOWN` that are a
    frame's sides (joined to a run across) or lie along the picture's left or right edge (a scanner's dark edge).
    A run down anywhere else may be a tall "1", so it stays; on a ``page`` of lines of digits (a sheet), unless it
    is :data:`_RULE_DOWN_ANYWHERE` long (a margin line), and the digits' height is :func:`tallest`'s there. Left
    in, a rule joins the digits it touches into one mark, or is cut into sure-looking "1"s. With ``ruled_page`` (for
    a number), ink left beside rules under :data:`~digitlab.ruled_paper.RAGGED` of all the ink is their ragged edges
    and goes too; one small digit may be all that is left.
    The paper's printed lines go first (:func:`without_page_lines`), unless ``page_lines`` is False. With
    ``tilted`` (for a number), a run across :data:`_TILTED_ACROSS` heights of its tall pieces may slant up to
    :data:`_TILT` degrees, as an underline drawn freehand does (:func:`_tilted_runs`).

    >>> page = np.zeros((60, 200), dtype=bool)
    >>> page[10:40, 20:24] = page[10:40, 60:64] = True     # two "1"s...
    >>> page[44:47, 10:190] = True                          # ...underlined
    >>> int(without_rules(page).sum()) == 2 * 30 * 4
    True
    """
    on = without_page_lines(on) if page_lines else on
    labels, count = ndimage.label(on, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return on
    heights = np.array([rows.stop - rows.start for rows, _ in ndimage.find_objects(labels)])
    digit = digit_height(heights, 0.3, page=page)  # a rule is seldom most of the pieces
    across, down = (_runs(on, axis, longest * digit) for axis, longest in ((1, _RULE_ACROSS), (0, _RULE_DOWN)))
    if tilted:  # by the tall pieces only: a flat 2's base joined to a 5, beside the 5's flag, is no underline
        across |= _tilted_runs(labels, _TILTED_ACROSS * digit_height(heights, 0.5, page=page))
    framed = np.isin(labels, _nonzero(labels[across]))  # the pieces a run across belongs to
    strips, _ = ndimage.label(down)
    edge = max(1, int(_EDGE * on.shape[1]))
    at_edge = np.isin(strips, _nonzero(np.concatenate([strips[:, :edge], strips[:, -edge:]], axis=None)))
    anywhere = _runs(on, 0, _RULE_DOWN_ANYWHERE * digit) if page else False
    left = on & ~(across | (down & (framed | at_edge)) | anywhere | _box_sides(on, across, digit))
    if ruled_page and left.sum() < RAGGED * on.sum():
        return np.zeros_like(on)  # a ruled page, no number
    return left | _crossings(on & ~left & across, left)


def _crossings(rule: np.ndarray, left: np.ndarray) -> np.ndarray:
    """A ``rule``'s pixels a stroke of ``left`` crosses (ink above and below): a line had cut "305" into halves."""
    thick = int(np.median(rule.sum(axis=0)[rule.any(axis=0)])) if rule.any() else -1
    above, below = np.zeros_like(left), np.zeros_like(left)
    for step in range(1, thick + 2):  # within its thickness, a pixel to either side; a stroke touching it gets none
        above[step:] |= left[:-step]
        below[:-step] |= left[step:]
    return rule & ndimage.maximum_filter(above, (1, 3)) & ndimage.maximum_filter(below, (1, 3))


def _box_sides(on: np.ndarray, across: np.ndarray, digit: float) -> np.ndarray:
    """The two sides of a box only as tall as the writing in it (an answer box), shorter than :data:`_RULE_DOWN`: two
    runs ``across`` and, at their left ends and at their right ends, a run down in ``on`` of :data:`_SIDE` of a
    ``digit`` height or longer touching both (a pixel apart at most, in the rails' end columns). Only the columns as
    wide as the rails are thick go: a 1 written against a side stays. Left in, with the digits touching the box's top
    and bottom, the sides were read as two sure 1s round them ("66" as "1661", a reader's worksheets); a digit
    touching the box between its ends, or a 1 at the end of a number between two lines, is no side.

    >>> box = np.zeros((40, 100), dtype=bool)
    >>> box[[5, 34], 10:90] = True; box[5:35, [10, 89]] = True; box[5:35, 40:44] = True   # a 1 touching both
    >>> sides = _box_sides(box, _runs(box, 1, 60), 20)
    >>> sorted({int(x) for x in np.nonzero(sides)[1]})
    [10, 89]
    >>> lines = box.copy(); lines[5:35, 89] = False          # no right side: two lines and a 1 at their start
    >>> int(_box_sides(lines, _runs(lines, 1, 60), 20).sum())
    0
    """
    sides = np.zeros_like(on)
    rails = [(rows.start, rows.stop - 1, cols.start, cols.stop - 1) for rows, cols in
             ndimage.find_objects(ndimage.label(across, structure=np.ones((3, 3), dtype=bool))[0])]
    if len(rails) < 2:  # no box (most pictures): nothing more to measure
        return sides
    strips, _ = ndimage.label(_runs(on & ~across, 0, _SIDE * digit))
    found: dict[tuple, int] = {}  # (top rail, bottom rail, 2 for the left ends or 3 for the right) -> a strip
    for k, (rows, cols) in enumerate(ndimage.find_objects(strips), 1):
        for end in (2, 3):
            at = [r for r in rails if cols.start - 1 <= r[end] <= cols.stop]
            found.update({(top, bottom, end): k for top in at if 0 <= rows.start - 1 - top[1] <= 1
                          for bottom in at if bottom != top and 0 <= bottom[0] - rows.stop <= 1})
    for (top, bottom, end), k in found.items():
        if (top, bottom, 5 - end) in found:  # a box: both its sides
            thick = max(top[1] - top[0], bottom[1] - bottom[0]) + 1
            x = min(top[2], bottom[2]) if end == 2 else max(top[3], bottom[3]) - thick + 1
            sides[:, max(0, x):x + thick] |= strips[:, max(0, x):x + thick] == k
    return sides


def digit_height(heights: np.ndarray, share: float, *, page: bool = False) -> float:
    """The digits' height among pieces of these ``heights``: the median of those at least ``share`` as tall as the
    tallest (on a ``page`` of lines of digits, a sheet, :func:`tallest`; in a number or one digit's picture, the
    tallest piece is a digit: a piece of squared paper's lines could be the 4th tallest, a speck of dust the 3rd).

    >>> float(digit_height(np.array([40, 42, 38, 12, 20]), 0.5, page=True))
    40.0
    >>> sheet = np.array([40] * 40 + [700])                 # 40 digits and a margin line
    >>> float(digit_height(sheet, 0.5, page=True)), float(digit_height(sheet, 0.5))
    (40.0, 700.0)
    """
    return float(np.median(heights[heights >= share * tallest(heights, page=page)]))


def tallest(heights: np.ndarray, *, page: bool = False) -> float:
    """The tallest of ``heights``; on a ``page`` of lines of digits (a sheet), the tallest but :data:`_OUTLIERS` of
    them, at most :data:`_MOST_OUTLIERS`: a margin line or a sliver of the page's edge, as tall as the picture, is no
    measure of them."""
    skip = min(_MOST_OUTLIERS, int(_OUTLIERS * len(heights))) if page else 0
    return float(np.sort(heights)[-1 - skip])


def _tilted_runs(labels: np.ndarray, longest: float) -> np.ndarray:
    """The pixels of the pieces ``labels`` in straight runs at least ``longest`` across that slant half a degree to
    :data:`_TILT` degrees: of each piece that wide (and with that many pixels; the :data:`_TILTED_PIECES` widest,
    and ``longest`` at least :data:`_TILTED_LEAST` px: a texture of short dashes is no page of underlines), the
    slope along which its rows peak most sharply (:func:`_slope_of_longest`), its runs found with the piece
    sheared level along it, a pixel up or down counting as in the row (a thin line drawn at a slant steps where
    the rounding does not)."""
    found = np.zeros(labels.shape, dtype=bool)
    longest = max(longest, _TILTED_LEAST)
    slices = ndimage.find_objects(labels)
    sizes = np.bincount(labels.ravel())[1:]
    wide = [k for k, (rows, columns) in enumerate(slices, 1)
            if rows is not None and columns.stop - columns.start >= longest and sizes[k - 1] >= longest]
    for k in sorted(wide, key=lambda k: slices[k - 1][1].start - slices[k - 1][1].stop)[:_TILTED_PIECES]:
        rows, columns = slices[k - 1]
        piece = labels[rows, columns] == k
        ys, xs = np.nonzero(piece)
        slope = _slope_of_longest(ys, xs, longest)
        if slope:
            shift = -np.round(slope * np.arange(piece.shape[1])).astype(np.int64)
            shift -= shift.min()
            level = np.zeros((piece.shape[0] + int(shift.max()), piece.shape[1]), dtype=bool)
            level[ys + shift[xs], xs] = True  # the line along the slope is a row, give or take one (rounding)
            level |= ndimage.binary_dilation(level, structure=np.ones((3, 1), dtype=bool))
            found[rows, columns][ys, xs] = _runs(level, 1, longest)[ys + shift[xs], xs]
    return found


def _slope_of_longest(ys: np.ndarray, xs: np.ndarray, longest: float) -> float:
    """The slope, half a degree to :data:`_TILT` degrees off level either way (a reader's double underline fell 0.9°:
    level runs caught a third of it), along which the rows of the pixels ``ys, xs`` (sheared level along it) peak most
    sharply (:func:`~digitlab.ruled_paper.sharpest_rows`, half a degree at a
    time, then a tenth: a thick line lies in as many full rows over a degree or two, but most evenly along its own
    slope), when a row then holds ``longest`` or more; 0.0 otherwise, or when level peaks as sharply."""
    best, rows = sharpest_rows(ys, xs, _TILT, 0.5)
    if abs(best) < 0.5 or rows(best).max() < longest or rows(best) @ rows(best) <= rows(0.0) @ rows(0.0):
        return 0.0
    return float(np.tan(np.radians(best)))


def _nonzero(labels: np.ndarray) -> np.ndarray:
    """The distinct labels in ``labels`` but 0 (no piece)."""
    found = np.unique(labels)
    return found[found > 0]


def _runs(on: np.ndarray, axis: int, longest: float) -> np.ndarray:
    """The pixels of ``on`` in straight runs along ``axis`` at least ``longest`` long: a morphological opening
    with a line (its length odd, so that the two filters centre alike and the opening is exact). Beyond the
    picture is no ink: a run that reaches the edge is as long as it is, not mirrored into one twice as long.

    >>> _runs(np.array([[1, 1, 1, 0, 0, 0, 0, 0]], dtype=bool), 1, 5).any()   # 3 px at the edge: not a 5-px run
    np.False_
    """
    length = max(3, int(round(longest))) | 1
    shrunk = ndimage.minimum_filter1d(on.view(np.uint8), length, axis=axis, mode="constant", cval=0)
    return ndimage.maximum_filter1d(shrunk, length, axis=axis, mode="constant", cval=0).astype(bool)
