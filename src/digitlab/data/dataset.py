"""The one value that flows through the pipeline: a :class:`Dataset`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from digitlab.errors import InvalidValueError


@dataclass(frozen=True, eq=False)  # arrays: equal by identity, hashable
class Dataset:
    """Digit images split into a training and a test part.

    Every loader returns one; every later step takes one. Nothing downstream knows where
    the data came from.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"digits"`` or ``"mnist"``.
    train_images, test_images : ndarray of uint8, shape (N, H, W)
        Pixel values from 0 (paper) to ``pixel_max`` (ink).
    train_labels, test_labels : ndarray of int64, shape (N,)
        The digit shown, 0-9.
    pixel_max : int
        The largest pixel value the source uses: 16 for the 8x8 digits, 255 for MNIST.
    split : dict
        How the split was made, e.g. ``{"kind": "random", "test_size": 0.2, "seed": 42}``.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((4, 8, 8), dtype=np.uint8)
    >>> ds = Dataset("toy", images[:3], np.array([0, 1, 2]), images[3:], np.array([3]), 16)
    >>> ds.image_shape, ds.n_train, ds.n_test
    ((8, 8), 3, 1)
    >>> ds
    Dataset('toy': 3 training and 1 test images, 8×8, pixels 0-16, split {})
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    pixel_max: int
    split: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # a learner's print(ds) showed every array, thousands of lines for MNIST
        return (f"Dataset({self.name!r}: {self.n_train:,} training and {self.n_test:,} test images, "
                f"{'×'.join(map(str, self.image_shape))}, pixels 0-{self.pixel_max}, split {self.split})")

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            images = getattr(self, f"{part}_images")
            labels = getattr(self, f"{part}_labels")
            if images.dtype != np.uint8 or images.ndim != 3:
                raise InvalidValueError(f"{part}_images must be uint8 N×H×W, got {images.dtype} {images.shape}")
            if labels.ndim != 1 or len(labels) != len(images):
                raise InvalidValueError(f"{part}_labels must be 1-D with one label per image")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise InvalidValueError("train and test images differ in size")
        # a notebook's own Dataset (an audit): pixel_max=0 ended in a NaN error advising HistGradientBoosting, pixels
        # over it gave features over 1, string labels failed only when saved
        if isinstance(self.pixel_max, bool) or not isinstance(self.pixel_max, numbers.Integral) or \
                not 1 <= self.pixel_max <= 255:
            raise InvalidValueError(f"pixel_max must be a whole number from 1 to 255, got {self.pixel_max!r}")
        brightest = max((int(i.max()) for i in (self.train_images, self.test_images) if i.size), default=0)
        if brightest > self.pixel_max:
            raise InvalidValueError(f"pixels go up to {brightest}, over pixel_max={self.pixel_max}")
        for part in ("train", "test"):  # whole numbers in floats (np.loadtxt's) become integers; strings are refused
            labels = getattr(self, f"{part}_labels")
            try:
                with np.errstate(invalid="ignore"):
                    whole = labels.astype(np.int64) if labels.dtype.kind in "iufO" else None
            except (TypeError, ValueError, OverflowError):  # objects that are no numbers ("a", None)
                whole = None
            digits = whole is not None and np.array_equal(whole, labels)
            if not digits or (whole.size and not 0 <= whole.min() <= whole.max() <= 9):
                seen = np.unique(labels.astype(str) if labels.dtype.kind == "O" else labels)[:10].tolist()
                raise InvalidValueError(f"{part}_labels must be the digits 0-9 as numbers (labels.astype(int)), got "
                                        f"{labels.dtype} {seen}")
            object.__setattr__(self, f"{part}_labels", whole if labels.dtype.kind not in "iu" else labels)

    def sha256(self, part: str) -> str:
        """SHA-256 of the ``"train"`` or ``"test"`` part's images and labels (their shapes, then their bytes as uint8
        and little-endian int64): a run records both, so that a re-evaluation can tell changed data from a changed
        model.

        >>> import numpy as np
        >>> ds = Dataset("toy", np.zeros((2, 8, 8), np.uint8), np.array([0, 1]), np.ones((1, 8, 8), np.uint8),
        ...              np.array([3]), 16)
        >>> ds.sha256("test")[:12], ds.sha256("test") == ds.sha256("train")
        ('9473faf1d1b6', False)
        """
        import hashlib

        images, labels = getattr(self, f"{part}_images"), getattr(self, f"{part}_labels")
        digest = hashlib.sha256(repr((images.shape, labels.shape)).encode())
        digest.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
        digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
        return digest.hexdigest()

    @property
    def image_shape(self) -> tuple[int, int]:
        """Height and width of one image."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def n_train(self) -> int:
        """Number of training images."""
        return len(self.train_labels)

    @property
    def n_test(self) -> int:
        """Number of test images."""
        return len(self.test_labels)

    @property
    def classes(self) -> np.ndarray:
        """The digits present in the data, sorted."""
        return np.unique(np.concatenate([self.train_labels, self.test_labels]))
