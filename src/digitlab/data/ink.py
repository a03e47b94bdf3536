"""From a picture's gray levels to its ink: which side is paper, the light evened out, the contrast stretched.

:func:`ink_map` is the first step of every preparation (:func:`~digitlab.data.images.prepare_digit` for one digit,
:func:`~digitlab.segment.ink_of` for a whole number). Paper is the shade round the picture's edge; ink is what
differs from it. A phone photo is seldom lit evenly, and one paper level for the whole picture turns a shadow, a
gradient or a vignette into "ink" that swallows the digit: an audit's photos of digits on paper so lit were read as
"not a digit" (or, under a shadow, as another digit at 91-96%). So where the edge of a dark-ink-on-light-paper
picture is unevenly lit, the paper's own brightness is estimated everywhere (:func:`_paper_light`: a median over a
window a quarter of the picture wide, at about 64 px, where a stroke is seldom most of the window; two fifths wide
in a small dip darker than that: a bold grey pen's strokes where they cross) and the picture divided by it: paper
becomes even, and ink keeps its contrast in the shadow. Its limits: grey strokes wider still can be thinned where
the light is evened, and so can a stroke that crosses the picture's edge.

Before any of that, a sheet photographed on a darker desk is found (:func:`_sheet_only`) and the desk given the
sheet's own light, or the desk would be the "paper" and the whole sheet the "ink"; a price tag too, from 8% of the
picture when its ink is darker than the desk (a reader's tags filling a fifth of the photo were cut in two).

Examples
--------
>>> import numpy as np
>>> page = np.tile(np.linspace(0.5, 1.0, 200, dtype=np.float32), (200, 1))   # light falling off to the left
>>> page[60:140, 95:105] = 0.1                                             # a "1"
>>> ink = ink_map(page, None)
>>> round(float(ink[100, 100]), 2), float(ink[:, :40].max())               # the stroke, and no shadow left
(0.99, 0.0)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from digitlab.errors import DigitlabError

__all__ = ["ink_map", "rectangle_fill", "smallest_rectangle"]

FAINT = 0.2
"""Ink fainter than this (after the contrast stretch) is background."""
_MIN_CONTRAST = 0.08  # ink must differ from paper by this much of the full range
_UNEVEN = 0.1  # light round the edge varying by more than this (10th to 90th percentile) is evened out...
_LEAST_SIDE = 128  # ...in a picture at least this many pixels a side (a small crop is lit as it is)
_COARSE = 64  # the paper's light is estimated at about this many pixels on the longer side...
_WINDOW = 0.25  # ...as the median over a window this share of the shorter side...
_WIDE, _DIP = 0.4, 0.8  # ...or over two fifths of it where the window's is under 80% of that, in a dip of at most twice
# the window's area: a felt pen's grey strokes filled the window where they crossed and were evened away (an audit's
# bold 4 read a sure 3); two fifths everywhere left a class's thin pens unevenly lit (3 of 200 more "not a digit")
_DARKEST_PAPER = 0.4  # paper is never estimated darker than 40% of the picture's bright paper: a thick stroke
                      # that fills a window is not taken for a shadow
_DESK = 0.25  # a surround this much darker than the bright paper...
_SHEET = 0.25  # ...round one lit piece covering a quarter of the picture or more...
_SHEET_LIT = 0.85  # ...lit all over but for its ink...
_DESK_SIDES, _DESK_SIDE = 2, 0.8  # ...and along 80% of at least two sides of the picture is a desk round a sheet...
_STROKE = 0.2  # ...when the sheet holds ink, no stroke of it thicker than a fifth of the sheet's side...
_RECTANGLE = 0.85  # ...and it fills 85% of the smallest rectangle round it, turned any way (a disc fills 79%)
_TAG, _TAG_LIT, _TAG_STROKE = 0.08, 0.8, 0.3  # a price tag: 8% of the picture, lit over 80%, strokes 30% of its
_PEN = 0.1  # side, when its ink is a pen's: this much darker than the desk (not the desk seen through a light "0")
_LIT = ((0.5, _SHEET_LIT), (0.25, 0.8))  # lit: this share of the way from the desk to the bright paper; the sheet
                                        # lit over this share (a shaded sheet's blocks of ink are more of it)


def ink_map(gray: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Ink strength in [0, 1] on a 0 background: polarity decided, uneven light evened out, contrast stretched,
    faint removed. ``gray`` and ``alpha`` in [0, 1] (alpha None when opaque)."""
    if alpha is not None:
        gray = _flatten_alpha(gray, alpha)
    gray = _sheet_only(gray)
    paper = _median(_border(gray))
    low, high = float(gray.min()), float(gray.max())
    if paper - low > high - paper:  # paper is the light side: dark ink on light paper
        evened = _even_light(gray)
        if evened is not gray:
            gray, paper, low = evened, _median(_border(evened)), float(evened.min())
        gray, paper = 1.0 - gray, 1.0 - paper
        high = float(np.float32(1.0 - low))  # the inverted picture's brightest pixel, without another pass
    contrast = high - paper
    if contrast < _MIN_CONTRAST:
        raise DigitlabError("no ink found: the image is blank; draw or photograph one digit")
    ink = gray - paper  # a new array: in place from here on
    ink /= contrast
    ink -= FAINT
    ink /= 1.0 - FAINT
    return np.clip(ink, 0.0, 1.0, out=ink)


