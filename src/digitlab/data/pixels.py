"""The JSON path: a grid of pixel values (the API's ``"pixels"``) checked into a uint8 image, each bad value named.

:func:`~digitlab.data.images.prepare_digit` then prepares it as a picture (cropped, scaled, centred).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np

from digitlab.errors import DigitlabError

__all__ = ["prepare_pixels"]


def prepare_pixels(pixels: Any, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Validate a grid of pixel values (e.g. the API's JSON ``"pixels"``) into a uint8 image.

    Parameters
    ----------
    pixels : nested list or ndarray
        ``shape`` rows of numbers from 0 to 255 (fractions are rounded).
    shape : (int, int)
        The size expected, 28×28 by default.

    Returns
    -------
    ndarray of uint8, shape ``shape``
        Ready for :func:`prepare_digit`, which centres it and decides ink vs paper.

    Examples
    --------
    >>> prepare_pixels([[0] * 28] * 28).shape, prepare_pixels([[-0.4, 1], [2, 255.3]], shape=(2, 2)).tolist()
    ((28, 28), [[0, 1], [2, 255]])
    >>> prepare_pixels([[0, 1], [2, 300]], shape=(2, 2))
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: pixels must be between 0 and 255; found 300 at row 1, column 1
    >>> prepare_pixels(None)
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: pixels must be 28 rows of 28 numbers from 0 to 255; got null
    """
    rows, cols = shape
    wanted = f"pixels must be {rows} rows of {cols} numbers from 0 to 255"
    if not isinstance(pixels, (list, tuple, np.ndarray)):  # JSON's null was told "rows differ in length" (an engineer)
        got = ("null" if pixels is None else "true or false" if isinstance(pixels, bool) else "a single number"
               if isinstance(pixels, (int, float)) else "text" if isinstance(pixels, str) else "an object")
        raise DigitlabError(f"{wanted}; got {got}")
    try:
        array = np.asarray(pixels)
    except (ValueError, TypeError):
        raise DigitlabError(f"{wanted}; the rows differ in length") from None
    _refuse_big_numbers(array, shape, wanted)
    if array.dtype == object or array.dtype.kind not in "iuf":
        kind = ("rows differ in length or hold non-numbers" if array.dtype == object else
                {"U": "found text, not numbers", "S": "found text, not numbers",
                 "b": "found true or false, not numbers"}.get(array.dtype.kind, f"found {array.dtype.name} values"))
        raise DigitlabError(f"{wanted}; {kind}")
    if array.shape != (rows, cols):
        raise DigitlabError(f"{wanted}; got shape {'×'.join(map(str, array.shape)) or 'a single number'}")
    if isinstance(pixels, (list, tuple)):  # NumPy silently reads a JSON true or false as 1 or 0
        _refuse_booleans(pixels)
    values = array.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DigitlabError(f"pixels must be finite numbers; found {array[r, c]} at row {r}, column {c}")
    rounded = np.rint(values)  # rounded first, as documented: 255.3 is 255 (an engineer's was refused)
    outside = (rounded < 0) | (rounded > 255)
    if outside.any():
        r, c = np.argwhere(outside)[0]
        raise DigitlabError(f"pixels must be between 0 and 255; found {_shown(float(values[r, c]))} at row {r}, "
                            f"column {c}")
    return rounded.astype(np.uint8)


def _refuse_big_numbers(array: np.ndarray, shape: tuple[int, int], wanted: str) -> None:
    """NumPy keeps a whole number past 64 bits as an object: 10**30 is a number out of range (or in a grid of the
    wrong shape, that shape), not "non-numbers"."""
    if array.dtype != object:
        return
    if array.shape == shape:
        for (r, c), value in np.ndenumerate(array):
            if type(value) is int and not 0 <= value <= 255:
                raise DigitlabError(f"pixels must be between 0 and 255; found {_shown(value)} at row {r}, column {c}")
    elif all(type(v) in (int, float) for v in array.flat):  # 27 rows, one of them 10**30
        raise DigitlabError(f"{wanted}; got shape {'×'.join(map(str, array.shape))}")


def _shown(value: float | int) -> str:
    """``1e+308``, not 309 digits; ``-1``, not ``-1.0``."""
    if isinstance(value, int) and abs(value) > 1e308:  # past a float's range (10**400): Decimal writes it
        return f"{Decimal(value).normalize():.6g}"
    if abs(value) >= 1e6:
        return f"{float(value):g}"
    return str(int(value) if float(value).is_integer() else value)


def _refuse_booleans(grid: Any) -> None:
    """Refuse a true/false among the numbers of a list of rows that NumPy has read as rows×columns."""
    for r, row in enumerate(grid):
        for c, value in enumerate(row if isinstance(row, (list, tuple)) else np.asarray(row).ravel()):
            if isinstance(value, (bool, np.bool_)):
                shown = "true" if value else "false"
                raise DigitlabError(f"pixels must be numbers, not true or false; found {shown} at row {r}, column {c}")
