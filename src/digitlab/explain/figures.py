"""The figures of ``explain.html``: one PNG each, written atomically.

Figures that hold many small images draw them as one tiled canvas on one axes (as
:mod:`digitlab.plots` does) so a page of 44 saliency groups still draws in well under a second.
"""

from __future__ import annotations

import math
import textwrap

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from digitlab.explain.robustness import Perturbation, RobustnessCurve  # noqa: E402
from digitlab.fileio import save_figure  # noqa: E402

__all__ = ["overlay", "plot_feature_maps", "plot_filters", "plot_robustness", "plot_saliency"]

DPI = 100
FOR, AGAINST = np.array([0.84, 0.15, 0.16]), np.array([0.12, 0.35, 0.75])  # red: for the answer; blue: against
FULL_COLOUR_AT = {"occlusion": 0.1}
"""Maps whose values mean the same in every picture, and the value drawn in full colour at least. Occlusion's are
drops in the answer's probability: scaled by its own largest value, a picture read at 99.9% showed one red patch
whose cover cost it 0.1 points, as if the model read the digit by that spot; a drop under 10 points stays pale."""


def _save(fig: "plt.Figure", path: Path) -> Path:
    return save_figure(fig, path, DPI)


def overlay(image: np.ndarray, saliency: np.ndarray | None, pixel_max: float, least: float = 0.0) -> np.ndarray:
    """An RGB picture: the digit in light grey, the saliency over it (red for, blue against).

    The map is scaled by its own 99th percentile of absolute values, or by ``least`` when that is larger (see
    :data:`FULL_COLOUR_AT`), so each picture uses the whole colour range; without a map, the digit in dark grey.
    """
    ink = np.clip(np.asarray(image, dtype=np.float64) / pixel_max, 0, 1)
    if saliency is None:
        grey = 1 - 0.85 * ink
        return np.repeat(grey[..., None], 3, axis=2)
    base = np.repeat((1 - 0.35 * ink)[..., None], 3, axis=2)
    scale = max(np.percentile(np.abs(saliency), 99) or float(np.max(np.abs(saliency))), least) or 1.0
    s = np.clip(np.asarray(saliency) / scale, -1, 1)
    strength = np.abs(s)[..., None]
    colour = np.where(s[..., None] >= 0, FOR, AGAINST)
    return (1 - strength) * base + strength * colour


def plot_saliency(images: np.ndarray, titles: Sequence[str], wrong: Sequence[bool],
                  maps: Sequence[tuple[str, np.ndarray]], pixel_max: float, path: Path, groups_per_row: int = 3) -> Path:
    """Groups of tiles — the picture, then each saliency map over it — titled with true → predicted.

    Three groups a row: at four, the page scaled the figure down until a tile's name was 7 pixels tall on a
    1280-pixel screen."""
    n = len(images)
    tiles = 1 + len(maps)
    height, width = images.shape[1:3] if n else (8, 8)
    pad = max(1, width // 6)
    inches_per_pixel = 0.95 / (width + pad)  # a tile is 0.95 inches wide, whatever the image size
    caption = max(3, int(round(height * 0.45)))
    label = int(np.ceil(0.34 / inches_per_pixel))  # room for a tile's name in two lines of 9 points
    group_w = tiles * (width + pad) + 2 * pad
    rows = max(1, int(np.ceil(n / groups_per_row)))
    cell_h = caption + height + label + pad
    canvas = np.ones((rows * cell_h, groups_per_row * group_w, 3))
    for i in range(n):
        r, c = divmod(i, groups_per_row)
        top, left = r * cell_h + caption, c * group_w
        pictures = [overlay(images[i], None, pixel_max)] + [
            overlay(images[i], m[i], pixel_max, FULL_COLOUR_AT.get(name, 0.0)) for name, m in maps]
        for k, picture in enumerate(pictures):
            x = left + k * (width + pad)
            canvas[top:top + height, x:x + width] = picture
    fig_w = canvas.shape[1] * inches_per_pixel
    title = textwrap.wrap("What the model looks at: red pixels speak for its answer, blue against it",
                          max(24, int(fig_w / 0.115)))  # one map a picture makes a narrow figure: two lines
    top = 0.7 + 0.3 * (len(title) - 1)
    fig_h = canvas.shape[0] * inches_per_pixel + top
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0, 0, 1, (fig_h - top) / fig_h))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    names = [textwrap.fill(name, 12) for name in ["picture"] + [name for name, _ in maps]]  # "Integrated\nGradients"
    for i in range(n):
        r, c = divmod(i, groups_per_row)
        top, left = r * cell_h + caption, c * group_w
        centre = left + (tiles * (width + pad) - pad) / 2 - 0.5
        ax.text(centre, top - 0.6, titles[i], ha="center", va="bottom", fontsize=11,
                color="#b42318" if wrong[i] else "black", fontweight="bold" if wrong[i] else "normal")
        for k, name in enumerate(names):
            ax.text(left + k * (width + pad) + width / 2 - 0.5, top + height - 0.3, name, ha="center", va="top",
                    fontsize=9, color="#52606d")
    fig.suptitle("\n".join(title), fontsize=13, y=1 - 0.12 / fig_h)
    return _save(fig, path)


