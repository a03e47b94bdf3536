"""Fine-tune a fitted model to one person's handwriting, without forgetting MNIST.

A person draws a few samples of each digit (say 20); :func:`finetune_model` returns a new model
that reads *their* digits better and MNIST as well as before. The original is never changed.

- The CNN (:class:`~digitlab.models.cnn.CNNClassifier`) continues from its weights for a few
  hundred steps. Each batch is half the person's samples (drawn again and again, each time
  warped differently: shifted, rotated, scaled) and half MNIST "replay" images, so the network
  learns the new style while it keeps rehearsing the old. The learning rate follows a short
  one-cycle schedule, and BatchNorm keeps MNIST's statistics (its layers stay in eval mode): a
  few hundred images of one person would otherwise drag them towards one style of pen.
- A classic scikit-learn model (logreg, knn, svm, forest, mlp) is refitted, as a
  :func:`~sklearn.base.clone`, on the replay images plus the person's samples, repeated.

:func:`check_enough` says, in one line, when a set is too small to learn from.

Examples
--------
>>> import numpy as np
>>> check_enough(np.repeat(np.arange(10), 3))
>>> check_enough(np.array([3]))
Traceback (most recent call last):
...
digitlab.errors.DigitlabError: fine-tuning needs at least 3 samples of each digit 0-9; this set has only 1 of the digit 3 and none of 0-2, 4-9 — draw more with `digitlab serve --collect`

A classic model is refitted (a new model; the original is left as it was):

>>> from sklearn.neighbors import KNeighborsClassifier
>>> from digitlab.preprocess import to_features
>>> rng = np.random.default_rng(0)
>>> images = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
>>> labels = np.tile(np.arange(10), 3)
>>> knn = KNeighborsClassifier(1).fit(to_features(images, 255), labels[::-1])
>>> tuned = finetune_model(knn, images, labels)
>>> tuned is knn, bool((tuned.predict(to_features(images, 255)) == labels).all())
(False, True)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import clone

from digitlab.errors import DigitlabError, estimator_of
from digitlab.models.classic import fit_threads
from digitlab.preprocess import to_features

__all__ = ["MIN_PER_DIGIT", "check_enough", "finetune_model"]

MIN_PER_DIGIT = 3
"""Fewest samples of each digit :func:`finetune_model` accepts."""

def check_enough(labels: Any, min_per_digit: int = MIN_PER_DIGIT) -> None:
    """Refuse, in one line, a set with fewer than ``min_per_digit`` samples of any digit 0-9.

    Parameters
    ----------
    labels : array-like of int
        The digit of each sample.
    min_per_digit : int
        Fewest samples of each digit.

    Raises
    ------
    DigitlabError
        A label outside 0-9, or too few samples of some digit: the message names which.

    Examples
    --------
    >>> check_enough([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], min_per_digit=1)
    >>> check_enough([0, 0, 1], min_per_digit=2)
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: fine-tuning needs at least 2 samples of each digit 0-9; this set has only 1 of the digit 1 and none of 2-9 — draw more with `digitlab serve --collect`
    """
    labels = np.asarray(labels).ravel()
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9):
        raise DigitlabError(f"labels must be the digits 0-9, got {sorted(set(labels.tolist()))[:10]}; "
                            "label each sample with the digit drawn")
    counts = np.bincount(labels.astype(np.int64), minlength=10)
    few = [f"only {counts[d]} of the digit {d}" for d in range(10) if 0 < counts[d] < min_per_digit]
    none = [d for d in range(10) if counts[d] == 0]
    if not few and not none:
        return
    parts = ([", ".join(few)] if few else []) + ([f"none of {_ranges(none)}"] if none else [])
    raise DigitlabError(f"fine-tuning needs at least {min_per_digit} samples of each digit 0-9; this set has "
                        f"{' and '.join(parts)} — draw more with `digitlab serve --collect`")


def _ranges(digits: list[int]) -> str:
    """``[0, 1, 2, 4, 6, 7, 8, 9]`` → ``"0-2, 4, 6-9"`` (two in a row stay apart: ``"4, 5"``)."""
    runs: list[list[int]] = []
    for d in digits:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def finetune_model(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    replay: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    steps: int = 300,
    lr: float = 0.01,
    batch_size: int = 64,
    person_share: float = 0.5,
    augment: float = 2.0,
    distort: float = 0.15,
    blend: float = 0.5,
    repeat: int = 5,
) -> Any:
    """A new model fitted to a person's samples: ``model`` continued (CNN) or refitted (classic).

    Parameters
    ----------
    model : fitted estimator
        A :class:`~digitlab.models.cnn.CNNClassifier` or a scikit-learn classifier of 28×28 images
        (features ÷ 255, as :func:`digitlab.preprocess.to_features` makes them). Not changed.
    images : ndarray of uint8, shape (N, H, W)
        The person's samples in MNIST form (0 paper … 255 ink), e.g. from
        :func:`~digitlab.data.images.prepare_digit`; H×W must be what the model reads.
    labels : ndarray of int, shape (N,)
        Their digits; at least :data:`MIN_PER_DIGIT` of each of 0-9.
    replay : (images, labels), optional
        MNIST training images (uint8 N×H×W) and labels rehearsed alongside, so the model does not
        forget MNIST. Without them the model learns from the person's samples alone.
    seed : int
        Seed of the batches and the warps (CNN) or of the refit; same seed, same model on a CPU.
    steps, lr, batch_size, person_share, augment, distort, blend
        The CNN's recipe: training steps; peak learning rate of the one-cycle schedule; images per
        step; the share of each batch from the person's samples (the rest replay); the largest
        random shift (pixels) and rotation (radians) / relative scale change; and the share of the
        fine-tuned weights in the result, the rest the original's (weight-space ensembling, as in
        WiSE-FT): 0.5 keeps the gains on the person's digits and nearly all the MNIST accuracy.
    repeat : int
        Classic models only: how many times the person's samples are repeated in the refit.

    Returns
    -------
    estimator
        A new fitted model of the same kind and parameters.

    See the module's examples.
    """
    model = estimator_of(model, "finetune_model")
    images, labels = _check_set(model, images, labels, "the person's samples")
    check_enough(labels)
    if replay is not None:
        replay = _check_set(model, replay[0], replay[1], "the replay set")
    from digitlab.models.cnn import CNNClassifier

    if isinstance(model, CNNClassifier):
        return _finetune_cnn(model, images, labels, replay, seed=seed, steps=steps, lr=lr, batch_size=batch_size,
                             person_share=person_share, augment=augment, distort=distort, blend=blend)
    return _refit_classic(model, images, labels, replay, seed=seed, repeat=repeat)


def _check_set(model: Any, images: Any, labels: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``images`` as uint8 N×H×W of the size ``model`` reads and ``labels`` as int64, or one clear line."""
    if not hasattr(model, "classes_"):
        raise DigitlabError("the model is not fitted; fine-tune one trained by `digitlab run`: load_model(run).model")
    images, labels = np.asarray(images), np.asarray(labels).ravel()
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DigitlabError(f"{what} must be uint8 images N×H×W in MNIST form, got {images.dtype} of shape "
                            f"{images.shape}; prepare each picture with digitlab.data.images.prepare_digit")
    if len(images) != len(labels):
        raise DigitlabError(f"{what}: {len(images)} images but {len(labels)} labels; give one label per image")
    pixels = images.shape[1] * images.shape[2]
    if pixels != getattr(model, "n_features_in_", pixels):
        raise DigitlabError(f"{what} are {images.shape[1]}×{images.shape[2]} images, but the model reads "
                            f"{model.n_features_in_} pixels; fine-tune a model trained on MNIST (28×28)")
    unknown = sorted(set(labels.tolist()) - set(np.asarray(model.classes_).tolist()))
    if unknown:
        raise DigitlabError(f"{what} have labels the model does not know: {unknown[:10]}; use the digits 0-9")
    return images, labels.astype(np.int64)


