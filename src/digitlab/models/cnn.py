"""A small convolutional network (PyTorch) as a scikit-learn estimator.

The network is three stages of ``conv 3x3 → BatchNorm → ReLU → max-pool 2x2`` with
``width``, ``2·width`` and ``4·width`` channels, then one linear layer. The same code
serves the 8x8 digits (8 → 4 → 2 → 1 pixels) and MNIST (28 → 14 → 7 → 3).

Training keeps the whole training set in one tensor on the device and works batch by batch:
a shuffled index, a random affine warp of the batch (shift, rotation, scale) through
``affine_grid``/``grid_sample``, one forward/backward pass. There is no per-image Python
work. The learning rate follows a one-cycle schedule (warm up, then anneal to zero);
with ``time_budget`` the schedule runs on the clock, so training ends on time *and*
with the learning rate annealed.

PyTorch is imported inside the methods, so ``import digitlab.models`` works without it.
Weights leave the estimator only as numpy arrays (:meth:`CNNClassifier.export_tensors`,
:meth:`CNNClassifier.from_tensors`), for safetensors files: never pickle.

Examples
--------
>>> from digitlab.models import make_model
>>> make_model("cnn", dataset="mnist").get_params()["width"]
16
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from digitlab.errors import DigitlabError
from digitlab.models import register

__all__ = ["CNNClassifier"]

_META = ("classes", "image_shape")  # tensors saved beside the network's state dict
_PREDICT_BATCH = 2048


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Convolutional network for square digit images, trained with PyTorch.

    Parameters
    ----------
    epochs : int
        Passes over the training data (the most; ``time_budget`` or ``target_accuracy``
        may end training sooner).
    batch_size : int
        Images per training step.
    lr : float
        Peak learning rate of the one-cycle schedule (SGD with Nesterov momentum 0.9).
    weight_decay : float
        L2 penalty on the convolution and linear weights (not on BatchNorm or biases).
    width : int
        Channels of the first convolution; the next two have 2x and 4x as many.
    label_smoothing : float
        Weight of the uniform distribution mixed into the one-hot targets.
    augment : float
        Largest random shift, in pixels of the input image; 0 turns augmentation off.
    distort : float
        Largest random rotation (radians) and relative change of scale; 0 for shifts only.
    tta : bool
        Test-time augmentation: average the probabilities of the image and its four
        one-pixel shifts (5x the inference work).
    time_budget : float or None
        Seconds of training; the learning-rate schedule is fitted to the budget.
    target_accuracy : float or None
        Stop at the end of the first epoch whose validation accuracy reaches this value
        (needs ``validation_fraction > 0``).
    validation_fraction : float
        Share of the training data held out (stratified, seeded) to report validation
        accuracy per epoch; 0 trains on everything.
    device : {"auto", "cpu", "cuda"}
        Where to train and predict; "auto" takes CUDA when present. On CUDA training uses
        bf16 autocast and channels-last memory.
    random_state : int or None
        Seed of the weights, the shuffling and the augmentation. On CPU, one seed gives
        the same model every time.
    verbose : bool
        Show a progress bar with the loss and validation accuracy per epoch.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``.
    n_features_in_ : int
        Pixels per image (side x side).
    image_shape_ : tuple of int
        Height and width the features are reshaped to.
    module_ : torch.nn.Module
        The trained network, in eval mode.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``val_accuracy`` (or None), ``seconds``.
    n_iter_ : int
        Epochs run (the last may be partial when the time budget ended it).
    stop_reason_ : str
        ``"epochs"``, ``"time_budget"`` or ``"target_accuracy"`` (``"loaded"`` after
        :meth:`from_tensors`).

    Notes
    -----
    Training on CPU uses PyTorch's intra-op threads (``torch.set_num_threads``). Prediction
    runs a copy of the network with BatchNorm folded into the convolutions, in batches of
    2,048, under ``torch.inference_mode``; a call with a few images uses one thread. A model
    rebuilt by :meth:`from_tensors` predicts bit for bit what the fitted one did on CPU.

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> from digitlab.preprocess import test_features, train_features
    >>> ds = load_dataset("digits")
    >>> model = CNNClassifier(epochs=5, width=8, random_state=0).fit(*train_features(ds))
    >>> model.score(*test_features(ds)) > 0.9
    True
    """

    def __init__(
        self,
        epochs: int = 40,
        batch_size: int = 128,
        lr: float = 0.1,
        weight_decay: float = 5e-4,
        width: int = 32,
        label_smoothing: float = 0.1,
        augment: float = 1.0,
        distort: float = 0.1,
        tta: bool = True,
        time_budget: float | None = None,
        target_accuracy: float | None = None,
        validation_fraction: float = 0.0,
        device: str = "auto",
        random_state: int | None = None,
        verbose: bool = False,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.width = width
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.distort = distort
        self.tta = tta
        self.time_budget = time_budget
        self.target_accuracy = target_accuracy
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit

    def fit(self, X, y) -> "CNNClassifier":
        """Train on features ``X`` (N x side², floats in [0, 1]) and labels ``y``."""
        import torch
        import torch.nn.functional as F
        from sklearn.utils import check_random_state
        from sklearn.utils.validation import check_X_y

        start = time.perf_counter()
        X, y = check_X_y(X, y, dtype=np.float32)
        self._check_params()
        side = _side_of(X.shape[1])
        self.classes_, y_index = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self.image_shape_ = (side, side)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        device = _resolve_device(self.device)
        self._device = device

        train_idx, val_idx = _split(y_index, self.validation_fraction, seed)
        images = torch.from_numpy(np.ascontiguousarray(X)).reshape(-1, 1, side, side)
        labels = torch.from_numpy(y_index.astype(np.int64))
        x_train, y_train = images[train_idx].to(device), labels[train_idx].to(device)
        x_val, y_val = images[val_idx], y_index[val_idx]

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _build_net(side, self.width, len(self.classes_))
        net = _place(net, device)
        gen = torch.Generator().manual_seed(seed)

        optimizer = torch.optim.SGD(_param_groups(net, self.weight_decay), lr=self.lr, momentum=0.9, nesterov=True)

        n = len(x_train)
        batch = min(self.batch_size, n)
        steps_per_epoch = n // batch
        total_steps = self.epochs * steps_per_epoch
        autocast = _autocast(device)

        self.history_ = []
        self.stop_reason_ = "epochs"
        self.module_ = net
        clock = _Clock(total_steps, self.time_budget, start)
        progress = _Progress(self.verbose)
        with progress:
            for epoch in range(1, self.epochs + 1):
                net.train()
                order = torch.randperm(n, generator=gen).to(device)
                loss_sum = torch.zeros((), device=device)
                done = 0
                for b in range(steps_per_epoch):
                    frac = clock.progress()
                    if frac >= 1.0:
                        break
                    for group in optimizer.param_groups:
                        group["lr"] = _one_cycle(frac, self.lr) * group["lr_scale"]
                    idx = order[b * batch : (b + 1) * batch]
                    xb, yb = x_train[idx], y_train[idx]
                    if self.augment > 0 or self.distort > 0:
                        xb = _warp(xb, self.augment, self.distort, gen)
                    with autocast:
                        loss = F.cross_entropy(net(_fmt(xb, device)), yb, label_smoothing=self.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.detach()
                    done += 1
                    clock.tick()
                    progress.step(clock.progress())
                if done == 0:
                    break
                val_accuracy = None
                if len(val_idx):
                    net.eval()
                    proba = self._proba(x_val, net)
                    val_accuracy = float(np.mean(proba.argmax(axis=1) == y_val))
                record = {
                    "epoch": epoch,
                    "loss": float(loss_sum.item()) / done,
                    "val_accuracy": val_accuracy,
                    "seconds": round(time.perf_counter() - start, 3),
                }
                self.history_.append(record)
                progress.epoch(record, self.epochs)
                if done < steps_per_epoch:
                    self.stop_reason_ = "time_budget"
                    break
                if self.target_accuracy is not None and val_accuracy is not None:
                    if val_accuracy >= self.target_accuracy:
                        self.stop_reason_ = "target_accuracy"
                        break
                if clock.progress() >= 1.0:
                    if clock.step < total_steps:
                        self.stop_reason_ = "time_budget"
                    break
        self.n_iter_ = len(self.history_)
        net.eval()
        self._inference_net = _fuse(net)
        return self

    def _check_params(self) -> None:
        if not (isinstance(self.epochs, (int, np.integer)) and self.epochs >= 1):
            raise DigitlabError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 2):
            raise DigitlabError(f"batch_size must be an integer of at least 2, got {self.batch_size!r}")
        if not (isinstance(self.width, (int, np.integer)) and self.width >= 1):
            raise DigitlabError(f"width must be a positive integer, got {self.width!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise DigitlabError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise DigitlabError(f"time_budget must be a positive number of seconds, got {self.time_budget!r}")
        if self.target_accuracy is not None and self.validation_fraction <= 0:
            raise DigitlabError("target_accuracy needs a validation split; set validation_fraction, e.g. 0.1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise DigitlabError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    # -------------------------------------------------------------- predict

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, one row per image, columns in the order of ``classes_``."""
        from sklearn.utils.validation import check_array

        check_is_fitted(self, "module_")
        X = check_array(X, dtype=np.float32)
        if X.shape[1] != self.n_features_in_:
            raise DigitlabError(
                f"the model takes {self.n_features_in_} features ({self.image_shape_[0]}x"
                f"{self.image_shape_[1]} images), got {X.shape[1]}"
            )
        import torch

        images = torch.from_numpy(np.ascontiguousarray(X)).reshape(-1, 1, *self.image_shape_)
        return self._proba(images)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each image."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _proba(self, images, net=None) -> np.ndarray:
        """Probabilities for a CPU tensor N x 1 x H x W, in large batches, without autograd.

        ``net`` defaults to the trained network with BatchNorm folded into the convolutions.
        """
        import torch

        if net is None:
            net = getattr(self, "_inference_net", None)
            if net is None:
                net = self._inference_net = _fuse(self.module_)
        device = self._device
        out = []
        with _threads_for(len(images), device), torch.inference_mode(), _autocast(device):
            for i in range(0, len(images), _PREDICT_BATCH):
                xb = images[i : i + _PREDICT_BATCH].to(device)
                if self.tta:
                    views = [xb] + [_shift(xb, dy, dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
                    proba = sum(torch.softmax(net(_fmt(v, device)).float(), dim=1) for v in views) / len(views)
                else:
                    proba = torch.softmax(net(_fmt(xb, device)).float(), dim=1)
                out.append(proba.cpu())
        if not out:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return torch.cat(out).numpy()

    # ---------------------------------------------------------- persistence

    def export_tensors(self) -> dict[str, np.ndarray]:
        """The learned state as named numpy arrays, for a safetensors file.

        The network's ``state_dict`` under its own names (``conv1.weight``, ``bn1.running_mean``,
        ``fc.bias``, ...), plus ``classes`` (the labels) and ``image_shape`` (height, width).
        """
        check_is_fitted(self, "module_")
        classes = np.asarray(self.classes_)
        if classes.dtype.kind not in "iub":
            raise DigitlabError(f"only integer class labels can be saved with the CNN, got {classes.dtype}")
        tensors = {name: t.detach().cpu().contiguous().numpy().copy() for name, t in self.module_.state_dict().items()}
        tensors["classes"] = classes.astype(np.int64)
        tensors["image_shape"] = np.asarray(self.image_shape_, dtype=np.int64)
        return tensors

    @classmethod
    def from_tensors(cls, params: dict[str, Any], tensors: dict[str, np.ndarray]) -> "CNNClassifier":
        """Rebuild a fitted estimator from ``get_params()`` and :meth:`export_tensors` output.

        Refuses, with a :class:`~digitlab.errors.DigitlabError`, tensors that are missing,
        foreign to this network, or of the wrong shape.
        """
        import torch

        valid = cls().get_params()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise DigitlabError(f"CNN model card has unknown parameter(s): {', '.join(unknown)}")
        model = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        model._check_params()
        for name in _META:
            if name not in tensors:
                raise DigitlabError(f"CNN weights file lacks the tensor {name!r}; it is not a digitlab CNN file")
        shape = tuple(int(v) for v in np.asarray(tensors["image_shape"]).ravel())
        if len(shape) != 2 or shape[0] != shape[1]:
            raise DigitlabError(f"CNN weights file has image_shape {shape}; expected two equal sides")
        classes = np.asarray(tensors["classes"])
        if classes.ndim != 1 or len(classes) < 2:
            raise DigitlabError(f"CNN weights file has classes of shape {classes.shape}; expected a list of labels")
        side = _side_of(shape[0] * shape[1])
        first = np.shape(tensors.get("conv1.weight"))
        if first[:1] != (model.width,):  # check before building: a lying width could ask for gigabytes
            raise DigitlabError(f"CNN tensor 'conv1.weight' has shape {first}, but the card says width={model.width}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = _build_net(side, model.width, len(classes))
        expected = net.state_dict()
        foreign = sorted(set(tensors) - set(expected) - set(_META))
        if foreign:
            raise DigitlabError(f"CNN weights file has foreign tensor(s): {', '.join(foreign)}")
        missing = sorted(set(expected) - set(tensors))
        if missing:
            raise DigitlabError(f"CNN weights file lacks tensor(s): {', '.join(missing)}")
        state = {}
        for name, ref in expected.items():
            array = np.asarray(tensors[name])
            if tuple(array.shape) != tuple(ref.shape):
                raise DigitlabError(
                    f"CNN tensor {name!r} has shape {tuple(array.shape)}, expected {tuple(ref.shape)} "
                    f"(width={model.width}, {side}x{side} images, {len(classes)} classes)"
                )
            if array.dtype.kind != ("i" if ref.dtype == torch.int64 else "f"):
                raise DigitlabError(f"CNN tensor {name!r} has dtype {array.dtype}, expected {ref.dtype}")
            state[name] = torch.from_numpy(np.ascontiguousarray(array)).to(ref.dtype)
        net.load_state_dict(state, strict=True)
        model._device = _resolve_device(model.device)
        model.module_ = _place(net, model._device)
        model.module_.eval()
        model._inference_net = _fuse(model.module_)
        model.classes_ = classes
        model.n_features_in_ = side * side
        model.image_shape_ = (side, side)
        model.history_ = []
        model.n_iter_ = 0
        model.stop_reason_ = "loaded"
        return model


# ---------------------------------------------------------------- helpers


def _side_of(n_features: int) -> int:
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise DigitlabError(f"the CNN takes square images; {n_features} features are not side x side")
    if side < 8:
        raise DigitlabError(f"the CNN takes images of at least 8x8 pixels, got {side}x{side}")
    return side


def _build_net(side: int, width: int, n_classes: int):
    """conv-BN-ReLU-pool three times (width, 2·width, 4·width channels), then one linear layer."""
    from torch import nn

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, size = 1, side
    for i, out in enumerate((width, 2 * width, 4 * width), start=1):
        layers[f"conv{i}"] = nn.Conv2d(channels, out, 3, padding=1, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(out)
        layers[f"relu{i}"] = nn.ReLU(inplace=True)
        layers[f"pool{i}"] = nn.MaxPool2d(2)
        channels, size = out, size // 2
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(channels * size * size, n_classes)
    return nn.Sequential(layers)


def _param_groups(net, weight_decay: float) -> list[dict]:
    """Optimizer groups: weight decay on conv/linear weights only; a slower linear head.

    The head's learning rate is scaled by 16 / fan-in: one SGD step moves a logit by about
    lr x |features|², so a wide head (576 inputs at 28x28) would otherwise blow up the first
    steps.
    """
    conv, head, no_decay = [], [], []
    for name, param in net.named_parameters():
        if name.startswith("fc."):
            (head if param.ndim > 1 else no_decay).append(param)
        else:
            (conv if param.ndim > 1 else no_decay).append(param)
    head_scale = min(1.0, 16.0 / net.fc.in_features)
    return [
        {"params": conv, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": head, "weight_decay": weight_decay, "lr_scale": head_scale},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ]


def _fuse(net):
    """A copy of the trained network for inference, BatchNorm folded into the convolutions."""
    import copy

    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(net).eval()
    for name, module in list(fused.named_children()):
        if name.startswith("conv"):
            bn = "bn" + name[len("conv") :]
            setattr(fused, name, fuse_conv_bn_eval(module, getattr(fused, bn)))
            setattr(fused, bn, nn.Identity())
    return fused


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def _threads_for(n_images: int, device):
    """One CPU thread for a few images: waking a second thread costs more than it saves,
    and on a busy machine it can stall a single prediction for 100 ms."""
    if device.type != "cpu" or n_images > 16:
        yield
        return
    import torch

    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _resolve_device(name: str):
    import torch

    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DigitlabError("device='cuda' was asked for, but PyTorch sees no CUDA GPU; use device='cpu'")
        return torch.device("cuda")
    return torch.device("cpu")


def _place(net, device):
    """Move the network to ``device``, in channels-last memory (faster on CPU's oneDNN and on CUDA)."""
    import torch

    return net.to(device=device, memory_format=torch.channels_last)


def _fmt(x, device):
    """A batch in the memory layout the network expects."""
    import torch

    return x.contiguous(memory_format=torch.channels_last)


def _autocast(device):
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _one_cycle(frac: float, peak: float, warmup: float = 0.2) -> float:
    """Learning rate at ``frac`` (0..1) of training: linear warm-up from peak/25, cosine down to 0."""
    if frac < warmup:
        return peak * (0.04 + 0.96 * frac / warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (frac - warmup) / (1.0 - warmup))))


def _split(y_index: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation parts (stratified when every class allows it)."""
    everything = np.arange(len(y_index))
    if fraction <= 0:
        return everything, everything[:0]
    from sklearn.model_selection import train_test_split

    try:
        train_idx, val_idx = train_test_split(everything, test_size=fraction, stratify=y_index, random_state=seed)
    except ValueError:  # a class too rare to stratify: fall back to a plain random split
        train_idx, val_idx = train_test_split(everything, test_size=fraction, random_state=seed)
    return np.sort(train_idx), np.sort(val_idx)


def _warp(x, shift: float, distort: float, gen):
    """Random affine warp of a batch N x 1 x H x W: shift up to ``shift`` px, rotate/scale by ``distort``."""
    import torch
    import torch.nn.functional as F

    n, side = x.shape[0], x.shape[-1]
    r = torch.rand(n, 4, generator=gen) * 2 - 1  # uniform in [-1, 1]
    angle = r[:, 0] * distort
    scale = 1.0 + r[:, 1] * distort
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    t = r[:, 2:] * (2.0 * shift / side)  # shift in the [-1, 1] coordinates of affine_grid
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _shift(x, dy: int, dx: int):
    """Shift a batch by whole pixels, filling with zeros (paper)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


class _Clock:
    """How far along training is, from 0 to 1: by steps, or by the clock when a time budget binds.

    Under a budget, the steps still to come are estimated from the recent seconds per step
    (the first steps, which warm up PyTorch, do not count), so the learning-rate schedule
    stretches or shrinks to end when the budget does.
    """

    def __init__(self, total_steps: int, time_budget: float | None, start: float):
        self.total_steps = max(total_steps, 1)
        self.budget = time_budget
        self.start = start
        self.step = 0
        self._last = time.perf_counter()
        self._per_step: float | None = None

    def tick(self) -> None:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.step += 1
        if self.step > 2:  # skip the warm-up steps
            self._per_step = seconds if self._per_step is None else 0.9 * self._per_step + 0.1 * seconds

    def progress(self) -> float:
        frac = self.step / self.total_steps
        if self.budget is None:
            return frac
        remaining = self.budget - (time.perf_counter() - self.start)
        if remaining <= 0:
            return 1.0
        if self._per_step is None:
            return frac
        return max(frac, self.step / (self.step + remaining / self._per_step))


class _Progress:
    """A Rich progress bar over training, with the loss and validation accuracy per epoch."""

    def __init__(self, enabled: bool):
        self.total = 1000  # progress is tracked as a fraction (steps, or the clock under a budget)
        self._bar = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]CNN[/] {task.description}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]}  val acc {task.fields[val]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._task = self._bar.add_task("epoch 1", total=self.total, loss="-", val="-")

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.update(self._task, completed=self.total)
            self._bar.stop()

    def step(self, frac: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=min(frac, 1.0) * self.total)

    def epoch(self, record: dict, epochs: int) -> None:
        if self._bar is not None:
            val = "-" if record["val_accuracy"] is None else f"{record['val_accuracy']:.4f}"
            self._bar.update(
                self._task,
                description=f"epoch {record['epoch']}/{epochs}",
                loss=f"{record['loss']:.4f}",
                val=val,
            )


# ------------------------------------------------------------- registry


@register("cnn", "Convolutional network (PyTorch)", needs="torch")
def cnn(dataset: str, seed: int) -> CNNClassifier:
    """Defaults per dataset.

    The 8x8 digits (1,437 training images) take the class defaults: 40 augmented epochs of a
    width-32 network, with test-time augmentation, a few seconds on a CPU. MNIST takes a fast
    recipe: 2 plain epochs of a width-16 network (about 20 s on 2 CPU cores, 99.2% or so);
    pass ``time_budget`` to fit it to the time you have. The 99.5% recipe is
    ``width=32, augment=2, distort=0.1, time_budget=540`` (see benchmarks/bench_mnist_cpu.py).
    """
    if dataset == "mnist":
        return CNNClassifier(
            epochs=2, lr=0.4, width=16, augment=0.0, distort=0.0, tta=False, random_state=seed
        )
    return CNNClassifier(random_state=seed)
