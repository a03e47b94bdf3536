"""Figures drawn from the library as a learner calls it: the right digits on the axes, any folder, any format."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from digitlab import plots
from digitlab.evaluate import compute_metrics
from digitlab.fileio import save_figure


@pytest.fixture
def ticks(monkeypatch):
    """The tick labels of each figure the plots save (the figures are still saved as they would be)."""
    seen: list[dict[str, list[str]]] = []
    real = plots._save

    def spy(fig, path):
        ax = fig.axes[0]
        seen.append({"x": [t.get_text() for t in ax.get_xticklabels()],
                     "y": [t.get_text() for t in ax.get_yticklabels()], "texts": [t.get_text() for t in ax.texts]})
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return seen


def test_a_subsets_figures_name_its_own_digits(tmp_path, ticks):
    """Scored on the 3s, 5s and 8s only, the matrix's rows are 3, 5, 8: a learner saw them drawn as 0, 1, 2."""
    truth, answers = np.array([3, 3, 5, 8, 8, 8]), np.array([3, 5, 5, 8, 8, 3])
    metrics = compute_metrics(truth, answers)
    plots.plot_confusion(metrics, tmp_path / "confusion.png")
    plots.plot_per_class_errors(metrics, tmp_path / "errors.png")
    assert (ticks[0]["x"], ticks[0]["y"]) == (["3", "5", "8"], ["3", "5", "8"])
    assert ticks[1]["x"] == ["3", "5", "8"]


def test_every_count_in_the_confusion_matrix_is_readable_on_its_cell(tmp_path, monkeypatch):
    """A teacher: a fine-tuned run's held-out writers, two samples of each digit all read right, gave a matrix of 2s
    in black on the darkest blue. Now a count is white on a dark cell and black on a pale one."""
    from matplotlib.colors import to_rgb

    colours: list[dict[str, tuple]] = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (colours.append(
        {t.get_text(): to_rgb(t.get_color()) for t in fig.axes[0].texts}), real(fig, path))[1])
    white, black = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    twos = np.repeat(np.arange(10), 2)
    plots.plot_confusion(compute_metrics(twos, twos), tmp_path / "twos.png")
    assert colours[-1] == {"2": white}
    truth = np.concatenate([np.repeat(np.arange(10), 1000), [3]])
    plots.plot_confusion(compute_metrics(truth, np.concatenate([np.repeat(np.arange(10), 1000), [5]])),
                         tmp_path / "many.png")
    assert colours[-1] == {"1000": white, "1": black}


def test_a_figure_goes_into_a_new_folder_in_the_format_its_name_ends_in(tmp_path):
    for name, magic in (("c.jpg", b"\xff\xd8"), ("c.png", b"\x89PNG"), ("c", b"\x89PNG"), ("c.PDF", b"%PDF"),
                        ("confusion.v2", b"\x89PNG")):  # a name that is no format's: PNG, as before
        fig, _ = plt.subplots()
        path = save_figure(fig, tmp_path / "new" / "sub" / name)
        assert path.read_bytes().startswith(magic) and not plt.fignum_exists(fig.number), name


def test_a_subsets_weights_are_named_by_its_own_digits(tmp_path, ticks):
    """A reviewer: a model of the 3s, 5s and 8s had its weights named digit 0, 1, 2; of two digits, "digit 0"."""
    from digitlab.data import load_dataset
    from digitlab.train import train

    ds = load_dataset("digits")
    for digits, names in (([3, 5, 8], ["digit 3", "digit 5", "digit 8"]), ([3, 8], ["8 against 3"])):
        keep = np.isin(ds.train_labels, digits)
        part = ds.__class__(**{**ds.__dict__, "train_images": ds.train_images[keep],
                               "train_labels": ds.train_labels[keep]})
        plots.plot_weights(train("logreg", part), (8, 8), tmp_path / "w.png")
        assert ticks[-1]["texts"] == names


def _drawn(module, monkeypatch):
    """Each figure ``module`` saves, drawn, kept for a look at where its parts landed."""
    from digitlab.fileio import save_figure

    figures = []

    def keep(fig, path, *args):
        fig.canvas.draw()
        figures.append(fig)
        return save_figure(fig, path, *args)

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_the_reliability_legend_covers_no_bar(tmp_path, monkeypatch):
    """An MLP unsure from 45% has bars up to 100% in the panel's top-left corner, where the legend was."""
    from digitlab import plots_confidence
    from digitlab.calibrate import reliability_bins

    figures = _drawn(plots_confidence, monkeypatch)
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(10, 0.3), size=400)
    bins = reliability_bins(proba, proba.argmax(axis=1))  # always right: every bar reaches 100%
    plots_confidence.plot_reliability(bins, bins, tmp_path / "reliability.png")
    fig = figures[0]
    legends = [legend.get_window_extent() for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
               if legend is not None]
    bars = [patch.get_window_extent() for ax in fig.axes for patch in ax.patches]
    assert legends and bars and not any(_overlaps(legend, bar) for legend in legends for bar in bars)


def test_the_risk_label_is_not_struck_through_by_the_target_line(tmp_path, monkeypatch):
    """k-NN's point at 99.7% over the 99.5% line: the label under the point sat on the dotted line."""
    from digitlab import plots_confidence

    figures = _drawn(plots_confidence, monkeypatch)
    coverage = np.linspace(0.01, 1, 100)
    accuracy = np.where(coverage < 0.9, 1.0, 0.997 - (coverage - 0.9) * 0.15)
    plots_confidence.plot_risk_coverage(coverage, accuracy, (0.995, 0.961, 0.997), tmp_path / "r.png", target=0.995)
    ax = figures[0].axes[0]
    label = next(text for text in ax.texts if text.get_text().startswith("keeps")).get_window_extent()
    line_y = ax.transData.transform((50, 99.5))[1]
    assert not label.y0 <= line_y <= label.y1, (label, line_y)
