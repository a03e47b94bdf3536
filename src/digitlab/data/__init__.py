"""Datasets: the registry of names, and :func:`load_dataset` that returns a :class:`Dataset`.

Examples
--------
>>> from digitlab.data import load_dataset
>>> load_dataset("digits").n_test
360
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError, require_dataset

__all__ = ["Dataset", "DATASETS", "DatasetInfo", "MAX_SEED", "check_dataset", "load_dataset", "split_validation",
           "stratified_subset"]

MAX_SEED = 2**32 - 1  # NumPy's seeds: the largest --seed a split, a subset or a model takes


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about one dataset."""

    name: str
    summary: str
    image_shape: tuple[int, int]
    official_split: bool


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "scikit-learn's bundled 8x8 digits (1,797 images, offline)", (8, 8), False),
    "mnist": DatasetInfo("mnist", "MNIST, 28x28, official 60,000 / 10,000 split", (28, 28), True),
}


def _loader(name: str) -> Callable[..., Dataset]:
    if name == "digits":
        from digitlab.data.digits import load_digits

        return load_digits
    from digitlab.data.mnist import load_mnist

    return load_mnist


def load_dataset(
    name: str = "digits",
    *,
    test_size: float | None = None,
    seed: int = 42,
    limit: int | None = None,
) -> Dataset:
    """Load a dataset by registry name.

    Parameters
    ----------
    name : str
        "digits", "mnist", or the name of a handwriting set (see :mod:`digitlab.data.handwriting`).
    test_size : float, optional
        Fraction held out for testing, for datasets without an official split (default 0.2).
    seed : int
        Seed of the random split and of ``limit``'s subset.
    limit : int, optional
        Keep a stratified subset of this many training images.

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> load_dataset("digits", test_size=0.5).n_test
    899
    """
    seed, test_size = _whole(seed, "seed (--seed)"), _fraction(test_size)
    limit = None if limit is None else _whole(limit, "limit (--limit)")
    if not 0 <= seed <= MAX_SEED:
        raise DigitlabError(f"seed (--seed) must be from 0 to {MAX_SEED}, got {seed}")
    if name not in DATASETS:
        dataset = _handwriting(name, test_size, seed)
        return dataset if limit is None else stratified_subset(dataset, limit, seed=seed)
    info = DATASETS[name]
    if test_size is not None and not 0.0 < test_size < 1.0:
        raise DigitlabError(f"test_size (--test-size) must be between 0 and 1 (exclusive), got {test_size}")
    if info.official_split:
        if test_size is not None:
            raise DigitlabError(
                f"{name} has an official train/test split; drop test_size (--test-size: it applies to digits only)"
            )
        dataset = _loader(name)()
    else:
        dataset = _loader(name)(test_size=0.2 if test_size is None else test_size, seed=seed)
    if limit is not None:
        dataset = stratified_subset(dataset, limit, seed=seed)
    return dataset


def _unsplittable(labels: np.ndarray, fraction: float) -> str:
    """Why ``labels`` cannot be split stratified at ``fraction``, and what would help, in one line."""
    digits, counts = np.unique(labels, return_counts=True)
    alone = digits[counts < 2].tolist()
    if alone:
        return (f"--validation {fraction}: the digits {alone} have one training image each, and a stratified split "
                "needs two of every digit; use more images (a larger --limit)")
    held = int(np.ceil(fraction * len(labels)))
    fix = "larger" if held < len(digits) else "smaller"
    side = "held out" if fix == "larger" else "kept for training"
    return (f"--validation {fraction}: too few images {side} to hold one of each of the {len(digits)} digits; "
            f"use a {fix} fraction or more images")


def _whole(value, option: str):
    """``value`` as a Python int; one line for anything but a whole number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DigitlabError(f"{option} must be a whole number, got {value!r}")
    return int(value)


def _fraction(value):
    """A test size as a Python float (None stays None); one line for anything but a number."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DigitlabError(f"test_size (--test-size) must be a number between 0 and 1, got {value!r}")
    return float(value)


def check_dataset(name: str) -> None:
    """Refuse, in one line, a name that is neither in :data:`DATASETS` nor one of your handwriting sets.

    Cheap (it reads no images), so a command can check its ``--dataset`` before it imports scikit-learn.
    """
    if name in DATASETS:
        return
    from digitlab.data.handwriting import list_sets

    sets = list_sets()
    if name not in sets:
        mine = f"; your handwriting sets: {', '.join(sets)}" if sets else ""
        raise DigitlabError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}{mine}")


def _handwriting(name: str, test_size: float | None, seed: int) -> Dataset:
    """A handwriting set (see :mod:`digitlab.data.handwriting`), or the one-line error for an unknown name."""
    from digitlab.data.handwriting_io import load_handwriting

    check_dataset(name)
    return load_handwriting(name, test_size=test_size, seed=seed)


def stratified_subset(dataset: Dataset, limit: int, *, seed: int = 42) -> Dataset:
    """Keep ``limit`` training images with the same class proportions; the test part is unchanged.

    Examples
    --------
    >>> small = stratified_subset(load_dataset("digits"), 200)
    >>> small.n_train, small.n_test
    (200, 360)
    """
    n_classes = len(np.unique(dataset.train_labels))
    if limit >= dataset.n_train:
        return dataset
    if limit < n_classes:
        raise DigitlabError(f"--limit must be at least {n_classes} (one image per class), got {limit}")
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(
            np.arange(dataset.n_train), train_size=limit, stratify=dataset.train_labels, random_state=seed
        )
    except ValueError as exc:
        raise DigitlabError(f"--limit {limit}: cannot keep every digit in a subset that small ({exc})") from None
    return _keep_training(dataset, np.sort(keep), {"limit": limit, "limit_seed": seed})


def _keep_training(dataset: Dataset, keep: np.ndarray, split_notes: dict) -> Dataset:
    """The same dataset with only the training images at ``keep``; ``split_notes`` join its split record."""
    return Dataset(
        name=dataset.name,
        train_images=dataset.train_images[keep],
        train_labels=dataset.train_labels[keep],
        test_images=dataset.test_images,
        test_labels=dataset.test_labels,
        pixel_max=dataset.pixel_max,
        split={**dataset.split, **split_notes},
    )


def split_validation(dataset: Dataset, fraction: float, *, seed: int = 42) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
    """Carve a stratified validation split out of the training part.

    Returns the dataset with the smaller training part, and ``(images, labels)`` of the validation split.

    Examples
    --------
    >>> train_part, (val_images, val_labels) = split_validation(load_dataset("digits"), 0.25)
    >>> train_part.n_train, len(val_labels)
    (1077, 360)
    """
    require_dataset(dataset, "split_validation")
    if not 0.0 < fraction < 1.0:
        raise DigitlabError(f"--validation must be between 0 and 1 (exclusive), got {fraction}")
    from sklearn.model_selection import train_test_split

    try:
        keep, held = train_test_split(
            np.arange(dataset.n_train), test_size=fraction, stratify=dataset.train_labels, random_state=seed
        )
    except ValueError:
        raise DigitlabError(_unsplittable(dataset.train_labels, fraction)) from None
    held = np.sort(held)
    return _keep_training(dataset, np.sort(keep), {"validation": fraction}), (dataset.train_images[held], dataset.train_labels[held])
