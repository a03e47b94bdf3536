"""How each kind of non-digit is drawn: fonts found offline, typed letters and symbols, drawn faces,
arrows, stars and hearts, scribbles, shapes and digit pairs, on a 112×112 sheet (pictures with no strokes,
near-blank noise and shading, are drawn in :mod:`digitlab.data.paper`).

:mod:`digitlab.data.nondigits` decides what to draw (kinds, splits, seeds) and prepares each picture;
this module only draws. Every drawer takes ``(rng, split, system_fonts)`` and returns a PIL image of
dark ink on white paper; the ``"test"`` split uses other fonts, letters, symbols and figures than
``"train"`` (see :mod:`digitlab.data.nondigits` for the list).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from digitlab.data.fonts import font, pick_font
from digitlab.data.strokes import crossings, smooth

__all__ = ["CANVAS", "DRAWERS", "LETTERS", "LOOKALIKE_LETTERS", "SYMBOLS"]

LOOKALIKE_LETTERS = "BDGIJOQSTZbgijloqstz"
"""Letters never drawn, because a reader could take them for a digit: B 8, D 0, G 6, I 1,
J 1 or 7, O 0, Q 0 or 9, S 5, T 7, Z 2, b 6, g 9, i 1, j 1, l 1, o 0, q 9, s 5, t + or 4, z 2."""

_NOT_LOOKALIKE = "ACEFHKLMNPRUVWXYacdefhkmnpruvwxy"
LETTERS: dict[str, str] = {"train": _NOT_LOOKALIKE, "test": _NOT_LOOKALIKE}
"""The letters each part types: every letter but :data:`LOOKALIKE_LETTERS`, in both (the parts' fonts differ). The
parts once typed disjoint halves of them, and the detector let through a typed "a" as a sure 2, "R" as a sure 8 and
"y" as a sure 4, letters it had never met in any font (``BENCHMARKS.md``, "That's not a digit")."""

SYMBOLS: dict[str, str] = {
    "train": "+#%=$?÷±€",
    "test": "×@&!*£©Ωπ",
}
"""The typed symbols each part draws: disjoint. ``- / | ( ) [ ] ~ ∞ §`` are never drawn (too
close to a 1, a 2 or an 8 once scaled)."""

CANVAS = 112
"""Side of the paper each picture is drawn on, in pixels (then prepared to 28×28)."""

_PAPER, _INK = 255, 0

# ---------------------------------------------------------------------------------------------
# Drawing helpers: dark ink on white paper, like a drawing


def _paper() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (CANVAS, CANVAS), _PAPER)
    return image, ImageDraw.Draw(image)


def _tilt(image: Image.Image, rng: np.random.Generator, degrees: float) -> Image.Image:
    """Rotate by up to ±``degrees`` and shift a little, paper filling the corners."""
    angle = float(rng.uniform(-degrees, degrees))
    shift = tuple(int(v) for v in rng.integers(-6, 7, size=2))
    return image.rotate(angle, Image.Resampling.BILINEAR, translate=shift, fillcolor=_PAPER)


def _typed(text: str, path: Path, rng: np.random.Generator, *, height: float) -> Image.Image:
    """``text`` in the font at ``path``, its ink about ``height`` px tall (kept inside the paper)."""
    size = int(round(height / 4)) * 4  # sizes in steps of 4 px, so fonts are loaded once each
    image, draw = _paper()
    for _ in range(8):
        face = font(path, size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=face, anchor="mm")
        if max(right - left, bottom - top) <= CANVAS * 0.68 or size <= 16:
            break
        size -= 8
    # A heavier pen, up to 4% of the ink's extent (2% for bold faces, already heavy), so the
    # counters of small letters such as "e" stay open once the ink is scaled to 20 px.
    bold = any(word in path.name.lower() for word in ("bold", "bol", "cmb"))
    extent = max(right - left, bottom - top)
    stroke = int(rng.integers(0, int(extent * (0.02 if bold else 0.04)) + 1))
    left, top, right, bottom = left - stroke, top - stroke, right + stroke, bottom + stroke
    centre = (CANVAS / 2 - (left + right) / 2, CANVAS / 2 - (top + bottom) / 2)
    draw.text(centre, text, fill=_INK, font=face, anchor="mm", stroke_width=stroke, stroke_fill=_INK)
    return image


def _width(rng: np.random.Generator, low: int = 3, high: int = 10) -> int:
    return int(rng.integers(low, high + 1))


def _rotated(points: np.ndarray, angle: float, centre: tuple[float, float] = (CANVAS / 2, CANVAS / 2)) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    p = points - centre
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]], axis=1) + centre


def _xy(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def _polygon(draw: ImageDraw.ImageDraw, points: np.ndarray, filled: bool, width: int) -> None:
    if filled:
        draw.polygon(_xy(points), fill=_INK)
    else:
        closed = np.vstack([points, points[:2]])  # one extra segment so the first corner is joined too
        draw.line(_xy(closed), fill=_INK, width=width, joint="curve")


# ---------------------------------------------------------------------------------------------
# The kinds


def _letter(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    letters = LETTERS[split]
    char = letters[rng.integers(len(letters))]
    path = pick_font(rng, split, char, symbols=False, system=system)
    height = rng.uniform(56, 92)
    return _tilt(_typed(char, path, rng, height=height), rng, 15)


def _symbol(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    if rng.random() < 0.5:
        symbols = SYMBOLS[split]
        char = symbols[rng.integers(len(symbols))]
        path = pick_font(rng, split, char, symbols=True, system=system)
        return _tilt(_typed(char, path, rng, height=rng.uniform(60, 96)), rng, 15)
    drawn = (_face, _arrow, _star, _heart)
    return _tilt(drawn[rng.integers(len(drawn))](rng, split), rng, 12)


def _face(rng: np.random.Generator, split: str) -> Image.Image:
    image, draw = _paper()
    r = rng.uniform(34, 46)
    c = CANVAS / 2
    w = _width(rng, 3, 6)
    draw.ellipse([c - r, c - r, c + r, c + r], outline=_INK, width=w)
    eye_y, eye_dx, eye_r = c - 0.3 * r, 0.38 * r, rng.uniform(0.09, 0.15) * r
    mood = "smile" if split == "train" else ("frown", "wink", "surprised")[rng.integers(3)]
    for side in (-1, 1):
        x = c + side * eye_dx
        if mood == "wink" and side == 1:
            draw.line([(x - 2 * eye_r, eye_y), (x + 2 * eye_r, eye_y)], fill=_INK, width=w)
        else:
            draw.ellipse([x - eye_r, eye_y - eye_r, x + eye_r, eye_y + eye_r], fill=_INK)
    m = rng.uniform(0.45, 0.6) * r
    if mood in ("smile", "wink"):
        box = [c - m, c - 0.35 * m, c + m, c + 0.35 * r + 0.55 * m]
        draw.arc(box, 20, 160, fill=_INK, width=w)
    elif mood == "frown":
        box = [c - m, c + 0.3 * r, c + m, c + 0.3 * r + 1.2 * m]
        draw.arc(box, 200, 340, fill=_INK, width=w)
    else:
        mr = 0.22 * r
        draw.ellipse([c - mr, c + 0.45 * r - mr, c + mr, c + 0.45 * r + mr], outline=_INK, width=w)
    return image


def _arrow(rng: np.random.Generator, split: str) -> Image.Image:
    """A near-horizontal arrow (upright arrows are too close to a 1)."""
    image, draw = _paper()
    w = _width(rng, 3, 8)
    length = rng.uniform(60, 90)
    angle = math.radians(rng.uniform(-25, 25)) + (math.pi if rng.random() < 0.5 else 0.0)
    half = np.array([math.cos(angle), math.sin(angle)]) * length / 2
    c = np.array([CANVAS / 2, CANVAS / 2])
    tail, tip = c - half, c + half
    draw.line(_xy(np.array([tail, tip])), fill=_INK, width=w)
    head = rng.uniform(0.25, 0.4) * length
    spread = math.radians(rng.uniform(25, 40))
    ends = [(tip, angle)] + ([(tail, angle + math.pi)] if split == "test" else [])
    for point, a in ends:
        for sign in (-1, 1):
            back = point - head * np.array([math.cos(a + sign * spread), math.sin(a + sign * spread)])
            draw.line(_xy(np.array([back, point])), fill=_INK, width=w, joint="curve")
    return image


def _star(rng: np.random.Generator, split: str) -> Image.Image:
    image, draw = _paper()
    points = 5 if split == "train" else int(rng.integers(6, 9))
    outer = rng.uniform(36, 48)
    inner = outer * rng.uniform(0.38, 0.55)
    t = np.arange(2 * points) * math.pi / points + rng.uniform(0, 2 * math.pi)
    radius = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    vertices = np.stack([CANVAS / 2 + radius * np.cos(t), CANVAS / 2 + radius * np.sin(t)], axis=1)
    _polygon(draw, vertices, filled=rng.random() < 0.4, width=_width(rng, 3, 7))
    return image


def _heart(rng: np.random.Generator, split: str) -> Image.Image:
    image, draw = _paper()
    t = np.linspace(0, 2 * math.pi, 80, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    scale = rng.uniform(2.2, 2.9)
    vertices = np.stack([CANVAS / 2 + scale * x, CANVAS / 2 + scale * y], axis=1)
    _polygon(draw, vertices, filled=rng.random() < 0.5, width=_width(rng, 3, 7))
    return image


def _scribble(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    """1-4 smooth strokes, 12-18 turns in all, crossing at least five times: a tangle.

    A lone curve through a few points is too often a 2, a 6, a 7 or a 9, so it is never kept.
    A tall tangle of loops can still pass for an 8 (digits are taller than wide), so a tangle
    taller than wide is laid on its side.
    """
    while True:
        n_strokes = int(rng.integers(1, 5))
        turns = rng.multinomial(int(rng.integers(12, 19)), np.ones(n_strokes) / n_strokes)
        strokes = [smooth(rng.uniform(14, CANVAS - 14, size=(max(t, 3), 2))) for t in turns]
        if crossings(strokes) >= 5:
            break
    width, height = np.ptp(np.concatenate(strokes), axis=0)
    if height > width:
        strokes = [stroke[:, ::-1] for stroke in strokes]
    image, draw = _paper()
    w = _width(rng, 2, 7)
    for stroke in strokes:
        draw.line(_xy(stroke), fill=_INK, width=w, joint="curve")
    return image


def _shape(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    figures = _TRAIN_SHAPES if split == "train" else _TEST_SHAPES
    image, draw = _paper()
    figures[rng.integers(len(figures))](draw, rng)
    return _tilt(image, rng, 10)


def _box(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A filled box, or an outlined one with one or both diagonals or a cross inside (a bare
    outline would be a 0)."""
    w, h = rng.uniform(50, 90), rng.uniform(40, 80)
    c = CANVAS / 2
    x0, y0, x1, y1 = c - w / 2, c - h / 2, c + w / 2, c + h / 2
    if rng.random() < 0.35:
        draw.rectangle([x0, y0, x1, y1], fill=_INK)
        return
    lw = _width(rng, 3, 7)
    draw.rectangle([x0, y0, x1, y1], outline=_INK, width=lw)
    inside = rng.integers(3)
    if inside in (0, 1):
        draw.line([(x0, y0), (x1, y1)], fill=_INK, width=lw)
    if inside in (1, 2):
        draw.line([(x0, y1), (x1, y0)], fill=_INK, width=lw)
    if inside == 2:
        draw.line([(c, y0), (c, y1)], fill=_INK, width=lw)
        draw.line([(x0, c), (x1, c)], fill=_INK, width=lw)


def _triangle(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    r = rng.uniform(34, 48)
    t = rng.uniform(0, 2 * math.pi) + np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
    vertices = np.stack([CANVAS / 2 + r * np.cos(t), CANVAS / 2 + r * np.sin(t)], axis=1)
    _polygon(draw, vertices, filled=rng.random() < 0.5, width=_width(rng, 3, 8))


def _disc(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    rx, ry = rng.uniform(25, 45), rng.uniform(25, 45)
    c = CANVAS / 2
    draw.ellipse([c - rx, c - ry, c + rx, c + ry], fill=_INK)


def _cross(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    arm = rng.uniform(32, 46)
    w = _width(rng, 6, 16)
    a = rng.choice([0.0, math.pi / 4]) + rng.uniform(-0.15, 0.15)
    for b in (a, a + math.pi / 2):
        d = arm * np.array([math.cos(b), math.sin(b)])
        c = np.array([CANVAS / 2, CANVAS / 2])
        draw.line(_xy(np.array([c - d, c + d])), fill=_INK, width=w)


def _spiral(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    turns = rng.uniform(2.5, 4.0)
    t = np.linspace(0, 2 * math.pi * turns, 300)
    r = 4 + (rng.uniform(36, 48) - 4) * t / t[-1]
    t = t * (1 if rng.random() < 0.5 else -1) + rng.uniform(0, 2 * math.pi)
    points = np.stack([CANVAS / 2 + r * np.cos(t), CANVAS / 2 + r * np.sin(t)], axis=1)
    spacing = (r[-1] - 4) / turns
    draw.line(_xy(points), fill=_INK, width=_width(rng, 2, max(3, int(spacing / 2.5))), joint="curve")


def _grid(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    nx, ny = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    w = _width(rng, 3, 6)
    half = rng.uniform(32, 46)
    c = CANVAS / 2
    for x in np.linspace(c - half, c + half, nx):
        draw.line([(x, c - half - 6), (x, c + half + 6)], fill=_INK, width=w)
    for y in np.linspace(c - half, c + half, ny):
        draw.line([(c - half - 6, y), (c + half + 6, y)], fill=_INK, width=w)


def _hatching(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """4-8 parallel strokes at any angle."""
    k = int(rng.integers(4, 9))
    w = _width(rng, 3, 7)
    a = rng.uniform(0, math.pi)
    length = rng.uniform(60, 90)
    along = np.array([math.cos(a), math.sin(a)]) * length / 2
    across = np.array([-math.sin(a), math.cos(a)])
    c = np.array([CANVAS / 2, CANVAS / 2])
    for offset in np.linspace(-1, 1, k) * rng.uniform(28, 42):
        m = c + offset * across
        draw.line(_xy(np.array([m - along, m + along])), fill=_INK, width=w)


def _checkerboard(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    cells = int(rng.integers(3, 6))
    side = rng.uniform(70, 92)
    step = side / cells
    x0 = y0 = CANVAS / 2 - side / 2
    for i in range(cells):
        for j in range(cells):
            if (i + j) % 2 == 0:
                draw.rectangle([x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step], fill=_INK)


def _nested(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """Three or four nested squares."""
    k = int(rng.integers(3, 5))
    w = _width(rng, 2, 5)
    outer = rng.uniform(38, 48)
    c = CANVAS / 2
    for r in np.linspace(outer, outer * 0.25, k):
        draw.rectangle([c - r, c - r, c + r, c + r], outline=_INK, width=w)


def _zigzag(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A sideways zigzag of 5-9 strokes."""
    k = int(rng.integers(6, 11))
    span, height = rng.uniform(70, 92), rng.uniform(25, 55)
    x = np.linspace(-span / 2, span / 2, k) + CANVAS / 2
    y = CANVAS / 2 + np.where(np.arange(k) % 2 == 0, -height / 2, height / 2)
    draw.line(_xy(np.stack([x, y], axis=1)), fill=_INK, width=_width(rng, 3, 8), joint="curve")


def _blob(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A filled, lumpy polygon."""
    k = int(rng.integers(7, 13))
    t = np.sort(rng.uniform(0, 2 * math.pi, k))
    r = rng.uniform(18, 46, k)
    vertices = np.stack([CANVAS / 2 + r * np.cos(t), CANVAS / 2 + r * np.sin(t)], axis=1)
    draw.polygon(_xy(smooth(np.vstack([vertices, vertices[:1]]), 2)), fill=_INK)


def _wave(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A sideways wave of three to five periods."""
    periods = rng.uniform(3, 5)
    x = np.linspace(-44, 44, 200)
    y = rng.uniform(8, 18) * np.sin(2 * math.pi * periods * (x + 44) / 88 + rng.uniform(0, 2 * math.pi))
    points = np.stack([x + CANVAS / 2, y + CANVAS / 2], axis=1)
    draw.line(_xy(points), fill=_INK, width=_width(rng, 3, 7), joint="curve")


_TRAIN_SHAPES = (_box, _triangle, _disc, _cross, _spiral, _grid, _hatching)
_TEST_SHAPES = (_checkerboard, _nested, _zigzag, _blob, _wave)


def _pair(rng: np.random.Generator, split: str, system: bool) -> Image.Image:
    """Two digits side by side: typed in one of the split's fonts, or two handwritten 8×8 digits."""
    if rng.random() < 0.6:
        text = "".join(str(d) for d in rng.integers(0, 10, 2))
        path = pick_font(rng, split, text, symbols=False, system=system)
        return _tilt(_typed(text, path, rng, height=rng.uniform(44, 64)), rng, 10)
    images = _handwritten_digits()
    first = 0 if split == "train" else 1
    picks = first + 2 * rng.integers(0, (len(images) - first + 1) // 2, 2)
    side = int(rng.integers(36, 50))
    gap = int(rng.integers(0, 8))
    image, _ = _paper()
    x = (CANVAS - 2 * side - gap) // 2
    y = (CANVAS - side) // 2 + int(rng.integers(-4, 5))
    for i, pick in enumerate(picks):
        ink = Image.fromarray((255 - images[pick] * (255 / 16)).astype(np.uint8), "L")
        ink = ink.resize((side, side), Image.Resampling.BICUBIC)
        image.paste(ink, (x + i * (side + gap), y + int(rng.integers(-3, 4))))
    return image


@lru_cache(maxsize=1)
def _handwritten_digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images


DRAWERS: dict[str, Callable[[np.random.Generator, str, bool], Image.Image]] = {
    "letter": _letter,
    "symbol": _symbol,
    "scribble": _scribble,
    "shape": _shape,
    "pair": _pair,
}

