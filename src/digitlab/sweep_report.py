"""A sweep's results for people: ``results.csv``, a summary per configuration, figures and ``sweep.html``.

Reads the cell files a sweep wrote (see :mod:`digitlab.sweep`); computes nothing by training.

Examples
--------
>>> rows = [{"config": "knn", "model": "knn", "params": {}, "limit": None, "seed": s, "accuracy": a, "error": None}
...         for s, a in [(0, 0.9), (1, 0.92), (2, 0.94)]]
>>> s = summarize(rows)[0]
>>> s.n, round(s.mean, 3), round(s.sd, 3), s.best
(3, 0.92, 0.02, True)
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitlab.fileio import write_text_atomic
from digitlab.sweep import Cell, read_cell

__all__ = ["ConfigSummary", "budget_notes", "load_results", "limit_notes", "prune_models", "star_note", "summarize",
           "write_report"]

CLIPPED = ("* the t-interval went past 100% (or 0%) and is cut there: with few seeds and a wide spread, the "
           "mean's interval is wide; more seeds narrow it")
CSV_COLUMNS = ["cell_id", "config", "model", "params", "seed", "limit", "n_train", "accuracy", "n_errors", "n_test",
               "train_seconds", "epochs", "host", "error"]
UNEQUAL = 1.25  # a time budget's cells that trained this many times as many epochs as each other are said


@dataclass
class ConfigSummary:
    """Accuracy over the seeds of one configuration: mean, standard deviation, 95% t-interval."""

    config: str
    model: str
    params: dict[str, Any]
    limit: int | None
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    n_failed: int = 0
    best: bool = False
    accuracies: list[float] = field(default_factory=list)
    best_cell: str | None = None
    cut: tuple[bool, bool] = (False, False)  # whether the t-interval went past 0%, past 100%, and was cut there

    @property
    def clipped(self) -> bool:
        """Whether the t-interval went past 0% or 100% and was cut there (few seeds, a wide spread); not when it
        only reaches 100% (every seed right: sd 0)."""
        return any(self.cut)

    def interval(self, between: str = "–") -> str:
        """The 95% interval in percent, ``*`` on an end that was cut (:data:`CLIPPED` says what it means)."""
        low, high = (f"{v:.2%}" + ("*" if cut else "") for v, cut in zip((self.ci_low, self.ci_high), self.cut))
        return f"{low}{between}{high}"


def load_results(folder: Path, cells: list[Cell]) -> list[dict[str, Any]]:
    """The results of the given cells found in ``folder/cells``, in the given order (see :func:`read_cell`)."""
    return [row for row in (read_cell(cell, folder) for cell in cells) if row is not None]


def summarize(rows: list[dict[str, Any]]) -> list[ConfigSummary]:
    """One :class:`ConfigSummary` per configuration, in first-seen order; the best mean is marked (of those with
    no failed seed, when there are some).

    The 95% interval is the mean ± t(0.975, n − 1) · sd / √n, clipped to [0, 1] (NaN with fewer than two
    seeds).
    """
    from scipy.stats import t

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["config"], []).append(row)
    out = []
    for config, members in groups.items():
        ok = [r for r in members if r.get("error") is None and r.get("accuracy") is not None]
        acc = [float(r["accuracy"]) for r in ok]
        n = len(acc)
        mean = sum(acc) / n if n else math.nan
        sd = math.sqrt(sum((a - mean) ** 2 for a in acc) / (n - 1)) if n > 1 else math.nan
        half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else math.nan
        best_cell = max(ok, key=lambda r: (r["accuracy"], -r["seed"]))["cell_id"] if ok and "cell_id" in ok[0] else None
        first = members[0]
        out.append(ConfigSummary(config, first["model"], first.get("params") or {}, first.get("limit"), n, mean,
                                 sd, max(mean - half, 0.0), min(mean + half, 1.0), len(members) - n, accuracies=acc,
                                 best_cell=best_cell, cut=(mean - half < 0.0, mean + half > 1.0)))
    scored = [s for s in out if s.n]
    if scored:  # a mean over the seeds that did not fail is no match for one over them all: whole ones first
        max([s for s in scored if not s.n_failed] or scored, key=lambda s: s.mean).best = True
    return out


def star_note(summaries: list[ConfigSummary]) -> str | None:
    """Why ★ is not on the highest mean, when it is not: a configuration with failed seeds was passed over."""
    best = next((s for s in summaries if s.best), None)
    if best is not None and any(s.n and s.n_failed and s.mean > best.mean for s in summaries):
        return "★ marks the best of the configurations none of whose seeds failed"
    return None


def limit_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per ``--limit`` that asked for more training images than the split has (those cells trained on
    all of them, so their rows are the same training set under another name).

    >>> limit_notes([{"limit": 5000, "n_train": 1437}, {"limit": 1000, "n_train": 1000}])
    ['limit=5000 is more than the 1,437 training images: those cells trained on all of them']
    """
    over = {r["limit"]: r["n_train"] for r in rows
            if r.get("limit") is not None and isinstance(r.get("n_train"), int) and r["n_train"] < r["limit"]}
    return [f"limit={limit} is more than the {n:,} training images: those cells trained on all of them"
            for limit, n in sorted(over.items())]


