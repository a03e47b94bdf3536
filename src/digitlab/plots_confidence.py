"""Phase 5, the confidence figures: reliability diagrams and the risk-coverage curve of a calibrated model.

Re-exported by :mod:`digitlab.plots`, as every figure of a run's report.

Examples
--------
>>> import tempfile, pathlib
>>> from digitlab.calibrate import reliability_bins
>>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> out = pathlib.Path(tempfile.mkdtemp()) / "reliability.png"
>>> plot_reliability(reliability_bins(proba, np.array([0, 1, 1])), None, out).exists()
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from digitlab.fileio import save_figure  # noqa: E402
from digitlab.predict import percent_needed  # noqa: E402

__all__ = ["plot_reliability", "plot_risk_coverage", "short_count"]


def short_count(n: int) -> str:
    """A count in at most four characters, so that neighbouring bars' labels do not run together.

    >>> short_count(753), short_count(4671), short_count(13867), short_count(999_999), short_count(12_345_678)
    ('753', '4.7k', '14k', '1.0M', '12M')
    """
    for scale, unit in ((1e6, "M"), (1e3, "k")):
        if n >= scale * 0.9995:
            return f"{n / scale:.1f}{unit}" if n < scale * 9.95 else f"{n / scale:.0f}{unit}"
    return f"{n}"


def _reliability_panel(ax: "plt.Axes", bins: Sequence[dict], title: str) -> None:
    """One reliability diagram: accuracy per confidence bin, with the number of images written in each bar."""
    low = np.array([b["low"] for b in bins]) * 100
    width = np.array([b["high"] - b["low"] for b in bins]) * 100
    accuracy = np.array([b["accuracy"] for b in bins]) * 100
    confidence = np.array([b["confidence"] for b in bins]) * 100
    ax.plot([0, 100], [0, 100], ls="--", color="#7b8794", lw=1, label="perfectly calibrated")
    ax.bar(low, accuracy, width=width, align="edge", color="#4c72b0", alpha=0.35, edgecolor="#4c72b0",
           label="accuracy in the bin")
    ax.plot(confidence, accuracy, "o-", color="#4c72b0", markersize=5, lw=1.2, label="mean confidence → accuracy")
    for left, w, row in zip(low, width, bins):  # how many images each bar stands on
        ax.text(left + w / 2, -3, short_count(row["count"]), ha="center", va="top", fontsize=7, color="#c44e52")
    ax.set_xlim(0, 100)
    ax.set_ylim(-9, 102)
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel("Confidence: the top probability (%)   (red: images in each bin)", labelpad=2)
    ax.set_ylabel("Accuracy (%)")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)


def plot_reliability(before_bins: Sequence[dict], after_bins: Sequence[dict] | None, path: Path,
                     ece: tuple[float, float] | None = None) -> Path:
    """Reliability diagrams before and after the temperature, side by side, images per bin in red below the bars.

    ``before_bins``, ``after_bins``: :func:`~digitlab.calibrate.reliability_bins` (None: no temperature, one panel).
    ``ece`` (before, after), when given, goes into the panel titles."""
    panels = [(before_bins, "Before the temperature"), (after_bins, "After the temperature")] if after_bins \
        is not None else [(before_bins, "The model's own probabilities: no temperature")]
    fig, axes = plt.subplots(1, len(panels), figsize=(10 if len(panels) == 2 else 6.6, 4.6), squeeze=False)
    for col, (bins, name) in enumerate(panels):
        _reliability_panel(axes[0, col], bins, name if ece is None else f"{name} (ECE {ece[col]:.1%})")
    fig.suptitle("Reliability: is the model right as often as it says it is sure?", fontsize=12, y=0.985)
    # one legend for both panels, under the title: in a panel's corner it covered the bars of a model unsure there
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.935), ncol=3,
               frameon=False, fontsize=8.5)
    fig.subplots_adjust(left=0.07 if len(panels) == 2 else 0.11, right=0.98, top=0.8, bottom=0.11, wspace=0.2)
    return save_figure(fig, path)  # at 100 dpi, as digitlab.plots


def plot_risk_coverage(coverage: np.ndarray, accuracy: np.ndarray,
                       threshold_point: tuple[float, float, float] | None, path: Path,
                       target: float | None = None, turned_away: int = 0) -> Path:
    """Accuracy of the answers kept against the share kept, most confident first.

    ``coverage`` and ``accuracy`` come from :func:`digitlab.calibrate.risk_coverage`;
    ``threshold_point`` is ``(threshold, coverage, accuracy)`` of the chosen "unsure" threshold, marked;
    ``target``, when given, is drawn as the accuracy the threshold was chosen to reach; ``turned_away``, the
    test images the not-a-digit detector turns away, left out of the curve (it ends short of 100%).
    """
    coverage = np.asarray(coverage, dtype=float) * 100
    accuracy = np.asarray(accuracy, dtype=float) * 100
    fig, ax = plt.subplots(figsize=(7, 4.2))
    away = "" if not turned_away else f" ({turned_away:,} called not a digit, never answered)"
    ax.plot(coverage, accuracy, color="#4c72b0", lw=1.8, label=f"kept answers, most confident first{away}")
    # the first few points rest on one or two images; start the axis where the curve settles
    settled = accuracy[coverage >= 5] if np.any(coverage >= 5) else accuracy
    bottom = float(settled.min()) if len(settled) else 0.0
    if target is not None:
        ax.axhline(target * 100, ls=":", color="#7b8794", lw=1.2, label=f"{target:.1%} right (the rule, held out)")
        bottom = min(bottom, target * 100)
    if threshold_point is not None:
        threshold, kept, right = threshold_point
        ax.plot([kept * 100], [right * 100], "o", color="#c44e52", markersize=8, zorder=3,
                label=f"'unsure' below {percent_needed(threshold)}")  # as the report's text and the page say it
        bottom = min(bottom, right * 100)
    span = max(100.0 - bottom, 1.0)
    ax.set_ylim(max(0.0, bottom - 0.15 * span), 100 + 0.08 * span)
    ax.set_xlim(0, 101)
    if threshold_point is not None:
        _, kept, right = threshold_point
        # under the point, unless the dotted target line runs through the text there (k-NN's 99.7% over 99.5%)
        low, high = ax.get_ylim()
        gap = 0.0 if target is None else (right - target) * 100 / (high - low) * 4.2 * (0.91 - 0.13) * 72  # in points
        above = 12 < gap < 34  # the text under the point spans 18 to about 30 points down
        ax.annotate(f"keeps {kept:.1%}, {right:.1%} right", (kept * 100, right * 100),
                    xytext=(-10, 10 if above else -18), textcoords="offset points", ha="right",
                    va="bottom" if above else "top", fontsize=9, color="#c44e52")
    ax.set_xlabel("Share of test images answered (%)")
    ax.set_ylabel("Accuracy of those answers (%)")
    ax.set_title("Risk–coverage: answer fewer, be right more often")
    ax.legend(frameon=False, loc="lower left", fontsize=9)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.91, bottom=0.13)  # fixed: no extra layout pass
    return save_figure(fig, path)  # at 100 dpi, as digitlab.plots
