"""The page for a model measured on a handwriting set (``digitlab evaluate``), or before → after (``digitlab finetune``).

One template, ``handwriting.html.j2``, shows one score or two side by side: accuracy with its 95%
interval, McNemar's test between the two, MNIST test accuracy when measured, accuracy per writer,
the confusion matrix and the mistakes as the picture that arrived beside what the model saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import plots
from digitlab.compare import McNemar, mcnemar_exact
from digitlab.data.handwriting import HandwritingSet
from digitlab.data.handwriting_io import writer_of
from digitlab.data.handwriting_names import NO_NAME
from digitlab.fileio import write_text_atomic
from digitlab.figure_text import drawable, writer_labels
from digitlab.handwriting_eval import SetScore
from digitlab.pages import embed_png, render
from digitlab.predict import shown_percent

__all__ = ["draw_handwriting_figures", "mcnemar_between", "render_handwriting", "write_evaluation"]

MISTAKES_SHOWN = 20


def mcnemar_between(before: SetScore, after: SetScore) -> McNemar:
    """McNemar's exact test between two scores of the same samples."""
    truth = np.array([s.label for s in after.samples])
    b, c, p = mcnemar_exact(before.predictions.labels == truth, after.predictions.labels == truth)
    return McNemar("before", "after", b, c, p)


def draw_handwriting_figures(scores: list[SetScore], store: HandwritingSet, folder: Path,
                             series: list[str]) -> dict[str, Path]:
    """Per-writer accuracy (every score), and the confusion matrix and mistakes of the last score."""
    folder.mkdir(parents=True, exist_ok=True)
    last = scores[-1]
    writers = [row.writer for row in last.writers]
    rows = [{row.writer: row for row in score.writers} for score in scores]
    figures = {
        "writers": plots.plot_per_writer(
            writers, [[r[w].accuracy for w in writers] for r in rows],
            [[(r[w].ci_low, r[w].ci_high) for w in writers] for r in rows], series, folder / "per_writer.png"),
        "confusion": plots.plot_confusion(last.metrics, folder / "confusion.png"),
    }
    every = _mistakes(last)
    order = every[:MISTAKES_SHOWN]
    originals, titles, labels = [], [], writer_labels(writers, 14)
    for number, i in enumerate(order, 1):
        sample = last.samples[i]
        originals.append(_ink_bright(store.folder / sample.original))
        confidence = last.predictions.confidence[i]
        sure = "" if np.isnan(confidence) else f" ({shown_percent(confidence, 0)})"
        writer = labels.get(sample.writer or "", "")
        titles.append(f"{number}. {sample.label} read as {last.predictions.labels[i]}{sure}\n{writer}")
    figures["mistakes"] = plots.plot_sample_mistakes(originals, last.images[order], titles,
                                                     folder / "mistakes.png", total=len(every))
    return figures


def _mistakes(score: SetScore) -> np.ndarray:
    """Every mistake's index, most confident first; the figure shows the first :data:`MISTAKES_SHOWN`."""
    truth = np.array([s.label for s in score.samples])
    wrong = np.flatnonzero(score.predictions.labels != truth)
    return wrong[np.argsort(-np.nan_to_num(score.predictions.confidence[wrong]), kind="stable")]


def mistake_rows(score: SetScore) -> list[dict[str, Any]]:
    """Every mistake, numbered as the figure numbers its first ones, with each sample's writer and id: a sure
    "mistake" is often a label pressed wrong (a teacher's five surest were), and `digitlab data remove SET ID` needs
    the id; a 21st had been in neither the figure nor the table."""
    rows = []
    for number, i in enumerate(_mistakes(score), 1):
        sample = score.samples[i]
        rows.append({"number": number, "label": sample.label, "read": int(score.predictions.labels[i]),
                     "writer": writer_of(sample), "id": sample.id})
    return rows


def render_handwriting(scores: list[SetScore], series: list[str], figures: dict[str, Path], *,
                       title: str, mcnemar: McNemar | None = None, mnist: list[dict] | None = None,
                       notes: list[str] | None = None, info: list[str] | None = None) -> str:
    """The page's HTML (figures embedded, so it opens from disk)."""
    writers = [row.writer for row in scores[-1].writers]
    table = [[next(r for r in score.writers if r.writer == w) for score in scores] for w in writers]
    undrawn = {name: label for name, label in writer_labels(writers).items() if not drawable(name)}
    nameless = sum(row[0].n for name, row in zip(writers, table) if name == NO_NAME)  # anyone's: not a writer
    return render("handwriting.html.j2", title=title, scores=list(zip(series, scores)), writers=list(zip(writers, table)),
                  named=len(writers) - (NO_NAME in writers), nameless=nameless, shown=MISTAKES_SHOWN,
                  mistakes=mistake_rows(scores[-1]), set_name=scores[-1].set_name,
                  undrawn=undrawn, mcnemar=mcnemar, mnist=mnist or [], notes=notes or [], info=info or [],
                  figures={name: embed_png(path) for name, path in figures.items()})


def write_evaluation(score: SetScore, store: HandwritingSet, folder: Path, model: str | None = None) -> Path:
    """Write ``report.html``, ``metrics.json`` and ``figures/`` of one model on one set into ``folder``; ``model``
    names it in the title in words ("cnn trained on mnist"), the table keeps its id (a teacher: a title of a hash)."""
    figures = draw_handwriting_figures([score], store, folder / "figures", ["this model"])
    write_text_atomic(folder / "metrics.json", json.dumps(score.to_dict(), indent=2) + "\n")
    page = render_handwriting([score], ["model"], figures,
                              title=f"{model + ',' if model else score.model_id} on your handwriting: {score.set_name}",
                              notes=list(store.problems))
    write_text_atomic(folder / "report.html", page)
    return folder / "report.html"


def _ink_bright(path: Path) -> np.ndarray:
    """A picture file as grayscale with the ink bright, whatever its polarity (light paper is the usual); read as a
    file, so a photo imported at up to 32 MiB shows too (as bytes, 5 MiB: what a request may bring)."""
    from digitlab.data.image_files import WORK_SIDE
    from digitlab.data.images import read_image

    try:
        gray = np.asarray(read_image(path, draft=WORK_SIDE).convert("L"), dtype=np.uint8)
    except Exception:  # a picture that no longer decodes shows as blank, not as a crash
        return np.zeros((28, 28), dtype=np.uint8)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 255 - gray if border.mean() > 127 else gray

