"""The classic ``mnist.pkl.gz`` (floats k/256, a validation part) rebuilt into MNIST's four uint8 arrays.

Only :func:`~digitlab.data.safe_pickle.load_numpy_pickle` unpickles it: NumPy arrays and tuples, nothing that
runs code. Used by :mod:`digitlab.data.mnist` for the PyPI source.
"""

from __future__ import annotations

import gzip
import io

import numpy as np

from digitlab.data.safe_pickle import load_numpy_pickle
from digitlab.errors import DigitlabError

__all__ = ["decode_classic_pickle"]


def decode_classic_pickle(data: bytes, source: str, *, max_bytes: int) -> dict[str, np.ndarray]:
    """Turn the classic gzipped ``((train), (valid), (test))`` float pickle into the four uint8 arrays.

    Raises :class:`~digitlab.errors.DigitlabError` (one line naming ``source``) for a damaged stream, more
    than ``max_bytes`` unpacked, anything but NumPy arrays, other shapes, or pixels not of the form k/256.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            raw = stream.read(max_bytes + 1)
    except (OSError, EOFError) as exc:
        raise DigitlabError(f"{source}: damaged gzip stream ({exc})") from None
    if len(raw) > max_bytes:
        raise DigitlabError(f"{source}: unpacks to more than {max_bytes:,} bytes")
    parts = load_numpy_pickle(raw, source=source, encoding="latin1")
    del raw
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in parts)):
        raise DigitlabError(f"{source}: expected ((train), (valid), (test)) pairs of arrays")
    images, labels = [], []
    for part_images, part_labels in parts:
        if not (isinstance(part_images, np.ndarray) and isinstance(part_labels, np.ndarray)):
            raise DigitlabError(f"{source}: expected NumPy arrays")
        if part_images.ndim != 2 or part_images.shape[1] != 28 * 28 or part_labels.shape != part_images.shape[:1]:
            raise DigitlabError(f"{source}: unexpected shapes {part_images.shape} and {part_labels.shape}")
        scaled = part_images.astype(np.float64) * 256.0  # pixels are k/256: exact
        if not (np.array_equal(scaled, np.round(scaled)) and scaled.min() >= 0 and scaled.max() <= 255):
            raise DigitlabError(f"{source}: pixels are not of the form k/256 with k in 0-255")
        if part_labels.min() < 0 or part_labels.max() > 9:
            raise DigitlabError(f"{source}: labels outside 0-9")
        images.append(scaled.astype(np.uint8).reshape(-1, 28, 28))
        labels.append(part_labels.astype(np.uint8))
    return {
        "train-images-idx3-ubyte": np.concatenate(images[:2]),
        "train-labels-idx1-ubyte": np.concatenate(labels[:2]),
        "t10k-images-idx3-ubyte": images[2],
        "t10k-labels-idx1-ubyte": labels[2],
    }
