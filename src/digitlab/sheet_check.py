"""Does a cut sheet hold what ``--sheet`` says it does? The checks before any of its digits is saved.

Counting lines is not enough: a sheet scanned upside down has as many lines, each labelled with the digit of the
line opposite; a sheet written ``0 1 2 ... 9`` on every line, or photographed sideways with as many digits to a
line as lines, has them too. No model runs at import, so the sheet is compared with the mean shape of each digit
in scikit-learn's 8×8 handwritten digits (shipped with scikit-learn, so offline), with each line's digits
averaged into one shape first:

- its lines' digits must be alike: two digits labelled the same more alike than two labelled differently, by
  :data:`ALIKE` (every line of one digit, not one of each);
- the labels must fit the lines better than the likeliest mistakes do: the sheet read upside down (lines in the
  other order, each digit turned; not for a sheet that reads the same so, such as ``0`` or ``619``), the order
  reversed, or shifted by one line (``1234567890`` for ``0123456789``). An alternative that fits by :data:`MARGIN`
  more than ``--sheet`` refuses the sheet, naming it. (Two lines swapped, ``0123456798``, are not caught.)

On the benchmark's sheets (`benchmarks/bench_sheet.py`) the labels as written fit with 0.63-0.71 (mean
correlation of a line's shape with its digit's), every alternative above with 0.38-0.51.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from digitlab.errors import DigitlabError

__all__ = ["check_labels", "ALIKE", "MARGIN"]

ALIKE = 0.05
"""How much more alike (mean correlation of their 8×8 shapes) two digits labelled the same must be than two labelled
differently: on the benchmark's sheets 0.12 or more when written as asked, under 0 when not."""
MARGIN = 0.05
"""How much better (mean correlation) another reading of the sheet must fit than ``--sheet`` to refuse it."""


def check_labels(prepared: list[np.ndarray], lines: list[int], rows: str) -> None:
    """Refuse, in one line, a sheet whose digits (``prepared`` 28×28, on line ``lines[i]``) do not fit ``rows``."""
    shapes = np.stack([_shape(p) for p in prepared])
    line_of = np.asarray(lines)
    label_of = np.array([int(rows[n]) for n in line_of])
    if len(set(label_of.tolist())) >= 2 and _alike(shapes, label_of) < ALIKE:
        raise DigitlabError("the digits on each line are not alike (they look as much like other lines' digits as like "
                            "their own): write one digit to a line, the same digit all along it, and photograph the "
                            "sheet upright")
    given = _fit(shapes, line_of, rows, turned=False)
    readings = {}
    if _turned_over(rows) != rows:  # a sheet that reads the same upside down ("0", "619") cannot be told
        readings["upside down"] = _fit(shapes, line_of, rows, turned=True)
    for other in (rows[::-1], rows[1:] + rows[:1], rows[-1:] + rows[:-1]):
        if other != rows:
            readings[other] = _fit(shapes, line_of, other, turned=False)
    name, best = max(readings.items(), key=lambda item: item[1], default=("", -np.inf))
    if best > given + MARGIN:
        if name == "upside down":
            raise DigitlabError("the sheet looks upside down: turn the picture the right way up and import it again")
        raise DigitlabError(f"the lines look more like {name} than like --sheet {rows}: give --sheet the lines' digits "
                            "in the order they are written, top line first")


def _alike(shapes: np.ndarray, label_of: np.ndarray) -> float:
    """How much more alike two digits labelled the same are than two labelled differently: the mean correlation of
    their shapes over all such pairs, the one less the other (0 when no pair of either kind exists)."""
    unit = _unit(shapes)
    similar = unit @ unit.T
    same = label_of[:, None] == label_of[None, :]
    pairs = same & ~np.eye(len(label_of), dtype=bool)
    if not pairs.any() or same.all():
        return 0.0 if not pairs.any() else float("inf")
    return float(similar[pairs].mean() - similar[~same].mean())


def _turned_over(rows: str) -> str:
    """What the lines' digits read as on the sheet turned upside down: the last line first, each digit turned
    half round (0, 1, 8 stay, and so, nearly, do a 2 and a 5; 6 and 9 swap; any other digit becomes none: "?")."""
    return "".join({"0": "0", "1": "1", "2": "2", "5": "5", "8": "8", "6": "9", "9": "6"}.get(d, "?")
                   for d in reversed(rows))


def _fit(shapes: np.ndarray, line_of: np.ndarray, rows: str, *, turned: bool) -> float:
    """Mean correlation of each line's mean shape with the template of the digit ``rows`` gives it; ``turned``:
    the sheet read upside down (the last line first, each shape turned half round)."""
    templates = _templates()
    count = len(rows)
    fits = []
    for n, digit in enumerate(rows):
        source = count - 1 - n if turned else n
        if not np.any(line_of == source):
            continue  # a line whose every mark was left out
        mean = _mean(shapes, line_of, source)
        if turned:
            mean = mean.reshape(8, 8)[::-1, ::-1].ravel()
        fits.append(float(_unit(mean[None])[0] @ templates[int(digit)]))
    return float(np.mean(fits)) if fits else 0.0


def _mean(shapes: np.ndarray, line_of: np.ndarray, line: int) -> np.ndarray:
    """The mean shape of one line's digits (zeros for a line with none)."""
    mine = shapes[line_of == line]
    return mine.mean(axis=0) if len(mine) else np.zeros(shapes.shape[1], np.float32)


def _shape(prepared: np.ndarray) -> np.ndarray:
    """A prepared 28×28 digit as scikit-learn's digits are drawn: its ink's square box shrunk to 8×8 (64 values)."""
    ys, xs = np.nonzero(prepared > 40)
    if len(ys) == 0:
        return np.zeros(64, np.float32)
    crop = prepared[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    side = max(crop.shape)
    square = np.zeros((side, side), np.float32)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return np.asarray(Image.fromarray(square).resize((8, 8), Image.Resampling.BOX), np.float32).ravel()


def _unit(rows: np.ndarray) -> np.ndarray:
    """Each row centred and scaled to length 1 (a row of one value stays zero)."""
    centred = rows - rows.mean(axis=1, keepdims=True)
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)


@lru_cache(maxsize=1)
def _templates() -> np.ndarray:
    """The mean shape of each digit 0-9 in scikit-learn's 1,797 handwritten 8×8 digits, as unit rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _unit(np.stack([digits.images[digits.target == d].mean(axis=0).ravel() for d in range(10)]))
