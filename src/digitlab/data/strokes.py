"""Geometry of drawn strokes (polylines as N×2 arrays): smoothing, and counting where they cross.

Examples
--------
>>> import numpy as np
>>> crossings([np.array([[0.0, 0.0], [10.0, 10.0]]), np.array([[0.0, 10.0], [10.0, 0.0]])])
1
>>> smooth(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]), rounds=1).shape
(6, 2)
"""

from __future__ import annotations

import numpy as np

__all__ = ["crossings", "pen_line", "smooth"]


def smooth(points: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Chaikin corner cutting: a polyline through ``points`` becomes a smooth curve."""
    for _ in range(rounds):
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.vstack([points[:1], np.stack([q, r], axis=1).reshape(-1, 2), points[-1:]])
    return points


def pen_line(draw, xy: list[tuple[float, float]], width: float, fill: int, *, dots=None) -> None:
    """A polyline drawn with a round pen on a Pillow ``ImageDraw``: ``width`` px wide, round at its two ends (or at
    every point of ``dots``, e.g. its corners too)."""
    draw.line(xy, fill=fill, width=int(round(width)), joint="curve")
    for x, y in (xy[0], xy[-1]) if dots is None else dots:
        draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=fill)


def crossings(strokes: list[np.ndarray]) -> int:
    """How many times the strokes (polylines) cross themselves and each other."""
    segments = np.concatenate([np.stack([s[:-1], s[1:]], axis=1) for s in strokes])
    owner = np.concatenate([np.full(len(s) - 1, i) for i, s in enumerate(strokes)])
    step = np.concatenate([np.arange(len(s) - 1) for s in strokes])
    a, b = segments[:, 0], segments[:, 1]
    d = b - a

    def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    ab = a[None, :, :] - a[:, None, :]
    denom = cross(d[:, None, :], d[None, :, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cross(ab, d[None, :, :]) / denom
        u = cross(ab, d[:, None, :]) / denom
    hit = (denom != 0) & (t > 0) & (t < 1) & (u > 0) & (u < 1)
    neighbours = (owner[:, None] == owner[None, :]) & (np.abs(step[:, None] - step[None, :]) <= 1)
    return int(np.triu(hit & ~neighbours, 1).sum())
