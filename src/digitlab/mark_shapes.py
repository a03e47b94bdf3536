"""The shapes of small marks beside digits, for :mod:`digitlab.segment` and :mod:`digitlab.separators`: a bar lying
near level along its own axis (a minus or a dash, in a photo turned too), a colon's two dots stacked into one piece."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]

STEEPEST = 25  # degrees: a line of digits rises or falls at most this much (written uphill, photographed turned)
DOT = (0.08, 0.3)  # a dot's longer side (a point's, a colon's), in digit heights...
_FILLED, _THICK = 0.7, 0.3  # ...and a colon's dot fills 70% of its box or more, or is as thick as 30% of its long side
# (a small dot's pixels: a 5×6 diamond fills 60%, its middle 2.2 px from its edge, 37%; a 9's broken arc 14%)


def sides(mask: np.ndarray, slope: float) -> tuple[int, int]:
    """A piece's thickness and length across and along a line of ``slope`` (its box's sides when it has no ink)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return mask.shape[0], mask.shape[1]
    norm = float(np.hypot(1.0, slope))
    return int(np.ptp((ys - slope * xs) / norm)) + 1, int(np.ptp((xs + slope * ys) / norm)) + 1


def level_bar(mask: np.ndarray) -> tuple[float, int, int] | None:
    """A piece's slope, thickness and length along its own axis when it is a bar twice as long as thick lying within
    25° of level (the steepest line), else None: a minus in a photo turned 20°, its upright box under
    twice as wide as tall, was taken for a piece of the digit beside it ("-54" read ``?54``)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 2:
        return None
    xs, ys = xs - xs.mean(), ys - ys.mean()
    angle = 0.5 * np.arctan2(2 * np.mean(xs * ys), np.mean(xs * xs) - np.mean(ys * ys))  # its longer axis, from level
    if abs(angle) > np.radians(STEEPEST) + 1e-9:
        return None
    across, along = sides(mask, float(np.tan(angle)))
    return (float(np.tan(angle)), across, along) if along >= 2 * across else None


def two_dots(box: Box, labels: np.ndarray, pieces: tuple[int, ...] | list[int], height: int) -> bool:
    """Whether a fragment's ``pieces`` are a colon's two dots, stacked into one piece by ``segment._merge_stacked``:
    round (neither side over twice the other), 8-30% of the digit's ``height`` across as :mod:`digitlab.separators`
    takes a dot, solid (a pen's dot fills π/4 of its box, a 9's small loop broken into two arcs 53-64%: its pieces
    stay the 9's; a dot of a few pixels fills less, but is thick where an arc is thin), one wholly above the other."""
    if len(pieces) != 2:
        return False
    rows = []
    for piece in pieces:
        own = labels[box[1] : box[3], box[0] : box[2]] == piece
        ys, xs = np.nonzero(own)
        tall, wide = int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1
        thick = ndimage.distance_transform_edt(np.pad(own, 1)).max() >= _THICK * max(tall, wide)
        if max(tall, wide) > 2 * min(tall, wide) or not DOT[0] * height <= max(tall, wide) < DOT[1] * height \
                or not (len(xs) >= _FILLED * tall * wide or thick):
            return False
        rows.append((int(ys.min()), int(ys.max())))
    (_, upper_foot), (lower_top, _) = sorted(rows)
    return lower_top > upper_foot
