"""Synthetic writers: digits in other people's handwriting, which MNIST under-represents.

Each :class:`Writer` has a consistent personal style — the shape they give each digit (a European
1 with a long flag and a foot, a crossed 7, an open 4, a 9 with a straight stem), a slant, a pen,
a size and a place on the page — and every sample varies naturally around it (wobble, size,
position, a slight rotation). :func:`writer_samples` draws a writer's digits as a person's pictures
would arrive (a 200-400 px canvas, dark antialiased ink on light paper, PNG bytes) and prepares each
exactly as the app does (:func:`~digitlab.data.images.read_image` then
:func:`~digitlab.data.images.prepare_digit`), giving the 28×28 MNIST-form images a model reads.

They stand in for "my handwriting" when testing and benchmarking fine-tuning
(:mod:`digitlab.finetune`, ``benchmarks/bench_finetune.py``). Same writer and seed, same pictures.

Examples
--------
>>> anna = writer("anna")
>>> samples = writer_samples(anna, per_digit=2, seed=0)
>>> samples.images.shape, samples.images.dtype, samples.labels.tolist()
((20, 28, 28), dtype('uint8'), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
>>> samples.pictures[0][:4] == b"\\x89PNG"
True
"""

from __future__ import annotations

import io
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from digitlab.data.images import prepare_digit, read_image
from digitlab.data.strokes import pen_line, smooth
from digitlab.errors import DigitlabError

__all__ = ["SHAPES", "WRITERS", "Writer", "WriterSamples", "draw_digit", "writer", "writer_samples"]

Stroke = tuple[tuple[float, float], ...]

