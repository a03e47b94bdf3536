"""scikit-learn's bundled 8x8 digits: 1,797 images, pixels 0-16, works offline."""

from __future__ import annotations

import numpy as np

from digitlab.data.dataset import Dataset


def load_digits(test_size: float = 0.2, seed: int = 42) -> Dataset:
    """Load the bundled 8x8 digits and split them as the lesson does.

    The split is ``train_test_split(X, y, test_size=test_size, random_state=seed)``, so the
    defaults give the lesson's exact 1,437 / 360 images.

    Examples
    --------
    >>> ds = load_digits()
    >>> ds.n_train, ds.n_test, ds.image_shape, ds.pixel_max
    (1437, 360, (8, 8), 16)
    """
    from sklearn.datasets import load_digits as sklearn_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_load_digits()
    images = bunch.images.astype(np.uint8)  # values are the integers 0..16
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_size, random_state=seed
    )
    return Dataset(
        name="digits",
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        pixel_max=16,
        split={"kind": "random", "test_size": test_size, "seed": seed},
    )
