"""Latin letters written with a pen, in two hands: the ``written`` kind of non-digit.

A person who tries the drawing page with a letter draws it with a pen, not in a font; typed letters
alone taught the not-a-digit detector little about that (a written R was read as a sure 8, a Y or a y as
a sure 4). Each letter is a few strokes in a unit box (x right, y down): a straight polyline (``_L``)
or a smooth curve through its points (``_S``). Every letter that is not a digit's lookalike
(:data:`~digitlab.data.doodles.LOOKALIKE_LETTERS`) is written, in both hands:

- the ``"train"`` hand: plain print, one stroke for each line of the letter;
- the ``"test"`` hand: other shapes of the same letters (rounded points, one-stroke forms, a double-storey
  a, a looped k, a curled y), so the test part measures a hand the detector never met. (As typed
  letters differ by font, the written letters differ by hand, not by letter: a detector that never met a
  written R cannot be expected to know one.)

Each letter is written 56-92 px tall on the 112 px sheet, 0.6-0.95 times as wide as tall (lowercase
letters keep their own height in the box), slanted, turned a little and wobbled, with a round pen of
3-10 px.

Examples
--------
>>> import numpy as np
>>> sheet = np.asarray(written_letter(np.random.default_rng(0), "test", False))
>>> sheet.shape, int(sheet.min()), int(sheet.max())
((112, 112), 0, 255)
>>> sorted(HANDS["train"]) == sorted(HANDS["test"])
True
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from digitlab.data.doodles import CANVAS
from digitlab.data.strokes import pen_line, smooth

__all__ = ["HANDS", "written_letter"]

def _L(*xy: float) -> tuple[bool, np.ndarray]:
    return False, np.array(xy, dtype=float).reshape(-1, 2)


def _S(*xy: float) -> tuple[bool, np.ndarray]:
    return True, np.array(xy, dtype=float).reshape(-1, 2)


_TRAIN = {
    "A": (_L(.1, .96, .5, .04, .9, .96), _L(.27, .6, .73, .6)),
    "C": (_S(.85, .2, .6, .04, .3, .1, .12, .5, .3, .9, .6, .96, .85, .8),),
    "E": (_L(.8, .04, .2, .04, .2, .96, .8, .96), _L(.2, .5, .7, .5)),
    "F": (_L(.8, .04, .2, .04, .2, .96), _L(.2, .5, .65, .5)),
    "H": (_L(.15, .04, .15, .96), _L(.85, .04, .85, .96), _L(.15, .5, .85, .5)),
    "K": (_L(.2, .04, .2, .96), _L(.8, .04, .2, .55), _L(.35, .45, .85, .96)),
    "L": (_L(.2, .04, .2, .96, .8, .96),),
    "M": (_L(.1, .96, .15, .04, .5, .6, .85, .04, .9, .96),),
    "N": (_L(.15, .96, .15, .04, .85, .96, .85, .04),),
    "P": (_L(.2, .96, .2, .04), _S(.2, .04, .6, .05, .8, .22, .6, .45, .2, .47)),
    "R": (_L(.2, .96, .2, .04), _S(.2, .04, .6, .05, .8, .22, .6, .45, .2, .47), _L(.4, .47, .85, .96)),
    "U": (_S(.15, .04, .15, .7, .5, .96, .85, .7, .85, .04),),
    "V": (_L(.1, .04, .5, .96, .9, .04),),
    "W": (_L(.05, .04, .27, .96, .5, .35, .73, .96, .95, .04),),
    "X": (_L(.1, .04, .9, .96), _L(.9, .04, .1, .96)),
    "Y": (_L(.1, .04, .5, .5, .9, .04), _L(.5, .5, .5, .96)),
    "a": (_S(.8, .3, .5, .2, .2, .5, .35, .9, .75, .7), _L(.8, .25, .8, .96)),
    "c": (_S(.85, .35, .55, .25, .2, .55, .35, .92, .8, .88),),
    "d": (_S(.8, .5, .5, .35, .2, .6, .35, .95, .78, .8), _L(.8, .02, .8, .96)),
    "e": (_S(.2, .6, .8, .55, .7, .3, .45, .25, .2, .5, .3, .85, .6, .95, .85, .85),),
    "f": (_S(.8, .1, .6, .02, .45, .15, .45, .96), _L(.2, .4, .75, .4)),
    "h": (_L(.2, 0, .2, .96), _S(.2, .6, .5, .4, .8, .55, .8, .96)),
    "k": (_L(.2, 0, .2, .96), _L(.75, .4, .2, .7), _L(.4, .6, .8, .96)),
    "m": (_L(.1, .3, .1, .96), _S(.1, .45, .3, .3, .5, .45, .5, .96), _S(.5, .45, .7, .3, .9, .45, .9, .96)),
    "n": (_L(.2, .3, .2, .96), _S(.2, .5, .5, .3, .8, .5, .8, .96)),
    "p": (_L(.2, .3, .2, 1), _S(.2, .35, .55, .28, .8, .45, .6, .7, .2, .68)),
    "r": (_L(.3, .3, .3, .96), _S(.3, .55, .5, .35, .8, .32)),
    "u": (_S(.2, .3, .2, .8, .5, .96, .8, .8), _L(.8, .3, .8, .96)),
    "v": (_L(.15, .3, .5, .96, .85, .3),),
    "w": (_L(.05, .3, .27, .96, .5, .5, .73, .96, .95, .3),),
    "x": (_L(.15, .3, .85, .96), _L(.85, .3, .15, .96)),
    "y": (_L(.1, .3, .5, .7), _L(.9, .3, .3, 1)),
}
_TEST = {
    "A": (_S(.1, .96, .3, .35, .5, .04, .7, .35, .9, .96), _L(.18, .55, .82, .55)),
    "C": (_S(.8, .12, .45, .06, .18, .35, .2, .75, .5, .95, .85, .88),),
    "E": (_S(.8, .1, .45, .04, .25, .22, .5, .48, .2, .7, .35, .94, .8, .9),),
    "F": (_L(.25, .96, .25, .04, .85, .04), _L(.1, .45, .7, .45)),
    "H": (_L(.2, .04, .2, .96), _L(.8, .04, .8, .96), _L(.08, .45, .92, .52)),
    "K": (_L(.2, .04, .2, .96), _L(.8, .04, .22, .5, .8, .96)),
    "L": (_L(.25, .04, .22, .96, .9, .92),),
    "M": (_L(.1, .96, .25, .04, .5, .96, .75, .04, .9, .96),),
    "N": (_L(.15, .96, .22, .04, .78, .96, .85, .04),),
    "P": (_L(.25, .96, .25, .04), _S(.25, .04, .7, .08, .75, .3, .25, .5)),
    "R": (_L(.2, .96, .2, .04), _S(.2, .04, .75, .1, .7, .4, .25, .5), _S(.25, .5, .55, .7, .85, .96)),
    "U": (_L(.15, .04, .2, .9, .8, .9, .85, .04),),
    "V": (_S(.1, .04, .4, .8, .5, .96, .6, .8, .9, .04),),
    "W": (_S(.05, .04, .2, .96, .5, .3, .8, .96, .95, .04),),
    "X": (_L(.2, .04, .8, .96), _L(.75, .04, .2, .96)),
    "Y": (_L(.1, .04, .5, .5, .5, .96), _L(.9, .04, .5, .5)),
    "a": (_S(.2, .25, .5, .1, .75, .3, .75, .96), _S(.75, .55, .3, .55, .2, .8, .4, .96, .75, .85)),
    "c": (_S(.8, .4, .5, .3, .25, .5, .25, .8, .5, .96, .8, .9),),
    "d": (_S(.75, .45, .4, .4, .2, .7, .4, .95, .75, .85), _S(.75, 0, .78, .7, .8, .96, .92, .9)),
    "e": (_L(.2, .55, .8, .55), _S(.8, .55, .7, .25, .45, .2, .2, .5, .3, .85, .6, .95, .85, .8)),
    "f": (_S(.8, .05, .55, .02, .45, .3, .45, .96), _L(.25, .35, .7, .35)),
    "h": (_L(.25, 0, .25, .96), _L(.25, .55, .6, .4, .75, .6, .75, .96)),
    "k": (_L(.2, 0, .2, .96), _S(.2, .7, .6, .4, .7, .5, .4, .65), _L(.4, .65, .8, .96)),
    "m": (_L(.1, .3, .1, .96), _L(.1, .4, .3, .3, .5, .4, .5, .96), _L(.5, .4, .7, .3, .9, .4, .9, .96)),
    "n": (_L(.2, .3, .2, .96), _L(.2, .45, .5, .3, .8, .45, .8, .96)),
    "p": (_S(.2, .3, .2, .65, .2, 1), _S(.2, .55, .35, .3, .75, .35, .75, .6, .2, .7)),
    "r": (_L(.3, .3, .3, .96), _S(.3, .6, .45, .35, .7, .3, .85, .4)),
    "u": (_S(.2, .3, .25, .85, .5, .96, .8, .8, .8, .3, .82, .96),),
    "v": (_S(.15, .3, .4, .85, .5, .96, .6, .85, .85, .3),),
    "w": (_S(.05, .3, .25, .96, .5, .45, .75, .96, .95, .3),),
    "x": (_S(.15, .3, .5, .6, .85, .96), _S(.85, .3, .5, .65, .15, .96)),
    "y": (_L(.1, .3, .45, .75), _S(.85, .3, .6, .7, .45, .9, .25, 1, .1, .9)),
}
HANDS: dict[str, dict[str, tuple[tuple[bool, np.ndarray], ...]]] = {"train": _TRAIN, "test": _TEST}
"""The strokes of each letter in each part's hand: ``(smooth, points)``, points in a unit box."""