SHAPES: dict[int, dict[str, tuple[Stroke, ...]]] = {
    0: {"oval": (((0.5, 0.04), (0.2, 0.2), (0.14, 0.55), (0.3, 0.9), (0.55, 0.96), (0.8, 0.75), (0.85, 0.4),
                  (0.7, 0.1), (0.48, 0.05)),),
        "narrow": (((0.55, 0.05), (0.3, 0.15), (0.22, 0.5), (0.35, 0.9), (0.6, 0.93), (0.75, 0.6), (0.72, 0.2),
                    (0.5, 0.06)),),
        "slashed": (((0.5, 0.04), (0.2, 0.2), (0.14, 0.55), (0.3, 0.9), (0.55, 0.96), (0.8, 0.75), (0.85, 0.4),
                     (0.7, 0.1), (0.48, 0.05)), ((0.9, 0.0), (0.1, 1.0)))},
    1: {"stick": (((0.5, 0.04), (0.5, 0.96)),),
        "flag": (((0.32, 0.22), (0.55, 0.04), (0.52, 0.96)),),
        "long_flag": (((0.1, 0.45), (0.56, 0.04), (0.56, 0.96)),),
        "long_flag_foot": (((0.1, 0.42), (0.56, 0.04), (0.56, 0.96)), ((0.24, 0.96), (0.86, 0.96)))},
    2: {"plain": (((0.2, 0.25), (0.35, 0.08), (0.6, 0.05), (0.78, 0.2), (0.74, 0.42), (0.5, 0.66), (0.18, 0.93),
                   (0.84, 0.92)),),
        "curly": (((0.22, 0.2), (0.5, 0.04), (0.78, 0.22), (0.6, 0.55), (0.2, 0.94), (0.55, 0.86), (0.86, 0.94)),),
        "looped": (((0.2, 0.25), (0.35, 0.08), (0.6, 0.05), (0.78, 0.2), (0.74, 0.42), (0.5, 0.66), (0.3, 0.86),
                    (0.1, 0.82), (0.14, 0.6), (0.36, 0.66), (0.48, 0.92), (0.66, 0.97), (0.92, 0.9)),)},
    3: {"round": (((0.2, 0.15), (0.45, 0.04), (0.72, 0.12), (0.74, 0.3), (0.48, 0.47), (0.78, 0.6), (0.8, 0.82),
                   (0.5, 0.96), (0.18, 0.86)),),
        "flat_top": (((0.18, 0.08), (0.78, 0.08), (0.45, 0.42), (0.75, 0.55), (0.78, 0.82), (0.5, 0.96),
                      (0.2, 0.86)),)},
    4: {"closed": (((0.62, 0.04), (0.18, 0.64), (0.86, 0.64)), ((0.66, 0.3), (0.66, 0.97))),
        "open": (((0.24, 0.04), (0.18, 0.58), (0.86, 0.58)), ((0.7, 0.04), (0.68, 0.97)))},
    5: {"hooked": (((0.3, 0.07), (0.25, 0.45), (0.5, 0.38), (0.76, 0.5), (0.78, 0.76), (0.55, 0.95), (0.2, 0.88)),
                   ((0.3, 0.07), (0.8, 0.06))),
        "one_stroke": (((0.8, 0.06), (0.32, 0.06), (0.27, 0.44), (0.6, 0.42), (0.8, 0.65), (0.65, 0.92),
                        (0.22, 0.9)),),
        "floating_bar": (((0.3, 0.14), (0.26, 0.46), (0.55, 0.38), (0.78, 0.55), (0.75, 0.82), (0.5, 0.95),
                          (0.2, 0.85)), ((0.45, 0.04), (0.9, 0.0)))},
    6: {"round": (((0.72, 0.04), (0.42, 0.28), (0.24, 0.6), (0.3, 0.88), (0.55, 0.96), (0.76, 0.8), (0.7, 0.58),
                   (0.45, 0.52), (0.26, 0.66)),),
        "straight": (((0.62, 0.04), (0.3, 0.45), (0.25, 0.8), (0.5, 0.96), (0.75, 0.78), (0.55, 0.55),
                      (0.28, 0.68)),),
        "small_loop": (((0.7, 0.0), (0.45, 0.3), (0.32, 0.65), (0.34, 0.9), (0.5, 0.97), (0.66, 0.88), (0.62, 0.72),
                        (0.45, 0.7), (0.33, 0.8)),)},
    7: {"plain": (((0.18, 0.08), (0.82, 0.08), (0.45, 0.96)),),
        "crossed": (((0.18, 0.1), (0.82, 0.08), (0.52, 0.55), (0.42, 0.96)), ((0.26, 0.52), (0.76, 0.52))),
        "hook": (((0.2, 0.24), (0.28, 0.08), (0.82, 0.08), (0.5, 0.96)),),
        "crossed_hook": (((0.2, 0.24), (0.28, 0.08), (0.82, 0.08), (0.55, 0.5), (0.44, 0.96)),
                         ((0.28, 0.5), (0.8, 0.5)))},
    8: {"loops": (((0.5, 0.48), (0.26, 0.3), (0.3, 0.1), (0.5, 0.04), (0.7, 0.1), (0.74, 0.3), (0.5, 0.48),
                   (0.22, 0.7), (0.3, 0.92), (0.5, 0.96), (0.72, 0.9), (0.78, 0.7), (0.5, 0.48)),),
        "s_cross": (((0.7, 0.12), (0.5, 0.04), (0.28, 0.15), (0.35, 0.38), (0.72, 0.62), (0.72, 0.88), (0.5, 0.96),
                     (0.26, 0.86), (0.3, 0.62), (0.66, 0.36), (0.7, 0.12)),),
        "snowman": (((0.5, 0.02), (0.3, 0.1), (0.3, 0.32), (0.5, 0.4), (0.7, 0.32), (0.7, 0.1), (0.5, 0.02)),
                    ((0.5, 0.4), (0.2, 0.52), (0.16, 0.8), (0.5, 0.98), (0.84, 0.8), (0.8, 0.52), (0.5, 0.4)))},
    9: {"curved": (((0.74, 0.32), (0.55, 0.06), (0.3, 0.1), (0.24, 0.34), (0.45, 0.48), (0.72, 0.36), (0.74, 0.3),
                    (0.7, 0.62), (0.64, 0.96)),),
        "straight": (((0.76, 0.3), (0.52, 0.05), (0.28, 0.12), (0.25, 0.36), (0.48, 0.48), (0.76, 0.34)),
                     ((0.77, 0.06), (0.77, 0.97))),
        "g_tail": (((0.74, 0.3), (0.5, 0.05), (0.26, 0.15), (0.28, 0.4), (0.5, 0.46), (0.74, 0.3)),
                   ((0.74, 0.1), (0.74, 0.75), (0.6, 0.94), (0.35, 0.94), (0.22, 0.8)))},
}
"""Stroke templates: for each digit, named shapes; a shape is a tuple of strokes, a stroke the points
(x right, y down, in a unit box) a smooth pen line passes near. The first name is the usual shape."""


