"""A sheet of handwritten digits cut into labelled samples: a class's handwriting, collected on paper.

A teacher hands out paper; each student writes a line of 0s, a line of 1s, ... (or any digits, one digit to
a line, in an order agreed beforehand), and the sheets are photographed. ``digitlab data import SET
sheet.jpg --sheet 0123456789`` finds the lines of digits as ``digitlab read`` does (:mod:`digitlab.segment`:
specks dropped, pieces of one digit merged, the lines of ruled or squared paper left out, lines photographed
turned) and labels every digit of the n-th line with the n-th digit of ``--sheet``::

    picture ──► ink_of ──► find_marks ──► lines == --sheet? ──► each digit: its crop of the picture (the sample's
                                           (else refused,        original) and its ink alone, prepared the
                                            nothing saved)       MNIST way (the sample's 28×28) ──► check_labels

A sheet whose lines do not match ``--sheet`` in number is refused whole, and so is one whose digits do not fit
``--sheet``'s (:mod:`digitlab.sheet_check`: upside down, in another order, or not one digit to a line). On a
line, a mark under half its digits' height both ways (a dot), with under 30% of their ink (a stray stroke), or
:data:`WIDER` times as wide as they are and wider than tall (two digits run together) is left out and counted: a
line holds one digit, so its digits are alike. A sheet photographed turned :data:`TURNED` degrees or more has its
digits turned back level, as they were written.

Examples
--------
>>> from PIL import Image, ImageDraw
>>> page = Image.new("L", (400, 300), 255)
>>> draw = ImageDraw.Draw(page)
>>> for x in (60, 160, 260):                                    # a line of 1s ...
...     draw.line([(x, 20), (x, 110)], fill=0, width=12)
>>> for x in (60, 160, 260):                                    # ... and a line of 0s
...     draw.ellipse([x - 30, 160, x + 30, 270], outline=0, width=12)
>>> cut = cut_sheet(page, "10")
>>> [d.label for d in cut.digits], [d.line for d in cut.digits], cut.left_out
([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], 0)
>>> cut.digits[0].prepared.shape, cut.digits[0].picture[:4]
((28, 28), b'\\x89PNG')
>>> cut_sheet(page, "012")
Traceback (most recent call last):
...
digitlab.errors.DigitlabError: found 2 lines of digits, but --sheet names 3 (012): write one digit to a line, the lines apart, and give --sheet the lines' digits in order
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from digitlab.data.images import prepare_digit
from digitlab.data.ink import _flatten_alpha
from digitlab.errors import DigitlabError
from digitlab.rules import digit_height
from digitlab.segment import Box, Ink, Mark, box_gap, digit_input, find_marks, full_height, ink_and_gray, reading_order
from digitlab.sheet_check import check_labels

__all__ = ["SheetDigit", "CutSheet", "cut_sheet", "check_rows", "MAX_DIGITS", "WIDER", "WIDEST", "TURNED"]

MAX_DIGITS = 200
"""Most digits on one sheet (20 lines of 10); more is refused, as a texture or a page of text. Up to twice as many
marks are looked at first (a digit of two strokes is two marks until its line is read)."""
WIDER = 1.7
"""A mark wider than this many times the median width of its line's digits is left out: two digits run together."""
WIDEST = 1.25
"""The same, on a line of one or two digits: a mark wider than this many times their height."""
TURNED = 3.0
"""Lines rising or falling this many degrees or more (the sheet photographed turned): the digits are turned back."""
_MARGIN = 0.15  # of the line's digit height, round each digit's crop of the picture
_FULL = 0.5  # a line whose tallest mark is under half a digit's height is no line of digits...
_NEAR = 0.3  # ...its marks join the digit they lie over or under, closer than 0.3 of a digit's height
_SLIVER, _LONG = 0.15, 2.0  # a mark this thin (of a digit's height) on the picture's edge, or this thin and 2
                            # digits long, is a sliver of the page's edge...
_FAINT_EDGE = 0.3  # ...as is a mark on the picture's edge whose ink is under 30% as strong as the usual mark's...
# ...and so are 3 or more thin marks one below another spanning 4 digits' heights, each under 8 heights below the last
# and at most a tenth of that drop aside, 2 of them between the lines of digits or all of them a hairline (2 px wide):
# a margin line photographed turned (a thin line across columns of pixels fades where it steps, in pieces), not a
# column of 1s (one on each line, a pen's width)
_CHAIN, _LINK, _STEEP, _HAIRLINE = 4.0, 8.0, 0.1, 2
_JOIN = 0.1  # pieces on a line closer side by side than a tenth of its digits' height are one digit
_SLANTED = 1.0  # a 1 written slanted can be as wide as tall: no narrower mark is taken for two digits
_SLIGHT = 0.3  # a mark with under 30% of the ink of its line's digits is a stray stroke