def _median(values: np.ndarray) -> float:
    """``float(np.median(values))`` for a 1-D float array, without np.median's general-case overhead."""
    low = values.min()
    if low == values.max():  # one shade all round, as on a drawing's blank margin: no sorting needed
        return float(low)
    half = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, half)[half])
    return float(np.partition(values, (half - 1, half))[half - 1 : half + 1].mean())


def _flatten_alpha(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Lay a picture with transparency on paper of the opposite shade to its strokes.

    The strokes' shade is their alpha-weighted mean; where every pixel is wholly clear or wholly opaque (a colour
    keyed out), the mean of the opaque pixels deepest inside them (the quarter farthest from the clear ones): a
    palette PNG whose white was made transparent keeps its light anti-aliased edge opaque, and on thin strokes
    that edge outweighed the dark ink, laid then on black as a bright outline. (The colour kept under the clear
    pixels says nothing: tools store them black or white.)"""
    from scipy import ndimage

    weight = float(alpha.sum())
    if weight <= 0.0:
        raise DigitlabError("no ink found: the image is fully transparent; draw or photograph one digit")
    ink_shade = float((gray * alpha).sum()) / weight
    if np.all((alpha == 0) | (alpha == 1)):
        depth = ndimage.distance_transform_edt(np.pad(alpha > 0, 1))[1:-1, 1:-1]
        core = depth >= np.percentile(depth[alpha > 0], 75)
        ink_shade = float(gray[core].mean())
    paper = 1.0 if ink_shade < 0.5 else 0.0
    return alpha * gray + (1.0 - alpha) * paper


def _border(gray: np.ndarray) -> np.ndarray:
    """The outer ring of pixels, about 3% of the shorter side thick (at least one pixel)."""
    h, w = gray.shape
    t = max(1, round(0.03 * min(h, w)))
    if 2 * t >= min(h, w):
        return gray.ravel()
    return np.concatenate([gray[:t].ravel(), gray[-t:].ravel(), gray[t:-t, :t].ravel(), gray[t:-t, -t:].ravel()])


def _paper_light(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness at each pixel of a dark-ink-on-light-paper picture: the median of the picture,
    box-averaged to about :data:`_COARSE` px, over a window :data:`_WINDOW` of its side (over :data:`_WIDE` of it
    where that is under :data:`_DIP` of this, in a dip of at most twice the window's area: a grey stroke's crossing,
    not a shadow), floored at :data:`_DARKEST_PAPER` of its bright paper, scaled back up."""
    from scipy import ndimage

    h, w = gray.shape
    small = _blocks(gray, _COARSE).mean(axis=(1, 3))
    side = max(3, round(min(small.shape) * _WINDOW)) | 1
    light = ndimage.median_filter(small, size=side, mode="nearest")
    wide = ndimage.median_filter(small, size=max(3, round(min(small.shape) * _WIDE)) | 1, mode="nearest")
    dips, count = ndimage.label(light < _DIP * wide)
    if count:  # a small dip is a grey stroke's crossing, not a shadow: the wider window's paper there
        area = ndimage.sum_labels(np.ones_like(small), dips, np.arange(1, count + 1))
        light = np.where(np.isin(dips, 1 + np.flatnonzero(area <= 2 * side * side)), wide, light)
    light = np.maximum(light, _DARKEST_PAPER * float(np.percentile(small, 95))).astype(np.float32)
    return np.asarray(Image.fromarray(light, "F").resize((w, h), Image.Resampling.BILINEAR))  # 4 ms; ndimage.zoom 15