@dataclass(frozen=True)
class Writer:
    """One person's handwriting: the shape of each digit and how they hold the pen.

    Attributes
    ----------
    name, description : str
        Who, and their style in one line.
    shapes : dict of int to str
        The shape (a key of :data:`SHAPES`) this writer gives a digit; digits not named take the first.
    slant : float
        Horizontal lean per unit of height (0.3: the top is 30% of the height to the right; negative leans left).
    tilt : float
        How the writer's page is turned, in radians (positive: clockwise on the screen).
    pen : float
        Pen width as a share of the digit's height.
    height : float
        Digit height as a share of the canvas side.
    aspect : float
        Digit width over its height.
    corner : bool
        Writes small in the top-left quarter of the page instead of anywhere.
    wobble : float
        Standard deviation of each template point's tremor, in units of the digit's size.

    Examples
    --------
    >>> Writer("zed", "upright, medium pen").aspect
    0.65
    """

    name: str
    description: str
    shapes: dict[int, str] = field(default_factory=dict, hash=False)
    slant: float = 0.0
    tilt: float = 0.0
    pen: float = 0.09
    height: float = 0.6
    aspect: float = 0.65
    corner: bool = False
    wobble: float = 0.02


WRITERS: tuple[Writer, ...] = (
    Writer("anna", "European school hand: 1 with a long flag and a foot, crossed 7, 9 with a g-like tail, looped 2",
           {1: "long_flag_foot", 7: "crossed_hook", 9: "g_tail", 4: "open", 2: "looped"}, slant=0.15, tilt=0.15,
           pen=0.09),
    Writer("bruno", "heavy right slant with a thin ballpoint, open 4, hooked 7, 5 with a floating bar",
           {1: "flag", 4: "open", 7: "hook", 5: "floating_bar", 6: "small_loop"}, slant=0.75, tilt=0.1, pen=0.045,
           aspect=0.55),
    Writer("chloe", "fat felt-tip marker, round digits, 1 with a long flag, snowman 8, 9 with a straight stem",
           {1: "long_flag", 7: "hook", 8: "snowman", 6: "small_loop", 9: "straight"}, slant=-0.05, pen=0.22,
           aspect=0.85),
    Writer("dmitri", "tiny digits in the corner of the page, slashed 0, crossed 7, open 4, straight 9, flagged 1",
           {0: "slashed", 1: "long_flag", 7: "crossed_hook", 4: "open", 9: "straight", 3: "flat_top"}, slant=0.2,
           pen=0.11, height=0.14, corner=True, wobble=0.03),
    Writer("emma", "strong back slant and a tilted page, wide flat digits, crossed 7, looped 2, floating-bar 5",
           {7: "crossed", 4: "open", 2: "looped", 5: "floating_bar", 8: "s_cross", 9: "g_tail"}, slant=-0.7, tilt=-0.2, pen=0.07,
           aspect=0.95, height=0.45),
    Writer("farid", "tall narrow digits with a fine pen and a right lean, 1 with flag and foot, g-tailed 9, snowman 8",
           {1: "long_flag_foot", 9: "g_tail", 6: "small_loop", 8: "snowman", 7: "crossed"}, slant=0.3, pen=0.045,
           aspect=0.45, height=0.8),
)
"""The synthetic writers, each mixing several traits MNIST rarely shows."""


@dataclass(frozen=True)
class WriterSamples:
    """A writer's digits: the pictures as they would be uploaded, and as the model reads them.

    Sample ``i`` is of digit ``i % 10``, so the first ``10·k`` samples hold ``k`` of each digit.

    Attributes
    ----------
    writer : Writer
        Whose handwriting.
    pictures : tuple of bytes
        Each picture as a PNG file (dark ink on light paper, 200-400 px square).
    labels : ndarray of int64, shape (N,)
        The digit in each picture.
    images : ndarray of uint8, shape (N, 28, 28)
        Each picture prepared as the app does: MNIST form, light ink (up to 255) on 0.
    """

    writer: Writer
    pictures: tuple[bytes, ...] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    images: np.ndarray = field(repr=False)