@dataclass(frozen=True)
class SheetDigit:
    """One digit cut from a sheet.

    Attributes
    ----------
    label : int
        The digit its line holds.
    line : int
        Its line, 0 for the top one.
    box : Box
        Where it is, in the picture's pixels.
    picture : bytes
        Its crop of the picture, as a grey PNG: what a person would see of it.
    prepared : ndarray of uint8, shape (28, 28)
        Its own ink in MNIST form (:func:`~digitlab.data.images.prepare_digit`).
    """

    label: int
    line: int
    box: Box
    picture: bytes = field(repr=False)
    prepared: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class CutSheet:
    """A sheet's digits in reading order, how many marks were left out, and the lines' angle in degrees."""

    digits: list[SheetDigit]
    left_out: int
    angle: float


def check_rows(rows: str) -> str:
    """``rows`` if it names a sheet's lines (1 to 20 digits 0-9), else a one-line error.

    >>> check_rows("0123456789")
    '0123456789'
    >>> check_rows("0-9")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: --sheet must be the digit of each line in order, e.g. 0123456789, up to 20 lines, got '0-9'
    """
    if not isinstance(rows, str) or not 1 <= len(rows) <= MAX_DIGITS // 10 or not rows.isascii() or not rows.isdigit():
        raise DigitlabError(f"--sheet must be the digit of each line in order, e.g. 0123456789, up to "
                            f"{MAX_DIGITS // 10} lines, got {str(rows)[:40]!r}")
    return rows


def cut_sheet(image: Any, rows: str) -> CutSheet:
    """Cut the digits out of a sheet whose n-th line holds copies of the digit ``rows[n]``.

    Parameters
    ----------
    image : PIL image or ndarray
        The sheet: anything :func:`~digitlab.segment.ink_of` takes (dark ink on light paper, or light on dark).
    rows : str
        The digit each line holds, top line first (:func:`check_rows`).

    Raises
    ------
    DigitlabError
        A blank picture; more than :data:`MAX_DIGITS` marks; another number of lines than ``rows`` names; or digits
        that do not fit ``rows`` (:func:`~digitlab.sheet_check.check_labels`).
    """
    rows = check_rows(rows)
    ink, gray, alpha = ink_and_gray(image)  # gray: the picture as the ink map sees it (at most 1024 px a side)
    if alpha is not None:  # transparent: on paper of the opposite shade to its strokes, as the ink map saw it
        gray = _flatten_alpha(gray, alpha)
    try:
        marks = find_marks(ink, most=2 * MAX_DIGITS, page=True)
    except DigitlabError as exc:
        if str(exc).startswith("found"):
            raise _too_many() from None
        raise
    capped = len(marks) >= 2 * MAX_DIGITS  # at the cap: some pieces went unseen
    marks, slivers = _without_slivers(marks, ink)
    lines, left_out = _digit_lines(marks)
    left_out += slivers
    if sum(map(len, lines)) > MAX_DIGITS or capped:
        raise _too_many()
    if len(lines) != len(rows):
        extra = " (a name or a title on the sheet is a line too: write it on the back)" * (len(lines) == len(rows) + 1)
        raise DigitlabError(f"found {len(lines)} line{'s' * (len(lines) != 1)} of digits, but --sheet names "
                            f"{len(rows)} ({rows}){extra}: write one digit to a line, the lines apart, and give "
                            "--sheet the lines' digits in order")
    angle = _page_angle(lines)
    digits = []
    for n, line in enumerate(lines):
        height, kept = _one_digit_each(ink, line)
        left_out += len(line) - len(kept)
        digits += [_digit(gray, ink, mark, int(rows[n]), n, height, angle) for mark in kept]
    if digits:
        check_labels([d.prepared for d in digits], [d.line for d in digits], rows)
    return CutSheet(digits, left_out, angle)


def _one_digit_each(ink: Ink, line: list[Mark]) -> tuple[float, list[Mark]]:
    """The line's digits' height, and its marks that are one digit each: as big (either way) as half that
    height, with 30% of their usual ink, and not both :data:`WIDER` times as wide as they usually are and wider
    than tall (a 1 written slanted can be as wide as tall: :data:`_SLANTED`); on a line of one or two marks, not
    wider than :data:`WIDEST` times the height. A line holds one digit, so they are alike."""
    full = full_height(line)
    height = float(np.median([m.height for m in full]))
    typical_ink = float(np.median([_ink(ink, m) for m in full]))
    widest = WIDEST * height
    if len(full) >= 3:
        widest = max(WIDER * float(np.median([m.width for m in full])), _SLANTED * height)
    return height, [m for m in line if max(m.width, m.height) >= _FULL * height and m.width <= widest
                    and _ink(ink, m) >= _SLIGHT * typical_ink]