def budget_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per configuration with a time budget whose cells trained unequal amounts (:data:`UNEQUAL`): the
    budget bought what the machine's load allowed, and an engineer's "± sd over seeds" mixed that with the seeds.

    >>> budget_notes([{"config": "cnn time_budget=3", "params": {"time_budget": 3}, "epochs": e} for e in (0.6, 1.0)])
    ['cnn time_budget=3: its cells trained 0.60-1.00 epochs in their time budget (as busy as the machine was): \
part of its spread over seeds is that']
    """
    epochs: dict[str, list[float]] = {}
    for row in rows:
        if "time_budget" in (row.get("params") or {}) and isinstance(row.get("epochs"), (int, float)):
            epochs.setdefault(row["config"], []).append(float(row["epochs"]))
    return [f"{config}: its cells trained {min(e):.2f}-{max(e):.2f} epochs in their time budget (as busy as the "
            "machine was): part of its spread over seeds is that" for config, e in epochs.items()
            if min(e) > 0 and max(e) / min(e) >= UNEQUAL]


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "params": json.dumps(row.get("params") or {}, sort_keys=True),
                         "limit": "" if row.get("limit") is None else row["limit"],
                         "n_train": "" if row.get("n_train") is None else row["n_train"],
                         "accuracy": "" if row.get("accuracy") is None else repr(row["accuracy"]),
                         "error": row.get("error") or ""})
    return buffer.getvalue()


def _axes(rows: list[dict[str, Any]]) -> list[str]:
    """The swept axes: ``model`` (several models), ``MODEL.PARAM`` (several values), ``limit`` (several)."""
    axes = []
    if len({r["model"] for r in rows}) > 1:
        axes.append("model")
    values: dict[str, set[str]] = {}
    for r in rows:
        for k, v in (r.get("params") or {}).items():
            values.setdefault(f"{r['model']}.{k}", set()).add(repr(v))
    axes += sorted(a for a, v in values.items() if len(v) > 1)
    if len({r.get("limit") for r in rows}) > 1:
        axes.append("limit")
    return axes


def _figure(rows: list[dict[str, Any]], axis: str, path: Path) -> None:
    from matplotlib.figure import Figure

    if axis == "model":  # each configuration its own place (a model's values are not pooled), each size its own line
        pick, xval = rows, (lambda r: r["config"].split(" limit=")[0])
        series = lambda r: "" if r.get("limit") is None else f"limit={r['limit']}"  # noqa: E731
    elif axis == "limit":  # at the training images each cell had: a limit above the split's size gets them all
        pick, xval = rows, (lambda r: r.get("n_train") or r.get("limit"))
        series = lambda r: " ".join(r["config"].split(" limit=")[:1])  # noqa: E731
    else:
        model, name = axis.split(".", 1)
        pick = [r for r in rows if r["model"] == model]
        xval = lambda r: r["params"].get(name)  # noqa: E731
        series = lambda r: " ".join(p for p in r["config"].split(" ") if not p.startswith(f"{name}="))  # noqa: E731
    pick = [r for r in pick if r.get("accuracy") is not None]
    xs = sorted({repr(xval(r)) for r in pick},
                key=lambda s: (0, float(s), "") if s.replace(".", "", 1).lstrip("-").isdigit() else (1, 0.0, s))
    numeric = all(s.replace(".", "", 1).lstrip("-").isdigit() for s in xs) and axis != "model"
    position = {s: (float(s) if numeric else i) for i, s in enumerate(xs)}
    fig = Figure(figsize=(6.4, 3.8), dpi=100)
    ax = fig.add_subplot()
    for label in dict.fromkeys(series(r) for r in pick):
        mine = [r for r in pick if series(r) == label]
        px = [position[repr(xval(r))] for r in mine]
        line = ax.plot(px, [r["accuracy"] * 100 for r in mine], "o", alpha=0.5)[0]
        means = []
        for s in xs:
            acc = [r["accuracy"] for r in mine if repr(xval(r)) == s]
            if acc:
                means.append((position[s], 100 * sum(acc) / len(acc)))
        ax.plot(*zip(*means), "-_", markersize=16, color=line.get_color(), label=label or "mean over seeds")
    if not numeric:
        labels = [s[1:-1] if len(s) > 1 and s[0] == s[-1] and s[0] in "'\"" else s for s in xs]  # a str's repr bare
        slanted = sum(map(len, labels)) > 60
        ax.set_xticks(range(len(xs)), labels, rotation=25 if slanted else 0, ha="right" if slanted else "center",
                      fontsize=8 if slanted else None)
    else:
        if axis == "limit" or (len(xs) > 2 and float(xs[-1]) / max(float(xs[0]), 1e-12) >= 100):
            ax.set_xscale("log")
        ax.set_xticks([position[s] for s in xs], xs)
        ax.minorticks_off()
    ax.set_xlabel({"limit": "training images", "model": "configuration"}.get(axis, axis))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Accuracy against {axis} (points: seeds, line: mean)")
    if any(not h.get_label().startswith("_") for h in ax.get_lines()):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def write_report(folder: Path, dataset: str, rows: list[dict[str, Any]],
                 summaries: list[ConfigSummary]) -> dict[str, Path]:
    """Write ``results.csv``, one figure per swept axis under ``figures/`` and ``sweep.html``.

    Returns
    -------
    dict
        ``{"csv": path, "html": path}``.
    """
    from digitlab.pages import embed_png, render
    from digitlab.runs import now_utc

    folder = Path(folder)
    write_text_atomic(folder / "results.csv", _csv(rows))
    figures = []
    (folder / "figures").mkdir(exist_ok=True)
    for axis in _axes(rows):
        path = folder / "figures" / f"accuracy-vs-{axis.replace('.', '-')}.png"
        _figure(rows, axis, path)
        figures.append((axis, embed_png(path)))
    html = render("sweep.html.j2", clipped=CLIPPED, dataset=dataset, folder=folder.name, summaries=summaries,
                  figures=figures, n_cells=len(rows), failed=[r for r in rows if r.get("error")],
                  when=now_utc().isoformat(), notes=limit_notes(rows) + budget_notes(rows))
    write_text_atomic(folder / "sweep.html", html)
    return {"csv": folder / "results.csv", "html": folder / "sweep.html"}


def prune_models(folder: Path, summaries: list[ConfigSummary]) -> int:
    """Delete saved models except each configuration's best cell; return how many were removed."""
    keep = {s.best_cell for s in summaries}
    removed = 0
    models = Path(folder) / "models"
    if models.is_dir():
        for sub in models.iterdir():
            if sub.is_dir() and sub.name not in keep:
                shutil.rmtree(sub, ignore_errors=True)
                removed += 1
    return removed
