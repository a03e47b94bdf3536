"""Phase 5: figures from data and metrics. Nothing here computes a metric.

Every function draws one figure and writes it (atomically) to ``path``: a PNG, or the format its name ends in.

Examples
--------
>>> import tempfile, pathlib
>>> from digitlab.data import load_dataset
>>> ds = load_dataset("digits")
>>> out = pathlib.Path(tempfile.mkdtemp()) / "samples.png"
>>> plot_samples(ds.train_images, ds.train_labels, out).exists()
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from digitlab.errors import InvalidValueError  # noqa: E402
from digitlab.evaluate import Metrics  # noqa: E402
from digitlab.fileio import save_figure  # noqa: E402
from digitlab.figure_text import drawing, plain, writer_labels  # noqa: E402
from digitlab.plots_confidence import plot_reliability, plot_risk_coverage, short_count  # noqa: E402,F401

DPI = 100
INK = "gray_r"  # ink dark on light paper, as a person writes


def _save(fig: "plt.Figure", path: Path) -> Path:
    return save_figure(fig, path, DPI)


def _image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    title: str,
    columns: int = 8,
    title_colors: Sequence[str] | None = None,
    cmap: str = INK,
    limits: tuple[float, float] | None = None,
    colorbar: str | None = None,
) -> "plt.Figure":
    """Tile ``images`` into one picture with a caption above each tile.

    One axes for the whole grid (not one per image) keeps drawing fast for large grids.
    """
    count = max(len(images), 1)
    columns = min(columns, count)
    rows = int(np.ceil(count / columns))
    height, width = images.shape[1:3] if len(images) else (8, 8)
    pad = max(1, width // 4)
    title_lines = max((t.count("\n") + 1 for t in titles), default=1)
    pixels_per_inch = (width + pad) / 1.35  # each cell is 1.35 inches wide
    caption = int(np.ceil((0.06 + 0.16 * title_lines) * pixels_per_inch))  # room for the caption
    cell_h, cell_w = height + caption + pad, width + pad
    canvas = np.full((rows * cell_h, columns * cell_w), np.nan)
    if limits is None:
        limits = (0.0, (float(np.max(images)) if len(images) else 0.0) or 1.0)
    for index, image in enumerate(images):
        row, col = divmod(index, columns)
        top, left = row * cell_h + caption, col * cell_w
        canvas[top:top + height, left:left + width] = image
    grid_w = 1.35 * columns
    bar_w = 1.0 if colorbar else 0.0  # inches kept on the right for a colour bar and its label
    fig_w = grid_w + bar_w
    fig_h = grid_w * canvas.shape[0] / canvas.shape[1] + 0.45
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0, 0, grid_w / fig_w, (fig_h - 0.45) / fig_h))
    colormap = plt.get_cmap(cmap).with_extremes(bad="white")
    shown = ax.imshow(canvas, cmap=colormap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
    ax.axis("off")
    if colorbar:
        bar = fig.add_axes(((grid_w + 0.1) / fig_w, 0.08, 0.15 / fig_w, (fig_h - 0.45) / fig_h - 0.16))
        fig.colorbar(shown, cax=bar, label=colorbar)
    for index, text in enumerate(titles):
        row, col = divmod(index, columns)
        color = title_colors[index] if title_colors else "black"
        ax.text(col * cell_w + width / 2 - 0.5, row * cell_h + caption - 0.6, text, ha="center", va="bottom",
                fontsize=9, color=color, linespacing=1.1)
    fig.suptitle(title, fontsize=12, y=1 - 0.1 / fig_h)
    return fig


def plot_samples(images: np.ndarray, labels: np.ndarray, path: Path, count: int = 24,
                 title: str = "Sample training images") -> Path:
    """A grid of the first ``count`` images, each titled with its label."""
    count = min(count, len(images))
    fig = _image_grid(images[:count], [f"label {int(y)}" for y in labels[:count]], title)
    return _save(fig, path)


def plot_class_distribution(train_labels: np.ndarray, test_labels: np.ndarray, path: Path) -> Path:
    """Side-by-side bars: images per digit in the training and test parts."""
    digits = np.arange(10)
    train_counts = np.bincount(train_labels, minlength=10)[:10]
    test_counts = np.bincount(test_labels, minlength=10)[:10]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar(digits - 0.2, train_counts, width=0.4, label=f"train ({train_counts.sum():,})", color="#4c72b0")
    ax.bar(digits + 0.2, test_counts, width=0.4, label=f"test ({test_counts.sum():,})", color="#dd8452")
    ax.set_xticks(digits)
    ax.set_xlabel("Digit")
    ax.set_ylabel("Number of images")
    ax.set_title("Class distribution")
    ax.set_ylim(0, max(train_counts.max(), test_counts.max()) * 1.22)  # headroom for the legend
    ax.legend(frameon=False, loc="upper center", ncol=2)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion(metrics: Metrics, path: Path) -> Path:
    """Confusion-matrix heatmap with the count in every non-empty cell (rows: true, columns: predicted)."""
    from matplotlib.colors import LogNorm

    matrix = np.asarray(metrics.confusion)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    # a log colour scale, so that a handful of mistakes shows beside a diagonal of thousands
    peak, cmap = max(int(matrix.max()), 2), plt.get_cmap("Blues").with_extremes(bad="white")
    norm = LogNorm(vmin=1, vmax=peak)
    shown = ax.imshow(np.ma.masked_equal(matrix, 0), cmap=cmap, norm=norm)
    fontsize = 12 if matrix.max() < 1000 else 11  # readable from the back of a class (9 and 8 were not: a teacher)
    for (row, col), count in np.ndenumerate(matrix):
        if count == 0:
            continue  # an empty (white) cell: no image went there
        red, green, blue, _ = cmap(norm(count))  # white on a dark cell: a teacher's 2s were black on dark blue
        ax.text(col, row, f"{count}", ha="center", va="center", fontsize=fontsize,
                color="white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black")
    ticks, digits = np.arange(matrix.shape[0]), [c.digit for c in metrics.per_class]  # the matrix's rows, in order
    ax.set_xticks(ticks, digits)
    ax.set_yticks(ticks, digits)
    ax.set_xlabel("Predicted digit")
    ax.set_ylabel("True digit")
    ax.set_title(f"Confusion matrix — {metrics.n_errors:,} error{'s' * (metrics.n_errors != 1)} in {metrics.n_test:,}")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="Images (log colour scale; blank cell = 0)")
    steps = [m * 10**e for e in range(len(str(peak))) for m in (1, 2, 5)]  # 1, 2, 5, 10, 20, 50, ... up to the peak
    bar.set_ticks([v for v in steps if v <= peak])  # plain counts: matplotlib's own labels a small range "6×10⁰"
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    return _save(fig, path)


def plot_misclassified(
    images: np.ndarray,
    true_labels: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    path: Path,
    count: int = 24,
) -> Path:
    """The misclassified test images, most confident mistakes first, titled true / predicted / confidence."""
    wrong = np.flatnonzero(true_labels != predicted)
    if len(wrong) == 0:
        fig, ax = plt.subplots(figsize=(5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No misclassified test images", ha="center", va="center", fontsize=12)
        return _save(fig, path)
    from digitlab.predict import shown_percent

    order = wrong[np.argsort(-np.nan_to_num(confidence[wrong], nan=0.0), kind="stable")][:count]
    titles = []
    for i in order:
        conf = "" if np.isnan(confidence[i]) else f" ({shown_percent(confidence[i])})"
        titles.append(f"true {true_labels[i]}\npred {predicted[i]}{conf}")
    fig = _image_grid(images[order], titles, f"Misclassified test images ({len(wrong)} in all)",
                      title_colors=["#b22222"] * len(order))
    return _save(fig, path)


def plot_nondigits(images: np.ndarray, guesses: np.ndarray, probability: np.ndarray, flagged: np.ndarray,
                   path: Path, count: int = 16) -> Path:
    """Unseen non-digits: what the classifier alone would answer, and whether the detector caught them.

    Caught ones are captioned in green, missed ones in red; the missed ones come first so a reader
    sees the detector's failures, not only its successes.
    """
    from digitlab.predict import shown_percent

    missed, caught = np.flatnonzero(~flagged), np.flatnonzero(flagged)
    take = min(len(missed), count // 2)
    order = np.r_[missed[:take], caught[:count - take]][:count]
    titles, colors = [], []
    for i in order:
        guess = f"alone: {guesses[i]}" + ("" if np.isnan(probability[i]) else f" {shown_percent(probability[i], 0)}")
        titles.append(guess + ("\nnot a digit ✓" if flagged[i] else "\nmissed"))
        colors.append("#1b7837" if flagged[i] else "#b22222")
    fig = _image_grid(images[order], titles, f"Pictures that are not digits ({flagged.mean():.0%} of {len(flagged)} "
                      "unseen ones caught)", title_colors=colors)
    return _save(fig, path)


def plot_weights(coef: Any, image_shape: tuple[int, int], path: Path) -> Path:
    """For a linear model, each digit's weights as an image: red pixels vote for it, blue against.

    ``coef``: the weights (``model.coef_``, digits × pixels), or the linear model itself (or ``train``'s answer),
    whose own digits then name the panels (a model of 3s, 5s and 8s; of two digits, one panel: "8 against 3").
    """
    model, pixels = getattr(coef, "model", coef), int(np.prod(image_shape))
    weights = np.asarray(getattr(model, "coef_", coef))
    if weights.dtype.kind not in "iuf" or not weights.size or weights.size % pixels:
        raise InvalidValueError(f"plot_weights takes a linear model or its weights (coef_), got {type(coef).__name__}")
    limit = float(np.percentile(np.abs(weights), 99.5)) or 1.0  # a few extreme pixels must not wash out the rest
    weights = weights.reshape(-1, *image_shape)
    digits = list(getattr(model, "classes_", range(len(weights))))
    names = [f"digit {d}" for d in digits] if len(digits) == len(weights) else [f"{digits[1]} against {digits[0]}"]
    fig = _image_grid(weights, names, "What the model looks for: red pixels count for the digit, blue against",
                      columns=5, cmap="RdBu_r", limits=(-limit, limit), colorbar="Weight")
    return _save(fig, path)


def plot_per_class_errors(metrics: Metrics, path: Path) -> Path:
    """Error rate per true digit, with the count of errors on each bar."""
    confusion = np.asarray(metrics.confusion)
    support = confusion.sum(axis=1)
    errors = support - np.diag(confusion)
    rate = np.divide(errors, support, out=np.zeros(len(support), dtype=float), where=support > 0)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.bar(np.arange(len(rate)), rate * 100, color="#c44e52")
    for bar, count in zip(bars, errors):
        ax.annotate(f"{count}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(np.arange(len(rate)), [c.digit for c in metrics.per_class])  # a subset's digits, not 0, 1, 2
    ax.set_xlabel("True digit")
    ax.set_ylabel("Error rate (%)")
    ax.set_title("Errors per digit (count on each bar)")
    ax.set_ylim(0, max(rate.max() * 100 * 1.25, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def plot_mean_images(images: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """The mean image of each digit."""
    means = np.stack([images[labels == d].mean(axis=0) if np.any(labels == d) else np.zeros(images.shape[1:])
                      for d in range(10)])
    fig = _image_grid(means, [f"digit {d}" for d in range(10)], "Mean image per digit", columns=10)
    return _save(fig, path)


def plot_leaderboard(names: Sequence[str], accuracy: Sequence[float], intervals: Sequence[tuple[float, float]],
                     path: Path) -> Path:
    """Test accuracy per model, best on top, as points with their 95% confidence intervals.

    Points, not bars: the axis starts near the lowest interval, and a bar's length would then exaggerate
    the gaps. Overlapping intervals do not make a gap chance: the models answered the same images, and the
    paired test beside the chart (McNemar's) is the one that says.
    """
    acc = np.asarray(accuracy) * 100
    low = acc - np.array([lo for lo, _ in intervals]) * 100
    high = np.array([hi for _, hi in intervals]) * 100 - acc
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(names) + 1.4))
    positions = np.arange(len(names))[::-1]
    ax.errorbar(acc, positions, xerr=[low, high], fmt="o", color="#4c72b0", capsize=4, markersize=7)
    for y, value in zip(positions, acc):
        ax.annotate(f"{value:.2f}%", (value, y), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=9)
    ax.set_yticks(positions)
    ax.set_yticklabels(names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlim(max(0.0, float((acc - low).min()) - 1), min(100.5, float((acc + high).max()) + 1))
    ax.set_xlabel("Test accuracy (%), with 95% confidence interval")
    ax.set_title("Test accuracy per model (whether a gap is real: McNemar's test, above)")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def plot_per_writer(writers: Sequence[str], accuracy: Sequence[Sequence[float]],
                    intervals: Sequence[Sequence[tuple[float, float]]], series: Sequence[str], path: Path) -> Path:
    """Accuracy per writer with 95% intervals, one colour per series (e.g. before / after fine-tuning).

    A name no installed font draws is ``writer N``, its row in the report's table (:func:`writer_labels`)."""
    labels = writer_labels(writers)
    with drawing(labels.values()):
        return _plot_per_writer([labels[w] for w in writers], accuracy, intervals, series, path)


def _plot_per_writer(writers: Sequence[str], accuracy: Sequence[Sequence[float]],
                     intervals: Sequence[Sequence[tuple[float, float]]], series: Sequence[str], path: Path) -> Path:
    colors = ("#8c8c8c", "#4c72b0", "#55a868")
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(writers) * max(1, len(series)) + 1.5))
    positions = np.arange(len(writers))[::-1].astype(float)
    offsets = np.linspace(-0.18, 0.18, len(series)) if len(series) > 1 else [0.0]
    for k, (name, acc, ci) in enumerate(zip(series, accuracy, intervals)):
        acc = np.asarray(acc) * 100
        err = [acc - np.array([lo for lo, _ in ci]) * 100, np.array([hi for _, hi in ci]) * 100 - acc]
        ax.errorbar(acc, positions + offsets[k], xerr=err, fmt="o", capsize=3, color=colors[k % 3], label=name)
        for y, value in zip(positions + offsets[k], acc):
            ax.annotate(f"{value:.0f}%", (value, y), xytext=(0, 5), textcoords="offset points", fontsize=8,
                        ha="center")
    ax.set_yticks(positions)
    ax.set_yticklabels([plain(w) for w in writers])
    # from a round ten under the lowest interval: on 0-100% a class at 97-100% sat in one corner (a teacher)
    lowest = min((lo for ci in intervals for lo, _ in ci), default=0.0) * 100
    ax.set_xlim(max(0.0, 10 * np.floor((lowest - 2) / 10)), 104)
    ax.set_xlabel("Accuracy (%), with 95% confidence interval")
    ax.set_title("Accuracy per writer", loc="left")
    if len(series) > 1:  # above the axes, right of the title: inside, it hid a writer's bar (a teacher)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(series), fontsize=9, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def plot_sample_mistakes(originals: Sequence[np.ndarray], prepared: np.ndarray, titles: Sequence[str],
                         path: Path, total: int) -> Path:
    """Each misclassified sample as the picture that arrived (left) beside what the model saw (right).

    ``originals`` are grayscale pictures with the ink bright (any size); ``prepared`` the 28×28 inputs.
    """
    with drawing(titles):  # a writer's name in a title (as :func:`writer_labels` gives it)
        return _plot_sample_mistakes(originals, prepared, titles, path, total)


