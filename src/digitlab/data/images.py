"""A person's own digit image, read safely and prepared the way the training data was made.

Two steps, both used by every path that takes a picture (``digitlab predict``, the web page,
the REST API):

1. :func:`read_image` (in :mod:`digitlab.data.image_files`, re-exported here) decodes bytes or a file
   with explicit limits (5 MiB, 4096×4096 pixels, PNG / JPEG / BMP / GIF / WebP / TIFF only) and turns
   every failure into one :class:`~digitlab.errors.DigitlabError` line.
2. :func:`prepare_digit` converts any picture of one digit into a model input:

   - grayscale (a transparent background counts as paper);
   - ink vs paper decided from the border, so dark-on-light is inverted to MNIST's
     light-on-dark; uneven light (a shadow, a gradient, a vignette) evened out
     (:func:`~digitlab.data.ink.ink_map`);
   - faint background removed, contrast stretched;
   - ruled lines, frames and underlines left out (:func:`~digitlab.rules.leave_out_rules`);
   - cropped to the ink's bounding box; on paper photographed askew, turned back level with its lines and
     cropped again;
   - for 28×28 (MNIST): the longer side scaled to 20 px, anti-aliased, keeping the aspect
     ratio, pasted into 28×28 so that the centre of mass sits at the centre;
   - for 8×8 (scikit-learn's digits, made from 32×32 bitmaps by counting "on" pixels in 4×4
     blocks): the ink fitted into 32×32, made binary and counted per block, 0..16.

A blank picture is an error ("no ink found"), never a guess.

Examples
--------
>>> import numpy as np
>>> paper = np.full((100, 60), 255, dtype=np.uint8)     # white paper
>>> paper[20:80, 25:35] = 0                              # one dark stroke: a "1"
>>> digit = prepare_digit(paper)
>>> digit.shape, digit.dtype, int(digit.max())
((28, 28), dtype('uint8'), 255)
>>> int(digit[0].max()), int(digit[14, 14])               # paper is 0, ink is bright
(0, 255)
>>> prepare_digit(paper, (8, 8), 16).shape             # scikit-learn's 8x8 digits, 0..16
(8, 8)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from digitlab.data.image_files import FORMATS, MAX_BYTES, MAX_SIDE, WORK_SIDE, ImageTooLargeError, read_image
from digitlab.data.ink import ink_map
from digitlab.data.pixels import prepare_pixels  # the JSON path (re-exported)
from digitlab.errors import DigitlabError
from digitlab.rules import leave_out_rules_and_slant

__all__ = [
    "ImageTooLargeError",
    "MAX_BYTES",
    "MAX_SIDE",
    "WORK_SIDE",
    "FORMATS",
    "read_image",
    "prepare_digit",
    "prepare_pixels",
    "stroke_width",
]

_WORK_SIDE = WORK_SIDE  # larger pictures are box-averaged down to this before any float work
_EDGE_MASS = 0.01  # bounding box: drop border rows/columns holding < 1% of the busiest one's ink
_DITHER_BLUR = 1.5  # a 1-bit picture at least 128 px a side, once shrunk to the work size, is blurred by this
                    # radius: a scanner's dithered grey paper is black dots everywhere, "not a digit", until they
                    # are grey again (shrinking a larger one averages them already)


# ---------------------------------------------------------------------------------------------
# Preparing


def prepare_digit(
    image: Image.Image | np.ndarray,
    image_shape: tuple[int, int] = (28, 28),
    pixel_max: int = 255,
    *,
    rules: bool = True,
) -> np.ndarray:
    """Turn a picture of one digit into the model input its training data would have held.

    Parameters
    ----------
    image : PIL image or ndarray
        Any mode Pillow reads (L, RGB, RGBA, LA, P, I;16, I, F, 1, CMYK, ...), or an array
        H×W, H×W×1, H×W×3 (RGB) or H×W×4 (RGBA) of any numeric dtype. Ink may be dark on
        light or light on dark; a transparent background counts as paper.
    image_shape : (int, int)
        The model's input size: ``(28, 28)`` for MNIST, ``(8, 8)`` for scikit-learn's digits.
    pixel_max : int
        The brightest ink value: 255 for MNIST, 16 for the 8×8 digits.
    rules : bool
        Leave out ruled lines, frames and underlines first, and turn a digit on paper photographed askew back
        level with its lines (False for a mark already cut from them: neither).

    Returns
    -------
    ndarray of uint8, shape ``image_shape``
        Ink bright (up to ``pixel_max``) on a 0 background.

    Raises
    ------
    DigitlabError
        The picture is blank ("no ink found") or the array cannot be an image.

    Examples
    --------
    >>> import numpy as np
    >>> canvas = np.zeros((280, 280), dtype=np.uint8)
    >>> canvas[40:240, 130:150] = 255                 # light stroke on dark, far from centred
    >>> out = prepare_digit(canvas)
    >>> out.shape, int(out.max())
    ((28, 28), 255)
    >>> prepare_digit(np.full((50, 50), 200, dtype=np.uint8))
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: no ink found: the image is blank; draw or photograph one digit
    """
    height, width = _check_shape(image_shape)
    if pixel_max < 1 or pixel_max > 255:
        raise DigitlabError(f"pixel_max must be between 1 and 255, got {pixel_max}")
    gray, alpha = _to_gray(image)
    ink = ink_map(gray, alpha)
    ink = _cropped_without_rules(ink) if rules else _crop_to_ink(ink)
    if (height, width) == (8, 8):
        ink = _even_strokes(ink, box=32, widths=(4.5, 6.0, math.inf, math.inf))
        out = _optdigits_style(ink)
    else:
        box = max(1, round(min(height, width) * 20 / 28))
        ink = _even_strokes(ink, box=box, widths=(box * 0.075, box * 0.1, box * 0.2, box * 0.15))
        out = _mnist_style(ink, box, height, width)
    return np.rint(out * pixel_max).clip(0, pixel_max).astype(np.uint8)


def _check_shape(image_shape: Any) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise DigitlabError(f"image_shape must be (height, width), got {image_shape!r}") from None
    if height < 8 or width < 8:
        raise DigitlabError(f"image_shape must be at least 8×8, got {height}×{width}")
    return height, width


def _to_gray(image: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Grayscale in [0, 1] and alpha in [0, 1] (None when fully opaque), at most _WORK_SIDE."""
    if isinstance(image, Image.Image):
        return _gray_from_pil(image)
    if isinstance(image, np.ndarray):
        return _gray_from_array(image)
    raise DigitlabError(f"cannot prepare a {type(image).__name__}; pass a PIL image or a numpy array")