def written_letter(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    """One letter in the ``split`` part's hand, dark ink on a white 112×112 sheet (``system`` is unused:
    no fonts)."""
    hand = HANDS[split]
    letters = sorted(hand)
    strokes = hand[letters[rng.integers(len(letters))]]
    height = rng.uniform(56, 92)
    width = height * rng.uniform(0.6, 0.95)
    slant, angle = rng.uniform(-0.25, 0.25), rng.uniform(-0.15, 0.15)
    centre = CANVAS / 2 + rng.integers(-6, 7, size=2)
    pen = int(rng.integers(3, 11))
    cos, sin = math.cos(angle), math.sin(angle)
    image = Image.new("L", (CANVAS, CANVAS), 255)
    draw = ImageDraw.Draw(image)
    for curved, points in strokes:
        points = points + rng.normal(0, (0.02, 0.015), points.shape)  # a hand never draws the same line twice
        line = smooth(points) if curved else points
        u = (line[:, 0] - 0.5) * width + slant * (0.5 - line[:, 1]) * height
        v = (line[:, 1] - 0.5) * height
        xy = np.stack([cos * u - sin * v, sin * u + cos * v], axis=1) + centre
        points = [(float(x), float(y)) for x, y in xy]
        pen_line(draw, points, pen, 0, dots=None if curved else points)  # a round pen: round ends and corners
    return image