def _plot_sample_mistakes(originals: Sequence[np.ndarray], prepared: np.ndarray, titles: Sequence[str],
                          path: Path, total: int) -> Path:
    if len(titles) == 0:
        fig, ax = plt.subplots(figsize=(5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No misclassified samples", ha="center", va="center", fontsize=12)
        return _save(fig, path)
    from PIL import Image

    import textwrap

    columns = min(5, len(titles))
    rows = int(np.ceil(len(titles) / columns))
    shown = f"the {len(titles)} most confident of {total}" if total > len(titles) else f"all {total}"
    title = textwrap.wrap(f"Misclassified samples ({shown}): as it arrived (left), what the model saw (right)",
                          width=22 * columns)  # a one-picture figure is 2 in wide: about 22 characters of 11 pt
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 1.55 * rows + 0.3 + 0.2 * len(title)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, original, seen, text in zip(axes.flat, originals, prepared, titles):
        picture = Image.fromarray(np.asarray(original, dtype=np.uint8))
        picture.thumbnail((56, 56))
        left = np.zeros((56, 56))
        top, offset = (56 - picture.height) // 2, (56 - picture.width) // 2
        left[top:top + picture.height, offset:offset + picture.width] = np.asarray(picture)
        right = np.kron(np.asarray(seen, dtype=float), np.ones((2, 2)))
        tile = np.hstack([left, np.full((56, 6), np.nan), right])
        ax.imshow(tile, cmap=plt.get_cmap(INK).with_extremes(bad="#9aa5b1"), vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(plain(text), fontsize=9, color="#b22222", linespacing=1.1)
    fig.suptitle("\n".join(title), fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