def _gray_from_pil(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = image.mode
    try:
        image = _known_mode(image)
    except (ValueError, OSError) as exc:  # a mode Pillow cannot convert, or a lazy image that fails to load
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DigitlabError(
            f"cannot read a picture in Pillow mode {mode} ({detail}); save it as RGB or grayscale and retry"
        ) from None
    image = _shrink(image)
    if mode == "1" and min(image.size) >= 128:
        image = image.filter(ImageFilter.GaussianBlur(_DITHER_BLUR))
    if image.mode == "I" or image.mode == "F":
        return _gray_from_array(np.asarray(image))
    if image.mode in ("LA", "RGBA") and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert("L")  # fully opaque (the page's drawings): the alpha says nothing
    if image.mode == "RGB":
        image = image.convert("L")  # ITU-R 601 luma, in C
    elif image.mode == "RGBA":
        image = image.convert("LA")
    data = np.asarray(image, dtype=np.float32)
    data *= np.float32(1 / 255)
    if image.mode == "L":
        return data, None
    return data[..., 0], _alpha_or_none(data[..., 1])


def _known_mode(image: Image.Image) -> Image.Image:
    """The picture in one of L, LA, RGB, RGBA, I or F."""
    mode = image.mode
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode == "La":  # premultiplied alpha (a TIFF with "associated" alpha): Pillow converts it only to LA
        return image.convert("LA")
    if mode in ("PA", "RGBa"):
        return image.convert("RGBA")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;") or mode == "I":
        return image.convert("I")
    if mode not in ("L", "LA", "RGB", "RGBA", "F"):
        return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
    return image


def _gray_from_array(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DigitlabError(f"an image array must be H×W, H×W×3 or H×W×4, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise DigitlabError(f"the image array has no pixels (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise DigitlabError(f"an image array must hold numbers, got dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DigitlabError("the image array holds NaN or infinite values; pass finite pixel values")
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:  # scaled first: 1e300 is finite, float32(1e300) not
        data = (np.clip(array, 0, None) / _full_scale(array)).astype(np.float32)
    else:
        data = np.clip(array.astype(np.float32), 0, None) / np.float32(_full_scale(array))
    np.clip(data, 0, 1, out=data)
    if max(data.shape[:2]) > _WORK_SIDE:
        data = _shrink_array(data)
    if data.ndim == 2:
        return data, None
    gray = data[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return gray, (_alpha_or_none(data[..., 3]) if data.shape[2] == 4 else None)


def _full_scale(array: np.ndarray) -> float:
    """The value that means "white": the dtype's range, or the smallest common bit depth that fits."""
    if array.dtype.kind == "b":
        return 1.0
    if array.dtype == np.uint8:
        return 255.0
    top = float(np.nanmax(array)) if array.size else 0.0
    if array.dtype.kind == "f" and top <= 1.0:
        return 1.0
    for scale in (255.0, 1023.0, 4095.0, 16383.0, 65535.0):  # 8, 10, 12, 14, 16 bits
        if top <= scale:
            return scale
    return top


def _alpha_or_none(alpha: np.ndarray) -> np.ndarray | None:
    return None if alpha.min() >= 1.0 else alpha


def _shrink(image: Image.Image) -> Image.Image:
    """Box-average a large picture so its longer side is at most _WORK_SIDE (keeps thin strokes)."""
    factor = -(-max(image.size) // _WORK_SIDE)
    return image.reduce(factor) if factor > 1 else image


def _shrink_array(data: np.ndarray) -> np.ndarray:
    factor = -(-max(data.shape[:2]) // _WORK_SIDE)
    channels = [data] if data.ndim == 2 else [data[..., c] for c in range(data.shape[2])]
    small = [np.asarray(Image.fromarray(np.ascontiguousarray(c), "F").reduce(factor)) for c in channels]
    return small[0] if data.ndim == 2 else np.stack(small, axis=-1)


def _cropped_without_rules(ink: np.ndarray) -> np.ndarray:
    """``ink`` without its rules (:func:`~digitlab.rules.leave_out_rules_and_slant`), cropped to the digit; on
    paper photographed askew, turned back level with the paper's lines, as it was written, and cropped again (after
    the first crop: what is left of a line, thin and slanting, the first one leaves out, level it would not)."""
    left, degrees = leave_out_rules_and_slant(ink)
    ink = _crop_to_ink(left)
    if not degrees:
        return ink
    turned = ndimage.rotate(np.pad(ink, 2), degrees, order=1)  # padded: the edge's ink is not dropped as outside
    return _crop_to_ink(np.clip(turned, 0.0, 1.0))


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box; stray specks at the edges (<1% of the busiest row/column) ignored."""
    rows, cols = ink.sum(axis=1), ink.sum(axis=0)
    if rows.max() <= 0.0 or ink.sum() < 0.5:
        raise DigitlabError("no ink found: the image is blank; draw or photograph one digit")
    keep_r = np.flatnonzero(rows > _EDGE_MASS * rows.max())
    keep_c = np.flatnonzero(cols > _EDGE_MASS * cols.max())
    return ink[keep_r[0] : keep_r[-1] + 1, keep_c[0] : keep_c[-1] + 1]


def _resize(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a map in [0, 1]: area average when shrinking, bilinear when growing.

    Both average with weights that are never negative, so the result stays in [0, 1] with no clipping.
    """
    if ink.shape == (height, width):
        return ink.copy()
    shrinking = height <= ink.shape[0] and width <= ink.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    ink = np.ascontiguousarray(ink, dtype=np.float32)
    picture = Image.frombuffer("F", (ink.shape[1], ink.shape[0]), ink, "raw", "F", 0, 1)
    return np.array(picture.resize((width, height), method))  # a copy the caller may change


def _fit(shape: tuple[int, int], box: int) -> tuple[int, int]:
    """Height and width of ``shape`` scaled so its longer side is ``box``."""
    h, w = shape
    scale = box / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary picture: its area over half the length of its outline."""
    count = np.count_nonzero
    outline = (
        count(mask[1:] != mask[:-1]) + count(mask[:, 1:] != mask[:, :-1])
        + count(mask[0]) + count(mask[-1]) + count(mask[:, 0]) + count(mask[:, -1])
    )
    return float(count(mask)) / max(float(outline) / 2, 1.0)


def _even_strokes(ink: np.ndarray, box: int, widths: tuple[float, float, float, float]) -> np.ndarray:
    """Strokes narrower than ``widths[0]`` (in pixels once the ink fits ``box``) widened to ``widths[1]``, strokes
    wider than ``widths[2]`` narrowed to ``widths[3]``; others pass untouched.

    MNIST's strokes are about 2 px wide in its 20 px box (99% of its test digits under 4 px), the 8×8 digits' 4-8
    px of 32. A fine pen on a large canvas would otherwise shrink to a faint hairline, and a marker to a blob (a
    class's bold-pen writer, 5.2 px: 80% read right, half turned away as "not a digit"; narrowed to 3 px, 92% and a
    fifth). A narrowing that would lose a part of the digit (a thin tail or bar beside bold strokes) is not made.
    """
    zoom = 4  # measure and change at four times the final resolution
    detail, width = _detail(ink, box, zoom)
    wider = width < widths[0]
    if not wider and width <= widths[2]:
        return ink
    steps = max(1, round(abs((widths[1] if wider else widths[3]) - width) * zoom / 2))
    picture = Image.fromarray(np.pad(detail, steps) if wider else detail, "F")
    for _ in range(steps):
        picture = picture.filter(ImageFilter.MaxFilter(3) if wider else ImageFilter.MinFilter(3))
    changed = np.asarray(picture)
    if not wider and not _keeps_shape(detail, changed, steps + 2 * zoom):
        return ink
    return _crop_to_ink(changed)


def stroke_width(ink: np.ndarray, box: int = 20) -> float:
    """Mean stroke width of a digit's ink map (or a prepared digit, scaled to [0, 1] or not) in pixels once it fits
    ``box``: MNIST's median is 2.3 in its 20 px box; from 4 (a fifth) a digit is narrowed as it is prepared."""
    ink = np.asarray(ink, dtype=np.float32)
    return _detail(_crop_to_ink(ink / max(float(ink.max()), 1e-6)), box, 4)[1]


def _detail(ink: np.ndarray, box: int, zoom: int) -> tuple[np.ndarray, float]:
    """The ink fitted to ``zoom`` times ``box``, from 0 to 1, and its mean stroke width in pixels of ``box``."""
    detail = _resize(ink, *_fit(ink.shape, box * zoom))
    detail /= max(float(detail.max()), 1e-6)
    return detail, _stroke_width(detail >= 0.3) / zoom


def _keeps_shape(before: np.ndarray, after: np.ndarray, margin: int) -> bool:
    """Whether ``after``'s ink (from 0.3) still reaches to within ``margin`` pixels of each side ``before``'s did (a
    thin tail kept), in no more pieces (a thin bar between bold strokes kept: a reviewer's 4 lost its crossbar)."""
    was, now = before >= 0.3, after >= 0.3
    rows, cols = np.flatnonzero(now.any(axis=1)), np.flatnonzero(now.any(axis=0))
    if not len(rows):
        return False
    was_rows, was_cols = np.flatnonzero(was.any(axis=1)), np.flatnonzero(was.any(axis=0))
    reaches = (rows[0] - was_rows[0] <= margin and was_rows[-1] - rows[-1] <= margin
               and cols[0] - was_cols[0] <= margin and was_cols[-1] - cols[-1] <= margin)
    return reaches and _pieces(now) <= _pieces(was)


def _pieces(mask: np.ndarray) -> int:
    """Connected pieces of ``mask`` holding at least 1% of it (not specks)."""
    sizes = np.bincount(ndimage.label(mask)[0].ravel())[1:]
    return int((sizes >= 0.01 * mask.sum()).sum())


def _mnist_style(ink: np.ndarray, box: int, height: int, width: int) -> np.ndarray:
    """Longer side to ``box`` (20 of 28), then centre of mass to the frame's centre (integer shift)."""
    digit = _resize(ink, *_fit(ink.shape, box))
    digit /= max(float(digit.max()), 1e-6)
    ys, xs = np.indices(digit.shape)
    mass = float(digit.sum())
    cy, cx = float((ys * digit).sum()) / mass, float((xs * digit).sum()) / mass
    top, left = int(round(height / 2 - cy)), int(round(width / 2 - cx))
    return _paste(digit, height, width, top, left)


def _optdigits_style(ink: np.ndarray) -> np.ndarray:
    """scikit-learn's 8×8 digits: the ink fitted into 32×32, binary, "on" pixels counted per 4×4 block."""
    digit = _resize(ink, *_fit(ink.shape, 32))
    digit = digit >= 0.5 * max(float(digit.max()), 1e-6)
    top, left = (32 - digit.shape[0]) // 2, (32 - digit.shape[1]) // 2
    bitmap = _paste(digit.astype(np.float32), 32, 32, top, left)
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)) / 16.0


def _paste(digit: np.ndarray, height: int, width: int, top: int, left: int) -> np.ndarray:
    """Place ``digit`` at (top, left) in a zero frame, clipping whatever falls outside."""
    frame = np.zeros((height, width), dtype=np.float32)
    h, w = digit.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, height), min(left + w, width)
    if y1 > y0 and x1 > x0:
        frame[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return frame