def _refit_classic(model, images, labels, replay, *, seed: int, repeat: int):
    """A clone of a scikit-learn model fitted on the replay set plus the person's samples, repeated."""
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise DigitlabError(f"repeat must be a whole number of at least 1, got {repeat!r}")
    fresh = clone(model)
    seeds = {name: seed for name in fresh.get_params() if name.endswith("random_state")}
    fresh.set_params(**seeds)
    x = [np.repeat(images, repeat, axis=0)]
    y = [np.repeat(labels, repeat)]
    if replay is not None:
        x.append(replay[0])
        y.append(replay[1])
    with fit_threads(fresh):
        return fresh.fit(to_features(np.concatenate(x), 255), np.concatenate(y))


def _finetune_cnn(model, images, labels, replay, *, seed: int, steps: int, lr: float, batch_size: int,
                  person_share: float, augment: float, distort: float, blend: float):
    """The CNN continued from its weights on batches of the person's samples and replay, BatchNorm frozen."""
    import torch
    import torch.nn.functional as F

    from digitlab.models import cnn_optim as co
    from digitlab.models import cnn_torch as ct
    from digitlab.models.cnn import EXTRA_TENSORS, CNNClassifier

    _check_cnn_recipe(steps, lr, batch_size, person_share, blend)
    tensors = model.export_tensors()
    classes = np.asarray(model.classes_)
    weights = {name: array for name, array in tensors.items() if name not in EXTRA_TENSORS}
    net = ct.place(copy.deepcopy(model.module_), torch.device("cpu"))  # a copy: the model's own network, as built
    optimizer = co.make_optimizer(net, lr, model.weight_decay)
    gen = ct.seeded_generator(seed)
    n_person = batch_size if replay is None else max(1, round(batch_size * person_share))
    pools = [(_pool(images, labels, classes), n_person)]
    if replay is not None:
        pools.append((_pool(*replay, classes), batch_size - n_person))

    net.eval()  # BatchNorm keeps MNIST's running statistics; its scale and shift still learn
    # speed: one CPU thread (threads_for with a small count): batches of 64 small images are too little work
    # to share, and on a busy machine two threads waiting for each other made each step ten times slower
    with ct.threads_for(0, torch.device("cpu")):
        for step in range(steps):
            for group in optimizer.param_groups:  # one-cycle schedule, set every step
                group["lr"] = ct.one_cycle(step / steps, lr) * group["lr_scale"]
            xb, yb = _draw_batch(pools, gen)
            xb = ct.warp(xb, augment, distort, gen)
            loss = F.cross_entropy(net(ct.channels_last(xb)), yb, label_smoothing=model.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    tuned = {name: _blend(array, weights[name], blend) for name, array in ct.state_arrays(net).items()}
    tuned.update({name: tensors[name] for name in EXTRA_TENSORS if name in tensors})
    return CNNClassifier.from_tensors(model.get_params(), tuned)


def _blend(tuned: np.ndarray, original: np.ndarray, share: float) -> np.ndarray:
    """``share`` of the fine-tuned weights plus the rest of the original ones (counters stay as tuned)."""
    if tuned.dtype.kind != "f":
        return tuned
    return (share * tuned + (1 - share) * original).astype(tuned.dtype)


def _check_cnn_recipe(steps: int, lr: float, batch_size: int, person_share: float, blend: float) -> None:
    """Refuse, in one line, a recipe value that cannot train."""
    for name, value, least in (("steps", steps, 1), ("batch_size", batch_size, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise DigitlabError(f"{name} must be a whole number of at least {least}, got {value!r}")
    if not lr > 0:
        raise DigitlabError(f"lr must be a positive number, got {lr!r}")
    if not 0 < person_share <= 1:
        raise DigitlabError(f"person_share must be in (0, 1], got {person_share!r}")
    if not 0 < blend <= 1:
        raise DigitlabError(f"blend must be in (0, 1], got {blend!r}")


def _pool(images: np.ndarray, labels: np.ndarray, classes: np.ndarray):
    """Images (uint8, N×1×H×W) and class indices as tensors to draw batches from."""
    import torch

    return (torch.from_numpy(np.ascontiguousarray(images[:, None])),
            torch.from_numpy(np.searchsorted(classes, labels).astype(np.int64)))


def _draw_batch(pools, gen):
    """``n`` random images (with replacement) from each pool, as floats in [0, 1], and their classes."""
    import torch

    xs, ys = [], []
    for (x, y), n in pools:
        idx = torch.randint(len(x), (n,), generator=gen)
        xs.append(x[idx].float() / 255)
        ys.append(y[idx])
    return torch.cat(xs), torch.cat(ys)
