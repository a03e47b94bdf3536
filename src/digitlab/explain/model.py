"""One way to ask any zoo model about pictures: images in, ten probabilities out.

Every explanation perturbs or probes *images* (N×H×W, pixel values 0..pixel_max, floats allowed),
so :class:`Explainable` turns them into the model's features exactly as evaluation does
(:func:`digitlab.preprocess.to_features`) and returns one probability column per digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from digitlab.preprocess import to_features

__all__ = ["Explainable"]


@dataclass
class Explainable:
    """A fitted model with what it needs to read pictures.

    Parameters
    ----------
    model : estimator
        Any fitted zoo model (``predict``, and ``predict_proba`` where it has one).
    pixel_max : int
        Brightest pixel value of the images the model takes (16 or 255).
    image_shape : tuple of int
        Height and width of those images.
    name : str
        How the page names the model (e.g. ``"cnn (20261128T223710Z-mnist-cnn)"``).
    temperature : float
        Calibration temperature applied to the probabilities (1 leaves them as they are).

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> from digitlab.train import train
    >>> ds = load_dataset("digits")
    >>> ex = Explainable(train("logreg", ds).model, ds.pixel_max, ds.image_shape, "logreg")
    >>> ex.proba(ds.test_images[:3]).shape
    (3, 10)
    """

    model: Any
    pixel_max: int
    image_shape: tuple[int, int]
    name: str
    temperature: float = 1.0

    @property
    def is_cnn(self) -> bool:
        """True for the PyTorch CNN (it has a network in ``module_``)."""
        return hasattr(self.model, "module_") and hasattr(self.model, "image_shape_")

    @property
    def linear_weights(self) -> np.ndarray | None:
        """The 10×(H·W) weights of a linear model on the pixels, or None for any other model."""
        coef = getattr(self.model, "coef_", None)
        if coef is None or np.ndim(coef) != 2 or np.shape(coef) != (10, int(np.prod(self.image_shape))):
            return None
        return np.asarray(coef, dtype=np.float64)

    def features(self, images: np.ndarray) -> np.ndarray:
        """Images (N×H×W, 0..pixel_max; clipped to that range) as the model's feature rows."""
        images = np.clip(np.asarray(images, dtype=np.float32), 0, self.pixel_max)
        return to_features(images, self.pixel_max)

    def proba(self, images: np.ndarray) -> np.ndarray:
        """N×10 probabilities, column ``d`` for digit ``d`` (all mass on the answer for a model without any)."""
        from digitlab.predict import _ten_probabilities

        if len(images) == 0:
            return np.zeros((0, 10))
        return _ten_probabilities(self.model, self.features(images), self.temperature)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The model's answer for each image (the most probable digit)."""
        if len(images) == 0:
            return np.zeros(0, dtype=int)
        return np.asarray(self.model.predict(self.features(images))).astype(int)
