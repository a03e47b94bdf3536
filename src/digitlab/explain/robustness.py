"""How the model fails: test accuracy as the images are changed more and more.

Each :class:`Perturbation` changes a whole stack of images at once with :mod:`scipy.ndimage`
(rotate, shift, zoom, grey erosion/dilation, Gaussian blur, elastic distortion) or adds seeded
Gaussian noise. Its first level is "unchanged" and returns the images untouched, so the curve
starts at the plain test accuracy. Sizes in pixels are given for 28×28 MNIST and scaled to the
side of the images (on the 8×8 digits a 6-pixel shift becomes 1.7 pixels).

Examples
--------
>>> import numpy as np
>>> images = np.zeros((2, 8, 8)); images[:, 2:6, 3:5] = 16
>>> rotated = PERTURBATIONS["rotation"].apply(images, 90.0, pixel_max=16, seed=0)
>>> rotated.shape, bool(np.allclose(rotated[0].T[::-1], images[0]))
((2, 8, 8), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from digitlab.explain.model import Explainable

__all__ = ["PERTURBATIONS", "Perturbation", "RobustnessCurve", "robustness_curve", "stratified_indices"]


def _scale(images: np.ndarray) -> float:
    """Pixels of these images per pixel of a 28×28 MNIST image."""
    return images.shape[-1] / 28.0


def _rotate(images, degrees, pixel_max, seed):
    from scipy import ndimage

    return ndimage.rotate(images, degrees, axes=(2, 1), reshape=False, order=1, mode="constant", cval=0.0)


def _shift(images, pixels, pixel_max, seed):
    from scipy import ndimage

    return ndimage.shift(images, (0, 0, pixels * _scale(images)), order=1, mode="constant", cval=0.0)


def _zoom(images, factor, pixel_max, seed):
    from scipy import ndimage

    centre = (np.asarray(images.shape[1:]) - 1) / 2.0
    matrix = np.diag([1.0, 1.0 / factor, 1.0 / factor])
    offset = np.concatenate([[0.0], centre - centre / factor])
    return ndimage.affine_transform(images, matrix, offset=offset, order=1, mode="constant", cval=0.0)


def _thickness(images, steps, pixel_max, seed):
    """``steps`` dilations (erosions when negative) of 1 pixel of a 28×28 image: other sizes are resampled to
    28×28 and back (by area), so on the 8×8 digits a step is 0.29 of their pixels, not a whole one."""
    from scipy import ndimage

    height, width = images.shape[1:]
    down_y, down_x = _area_matrix(height, 28), _area_matrix(width, 28)
    out = images if (height, width) == (28, 28) else np.einsum("yi,nij,xj->nyx", down_y.T * 28 / height, images,
                                                               down_x.T * 28 / width)
    op = ndimage.grey_dilation if steps > 0 else ndimage.grey_erosion
    for _ in range(int(abs(steps))):
        out = op(out, footprint=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], dtype=bool))
    return out if (height, width) == (28, 28) else np.einsum("yi,nij,xj->nyx", down_y, out, down_x)


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``A`` (n_out × n_in): ``A @ v`` averages ``v`` over each of ``n_out`` equal cells (each row sums to 1);
    ``A.T * n_in / n_out`` spreads each cell back over the ``n_in`` pixels it covers.

    >>> _area_matrix(2, 3).round(3).tolist()
    [[0.667, 0.333, 0.0], [0.0, 0.333, 0.667]]
    """
    edges_out, edges_in = np.linspace(0, 1, n_out + 1), np.linspace(0, 1, n_in + 1)
    overlap = (np.minimum(edges_out[1:, None], edges_in[None, 1:]) - np.maximum(edges_out[:-1, None], edges_in[None, :-1]))
    return np.clip(overlap, 0, None) * n_out


def _noise(images, sigma, pixel_max, seed):
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0.0, sigma * pixel_max, images.shape), 0, pixel_max)


def _blur(images, sigma, pixel_max, seed):
    from scipy import ndimage

    return ndimage.gaussian_filter(images, (0, sigma * _scale(images), sigma * _scale(images)), mode="constant")


