"""A small convolutional network (PyTorch) as a scikit-learn estimator.

This module is the scikit-learn side: parameters, checks, the epoch loop, persistence. The
PyTorch side (the network, augmentation, one epoch, prediction, and the speed tricks) is
:mod:`digitlab.models.cnn_torch`; on one CUDA GPU each training step is one CUDA graph
(:mod:`digitlab.models.cnn_graph`). Both are imported only when a model fits or predicts, so
``import digitlab.models`` works without PyTorch. Weights leave the estimator only as numpy
arrays (:meth:`CNNClassifier.export_tensors`, :meth:`CNNClassifier.from_tensors`), for
safetensors files: never pickle.
"""

from __future__ import annotations

import functools
import math
import numbers
import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from digitlab.errors import DigitlabError, InvalidValueError
from digitlab.models.cnn_recipes import positive_seconds
from digitlab.preprocess import warn_if_unscaled

__all__ = ["CNNClassifier"]

MIN_SIDE = 8  # three 2x2 poolings leave at least one pixel
_META = ("classes", "image_shape")  # tensors saved beside the network's state dict
_N_FEATURES = "n_features_in"  # saved too, only when the images were padded to a square
_HISTORY = "history"  # saved too: one row per epoch, columns _HISTORY_COLUMNS (NaN: not measured)
_HISTORY_COLUMNS = ("epoch", "loss", "val_accuracy", "seconds", "lr", "share")  # share: of the epoch trained
_WORLD_SIZE = "world_size"  # saved too, only when torchrun trained the model on several processes
_STOP_REASONS = (None, "epochs", "time_budget", "target_accuracy")
EXTRA_TENSORS = (*_META, _N_FEATURES, _HISTORY, _WORLD_SIZE)  # a weights file's tensors beyond the network's own


