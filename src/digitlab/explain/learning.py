"""How a model learned: the CNN's loss (and validation accuracy) epoch by epoch, and a learning curve.

The learning curve answers "would more data help?": the model's recipe (its saved parameters) is
trained again on growing stratified subsets of the training images and scored on held-out folds
with scikit-learn's :func:`~sklearn.model_selection.learning_curve`. Still rising at the right edge
means yes. For the CNN, retraining at several sizes does not fit in ``digitlab explain``'s time, so
the page shows its training history instead and points to ``digitlab sweep --limit`` for the curve.

Examples
--------
>>> from digitlab.data import load_dataset
>>> from digitlab.train import train
>>> ds = load_dataset("digits")
>>> curve = learning_curve_of(train("logreg", ds).model, ds.train_images, ds.train_labels, ds.pixel_max,
...                           max_images=600, seed=0)
>>> len(curve.sizes) == len(curve.mean) == 5, bool(curve.mean[-1] > curve.mean[0])
(True, True)
"""

from __future__ import annotations

import math
import warnings

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from digitlab.fileio import save_figure

__all__ = ["LearningCurve", "augmentation_words", "learning_curve_of", "plot_history", "plot_learning_curve"]

FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class LearningCurve:
    """Cross-validated accuracy at growing training-set sizes.

    Attributes
    ----------
    sizes : list of int
        Training images at each point.
    mean, low, high : list of float
        Mean, lowest and highest accuracy over the folds at each size.
    n_images : int
        Training images the curve was drawn from (a stratified subset when the set is large).
    unconverged : int
        scikit-learn's ConvergenceWarnings from the refits, said on the page rather than printed: one per fit that
        stopped at the recipe's iteration limit, an SVM's inner calibration fits counted too.
    """

    sizes: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n_images: int
    unconverged: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"sizes": self.sizes, "mean": self.mean, "low": self.low, "high": self.high, "n_images": self.n_images,
                "unconverged": self.unconverged}


def learning_curve_of(model: Any, images: np.ndarray, labels: np.ndarray, pixel_max: int, *,
                      max_images: int = 3000, folds: int = 3, seed: int = 0) -> LearningCurve:
    """The learning curve of ``model``'s recipe (a fresh clone per fit) on up to ``max_images`` training images."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, learning_curve

    from digitlab.explain.robustness import stratified_indices
    from digitlab.models.classic import fit_threads
    from digitlab.preprocess import to_features

    labels = np.asarray(labels)
    if len(labels) > max_images:
        keep = stratified_indices(labels, max_images, seed)
        images, labels = images[keep], labels[keep]
    with fit_threads(model), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        sizes, _, scores = learning_curve(
            clone(model), to_features(images, pixel_max), labels, train_sizes=list(FRACTIONS),
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=1)
    for other in (w for w in caught if not issubclass(w.category, ConvergenceWarning)):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)  # only those are ours
    return LearningCurve([int(s) for s in sizes], scores.mean(axis=1).tolist(), scores.min(axis=1).tolist(),
                         scores.max(axis=1).tolist(), int(len(labels)),
                         sum(issubclass(w.category, ConvergenceWarning) for w in caught))


def plot_learning_curve(curve: LearningCurve, name: str, path: Path) -> Path:
    """Accuracy against the number of training images, the spread over folds shaded."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(curve.sizes, np.asarray(curve.mean) * 100, marker="o", color="#2f6fb0", label=f"{name}, mean of the folds")
    ax.fill_between(curve.sizes, np.asarray(curve.low) * 100, np.asarray(curve.high) * 100, color="#2f6fb0",
                    alpha=0.18, label="lowest to highest fold")
    ax.set_xlabel("training images")
    ax.set_ylabel("accuracy on held-out folds (%)")
    ax.set_title("Would more data help? Accuracy as the training set grows")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, 110)


def history_caption(history: Sequence[dict[str, Any]], smoothing: float) -> str:
    """The words under the training history: what is plotted, and why the loss stays above zero (or need not).

    >>> history_caption([{"epoch": 1, "loss": 0.3, "val_accuracy": None}], 0.1)
    'The training loss after its one epoch (one point: too few to show a trend). It stays above zero on purpose: label smoothing (0.1) trains the network towards about 91% for the right digit rather than 100%, so that it does not become over-sure.'
    >>> history_caption([{"epoch": 1, "loss": 0.3, "share": 0.6}], 0.1).split(" (")[0]
    'The training loss after the 0.6 of an epoch it had time for'
    >>> history_caption([{"epoch": 1, "loss": 0.3}, {"epoch": 2, "loss": 0.1}], 0.0).split(". ")[1]
    'This network trained without label smoothing, towards 100% for the right digit, so the loss can fall near zero.'
    """
    from digitlab.report import epochs_words

    words = ["The training loss after "]
    cut = history[-1].get("share") is not None and history[-1]["share"] < 1
    if len(history) == 1:
        words.append(f"{'the ' + epochs_words(history) + ' it had time for' if cut else 'its one epoch'} "
                     "(one point: too few to show a trend)")
    else:
        words.append(f"each of the {len(history)} epochs" + (f" (the last cut short by the time budget: "
                                                              f"{epochs_words(history)} in all)" if cut else ""))
    if history[0].get("val_accuracy") is not None:
        words.append(", and the accuracy on the held-out validation images")
    if history[0].get("lr") is not None:
        words.append("; beneath, the learning rate where each epoch ended: the schedule warms up over the first fifth "
                     "of training, then decays to almost nothing (seen once an epoch, so with few epochs the warm-up "
                     "may not show)")
    if smoothing:
        right = 100 * (1 - smoothing + smoothing / 10)
        words.append(f". {'It levels off' if len(history) > 1 else 'It stays'} above zero on purpose: label smoothing "
                     f"({smoothing:g}) trains the network towards about {right:.0f}% for the right digit rather than "
                     "100%, so that it does not become over-sure.")
    else:
        words.append(". This network trained without label smoothing, towards 100% for the right digit, so the loss "
                     "can fall near zero.")
    return "".join(words)


