"""Phase 2: turn uint8 images into the features every model takes.

Every model in the zoo takes the same input: one row per image, pixels scaled to [0, 1]
(the lesson's ``X / 16.0``, or ``X / 255.0`` for MNIST), flattened row by row. Models that
need the 2-D picture back (the CNN) reshape it themselves.
"""

from __future__ import annotations

import math
import warnings

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


def warn_if_unscaled(X: np.ndarray, model: str) -> None:
    """Warn when features go far above 1: pixels of 0..16 or 0..255 not yet divided by their maximum.

    A model trained on them learns well, but :func:`digitlab.predict_images`, ``digitlab predict`` and its ONNX
    export give it pixels in [0, 1], and it then answers at random: say so at ``fit``, when it can still change.
    """
    top, bottom = float(np.max(X, initial=0.0)), float(np.min(X, initial=0.0))
    # 1 is white: a little above is noise; far below 0 as well, standardised features (a pipeline's scaler), not
    # pixels; raw pixels with noise added go a little below 0 (a reviewer: -9 with noise of sd 3 on 0..255)
    if top >= 2.0 and bottom >= -0.1 * top:
        warnings.warn(f"{model} was given features up to {top:g}, but takes pixels scaled to [0, 1]: divide by the "
                      "pixel maximum first (digitlab.preprocess.to_features), or what it learns will not match the "
                      "pictures digitlab gives it when it predicts", UserWarning, stacklevel=4)  # the caller of fit
