"""Pictures of paper with no strokes on it: near-blank noise, and shading (a shadow, a gradient, an out-of-focus photo).

The preparation (:func:`~digitlab.data.images.prepare_digit`) stretches whatever contrast a picture has, so a
photo of an empty page with a shadow across it becomes a solid block of "ink" in MNIST form, the shape of a
thick 1 or a filled 0. These drawers give the not-a-digit detector such pictures to learn from. Like the
drawers in :mod:`digitlab.data.doodles`, each takes ``(rng, split, system_fonts)`` and returns a 112×112
grayscale PIL image; the ``"test"`` split draws other kinds of shading than ``"train"``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from digitlab.data.doodles import CANVAS
from digitlab.errors import DigitlabError

__all__ = ["noise", "shade"]

_YS, _XS = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float64)
_LEAST_ASPECT = 0.45
"""The narrowest a shade's ink may be once the preparation has cropped it (shorter side over longer side):
a narrow strip along one edge would prepare to a solid bar, which is a thick 1 (a 1 drawn 60 px wide on the
page's 400 px canvas is 0.23). A soft shade may be narrow: its ink is a gradient, never a solid bar."""
_SOFT = 40.0
"""A shade that fades over this many pixels of the 112 (a third of the page) or more is soft."""


def noise(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    """Near-blank paper: salt, faint smudges, a few dots (and, in the test part, scratches)."""
    recipes = ("salt", "smudge", "dots") + (("scratches",) if split == "test" else ())
    chosen = {r for r in recipes if rng.random() < 0.5} or {recipes[rng.integers(len(recipes))]}
    paper = np.full((CANVAS, CANVAS), 255.0) - rng.uniform(0, 20)
    ys, xs = np.mgrid[0:CANVAS, 0:CANVAS]
    if "smudge" in chosen:
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(15, CANVAS - 15, 2)
            s = rng.uniform(6, 20)
            paper -= rng.uniform(30, 90) * np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * s * s))
    if "salt" in chosen:
        dark = rng.random((CANVAS, CANVAS)) < rng.uniform(0.002, 0.02)
        paper[dark] -= rng.uniform(80, 220)
    image = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8), "L")
    draw = ImageDraw.Draw(image)
    if "dots" in chosen:
        for _ in range(int(rng.integers(4, 13))):
            x, y = rng.uniform(8, CANVAS - 8, 2)
            r = rng.uniform(1, 4)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(0, 120)))
    if "scratches" in chosen:
        for _ in range(int(rng.integers(4, 10))):
            x, y = rng.uniform(8, CANVAS - 8, 2)
            a = rng.uniform(0, 2 * math.pi)
            d = rng.uniform(4, 12) * np.array([math.cos(a), math.sin(a)])
            draw.line([(x, y), (x + d[0], y + d[1])], fill=int(rng.integers(40, 160)), width=1)
    return image


def shade(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    """Empty paper under uneven light, with grain: never a stroke, only a dark part of the page.

    Train: a straight shadow edge at any angle, hard or spread into a gradient across the page. Test: a
    curved edge (a round shadow or a vignette, dark inside or out) or an out-of-focus photo (smoothed noise).
    Unless the light fades over a third of the page or more, the ink the preparation will find is never a narrow
    solid strip (:data:`_LEAST_ASPECT`), which would be a thick 1.
    """
    from scipy.ndimage import gaussian_filter

    while True:
        paper, dark = rng.uniform(190, 255), rng.uniform(0, 140)
        width = math.exp(rng.uniform(0.0, math.log(150.0)))  # how far the light fades: 1 px (hard) to the whole page
        if split == "train":
            angle = rng.uniform(0, 2 * math.pi)
            along = (_XS - CANVAS / 2) * math.cos(angle) + (_YS - CANVAS / 2) * math.sin(angle)
            darkness = np.clip((along - rng.uniform(-30, 30)) / width + 0.5, 0, 1)
        elif rng.random() < 0.6:
            cy, cx = rng.uniform(-40, CANVAS + 40, 2)
            distance = np.hypot(_YS - cy, _XS - cx)
            darkness = np.clip((distance - rng.uniform(20, 110)) / width + 0.5, 0, 1)
            darkness = 1.0 - darkness if rng.random() < 0.5 else darkness
        else:
            field = gaussian_filter(rng.normal(size=(CANVAS, CANVAS)), rng.uniform(8, 20))
            darkness = np.clip((field - field.mean()) / (2.5 * field.std()) + 0.5, 0, 1)
        page = np.clip(paper - (paper - dark) * darkness + rng.normal(0, rng.uniform(0, 6), darkness.shape), 0, 255)
        if width >= _SOFT or _ink_aspect(page.astype(np.uint8)) >= _LEAST_ASPECT:
            return Image.fromarray(page.astype(np.uint8), "L")


def _ink_aspect(page: np.ndarray) -> float:
    """The box the preparation crops ``page``'s ink to: its shorter side over its longer side (0 for no ink)."""
    from digitlab.data.images import _crop_to_ink
    from digitlab.data.ink import ink_map as _ink_map  # the preparation's own steps: the box it will see

    try:
        height, width = _crop_to_ink(_ink_map(page / 255.0, None)).shape
    except DigitlabError:  # too faint to be ink: a blank page, drawn again
        return 0.0
    return min(height, width) / max(height, width)