def _blocks(gray: np.ndarray, side: int) -> np.ndarray:
    """``gray`` cut into square blocks, about ``side`` of them along its longer side (a partial block at the bottom
    or right is dropped): shape ``(rows, step, columns, step)``, to reduce over axes 1 and 3."""
    h, w = gray.shape
    step = max(1, -(-max(h, w) // side))
    return gray[: h // step * step, : w // step * step].reshape(h // step, step, w // step, step)


def _even_light(gray: np.ndarray) -> np.ndarray:
    """``gray`` (dark ink on light paper) divided by the paper's light where the light round the edge is uneven;
    ``gray`` itself where it is even (a drawing, a scan), the picture is small, or the estimate is even."""
    edge = _border(gray)
    if min(gray.shape) < _LEAST_SIDE or np.subtract(*np.percentile(edge, [90, 10])) < _UNEVEN:
        return gray
    light = _paper_light(gray)
    ring = _border(light)
    if np.subtract(*np.percentile(ring, [90, 10])) < _UNEVEN:
        return gray
    return np.clip(gray / light, 0.0, 1.0).astype(np.float32)


def _sheet_only(gray: np.ndarray) -> np.ndarray:
    """``gray`` with a darker desk round a photographed sheet replaced by the sheet's own light, carried out from
    its edge; ``gray`` itself when there is no such sheet (:func:`_sheet`). Without this, the desk is the paper
    and the sheet the ink: 30 of 30 photos of digits on a sheet on a desk were "not a digit"."""
    from scipy import ndimage

    h, w = gray.shape
    if min(h, w) < _LEAST_SIDE:
        return gray
    desk, corners = _median(_border(gray)), False
    if float(gray.max()) - desk < _DESK:  # paper round the edge (a drawing, a scan): no sorting needed...
        desk = _corner_desk(gray)
        if desk is None:
            return gray
        corners = True  # ...unless a sheet fills the frame, turned: the desk shows in its four corners
    blocks = _blocks(gray, 128)  # judged at about 128 px
    small = blocks.mean(axis=(1, 3))
    bright = float(np.percentile(small, 100 - 50 * _TAG))  # in the sheet, however little of the picture it is
    if bright - desk < _DESK:
        return gray
    darkest = blocks.min(axis=(1, 3))  # the darkest pixel of a block: thin ink shows
    # lit: lighter than halfway from the desk to the bright paper; or, the larger sheet, a quarter of the way (a sheet
    # shaded towards one side, the side as dark as halfway: else it went as desk, the digits on it with it)
    pen = darkest < desk - _PEN  # ink darker than the desk: a pen's on a tag, not the desk seen through a hole
    found = [_sheet(darkest > desk + share * (bright - desk), least_lit, corners, pen) for share, least_lit in _LIT]
    sheet = max((s for s in found if s is not None), key=lambda s: int(s.sum()), default=None)
    if sheet is None:
        return gray
    nearest = ndimage.distance_transform_edt(~sheet, return_distances=False, return_indices=True)
    carried = small[tuple(nearest)].astype(np.float32)  # each desk pixel takes the light of the nearest sheet's
    inside = np.asarray(Image.fromarray(sheet).resize((w, h), Image.Resampling.NEAREST))
    outside = np.asarray(Image.fromarray(carried, "F").resize((w, h), Image.Resampling.BILINEAR))
    return np.where(inside, gray, outside).astype(np.float32)


def _corner_desk(gray: np.ndarray) -> float | None:
    """The desk's light where a sheet fills the frame turned, so that the desk shows only in the picture's four
    corners (an engineer's photo turned 4°: its desk wedges read as ink round a shrunken 4, or a 3 as a sure 8):
    the corners' median when each corner is :data:`_DESK` darker than the bright paper, else None."""
    h, w = gray.shape
    t = max(2, round(0.03 * min(h, w)))
    patches = [gray[:t, :t], gray[:t, -t:], gray[-t:, :t], gray[-t:, -t:]]
    desk = max(_median(patch.ravel()) for patch in patches)
    if desk > float(gray.max()) - _DESK:  # a corner as light as paper (most pictures): no block map to make
        return None
    lightest = float(np.percentile(_blocks(gray, 128).mean(axis=(1, 3)), 90))  # coarse: cheap on a large photo
    if desk > lightest - _DESK or not all(_stepped(corner, desk, lightest, t) for corner in _diagonals(gray)):
        return None
    return _median(np.concatenate([patch.ravel() for patch in patches]))


def _diagonals(gray: np.ndarray) -> list[np.ndarray]:
    """The light along each corner's diagonal, from the corner inwards, a third of the shorter side long."""
    side = min(gray.shape) // 3
    return [np.diagonal(flipped)[:side] for flipped in (gray, gray[:, ::-1], gray[::-1], gray[::-1, ::-1])]


def _stepped(line: np.ndarray, desk: float, paper: float, t: int) -> bool:
    """Whether the light along ``line`` climbs from the desk to the paper in one step, over at most ``t`` pixels:
    a sheet's edge. A vignette climbs as far over the whole way (a reviewer's vignetted "721" lost its 7 to it)."""
    smooth = np.convolve(line, np.ones(3) / 3, mode="valid")
    return len(smooth) > t and float(np.max(smooth[t:] - smooth[:-t])) >= 0.6 * (paper - desk)


def _sheet(lit: np.ndarray, least_lit: float = _SHEET_LIT, corners: bool = False,
           pen: np.ndarray | None = None) -> np.ndarray | None:
    """Where a sheet lies in ``lit`` (a coarse map of the lit pixels), less its blurred edge; None when there is
    none. The largest lit piece with its holes filled is a sheet when it covers :data:`_SHEET` of the picture, is
    lit over ``least_lit`` of it, leaves the surround dark along :data:`_DESK_SIDE` of :data:`_DESK_SIDES`
    sides (a shadow or a vignette darkens part of a side, or the corners; with ``corners``, a sheet filling the
    frame turned, its four corners dark do instead), holds ink (holes, each at most
    :data:`_STROKE` of the sheet's side thick) and is about a rectangle (:data:`_RECTANGLE`). A light digit on a
    dark ground is one lit piece too; but a bar holds no ink, and a fat 0 is round. A price tag is smaller, and its
    number a larger part of it (:data:`_TAG`): so it is one only where most of its ink is ``pen`` (darker than the
    desk). A blocky light "0" on a dark ground is a lit rectangle round a hole, but the desk shows through its hole
    (a reviewer's read ``1``)."""
    from scipy import ndimage

    pieces, count = ndimage.label(lit)
    if count == 0:
        return None
    sheet = ndimage.binary_fill_holes(pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:])))
    sides = (sheet[0], sheet[-1], sheet[:, 0], sheet[:, -1])
    framed = sum(float(np.mean(~side)) >= _DESK_SIDE for side in sides) >= _DESK_SIDES
    turned = corners and not any(sheet[y, x] for y in (0, -1) for x in (0, -1))
    ink = sheet & ~lit
    tag = pen is not None and ink.any() and float(pen[ink].mean()) > 0.5
    least, thickest = (_TAG, _TAG_STROKE) if tag else (_SHEET, _STROKE)
    # a stroke's blocks count as lit: a sheet of 100 digits on a mid-grey desk, its pen about as dark, was lit over
    # 70% of it, and refused (the closing alone unlit the blocks along the picture's edge)
    strokes_lit = lit | ndimage.binary_closing(lit, np.ones((3, 3), dtype=bool))
    if sheet.mean() < least or strokes_lit[sheet].mean() < min(least_lit, _TAG_LIT if tag else 1) \
            or not (framed or turned):
        return None
    rows, columns = np.flatnonzero(sheet.any(axis=1)), np.flatnonzero(sheet.any(axis=0))
    if not ink.any() or 2 * ndimage.distance_transform_edt(ink).max() > thickest * min(len(rows), len(columns)):
        return None
    if rectangle_fill(sheet) < _RECTANGLE:
        return None
    sheet = ndimage.binary_erosion(sheet)  # the sheet's own edge, blurred into the desk, is left out too
    return sheet if sheet.any() else None


