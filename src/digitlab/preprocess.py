"""Phase 2: turn uint8 images into the features every model takes.

Every model in the zoo takes the same input: one row per image, pixels scaled to [0, 1]
(the lesson's ``X / 16.0``, or ``X / 255.0`` for MNIST), flattened row by row. Models that
need the 2-D picture back (the CNN) reshape it themselves.
"""

from __future__ import annotations

import math

import numpy as np

from digitlab.data.dataset import Dataset


def to_features(images: np.ndarray, pixel_max: int) -> np.ndarray:
    """Scale ``images`` (N×H×W, 0..pixel_max) to float32 features N×(H·W) in [0, 1].

    Examples
    --------
    >>> from digitlab.preprocess import to_features
    >>> import numpy as np
    >>> to_features(np.array([[[0, 8], [16, 4]]], dtype=np.uint8), 16)
    array([[0.  , 0.5 , 1.  , 0.25]], dtype=float32)
    """
    images = np.asarray(images)
    flat = images.reshape(len(images), math.prod(images.shape[1:])).astype(np.float32)  # -1 fails for 0 images
    flat /= np.float32(pixel_max)
    return flat


def train_features(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the training part."""
    return to_features(dataset.train_images, dataset.pixel_max), dataset.train_labels


def test_features(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the test part."""
    return to_features(dataset.test_images, dataset.pixel_max), dataset.test_labels