def _too_many() -> DigitlabError:
    return DigitlabError(f"found more separate marks than a sheet of {MAX_DIGITS} digits holds (noise, a texture or a "
                         "page of text?): photograph the sheet alone, or in parts")


def _digit_lines(marks: list[Mark]) -> tuple[list[list[Mark]], int]:
    """The sheet's lines of digits, and how many marks belong to none.

    A "line" of small marks only (a digit's loose flag, a blot between two lines) is no line: each of its marks
    joins the digit it lies over or under, closer than :data:`_NEAR` of a digit's height, or is left out. On a line,
    pieces whose inks lie side by side closer than :data:`_JOIN` of its digits' height are one digit (a stroke
    broken along its length): on a sheet, digits are written apart.
    """
    grouped = [[m for m in marks if m.line == n] for n in range(1 + max((m.line for m in marks), default=-1))]
    typical = float(np.median([m.height for line in grouped for m in full_height(line)])) if marks else 0.0
    lines = [line for line in grouped if max(m.height for m in line) >= _FULL * typical]
    left_out = 0
    for mark in (m for line in grouped if line not in lines for m in line):
        above_or_below = [(box_gap(mark.box, m.box), k, i) for k, line in enumerate(lines) for i, m in enumerate(line)
                          if min(mark.box[2], m.box[2]) > max(mark.box[0], m.box[0])]
        gap, k, i = min(above_or_below, default=(np.inf, 0, 0))
        if gap <= _NEAR * typical:
            lines[k][i] = _joined(lines[k][i], mark)
        else:
            left_out += 1
    for k, line in enumerate(lines):
        height = float(np.median([m.height for m in full_height(line)]))
        joined = [line[0]]
        for mark in line[1:]:
            if _ink_gap(joined[-1], mark) < _JOIN * height:
                joined[-1] = _joined(joined[-1], mark)
            else:
                joined.append(mark)
        lines[k] = joined
    return lines, left_out


def _without_slivers(marks: list[Mark], ink: Ink) -> tuple[list[Mark], int]:
    """``marks`` less those thinner than :data:`_SLIVER` of a digit's height on the picture's edge (of ``ink``'s map)
    or :data:`_LONG` digits long, or on its edge and fainter than :data:`_FAINT_EDGE` of the usual mark at their
    strongest, the rest grouped into lines again; and how many went. They are strips of the page's edge and of the
    desk, on a sheet photographed slightly turned or lying on a desk: left in, one is a line of its own or joins two
    lines of digits, and the sheet is refused for its count of lines."""
    if not marks:
        return marks, 0
    typical = digit_height(np.array([m.height for m in marks]), 0.5, page=True)
    strongest = {m.box: float(_own(ink, m).max(initial=0)) for m in marks}
    usual = float(np.median(list(strongest.values())))

    def sliver(mark: Mark) -> bool:
        x0, y0, x1, y1 = mark.box
        on_edge = min(x0, y0) == 0 or x1 == ink.map.shape[1] or y1 == ink.map.shape[0]
        long = max(mark.width, mark.height) >= _LONG * typical
        faint = on_edge and strongest[mark.box] < _FAINT_EDGE * usual  # the page's shaded edge by a desk
        return faint or (on_edge or long) and min(mark.width, mark.height) <= _SLIVER * typical

    chained = _chained({m.box for m in marks if min(m.width, m.height) <= _SLIVER * typical}, typical,
                       [m.box for m in marks if not sliver(m) and m.width > _HAIRLINE and m.height < _LONG * typical])
    kept = [m for m in marks if not sliver(m) and m.box not in chained]
    return (reading_order(kept) if len(kept) < len(marks) else marks), len(marks) - len(kept)


