"""scikit-learn's bundled 8x8 digits: 1,797 images, pixels 0-16, works offline."""

from __future__ import annotations

import numpy as np

from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError


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
    try:
        train_x, test_x, train_y, test_y = train_test_split(
            images, labels, test_size=test_size, random_state=seed
        )
    except ValueError:  # a test size that leaves one part empty
        raise DigitlabError(f"test_size (--test-size) {test_size} leaves no images on one side of the "
                            f"{len(labels):,} digits' split; choose a value such as 0.2") from None
    if len(np.unique(train_y)) < 10:  # a model that never saw a digit cannot answer it (scikit-learn's own words)
        raise DigitlabError(f"test_size (--test-size) {test_size} leaves {len(train_y)} training "
                            f"image{'s' * (len(train_y) != 1)}, and not every digit is among them; choose a "
                            "value such as 0.2")
    return Dataset(
        name="digits",
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        pixel_max=16,
        split={"kind": "random", "test_size": test_size, "seed": seed},
    )


def digits_status() -> dict:
    """The bundled 8×8 digits' row of ``digitlab data info``: where scikit-learn keeps them, and their size."""
    import importlib.util
    from pathlib import Path

    from digitlab.data import DATASETS

    path = None
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
        path = candidate if candidate.is_file() else None
    return {
        "name": "digits",
        "present": path is not None,
        "path": str(path) if path else None,
        "size_bytes": path.stat().st_size if path else None,
        "checksums_ok": None,
        "summary": DATASETS["digits"].summary + "; bundled with scikit-learn, nothing to fetch",
    }