def writer(name: str) -> Writer:
    """The writer called ``name`` in :data:`WRITERS`.

    Examples
    --------
    >>> writer("emma").slant
    -0.7
    """
    for w in WRITERS:
        if w.name == name:
            return w
    raise DigitlabError(f"no synthetic writer named {name!r}; choose one of: {', '.join(w.name for w in WRITERS)}")


def draw_digit(w: Writer, digit: int, rng: np.random.Generator, *, supersample: int = 3) -> Image.Image:
    """One picture of ``digit`` in ``w``'s hand: a grayscale (L) square of 200-400 px, dark ink on light paper.

    The strokes are drawn ``supersample`` times larger and scaled down, which antialiases them.

    Examples
    --------
    >>> picture = draw_digit(writer("chloe"), 8, np.random.default_rng(0))
    >>> picture.mode, 200 <= picture.width <= 400, picture.getextrema()[0] < 100
    ('L', True, True)
    """
    shape = SHAPES[digit][w.shapes.get(digit, next(iter(SHAPES[digit])))]
    side = int(rng.integers(200, 401))
    big = side * supersample
    height = big * w.height * rng.uniform(0.88, 1.12)
    width = height * w.aspect * rng.uniform(0.92, 1.08)
    slant = w.slant + rng.uniform(-0.06, 0.06)
    angle = w.tilt + rng.uniform(-0.07, 0.07)
    pen = max(supersample, w.pen * height * rng.uniform(0.85, 1.15))
    reach_x = width / 2 + abs(slant) * height / 2 + pen
    reach_y = height / 2 + pen
    room = big / 2 if w.corner else big  # a corner writer stays in the top-left quarter
    cx = rng.uniform(reach_x, max(reach_x + 1, room - reach_x))
    cy = rng.uniform(reach_y, max(reach_y + 1, room - reach_y))
    cos, sin = math.cos(angle), math.sin(angle)
    ink = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(ink)
    for stroke in shape:
        points = np.asarray(stroke) + rng.normal(0, w.wobble, (len(stroke), 2))
        curve = smooth(points, rounds=3) if len(points) > 2 else points
        u = (curve[:, 0] - 0.5) * width + slant * (0.5 - curve[:, 1]) * height
        v = (curve[:, 1] - 0.5) * height
        xy = [(cx + cos * a - sin * b, cy + sin * a + cos * b) for a, b in zip(u, v)]
        pen_line(draw, xy, pen, 255)
    ink = np.asarray(ink.reduce(supersample), dtype=np.float32) / 255
    paper, dark = rng.uniform(225, 252), rng.uniform(15, 70)
    return Image.fromarray(np.rint(paper + (dark - paper) * ink).astype(np.uint8), "L")


def writer_samples(w: Writer, per_digit: int = 40, seed: int = 0) -> WriterSamples:
    """``per_digit`` pictures of each digit in ``w``'s hand, as PNG files and prepared as the app does.

    Parameters
    ----------
    w : Writer
        Whose handwriting (see :data:`WRITERS`).
    per_digit : int
        Samples of each digit; sample ``i`` is of digit ``i % 10``.
    seed : int
        Same writer and seed, same pictures; the first samples do not change with ``per_digit``.

    Returns
    -------
    WriterSamples

    Examples
    --------
    >>> a = writer_samples(writer("bruno"), per_digit=1, seed=3)
    >>> b = writer_samples(writer("bruno"), per_digit=1, seed=3)
    >>> bool((a.images == b.images).all()), a.pictures == b.pictures
    (True, True)
    """
    if isinstance(per_digit, bool) or not isinstance(per_digit, (int, np.integer)) or per_digit < 1:
        raise DigitlabError(f"per_digit must be a whole number of at least 1, got {per_digit!r}")
    rng = np.random.default_rng([seed, zlib.crc32(w.name.encode())])
    labels = np.tile(np.arange(10, dtype=np.int64), per_digit)
    pictures, images = [], []
    for label in labels:
        buffer = io.BytesIO()
        draw_digit(w, int(label), rng).save(buffer, "PNG")
        pictures.append(buffer.getvalue())
        images.append(prepare_digit(read_image(pictures[-1]), (28, 28), 255))
    return WriterSamples(w, tuple(pictures), labels, np.stack(images))