def _chained(thin: set[Box], typical: float, boxes: list[Box]) -> set[Box]:
    """Of the boxes of ``thin`` marks, those in chains running down the page (:data:`_CHAIN`): a margin line in
    pieces. Each link goes down to the next thin mark starting under :data:`_LINK` digits' heights (``typical``)
    below the last one's end, at most :data:`_STEEP` of the way down aside (plus two pixels); and two of a chain's
    marks share no row with any of the page's other marks (``boxes``: its digits' and strokes', not its slivers,
    hairlines or lines, which would hide the gaps; they lie between its lines of digits, as no digit does), or all of
    them are :data:`_HAIRLINE` wide, as no pen's stroke is (a reviewer's column of thin 1s, one on each line, was
    taken for a margin line)."""
    chains: list[list[tuple[int, int, int, int]]] = []
    for box in sorted(thin, key=lambda b: b[1]):
        for chain in chains:
            x0, _, x1, y1 = chain[-1]
            drop = box[1] - y1
            if 0 <= drop < _LINK * typical and abs((box[0] + box[2]) - (x0 + x1)) / 2 <= _STEEP * (box[3] - y1) + 2:
                chain.append(box)
                break
        else:
            chains.append([box])

    def between(chain: list[Box]) -> int:
        return sum(all(b[3] <= o[1] or o[3] <= b[1] for o in boxes if o not in chain) for b in chain)

    return {b for chain in chains if len(chain) >= 3 and chain[-1][3] - chain[0][1] >= _CHAIN * typical
            and (between(chain) >= 2 or all(b[2] - b[0] <= _HAIRLINE for b in chain)) for b in chain}


def _ink_gap(a: Mark, b: Mark) -> float:
    """The narrowest gap from ``a``'s ink to ``b``'s on its right, over the rows where both have ink (infinite
    where they share none): boxes of slanted digits overlap, their inks need not."""
    top, bottom = max(a.box[1], b.box[1]), min(a.box[3], b.box[3])
    if top >= bottom:
        return np.inf
    left, right = a.mask[top - a.box[1]:bottom - a.box[1]], b.mask[top - b.box[1]:bottom - b.box[1]]
    both = left.any(axis=1) & right.any(axis=1)
    if not both.any():
        return np.inf
    a_ends = a.box[0] + left.shape[1] - np.argmax(left[:, ::-1], axis=1)  # one past each row's last ink pixel
    b_starts = b.box[0] + np.argmax(right, axis=1)
    return float((b_starts - a_ends)[both].min())


def _ink(ink: Ink, mark: Mark) -> float:
    """How much ink a mark holds: its own pixels' ink strength, summed."""
    return float(_own(ink, mark).sum())


def _own(ink: Ink, mark: Mark) -> np.ndarray:
    """The ink strength of a mark's own pixels."""
    x0, y0, x1, y1 = mark.box
    return ink.map[y0:y1, x0:x1][mark.mask]


def _joined(a: Mark, b: Mark) -> Mark:
    """Two marks as one (``a``'s line): the box round both, each one's own pixels in it."""
    box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]), max(a.box[2], b.box[2]), max(a.box[3], b.box[3]))
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), dtype=bool)
    for m in (a, b):
        mask[m.box[1] - box[1]:m.box[3] - box[1], m.box[0] - box[0]:m.box[2] - box[0]] |= m.mask
    return Mark(box, mask, a.pieces + b.pieces, a.line)


def _page_angle(lines: list[list[Mark]]) -> float:
    """How many degrees the sheet's lines rise, left to right: one slope fitted through every line's digits'
    centres at once, each line at its own height (so that lines of two digits count too); 0 under :data:`TURNED`."""
    rise = run = 0.0
    for line in lines:
        full = full_height(line)
        x = np.array([(m.box[0] + m.box[2]) / 2 for m in full])
        y = np.array([(m.box[1] + m.box[3]) / 2 for m in full])
        rise += float(((x - x.mean()) * (y - y.mean())).sum())
        run += float(((x - x.mean()) ** 2).sum())
    angle = float(np.degrees(np.arctan(-rise / run))) if run > 0 else 0.0
    return angle if abs(angle) >= TURNED else 0.0


def _digit(gray: np.ndarray, ink: Ink, mark: Mark, label: int, line: int, height: float, angle: float) -> SheetDigit:
    """One mark as a sample: its crop of the picture (PNG) and its own ink, turned back by ``angle``, prepared."""
    x0, y0, x1, y1 = mark.box
    pad = int(round(_MARGIN * height))
    crop = gray[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad]
    buffer = io.BytesIO()
    Image.fromarray(np.round(crop * 255).astype(np.uint8), "L").save(buffer, "PNG")
    own = digit_input(ink, mark)
    if angle:
        own = np.clip(ndimage.rotate(own, -angle, order=1), 0, None)
    return SheetDigit(label, line, ink.to_picture(mark.box), buffer.getvalue(),
                      prepare_digit(own, (28, 28), 255, rules=False))