def rectangle_fill(shape: np.ndarray) -> float:
    """How much of the smallest rectangle round ``shape`` (True pixels, turned at any angle) it fills: 1.0 for a
    rectangle, π/4 for an ellipse.

    >>> from scipy import ndimage
    >>> square = np.ones((20, 20), dtype=bool)
    >>> rectangle_fill(square), round(rectangle_fill(ndimage.rotate(square, 30, order=0)), 2) >= 0.9
    (1.0, True)
    >>> disc = np.hypot(*np.mgrid[-50:51, -50:51]) <= 50
    >>> round(rectangle_fill(disc), 2)
    0.78
    """
    return smallest_rectangle(shape)[0]


def smallest_rectangle(shape: np.ndarray) -> tuple[float, float, float]:
    """The smallest rectangle round ``shape`` (True pixels), turned at any angle: how much of it ``shape`` fills;
    and, of the rectangle along the longest side of its convex hull, the angle in degrees (-45 to 45) that
    :func:`scipy.ndimage.rotate` turns it level by and its shorter side.

    >>> from scipy import ndimage
    >>> bar = np.zeros((60, 100), dtype=bool); bar[20:40, 10:90] = True
    >>> fill, degrees, short = smallest_rectangle(ndimage.rotate(bar, 10, order=0))
    >>> fill >= 0.9, round(degrees), round(short)
    (True, -10, 21)
    """
    from scipy import ndimage
    from scipy.spatial import ConvexHull, QhullError

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