def _elastic(images, alpha, pixel_max, seed):
    """Simard et al. (2003): a random displacement field smoothed with σ = 4 px, scaled so each image's
    typical (root-mean-square) displacement is ``alpha`` pixels of a 28×28 image."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    n, height, width = images.shape
    s = _scale(images)
    fields = []
    for _ in range(2):
        field = ndimage.gaussian_filter(rng.uniform(-1, 1, images.shape), (0, 4 * s, 4 * s))
        rms = np.sqrt(np.mean(field**2, axis=(1, 2), keepdims=True))
        fields.append(field / np.maximum(rms, 1e-12) * alpha * s)
    dy, dx = fields
    z, y, x = np.meshgrid(np.arange(n), np.arange(height), np.arange(width), indexing="ij")
    return ndimage.map_coordinates(images, (z, y + dy, x + dx), order=1, mode="constant", cval=0.0)


@dataclass(frozen=True)
class Perturbation:
    """One way of changing images, at a list of increasing levels (the first: unchanged).

    Parameters
    ----------
    name : str
        Short key (``"rotation"``).
    label : str
        The x-axis label, with the unit.
    levels : tuple of float
        The amounts tried, the first the identity.
    function : callable
        ``function(images, level, pixel_max, seed)`` → images of the same shape.
    caption : str
        One sentence for a learner: what to look for in the curve (true of any model: what one model did is
        :meth:`RobustnessCurve.in_words`).
    amount : str
        How one level is written in a sentence, a format such as ``"{:g}°"``.
    sides : tuple of str
        For levels on both sides of "unchanged", a word for each side (``("thinner", "thicker")``).
    """

    name: str
    label: str
    levels: tuple[float, ...]
    function: Callable[..., np.ndarray] = field(repr=False)
    caption: str = ""
    amount: str = "{:g}"
    sides: tuple[str, str] = ("", "")

    def apply(self, images: np.ndarray, level: float, *, pixel_max: int, seed: int = 0) -> np.ndarray:
        """``images`` (N×H×W) changed by ``level``; at the first level, the images themselves (a float copy)."""
        images = np.asarray(images, dtype=np.float64)
        if level == self.levels[0]:
            return images.copy()
        return np.clip(self.function(images, level, pixel_max, seed), 0, pixel_max)


PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in (
    Perturbation("rotation", "rotation (degrees)", (0, 5, 10, 15, 20, 25, 30, 35, 40, 45), _rotate,
                 "People tilt their digits: how far can the model follow them?", "{:g}°"),
    Perturbation("shift", "shift to the right (pixels of a 28×28 image)", (0, 1, 2, 3, 4, 5, 6), _shift,
                 "MNIST digits are centred by their centre of mass; a model that never saw them moved expects them "
                 "there.", "{:g} px"),
    Perturbation("scale", "scale (× size)", (1.0, 0.9, 0.8, 0.7, 0.6, 0.5), _zoom,
                 "Smaller digits than the model learned from: strokes move towards the middle and thin out.",
                 "× {:g}"),
    Perturbation("thickness", "stroke thickness (erosions −, dilations +, 1 px of a 28×28 image each)",
                 (0, -2, -1, 1, 2, 3),
                 _thickness,
                 "A thin pen (erosion, left of 0) or a marker (dilation): thick strokes fill the loops that tell 8 "
                 "from 0.", "{:+g} px", ("thinner", "thicker")),
    Perturbation("noise", "Gaussian noise (σ, share of the brightest pixel)", (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
                 _noise, "Grainy paper or a bad scan: how much noise before the strokes are lost in it?", "σ {:g}"),
    Perturbation("blur", "Gaussian blur (σ, pixels of a 28×28 image)", (0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), _blur,
                 "An out-of-focus photo: edges soften, then neighbouring strokes merge.", "σ {:g} px"),
    Perturbation("elastic", "elastic distortion (typical displacement, pixels of a 28×28 image)",
                 (0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), _elastic,
                 "Wobbly handwriting: a smooth random warp, as Simard et al. used to augment MNIST.", "{:g} px"),
)}

HOLDS = 0.05
"""A model "holds" a level while its accuracy is at most this much (5 points) under its accuracy unchanged."""


@dataclass
class RobustnessCurve:
    """Accuracy of one model at each level of one perturbation."""

    perturbation: str
    model: str
    levels: list[float]
    accuracy: list[float]

    def in_words(self, perturbation: Perturbation) -> str:
        """What this curve shows, in one sentence: how far the model holds (:data:`HOLDS`) and where it ends.

        >>> p = PERTURBATIONS["rotation"]
        >>> RobustnessCurve("rotation", "cnn", [0, 10, 20, 30], [0.99, 0.98, 0.95, 0.7]).in_words(p)
        'cnn: 99.0% unchanged; within 5 points of that up to 20°; 70.0% at 30°.'
        >>> RobustnessCurve("rotation", "logreg", [0, 10, 20], [0.92, 0.8, 0.5]).in_words(p)
        'logreg: 92.0% unchanged; more than 5 points lower already at 10° (80.0%); 50.0% at 20°.'
        """
        start = perturbation.levels[0]
        plain = self.accuracy[self.levels.index(start)]
        said = [f"{self.model}: {plain:.1%} unchanged"]
        sides = ([lv for lv in self.levels if lv < start][::-1], [lv for lv in self.levels if lv > start])
        for side, word in zip(sides, perturbation.sides):
            if not side:
                continue
            accuracy, at = [self.accuracy[self.levels.index(lv)] for lv in side], perturbation.amount.format
            held = next((i for i, a in enumerate(accuracy) if a < plain - HOLDS), len(side))
            word = f"{word}, " if word else ""
            if held == len(side):
                said.append(f"{word}within 5 points of that all the way to {at(side[-1])} ({accuracy[-1]:.1%})")
                continue
            said.append(f"{word}within 5 points of that up to {at(side[held - 1])}" if held else
                        f"{word}more than 5 points lower already at {at(side[0])} ({accuracy[0]:.1%})")
            said.append(f"{accuracy[-1]:.1%} at {at(side[-1])}")
        return "; ".join(said) + "."

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        return {"perturbation": self.perturbation, "model": self.model, "levels": self.levels,
                "accuracy": self.accuracy}


def stratified_indices(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of a stratified random subset of ``count`` labels (all of them when there are fewer), sorted."""
    labels = np.asarray(labels)
    if count >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(np.arange(len(labels)), train_size=count, stratify=labels, random_state=seed)
    except ValueError:  # a class too rare to stratify
        keep, _ = train_test_split(np.arange(len(labels)), train_size=count, random_state=seed)
    return np.sort(keep)


def robustness_curve(model: Explainable, images: np.ndarray, labels: np.ndarray, perturbation: Perturbation,
                     *, seed: int = 0, levels: Sequence[float] | None = None) -> RobustnessCurve:
    """Accuracy of ``model`` on ``images`` changed by ``perturbation`` at each of its levels, in increasing order.

    The same seed gives the same noise and distortions to every model compared.
    """
    levels = sorted(perturbation.levels if levels is None else levels)
    labels = np.asarray(labels)
    accuracy = []
    for level in levels:
        changed = perturbation.apply(images, level, pixel_max=model.pixel_max, seed=seed)
        accuracy.append(float(np.mean(model.predict(changed) == labels)))
    return RobustnessCurve(perturbation.name, model.name, [float(v) for v in levels], accuracy)
