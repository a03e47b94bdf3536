"""The zoo's ``cnn`` entry, and its recipes for MNIST by time budget: what to train for the seconds you have.

A recipe is the width, depth, batch size, learning rate, augmentation and test-time augmentation that gave the best
test accuracy we measured for a budget on a device. ``digitlab run --dataset mnist --model cnn --time-budget 4``
trains the shortest CPU recipe for 4 s; without a budget MNIST gets :data:`DEFAULT`, the ≤ 90-s CPU row as a fixed
3 epochs (so one seed gives one model, for one thread count: :mod:`digitlab.cores`). ``--param`` values win over a
recipe.
Every row was measured (BENCHMARKS.md, "Faster to every accuracy": means over 5 seeds on a 2-core CPU,
`benchmarks/bench_mnist_cpu.py`; the CUDA rows over 3 seeds on an H200, `benchmarks/gpu_check.sh`, where each row
beat 1-3 other recipes at its budget); the boundaries between rows are interpolations. The CPU rows were measured
with bf16 training; on a CPU without it (a Zen 3 EPYC training in fp32: 32.8 ms a step, against 10.9 ms on the Zen
4 in bf16), the same 10-s boundary was checked and holds (at 10 s the two rows tie, at 20 s the augmented one
wins), so both kinds of CPU share the table (the 90-s boundary was not re-checked there). The rows were chosen with
BatchNorm before the pool; since it moved after the pool (``norm_after_pool``), the rows were measured again on the
Zen 4: at 3 s, at 60 s and for 5 epochs it scored at least as well, at 600 s 0.02 points less; on an H200 it scored
0.10 points more at 0.5 s and tied at 1 and 2 s (the same run, 3 seeds), so the CUDA rows have it too, and there the
deeper networks won at 5 s (99.72% against 99.67%) and tied at 30 s (99.74% against 99.72% on 2026-11-30). A second
convolution in the last two blocks (``extra_convs=2``) gave, on the Zen 4 over 5 seeds, 99.62% at 20 s (99.50%
without, the same hour), 99.64% at 60 s (99.55%), 99.71% at 600 s with 9 views (99.67%) and 99.62% in 3 epochs (99.53%
in 5); at 3, 4 and 8 s it made no clear difference (99.13/99.19, 99.22/99.16, 99.35/99.34%), so the shortest row
has none. A second convolution in the first block too
(``extra_convs=3``) gave 99.74% at 600 s with 5 views (99.70% for 2, the same seeds; 9 views 99.73%, so the row
went back to 5), and no clear difference at 20 s, 60 s or for 3 epochs (99.62/99.62, 99.64/99.64, 99.63/99.62%), so
only the longest row has it. Widths are multiples of 16: on the CPU a width of 24 or 40 trains a step as slowly as
the next multiple of 16 up (the bf16 kernels' blocks; `benchmarks/bench_cnn_step.py --width W`).

Examples
--------
>>> for_budget(4, "cpu")["width"], for_budget(600, "cpu")["width"]
(16, 32)
>>> for_budget(4, "cpu") == for_budget(4, "cpu")  # a budget and a device give one recipe
True
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from digitlab.models import register

_NO_AUGMENT = {"augment": 0.0, "distort": 0.0}
_AUGMENT = {"augment": 2.0, "distort": 0.1}
_SHALLOW = {"norm_after_pool": True, "extra_convs": 0}  # the network: one convolution a block
_DEEPER = {"norm_after_pool": True, "extra_convs": 2}  # a second one in the last two blocks
_DEEPEST = {"norm_after_pool": True, "extra_convs": 3}  # and in the first block too

# Every row names the same parameters: one it left out would be DEFAULT's, not the row's (a test checks)
CPU: tuple[tuple[float, dict[str, Any]], ...] = (  # (the longest budget a row is for, seconds; parameters)
    (10.0, {"width": 16, "batch_size": 64, "lr": 0.8, **_NO_AUGMENT, "tta": False, **_SHALLOW}),
    (90.0, {"width": 16, "batch_size": 128, "lr": 0.4, **_AUGMENT, "tta": True, **_DEEPER}),
    (math.inf, {"width": 32, "batch_size": 128, "lr": 0.2, **_AUGMENT, "tta": True, **_DEEPEST}),
)
CUDA: tuple[tuple[float, dict[str, Any]], ...] = (  # an H200, 2026-12-04, one CUDA graph a step; (the old row's)
    (0.7, {"width": 32, "batch_size": 512, "lr": 0.8, **_NO_AUGMENT, "tta": False, **_SHALLOW}),  # 0.5 s: 99.45 (99.35)
    (1.4, {"width": 32, "batch_size": 512, "lr": 0.8, **_AUGMENT, "tta": True, **_SHALLOW}),  # 1 s: 99.59% (99.57)
    (3.2, {"width": 32, "batch_size": 256, "lr": 0.4, **_AUGMENT, "tta": True, **_SHALLOW}),  # 2 s: 99.64% (99.61)
    (12.0, {"width": 64, "batch_size": 512, "lr": 0.8, **_AUGMENT, "tta": True, **_DEEPER}),  # 5 s: 99.72% (99.67)
    (math.inf, {"width": 128, "batch_size": 512, "lr": 0.8, **_AUGMENT, "tta": True, **_DEEPEST}),  # 30 s: 99.74%
)
DEFAULT: dict[str, Any] = {**CPU[1][1], "epochs": 3}
"""``digitlab run --dataset mnist --model cnn``: the ≤ 90-s CPU row for 3 epochs (≈ 22 s of training with bf16)."""


def for_budget(budget: float, device: str = "auto") -> dict[str, Any]:
    """The parameters for ``budget`` seconds of training on ``device`` (``"auto"``: CUDA when PyTorch sees one).

    ``epochs`` is set high so that the budget, not the epoch count, ends training.
    """
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"a time budget must be a positive, finite number of seconds, got {budget!r}")
    table = CUDA if _is_cuda(device) else CPU
    params = next(row for limit, row in table if budget <= limit)
    return {**params, "epochs": 1000, "time_budget": float(budget)}


def _is_cuda(device: str) -> bool:
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return device == "cuda"


def positive_seconds(value: Any) -> bool:
    """A real, finite, positive number of seconds (not a bool, a string or infinity)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _budget_recipe(dataset: str, params: dict) -> dict:
    """On MNIST, a time budget picks the recipe measured best for it (:func:`for_budget`)."""
    budget = params.get("time_budget")
    if dataset != "mnist" or not positive_seconds(budget):
        return {}  # no budget, or one that fit() refuses in one line
    return for_budget(budget, params.get("device", "auto"))


@register("cnn", "Convolutional network (PyTorch)", needs="torch", recipe=_budget_recipe)
def cnn(dataset: str, seed: int):
    """The zoo's ``cnn``: a :class:`~digitlab.models.cnn.CNNClassifier` with the defaults for ``dataset``.

    The 8x8 digits (1,437 training images) take the class defaults: 40 augmented epochs of a
    width-32 network, with test-time augmentation, a few seconds on a CPU. MNIST takes :data:`DEFAULT`
    (the ≤ 90-s CPU row for 3 epochs: about 22 s of training on a 2-core Zen 4 with bf16; a Zen 3 in fp32
    took 73 s for the 5 epochs of the shallower net before it); a ``time_budget`` picks the recipe for that
    budget instead (:func:`for_budget`). The estimator's module (scikit-learn, NumPy) is imported here, not when the zoo is
    listed or a name checked.
    """
    from digitlab.models.cnn import CNNClassifier

    if dataset == "mnist":
        return CNNClassifier(**DEFAULT, random_state=seed)
    return CNNClassifier(random_state=seed)
