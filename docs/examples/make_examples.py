"""Writes the README tour's two pictures: a 7 and the number 4071, drawn with a pen on slightly uneven paper.

Reproducible from a seed: ``python docs/examples/make_examples.py`` writes ``seven.png`` and ``4071.png`` beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent

# each digit as pen strokes in a 100 x 140 box: lists of (x, y) points
STROKES = {
    "0": [[(50 + 36 * np.sin(t), 72 - 62 * np.cos(t)) for t in np.linspace(-0.3, 2 * np.pi, 28)]],
    "1": [[(34, 34), (56, 12), (54, 132)]],
    "4": [[(62, 10), (14, 92), (90, 92)], [(68, 44), (66, 134)]],
    "7": [[(14, 18), (86, 16), (62, 60), (44, 132)], [(36, 74), (78, 72)]],
}


def _paper(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Off-white paper, a little darker towards one corner, with a faint grain."""
    y, x = np.mgrid[0:height, 0:width]
    light = 238 - 22 * (x / width) * (y / height) + rng.normal(0, 2.0, (height, width))
    return Image.fromarray(np.clip(light, 0, 255).astype(np.uint8)).convert("RGB")


def _write(text: str, path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    width, height = 60 + 115 * len(text), 220
    picture = _paper(width, height, rng)
    draw = ImageDraw.Draw(picture)
    for n, char in enumerate(text):
        left, top = 40 + 115 * n + rng.integers(-6, 7), 40 + rng.integers(-8, 9)
        for stroke in STROKES[char]:
            points = [(left + x + rng.normal(0, 1.5), top + y + rng.normal(0, 1.5)) for x, y in stroke]
            draw.line(points, fill=(40, 45, 90), width=9, joint="curve")
    picture.filter(ImageFilter.GaussianBlur(0.8)).save(path, optimize=True)


if __name__ == "__main__":
    _write("7", HERE / "seven.png", seed=7)
    _write("4071", HERE / "4071.png", seed=4071)
    print(f"wrote {HERE / 'seven.png'} and {HERE / '4071.png'}")
