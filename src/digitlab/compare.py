"""Train several models on the same split and rank them: a leaderboard with a significance test.

Examples
--------
>>> import tempfile
>>> board = compare_models(["logreg", "knn"], "digits", out=tempfile.mkdtemp())
>>> [row.model for row in board.rows][0]
'knn'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from digitlab.data import load_dataset
from digitlab.errors import DigitlabError, require_name
from digitlab.evaluate import evaluate_on_test
from digitlab.fileio import atomic_folder, write_text_atomic
from digitlab.pages import embed_png, render
from digitlab.runs import made_for_run, now_utc, run_stamp
from digitlab.train import train


@dataclass
class Row:
    """One model's line on the leaderboard."""

    model: str
    accuracy: float
    ci_low: float
    ci_high: float
    n_errors: int
    n_test: int
    train_seconds: float
    predict_images_per_second: float
    model_bytes: int
    convergence_note: str | None = None


@dataclass
class McNemar:
    """McNemar's exact test between two models' right/wrong answers on the same test images."""

    first: str
    second: str
    only_first_right: int
    only_second_right: int
    p_value: float

    @property
    def significant(self) -> bool:
        """True when p < 0.05."""
        return self.p_value < 0.05

    @property
    def verdict(self) -> str:
        """One sentence saying whether the gap between the two is likely real.

        >>> McNemar("a", "b", 0, 0, 1.0).verdict, McNemar("a", "b", 3, 3, 1.0).verdict
        ('no gap: the two are right on the very same ones', 'no gap: each is right where the other is wrong as often')
        """
        if self.only_first_right == self.only_second_right:  # "the gap may be chance (p = 1)" of none (a teacher)
            return "no gap: " + ("the two are right on the very same ones" if self.only_first_right == 0
                                 else "each is right where the other is wrong as often")
        if self.significant:
            return f"the gap is real (p = {self.p_value:.3g} < 0.05)"
        return f"the gap may be chance (p = {self.p_value:.3g} ≥ 0.05)"


@dataclass
class Leaderboard:
    """The ranked rows, the test between the top two, and the folder holding compare.html."""

    dataset: str
    rows: list[Row]
    mcnemar: McNemar | None
    folder: Path


def mcnemar_exact(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int, float]:
    """Counts of discordant pairs and the two-sided exact (binomial) McNemar p-value.

    Examples
    --------
    >>> mcnemar_exact(np.array([1, 1, 1, 0]), np.array([1, 0, 0, 0]))
    (2, 0, 0.5)
    """
    from scipy.stats import binomtest

    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if b + c == 0:
        return b, c, 1.0
    return b, c, float(binomtest(b, b + c, 0.5).pvalue)


def compare_models(
    names: list[str],
    dataset: str = "digits",
    *,
    seed: int = 42,
    test_size: float | None = None,
    limit: int | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    out: Path | str = "runs",
    step: Callable[[str], None] = lambda _: None,
) -> Leaderboard:
    """Train each model on one split, rank by accuracy, and write ``compare.html`` in a new folder."""
    from digitlab.models import make_model
    from digitlab.store import save_model

    if isinstance(names, str):  # "logreg,knn" as the CLI's --models writes it: each letter was a model ('l')
        names = [name.strip() for name in names.split(",") if name.strip()]
    require_name(dataset, "compare_models")
    names = list(dict.fromkeys(names))  # each once: a model against itself says nothing
    if not names:
        raise DigitlabError("no models to compare; give names such as logreg, knn, svm")
    out = Path(out)
    for name in names:
        make_model(name, dataset=dataset, seed=seed, params=(params or {}).get(name))
    started = now_utc()
    data = load_dataset(dataset, test_size=test_size, seed=seed, limit=limit)
    final = out / f"{run_stamp(started)}-{dataset}-compare"
    with made_for_run(out), atomic_folder(final) as staged:  # a refused or failed comparison leaves no folder
        staging = staged.path
        rows, right = [], {}
        for name in names:
            step(f"training {name}")
            fitted = train(name, data, seed=seed, params=(params or {}).get(name))
            step(f"evaluating {name}")
            predictions, metrics = evaluate_on_test(fitted.model, data)
            save_model(fitted, data, staging / name, metrics=metrics.for_card())
            size = sum(p.stat().st_size for p in (staging / name).iterdir())
            rows.append(Row(name, metrics.accuracy, metrics.ci_low, metrics.ci_high, metrics.n_errors,
                            metrics.n_test, fitted.train_seconds, data.n_test / max(predictions.seconds, 1e-9), size,
                            fitted.convergence_note(f"{name}.max_iter")))
            right[name] = predictions.labels == data.test_labels
        rows.sort(key=lambda r: (-r.accuracy, r.train_seconds))
        test = None
        if len(rows) >= 2:
            b, c, p = mcnemar_exact(right[rows[0].model], right[rows[1].model])
            test = McNemar(rows[0].model, rows[1].model, b, c, p)
        board = Leaderboard(dataset, rows, test, final)
        step("writing leaderboard")
        _write(board, staging, data.n_train)
    board.folder = staged.final
    return board


def _write(board: Leaderboard, folder: Path, n_train: int) -> None:
    from digitlab import plots

    doc = {
        "dataset": board.dataset,
        "n_train": n_train,
        "rows": [asdict(r) for r in board.rows],
        "mcnemar": None if board.mcnemar is None else {**asdict(board.mcnemar), "verdict": board.mcnemar.verdict},
    }
    write_text_atomic(folder / "leaderboard.json", json.dumps(doc, indent=2) + "\n")
    chart = plots.plot_leaderboard([r.model for r in board.rows], [r.accuracy for r in board.rows],
                                   [(r.ci_low, r.ci_high) for r in board.rows], folder / "leaderboard.png")
    from rich.filesize import decimal  # sizes as the terminal's leaderboard writes them: 418.7 kB, 20.2 MB

    write_text_atomic(folder / "compare.html", render("compare.html.j2", doc=doc, board=board, chart=embed_png(chart),
                                                      size=decimal))