def plot_robustness(perturbation: Perturbation, curves: Sequence[RobustnessCurve], examples: np.ndarray,
                    pixel_max: float, path: Path) -> Path:
    """Accuracy against the amount of ``perturbation``, one line per model, the changed example under each level."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    order = np.argsort(perturbation.levels)  # ``examples`` follow the perturbation's own order
    levels = np.asarray(perturbation.levels, dtype=float)[order]
    fig, ax = plt.subplots(figsize=(8.0, 4.4))
    fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.33)
    markers, styles = "osD^v<>", ("-", "--", "-.", ":")
    for k, curve in enumerate(curves):  # each wider than the next, dashed apart: one on another leaves it showing
        ax.plot(curve.levels, np.asarray(curve.accuracy) * 100, marker=markers[k % len(markers)],  # (a teacher)
                markersize=max(9 - 2 * k, 4), linewidth=max(3.2 - 0.8 * k, 1.2), linestyle=styles[k % len(styles)],
                label=curve.model)
    columns = min(len(curves), 2) or 1  # the legend in two columns, in a band above 100%: it never covers a point
    ax.set_ylim(0, 104 + 12 * math.ceil(len(curves) / columns))
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("accuracy (%)")  # of the test images, or of a handwriting set's samples
    ax.set_xlabel(perturbation.label, labelpad=52)
    ax.set_xticks(levels)
    ax.set_xticklabels([f"{v:g}" for v in levels])
    ax.axhline(10, color="#9aa5b1", linestyle=":", linewidth=1)
    ends = np.array([[c.accuracy[0], c.accuracy[-1]] for c in curves]) * 100  # the word goes where no curve ends near it
    left = np.abs(ends[:, 0] - 13).min() >= np.abs(ends[:, 1] - 13).min() if len(curves) else True
    ax.text(levels[0] if left else levels[-1], 11, " chance ", ha="left" if left else "right", va="bottom", fontsize=8,
            color="#7b8794")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9, ncol=columns, frameon=False, borderaxespad=0.2, handlelength=2.5)
    ax.set_title(f"How it fails: {perturbation.name}", fontsize=13)
    side = examples.shape[-1]
    zoom = 34.0 / side
    for level, image in zip(levels, examples[order]):
        grey = 1 - np.clip(image / pixel_max, 0, 1)
        box = OffsetImage(np.repeat(grey[..., None], 3, axis=2), zoom=zoom, interpolation="nearest")
        ax.add_artist(AnnotationBbox(box, (level, 0), xycoords=("data", "axes fraction"), xybox=(0, -38),
                                     boxcoords="offset points", frameon=True, pad=0.1,
                                     bboxprops={"edgecolor": "#d9e2ec"}))
    return _save(fig, path)


def _tile(maps: np.ndarray, columns: int) -> np.ndarray:
    """C×H×W maps in a grid with one-pixel gaps of NaN (drawn white)."""
    count, height, width = maps.shape
    columns = min(columns, count)
    rows = int(np.ceil(count / columns))
    canvas = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan)
    for i, m in enumerate(maps):
        r, c = divmod(i, columns)
        canvas[r * (height + 1):r * (height + 1) + height, c * (width + 1):c * (width + 1) + width] = m
    return canvas


def plot_filters(filters: np.ndarray, path: Path) -> Path:
    """The first convolution's 3×3 kernels: red adds where the picture is bright, blue subtracts."""
    columns = 8
    canvas = _tile(filters, columns)
    limit = float(np.max(np.abs(filters))) or 1.0
    fig = plt.figure(figsize=(7.0, 0.5 + 7.0 * canvas.shape[0] / canvas.shape[1]))
    ax = fig.add_axes((0.02, 0.03, 0.82, 0.94 - 0.55 / fig.get_figheight()))
    shown = ax.imshow(canvas, cmap=plt.get_cmap("RdBu_r").with_extremes(bad="white"), vmin=-limit, vmax=limit,
                      interpolation="nearest")
    ax.axis("off")
    bar = fig.add_axes((0.88, 0.1, 0.025, 0.7))
    fig.colorbar(shown, cax=bar, label="weight")
    fig.suptitle(f"The {len(filters)} filters of the first layer (3×3 pixels each)", fontsize=12)
    return _save(fig, path)


def plot_feature_maps(image: np.ndarray, maps: Sequence[tuple[str, np.ndarray]], pixel_max: float,
                      title: str, path: Path) -> Path:
    """The chosen image, then each block's activations (one small map per channel, brighter = stronger).

    One column a block (the title before ": ", the first of its lines); a block's second convolution
    (``extra_convs``) goes below its first, so the figure keeps the width of three blocks and its titles stay
    readable.
    """
    blocks: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, activations in maps:
        blocks.setdefault(name.split(": ")[0], []).append((name, activations))
    rows = max((len(group) for group in blocks.values()), default=1)
    fig, axes = plt.subplots(rows, 1 + len(blocks), figsize=(3.0 + 4.0 * len(blocks), 0.4 + 4.0 * rows),
                             gridspec_kw={"width_ratios": [0.6] + [1.0] * len(blocks)}, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(np.clip(image / pixel_max, 0, 1), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    axes[0, 0].set_title("input", fontsize=19)
    for column, group in enumerate(blocks.values(), start=1):
        for row, (name, activations) in enumerate(group):
            canvas = _tile(activations / (float(activations.max()) or 1.0), int(np.ceil(np.sqrt(len(activations)))))
            ax = axes[row, column]
            ax.imshow(canvas, cmap=plt.get_cmap("magma").with_extremes(bad="white"), vmin=0, vmax=1,
                      interpolation="nearest")
            what = f"{activations.shape[0]} maps of {activations.shape[1]}×{activations.shape[2]}"
            # the page shows this figure at about 60%: large and in short lines, readable on a projector (at 14
            # points a teacher measured 8 px on the page)
            block, _, chain = name.partition(": ")
            ax.set_title("\n".join([block, textwrap.fill(chain, 18, break_on_hyphens=False), what]), fontsize=19)
    fig.suptitle(title, fontsize=21)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.07 / rows), h_pad=2.5)
    return _save(fig, path)