def least_loss(smoothing: float, classes: int = 10) -> float:
    """The least a label-smoothed cross-entropy can be: the entropy of the smoothed target, reached when the
    network answers it exactly.

    >>> round(least_loss(0.1), 3), least_loss(0.0)
    (0.5, 0.0)
    """
    right, rest = 1 - smoothing + smoothing / classes, smoothing / classes
    return -(right * math.log(right) + (classes - 1) * rest * math.log(rest)) if smoothing else 0.0


def plot_history(history: Sequence[dict[str, Any]], path: Path, smoothing: float = 0.0) -> Path:
    """The CNN's training loss per epoch (validation accuracy where measured), the learning rate beneath;
    ``smoothing`` is the label smoothing it trained with (the loss is then label-smoothed)."""
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    rates = [r.get("lr") for r in history]
    with_lr = all(v is not None for v in rates)
    fig, axes = plt.subplots(2 if with_lr else 1, 1, figsize=(6.4, 5.2 if with_lr else 3.8), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.3]} if with_lr else None)
    ax = axes[0] if with_lr else axes
    ax.plot(epochs, [r["loss"] for r in history], marker="o", color="#b45309", label="training loss")
    if smoothing:
        ax.axhline(least_loss(smoothing), color="#52606d", linestyle="--", linewidth=1,
                   label="the least it can be (label smoothing)")
    ax.set_ylim(0, 1.12 * max(r["loss"] for r in history))  # the whole scale: 0.53 to 0.63 looked steep (a teacher)
    ax.set_ylabel("training loss (label-smoothed)" if smoothing else "training loss")
    ax.set_title("How the CNN learned, epoch by epoch")
    ax.grid(alpha=0.3)
    measured = [(r["epoch"], r["val_accuracy"]) for r in history if r.get("val_accuracy") is not None]
    if measured:
        right = ax.twinx()
        right.plot(*zip(*[(e, a * 100) for e, a in measured]), marker="s", color="#2f6fb0", label="validation accuracy")
        right.set_ylabel("validation accuracy (%)")
        right.legend(loc="center right", fontsize=9)
    ax.legend(loc="lower right", fontsize=9)  # below the curves, which the scale from 0 keeps high
    if with_lr:
        axes[1].plot(epochs, rates, marker=".", color="#52606d")
        axes[1].set_ylabel("learning rate")
        axes[1].grid(alpha=0.3)
        axes[1].set_title("the learning rate where each epoch ended (it warms up, then decays)", fontsize=9)
    from matplotlib.ticker import MaxNLocator

    (axes[1] if with_lr else ax).set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, not 1.25, 1.5, ...
    if len(epochs) == 1:  # one point: the locator would give up and show 0.95, 0.96, ...
        ax.set_xticks(epochs)
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    fig.tight_layout()
    return save_figure(fig, path, 110)


def augmentation_words(params: dict[str, Any]) -> str | None:
    """What a model had beyond the pictures themselves, in words (None: nothing).

    >>> augmentation_words({"augment": 2.0, "distort": 0.1, "tta": True})
    'trained on pictures moved at random (shifts up to 2 px, rotations up to 6°, rescaling up to 10%), and answers by averaging 5 shifted views'
    >>> augmentation_words({"tta": 9}), augmentation_words({"C": 1.0})
    ('answers by averaging 9 shifted views', None)
    """
    shift, distort, views = params.get("augment") or 0, params.get("distort") or 0, params.get("tta")
    moves = ([f"shifts up to {shift:g} px"] if shift else []) + (
        [f"rotations up to {math.degrees(distort):.0f}°", f"rescaling up to {100 * distort:.0f}%"] if distort else [])
    views = 5 if views is True else views if isinstance(views, int) and not isinstance(views, bool) and views > 1 else 0
    said = ([f"trained on pictures moved at random ({', '.join(moves)})"] if moves else []) + (
        [f"answers by averaging {views} shifted views"] if views else [])
    return ", and ".join(said) or None
