"""The shapes of small marks beside digits, for :mod:`digitlab.segment` and :mod:`digitlab.separators`: a bar lying
near level along its own axis (a minus or a dash, in a photo turned too), a colon's two dots stacked into one piece."""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]

_STEEPEST = np.radians(25)  # a line rises or falls at most 25° (digitlab.segment's steepest slope)
_DOT = (0.08, 0.3)  # a colon's dot is 8-30% of a digit's height across (digitlab.separators)...
_FILLED = 0.7  # ...and fills 70% of its box or more


def level_bar(mask: np.ndarray) -> tuple[float, int, int] | None:
    """A piece's slope, thickness and length along its own axis when it is a bar twice as long as thick lying within
    25° of level (the steepest line), else None: a minus in a photo turned 20°, its upright box under
    twice as wide as tall, was taken for a piece of the digit beside it ("-54" read ``?54``)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 2:
        return None
    xs, ys = xs - xs.mean(), ys - ys.mean()
    angle = 0.5 * np.arctan2(2 * np.mean(xs * ys), np.mean(xs * xs) - np.mean(ys * ys))  # its longer axis, from level
    along = int(np.ptp(xs * np.cos(angle) + ys * np.sin(angle))) + 1
    across = int(np.ptp(ys * np.cos(angle) - xs * np.sin(angle))) + 1
    bar = abs(angle) <= _STEEPEST + 1e-9 and along >= 2 * across
    return (float(np.tan(angle)), across, along) if bar else None


def two_dots(box: Box, labels: np.ndarray, pieces: tuple[int, ...] | list[int], height: int) -> bool:
    """Whether a fragment's ``pieces`` are a colon's two dots, stacked into one fragment by :func:`digitlab.segment._merge_stacked`:
    round (neither side over twice the other), 8-30% of the digit's ``height`` across as :mod:`digitlab.separators`
    takes a dot, solid (a pen's dot fills π/4 of its box, a 9's small loop broken into two arcs 53-64%: its pieces
    stay the 9's), one wholly above the other."""
    if len(pieces) != 2:
        return False
    rows = []
    for piece in pieces:
        ys, xs = np.nonzero(labels[box[1] : box[3], box[0] : box[2]] == piece)
        tall, wide = int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1
        if max(tall, wide) > 2 * min(tall, wide) or not _DOT[0] * height <= max(tall, wide) < _DOT[1] * height \
                or len(xs) < _FILLED * tall * wide:
            return False
        rows.append((int(ys.min()), int(ys.max())))
    (_, upper_foot), (lower_top, _) = sorted(rows)
    return lower_top > upper_foot