_RANGES = (  # (parameter, lower test, upper test, in words): numbers that must be finite and in range
    ("lr", lambda v: v > 0, math.isfinite, "a positive number"),
    ("weight_decay", lambda v: v >= 0, math.isfinite, "a number of at least 0"),
    ("label_smoothing", lambda v: v >= 0, lambda v: v <= 1, "a number from 0 to 1"),
    ("augment", lambda v: v >= 0, lambda v: v <= 28, "a shift in pixels from 0 to 28"),
    ("distort", lambda v: v >= 0, lambda v: v < 1, "a number in [0, 1)"),
    ("validation_fraction", lambda v: v >= 0, lambda v: v < 1, "in [0, 1)"),
    ("target_accuracy", lambda v: v > 0, lambda v: v <= 1, "in (0, 1]"),
)


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Convolutional network for digit images, trained with PyTorch.

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
    extra_convs : int
        How many of the three blocks, from the last, end with a second 3x3 conv → BatchNorm → ReLU at their
        pooled size (0 to 3). On MNIST, 2 gave 99.64% in 60 s (0: 99.55%), 3 gave 99.74% in 600 s (2: 99.70%).
    norm_after_pool : bool
        Each block is conv → max-pool → BatchNorm → ReLU (True), or conv → BatchNorm → max-pool → ReLU (False:
        the order of models saved before this parameter, which a card without it gets). After the pool,
        BatchNorm works on a quarter of the values: on MNIST a step about 15% shorter, as accurate.
    label_smoothing : float
        Weight of the uniform distribution mixed into the one-hot targets.
    augment : float
        Largest random shift, in pixels of the input image; 0 turns augmentation off.
    distort : float
        Largest random rotation (radians) and relative change of scale; 0 for shifts only.
    tta : bool or int
        Test-time augmentation: average the probabilities of the image and its four one-pixel shifts (True or 5: 5x
        the inference work), or its eight (9); False or 1: off.
    time_budget : float or None
        Seconds of training; the learning-rate schedule is fitted to the budget.
    target_accuracy : float or None
        Stop after the first epoch whose validation accuracy reaches this value (needs ``validation_fraction > 0``).
    validation_fraction : float
        Share of the training data held out (stratified, seeded) to report validation
        accuracy per epoch; 0 trains on everything.
    device : {"auto", "cpu", "cuda"}
        Where to train and predict; "auto" takes CUDA when present. Memory is channels-last.
    precision : {"auto", "bf16", "fp32"}
        Arithmetic of the training steps: "auto" trains in bf16 autocast on CUDA and on CPUs
        that compute bf16 in hardware (AVX512-BF16, AMX), in fp32 elsewhere. Prediction is fp32
        on the CPU and bf16 on CUDA, whatever the training precision.
    random_state : int or None
        Seed of the weights, the shuffling and the augmentation. On one CPU with one thread count, one
        seed gives the same model every time; the thread count follows the cores other programs leave
        free unless ``OMP_NUM_THREADS`` fixes it (:mod:`digitlab.cores`), and bf16 and fp32 training, or
        another machine's CPU, may differ.
    verbose : bool
        Show a progress bar with the loss and validation accuracy per epoch.

    Attributes
    ----------
    classes_ : ndarray
        The labels seen in ``fit``.
    n_features_in_ : int
        Features per row: side x side pixels, or any count, zero-padded to the next square.
    image_shape_ : tuple of int
        Height and width the rows are shaped to (at least 8x8).
    module_ : torch.nn.Module
        The trained network, in eval mode.
    history_ : list of dict
        One record per epoch: ``epoch``, ``loss``, ``val_accuracy`` (None without a validation part),
        ``seconds`` since fitting began, ``lr`` (at the epoch's end), ``share`` (of the epoch trained: below 1
        when the time budget ended it midway). Saved with the weights, so a loaded model has it too.
    n_iter_ : int
        Epochs run (the last may be partial when the time budget ended it).
    stop_reason_ : str
        ``"epochs"``, ``"time_budget"`` or ``"target_accuracy"`` (``"loaded"`` after
        :meth:`from_tensors`).
    world_size_ : int
        Processes that trained the model together: 1, or N under ``torchrun --nproc_per_node=N``
        (then saved with the weights as ``world_size``).

    Notes
    -----
    On one CUDA GPU each training step is one CUDA graph, replayed (2-5x faster on an H200; ``DIGITLAB_CUDA_GRAPHS=0``:
    off). Prediction folds each BatchNorm that follows a convolution into it, in batches of 256 on the CPU (2,048
    on CUDA); a model rebuilt by :meth:`from_tensors` predicts bit for bit what the fitted one did on CPU.

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> from digitlab.models.cnn import CNNClassifier
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
        extra_convs: int = 0,
        norm_after_pool: bool = True,
        label_smoothing: float = 0.1,
        augment: float = 1.0,
        distort: float = 0.1,
        tta: bool | int = True,
        time_budget: float | None = None,
        target_accuracy: float | None = None,
        validation_fraction: float = 0.0,
        device: str = "auto",
        precision: str = "auto",
        random_state: int | None = None,
        verbose: bool = False,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.width = width
        self.extra_convs = extra_convs
        self.norm_after_pool = norm_after_pool
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.distort = distort
        self.tta = tta
        self.time_budget = time_budget
        self.target_accuracy = target_accuracy
        self.validation_fraction = validation_fraction
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # CUDA kernels and bf16 do not repeat bit for bit; the CPU does for one thread count (digitlab.cores)
        tags.non_deterministic = self.device != "cpu"
        return tags

    # ------------------------------------------------------------------ fit

    def fit(self, X, y) -> "CNNClassifier":
        """Train on features ``X`` (N x D floats in [0, 1], best D = side²) and labels ``y``.

        Inside a ``torchrun`` process group (see :mod:`digitlab.models.ddp`) every rank must
        call ``fit`` with the same data and parameters: they train one model together.
        """
        from digitlab.models import cnn_graph as cg, cnn_optim as co, cnn_torch as ct, ddp
        from digitlab.progress import TrainingBar

        ct.ready_for_training()
        start = time.perf_counter()  # the time budget counts from here
        self._check_params()
        device = ct.resolve_device(self.device)
        X, y_index, seed = self._check_data(X, y)
        side, classes, self._device = self.image_shape_[0], self.classes_, device

        images = ct.as_images(X, side)
        train_idx, val_idx = _split(y_index, self.validation_fraction, seed)
        train = slice(None) if len(val_idx) == 0 else train_idx  # everything: no copy (0.05 s for MNIST)
        x_train, y_train = ct.to_tensors(images[train], y_index[train], device)
        net = ct.place(ct.build_net(side, self.width, len(classes), seed=seed, norm_after_pool=self.norm_after_pool,
                                    extra_convs=self.extra_convs), device)
        batch = min(self.batch_size, len(x_train))
        steps_per_epoch = len(x_train) // batch
        clock = ct.Clock(self.epochs * steps_per_epoch, self.time_budget, start)
        trainee, clock, shard = ddp.prepare(net, clock, device, batch, (X, y_index, self))  # torchrun: DDP, one clock
        main, shared = shard[0] == 0, shard[1] > 1  # rank 0 (or the only process) validates and shows progress
        graphed = cg.wanted(device, shard)  # on one GPU: each step one CUDA graph launch
        optimizer = co.make_optimizer(net, self.lr, self.weight_decay, graphable=graphed)

        self.module_, self.history_, self.stop_reason_, self.world_size_ = net, [], "epochs", shard[1]
        shown_epochs = None if self.time_budget else self.epochs  # the clock ends a budgeted run, not the count
        with TrainingBar(self.verbose and main, shown_epochs, title="CNN") as bar, \
                ct.CoreShare(watch=device.type == "cpu") as share:  # the threads fitted to the free cores
            step_args = dict(batch_size=batch, peak_lr=self.lr, clock=clock, gen=ct.seeded_generator(seed),
                             augment=self.augment, distort=self.distort, label_smoothing=self.label_smoothing,
                             on_step=share.ticking(bar.step), bf16=ct.use_bf16(device, self.precision))
            train_epoch = (cg.GraphedEpochs(trainee, optimizer, x_train, y_train, **step_args) if graphed else
                           functools.partial(ct.train_one_epoch, trainee, optimizer, x_train, y_train,
                                             shard=shard, **step_args))
            for epoch in range(1, self.epochs + 1):
                loss, steps = train_epoch()
                if steps == 0:  # the budget ran out before this epoch's first step
                    self.stop_reason_ = "time_budget"
                    break
                val_accuracy = self._accuracy(net, images[val_idx], y_index[val_idx]) if len(val_idx) and main else None
                record = {"epoch": epoch, "loss": ddp.mean(loss, device) if shared else loss,
                          "val_accuracy": val_accuracy, "seconds": round(time.perf_counter() - start, 3),
                          "lr": float(optimizer.param_groups[0]["lr"]), "share": steps / steps_per_epoch}
                self.history_.append(record)
                bar.epoch(record)
                reason = self._stop_reason(steps == steps_per_epoch, val_accuracy, clock)
                if shared:
                    reason = ddp.from_rank0(reason, _STOP_REASONS, device)  # one decision for all ranks
                if reason is not None:
                    self.stop_reason_ = reason
                    break
        return self._finish(net)

    def _finish(self, net) -> "CNNClassifier":
        """Count the epochs and fold BatchNorm for prediction; refuse a budget that ended before any step."""
        from digitlab.models import cnn_torch as ct

        if not self.history_:
            raise InvalidValueError(f"the time budget ({self.time_budget} s) ended before the first training step; "
                                    "give it more seconds")
        self.n_iter_, self._inference_net = len(self.history_), ct.fuse_bn(net.eval())  # BatchNorm folded: speed
        return self

    def _accuracy(self, net, images: np.ndarray, y_index: np.ndarray) -> float:
        """The share of ``images`` that ``net`` (in training) labels with their class index (validation)."""
        from digitlab.models import cnn_torch as ct

        proba = ct.predict_proba(net, images, self._device, self.tta)
        return float(np.mean(proba.argmax(axis=1) == y_index))

    def _check_data(self, X, y) -> tuple[np.ndarray, np.ndarray, int]:
        """Validate ``X``, ``y``; set ``classes_``, ``n_features_in_``, ``image_shape_``; return X, indices, seed."""
        X, y = check_X_y(X, y, dtype=np.float32)
        check_classification_targets(y)
        warn_if_unscaled(X, "CNNClassifier")
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise InvalidValueError("the CNN needs at least 2 classes to learn, got 1 class")
        side = _side_for(X.shape[1])
        self.classes_, self.n_features_in_, self.image_shape_ = classes, X.shape[1], (side, side)
        return X, y_index, int(check_random_state(self.random_state).randint(2**31 - 1))

    def _stop_reason(self, whole_epoch: bool, val_accuracy: float | None, clock) -> str | None:
        """Why training ends after this epoch, or None to go on."""
        # under torchrun progress() is an all-reduce that every rank must call: keep it before any return
        out_of_time = clock.progress() >= 1.0 and clock.step < clock.total_steps  # the clock ran out first
        if not whole_epoch:
            return "time_budget"
        if self.target_accuracy is not None and val_accuracy is not None and val_accuracy >= self.target_accuracy:
            return "target_accuracy"
        if out_of_time:
            return "time_budget"
        return None

    def _check_params(self) -> None:
        for name, least, most in (("epochs", 1, math.inf), ("batch_size", 2, math.inf), ("width", 1, math.inf),
                                  ("extra_convs", 0, 3)):
            value, words = getattr(self, name), f"of at least {least}" if most == math.inf else f"from {least} to {most}"
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not least <= value <= most:
                raise InvalidValueError(f"{name} must be an integer {words}, got {value!r}")
        for name, low, high, what in _RANGES:
            value = getattr(self, name)
            if value is None and name == "target_accuracy":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low(value) or not high(value):
                raise InvalidValueError(f"{name} must be {what}, got {value!r}")
        if self.time_budget is not None and not positive_seconds(self.time_budget):
            raise InvalidValueError(f"time_budget must be a positive number of seconds, got {self.time_budget!r}")
        if self.target_accuracy is not None and self.validation_fraction <= 0:
            raise InvalidValueError("target_accuracy needs a validation split; set validation_fraction, e.g. 0.1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InvalidValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
        if not isinstance(self.norm_after_pool, (bool, np.bool_)):
            raise InvalidValueError(f"norm_after_pool must be True or False, got {self.norm_after_pool!r}")
        from digitlab.models import cnn_torch as ct

        try:
            ct.tta_shifts(self.tta)
        except ValueError as exc:
            raise InvalidValueError(str(exc)) from None

    # -------------------------------------------------------------- predict

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, one row per image, columns in the order of ``classes_``."""
        from digitlab.models import cnn_torch as ct

        check_is_fitted(self)
        X = check_array(X, dtype=np.float32)
        side = self.image_shape_[0]
        if X.shape[1] != self.n_features_in_:
            raise InvalidValueError(f"X has {X.shape[1]} features, but CNNClassifier is expecting "
                                    f"{self.n_features_in_} features as input ({side}x{side} images)")
        return ct.predict_proba(self._inference_net, ct.as_images(X, side), self._device, self.tta)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each image."""
        proba = self.predict_proba(X)  # first: it says NotFittedError when there is nothing to predict with
        return self.classes_[np.argmax(proba, axis=1)]

    # ---------------------------------------------------------- persistence

    def export_tensors(self) -> dict[str, np.ndarray]:
        """The learned state as named numpy arrays, for a safetensors file.

        The network's ``state_dict`` under its own names (``conv1.weight``, ``bn1.running_mean``,
        ``fc.bias``, ...), plus ``classes`` (the labels) and ``image_shape`` (height, width);
        plus ``n_features_in`` when the rows were padded to make square images.
        """
        from digitlab.models import cnn_torch as ct

        check_is_fitted(self)
        classes = np.asarray(self.classes_)
        if classes.dtype.kind not in "iub":
            raise DigitlabError(f"only integer class labels can be saved with the CNN, got {classes.dtype}")
        tensors = ct.state_arrays(self.module_)
        tensors["classes"], tensors["image_shape"] = classes.astype(np.int64), np.asarray(self.image_shape_, np.int64)
        if self.n_features_in_ != self.image_shape_[0] * self.image_shape_[1]:
            tensors[_N_FEATURES] = np.asarray([self.n_features_in_], dtype=np.int64)
        if getattr(self, "world_size_", 1) > 1:
            tensors[_WORLD_SIZE] = np.asarray([self.world_size_], dtype=np.int64)
        if self.history_:  # its clock column left unmeasured: identical weights, identical file (and model id)
            tensors[_HISTORY] = np.asarray([[np.nan if r.get(c) is None or c == "seconds" else r[c]
                                             for c in _HISTORY_COLUMNS] for r in self.history_], dtype=np.float64)
        return tensors

    @classmethod
    def from_tensors(cls, params: dict[str, Any], tensors: dict[str, np.ndarray]) -> "CNNClassifier":
        """Rebuild a fitted estimator from ``get_params()`` and :meth:`export_tensors` output.

        Refuses, with a :class:`~digitlab.errors.DigitlabError`, tensors that are missing,
        foreign to this network, or of the wrong shape.
        """
        from digitlab.models import cnn_torch as ct

        unknown = sorted(set(params) - set(cls().get_params()))
        if unknown:
            raise DigitlabError(f"CNN model card has unknown parameter(s): {', '.join(unknown)}")
        params = {"norm_after_pool": False, "extra_convs": 0, **params}  # a card from before these parameters
        model = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        model._check_params()
        for name in _META:
            if name not in tensors:
                raise DigitlabError(f"CNN weights file lacks the tensor {name!r}; it is not a digitlab CNN file")
        side, n_features = _saved_shape(tensors)
        classes = np.asarray(tensors["classes"])
        if classes.ndim != 1 or len(classes) < 2:
            raise DigitlabError(f"CNN weights file has classes of shape {classes.shape}; expected a list of labels")
        weights = {name: array for name, array in tensors.items() if name not in EXTRA_TENSORS}
        net = ct.load_net(weights, side, model.width, len(classes), norm_after_pool=model.norm_after_pool,
                          extra_convs=model.extra_convs)
        model._device = ct.resolve_device(model.device)
        model.module_ = ct.place(net, model._device).eval()
        model._inference_net = ct.fuse_bn(model.module_)
        model.classes_, model.n_features_in_, model.image_shape_ = classes, n_features, (side, side)
        model.history_ = _history_from(tensors.get(_HISTORY))
        model.n_iter_, model.stop_reason_ = len(model.history_), "loaded"
        (model.world_size_,) = _saved_ints(tensors, _WORLD_SIZE, default=1)
        return model


def _side_for(n_features: int) -> int:
    """The side of the square images that ``n_features`` pixels fill, zero-padded: at least 8."""
    return max(MIN_SIDE, math.isqrt(n_features - 1) + 1)


def _saved_shape(tensors: dict[str, np.ndarray]) -> tuple[int, int]:
    """The image side and feature count of a saved model (files from before padding hold side² features)."""
    shape = _saved_ints(tensors, "image_shape", size=2)
    if shape[0] != shape[1] or shape[0] < MIN_SIDE:
        raise DigitlabError(f"CNN weights file has image_shape {shape}; expected two equal sides of at least 8")
    side, (n_features,) = shape[0], _saved_ints(tensors, _N_FEATURES, default=shape[0] * shape[0])
    if n_features > side * side or _side_for(n_features) != side:
        raise DigitlabError(f"CNN weights file has {n_features} features, which do not make {side}x{side} images")
    return side, n_features


def _saved_ints(tensors: dict[str, np.ndarray], name: str, default: Any = None, size: int = 1) -> tuple[int, ...]:
    """``size`` positive whole numbers saved as a tensor (``default`` for files saved before it was)."""
    values = np.asarray(tensors.get(name, default), dtype=np.float64).ravel()
    if values.size != size or not np.all(np.isfinite(values) & (values >= 1) & (values == np.round(values))):
        raise DigitlabError(f"CNN weights file has {name} = {values[:4].tolist()}; the file is damaged")
    return tuple(int(v) for v in values)


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


def _history_from(table: np.ndarray | None) -> list[dict[str, Any]]:
    """The per-epoch records saved by :meth:`CNNClassifier.export_tensors` (none in files saved before them)."""
    if table is None:
        return []
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] not in (4, 5, len(_HISTORY_COLUMNS)) or len(table) > 100_000:
        raise DigitlabError(f"CNN weights file has a training history of shape {table.shape}; the file is damaged")
    columns = _HISTORY_COLUMNS[:table.shape[1]]  # four or five: saved before the learning rate, the share were kept
    return [{c: (None if np.isnan(v) else (int(v) if c == "epoch" else float(v))) for c, v in zip(columns, row)}
            for row in table]
