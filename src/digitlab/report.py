"""Assemble a run folder: metrics.json, predictions.csv, figures, the model, report.html.

The folder is written under a temporary name and renamed at the end, so a run that fails
half-way leaves nothing that looks like a finished run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from digitlab.calibrate import answered
from digitlab.data.dataset import Dataset
from digitlab.evaluate import Metrics, NotDigitResult, Predictions
from digitlab.fileio import atomic_folder, write_text_atomic
from digitlab.notdigit import MIN_HELD_DIGITS
from digitlab.predict import MIN_CONFIDENCE
from digitlab.pages import docstring_coverage, embed_png, render
from digitlab.runs import check_writable, run_stamp
from digitlab.train import FittedModel

FIGURES = {
    "samples": "Sample training images",
    "class_distribution": "Class distribution",
    "confusion_matrix": "Confusion matrix",
    "per_class_errors": "Errors per digit",
    "misclassified": "Misclassified examples",
    "weights": "Learned weights per digit",
    "reliability": "Reliability before and after the temperature",
    "risk_coverage": "Risk–coverage: accuracy of the answers kept",
    "not_a_digit": "Pictures that are not digits",
}


@dataclass
class RunRecord:
    """Everything a finished run folder holds, before it is written."""

    dataset: Dataset
    fitted: FittedModel
    predictions: Predictions
    metrics: Metrics
    started: datetime
    validation_accuracy: float | None = None
    not_a_digit: NotDigitResult | None = None


def run_name(record: RunRecord) -> str:
    """``<UTC time>-<dataset>-<model>``: the folder name a run asks for (``-2`` is added if it is taken)."""
    return f"{run_stamp(record.started)}-{record.dataset.name}-{record.fitted.name}"


def metrics_document(record: RunRecord, run_id: str) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    from digitlab.store import library_versions, provenance

    ds, fitted, m = record.dataset, record.fitted, record.metrics
    return {
        "run": run_id,
        "created": record.started.isoformat(timespec="seconds"),
        "dataset": ds.name,
        "split": ds.split,
        "n_train": ds.n_train,
        "n_test": ds.n_test,
        "image_shape": list(ds.image_shape),
        "pixel_max": ds.pixel_max,
        "model": fitted.name,
        "params": fitted.params,
        "param_overrides": {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
                            for k, v in fitted.overrides.items()},
        "seed": fitted.seed,
        "accuracy": m.accuracy,
        "n_errors": m.n_errors,
        "ci95": [m.ci_low, m.ci_high],
        "macro_precision": m.macro_precision,
        "macro_recall": m.macro_recall,
        "macro_f1": m.macro_f1,
        "ece": m.ece,
        "nll": m.nll,
        "brier": m.brier,
        "ece_uncalibrated": m.ece_uncalibrated,
        "nll_uncalibrated": m.nll_uncalibrated,
        "brier_uncalibrated": m.brier_uncalibrated,
        "calibration": None if fitted.calibration is None else fitted.calibration.to_dict(),
        "not_a_digit": None if record.not_a_digit is None else {
            "threshold": fitted.detector.threshold, "held_out_digits_flagged": fitted.detector.digits_flagged,
            "held_out_nondigits_flagged": fitted.detector.nondigits_flagged, **record.not_a_digit.to_dict()},
        "per_class": [vars(c) for c in m.per_class],
        "confusion": m.confusion,
        "validation_accuracy": record.validation_accuracy,
        "train_seconds": fitted.train_seconds,
        "epochs": getattr(fitted.model, "history_", None),  # the CNN's, with each epoch's seconds (not in its file)
        "predict_seconds": record.predictions.seconds,
        "versions": library_versions(),
        "provenance": provenance(record.dataset),
    }


def write_predictions_csv(path: Path, record: RunRecord) -> None:
    """One row per test image: index, true label, predicted label, confidence, ten probabilities."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    proba = record.predictions.probabilities
    header = ["index", "true", "predicted", "confidence"]
    if proba is not None:
        header += [f"p{d}" for d in range(proba.shape[1])]
    writer.writerow(header)
    confidence = record.predictions.confidence
    for i, (true, pred) in enumerate(zip(record.dataset.test_labels, record.predictions.labels)):
        row: list[Any] = [i, int(true), int(pred), "" if np.isnan(confidence[i]) else f"{confidence[i]:.6f}"]
        if proba is not None:
            row += [f"{p:.6f}" for p in proba[i]]
        writer.writerow(row)
    write_text_atomic(path, buffer.getvalue())


def draw_figures(record: RunRecord, folder: Path, step: Callable[[str], None] = lambda _: None) -> dict[str, Path]:
    """Draw every figure of the report into ``folder``; return name → path."""
    from digitlab import plots

    ds, pred = record.dataset, record.predictions
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    step("figures: samples")
    paths["samples"] = plots.plot_samples(ds.train_images, ds.train_labels, folder / "samples.png")
    paths["class_distribution"] = plots.plot_class_distribution(
        ds.train_labels, ds.test_labels, folder / "class_distribution.png")
    step("figures: confusion matrix")
    paths["confusion_matrix"] = plots.plot_confusion(record.metrics, folder / "confusion_matrix.png")
    paths["per_class_errors"] = plots.plot_per_class_errors(record.metrics, folder / "per_class_errors.png")
    step("figures: misclassified")
    paths["misclassified"] = plots.plot_misclassified(
        ds.test_images, ds.test_labels, pred.labels, pred.confidence, folder / "misclassified.png")
    coef = getattr(record.fitted.model, "coef_", None)
    if coef is not None and np.ndim(coef) == 2 and coef.shape == (10, int(np.prod(ds.image_shape))):
        step("figures: weights")
        paths["weights"] = plots.plot_weights(np.asarray(coef), ds.image_shape, folder / "weights.png")
    if pred.probabilities is not None:
        step("figures: calibration")
        from digitlab.calibrate import TARGET_ACCURACY, reliability_bins

        known = np.isin(ds.test_labels, pred.classes)
        y_index = np.searchsorted(pred.classes, ds.test_labels[known])
        m = record.metrics
        ece = None if m.ece is None or m.ece_uncalibrated is None else (m.ece_uncalibrated, m.ece)
        paths["reliability"] = plots.plot_reliability(
            reliability_bins(pred.uncalibrated[known], y_index), None if record.fitted.calibration is None  # no
            else reliability_bins(pred.probabilities[known], y_index), folder / "reliability.png", ece=ece)  # "after"
        coverage, accuracy, point, away = answers_curve(record)
        paths["risk_coverage"] = plots.plot_risk_coverage(
            coverage, accuracy, point, folder / "risk_coverage.png",
            target=None if point is None else TARGET_ACCURACY, turned_away=away)
    if record.not_a_digit is not None:
        r = record.not_a_digit
        paths["not_a_digit"] = plots.plot_nondigits(r.images, r.guesses, r.guess_probability, r.flagged,
                                                    folder / "not_a_digit.png")
    return paths


def answers_curve(record: RunRecord) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float] | None, int]:
    """The risk-coverage curve of the answers a person gets (the detector's turned-away ones are never answered,
    so it ends short of 1): ``(coverage, accuracy, (threshold, coverage, accuracy) of "unsure", turned away)``."""
    from digitlab.calibrate import risk_coverage

    pred = record.predictions
    flagged = np.zeros(len(pred.labels), dtype=bool) if record.not_a_digit is None else record.not_a_digit.test_flagged
    right = pred.labels == record.dataset.test_labels
    _, coverage, accuracy = risk_coverage(pred.confidence[~flagged], right[~flagged])
    unsure = unsure_on_test(record)
    shown = None if unsure is None else unsure.get("digit", unsure)
    point = None if shown is None else (shown["threshold"], shown["coverage"], shown["accuracy"])
    return coverage * float(np.mean(~flagged)), accuracy, point, int(flagged.sum())


def unsure_on_test(record: RunRecord) -> dict[str, Any] | None:
    """The calibration's "unsure" threshold applied to the test images: the share answered and how often right.

    Answers with a (calibrated) confidence at or above ``unsure_below`` are kept. When the run has a
    not-a-digit detector, ``digit`` is the same for the answers a person gets: kept and not flagged, and
    ``n_sure_flagged`` counts the sure answers the detector turns away. None when the run has no
    calibration or no probabilities.
    """
    calibration, pred = record.fitted.calibration, record.predictions
    if calibration is None or pred.probabilities is None or len(pred.labels) == 0:
        return None
    from digitlab.calibrate import TARGET_ACCURACY
    from digitlab.predict import percent_needed, shown_below

    right = pred.labels == record.dataset.test_labels
    sure = answered(pred.confidence, right, calibration.unsure_below)
    if record.not_a_digit is not None:
        flagged = record.not_a_digit.test_flagged
        sure["digit"] = answered(np.where(flagged, -np.inf, pred.confidence), right, calibration.unsure_below)
        sure["n_sure_flagged"] = sure["n_kept"] - sure["digit"]["n_kept"]
        sure["n_flagged"] = int(flagged.sum())  # sure or not: the risk curve ends short of 100% by these
    return {**sure, "needed": percent_needed(calibration.unsure_below),  # as predict and the page write it: rounded up
            "target_met": calibration.kept_accuracy >= TARGET_ACCURACY,
            "kept": shown_below(calibration.kept_accuracy, TARGET_ACCURACY)}  # 99.49% is not "99.5% right"


def temperature_in_words(temperature: float) -> str:
    """How the temperature changed the probabilities, for the report: softened, sharpened or left as they were."""
    if abs(temperature - 1.0) < 0.01:
        return "left almost as they were: the model's own probabilities were already about right"
    if temperature > 1.0:
        return "softened: the model was over-confident, so its probabilities are pulled towards each other"
    return "sharpened: the model was under-confident, so its top probability is pushed up"


def epochs_words(history: list[dict[str, Any]]) -> str:
    """How much a CNN trained, in epochs, from its history (``share``: of an epoch the time budget let it finish).

    >>> epochs_words([{"epoch": 1, "share": 1.0}, {"epoch": 2, "share": 0.4}])
    '1.4 epochs'
    >>> epochs_words([{"epoch": 1, "share": 0.29}]), epochs_words([{"epoch": 1}]), epochs_words([{}, {"share": 0.996}])
    ('0.29 of an epoch', '1 epoch', '1.99 epochs')
    """
    total = sum(1.0 if r.get("share") is None else r["share"] for r in history)
    if total >= 0.01:  # rounded down: 0.996 of an epoch is not "the 1 epoch", nor 1.996 "2 epochs"
        total = math.floor(round(total * 100, 6)) / 100
    shown = f"{total:.2g}" if total < 1 else f"{total:,.2f}".rstrip("0").rstrip(".")
    return f"{shown} of an epoch" if shown.startswith("0") else f"{shown} epoch{'' if shown == '1' else 's'}"


def how_it_stopped(model: Any) -> str | None:
    """For a model trained epoch by epoch (the CNN): how many epochs it ran and what ended them; else None.

    Under a time budget the recipe's ``epochs`` (1000) is only an upper bound, which the parameter table alone
    would show as if it had trained that long.
    """
    reason, done = getattr(model, "stop_reason_", None), getattr(model, "history_", None)
    if reason not in ("epochs", "time_budget", "target_accuracy") or not done:
        return None
    world = getattr(model, "world_size_", 1) or 1  # an engineer: a torchrun run's report never said it was one
    trained = f"It trained {epochs_words(done)}" + (f" in {world} torchrun processes" if world > 1 else "")
    if reason == "time_budget":
        return f"{trained}: the time budget of {model.time_budget:g} s ended it (epochs={model.epochs} is an upper bound)."
    if reason == "target_accuracy":
        last, held = done[-1].get("val_accuracy"), getattr(model, "validation_fraction", None)
        where = f" on the {held:.0%} of its training images it held out to measure it" if held else ""
        reached = f" ({last:.2%}{where})" if last is not None else ""
        return f"{trained}, stopping once its validation accuracy reached {model.target_accuracy:.2%}{reached}."
    return f"{trained}, as epochs={model.epochs} asks."


def calibration_caveat(m: Any) -> str | None:
    """One honest sentence when the temperature made the test images' calibration error larger; else None.

    The temperature is fitted to lower the negative log-likelihood (NLL) of held-out images. The NLL is dominated by
    the few answers that are confidently wrong, the ECE by the many ordinary ones, so softening the first can push
    the second away from the diagonal (MNIST's logistic regression: NLL 0.2774 -> 0.2748, ECE 0.50% -> 1.70%).
    """
    if None in (m.ece, m.ece_uncalibrated, m.nll, m.nll_uncalibrated):
        return None
    if round(m.ece, 4) <= round(m.ece_uncalibrated, 4):  # larger as printed (0.50% -> 0.50% is not)
        return None
    change = f"made the calibration error larger, not smaller ({m.ece_uncalibrated:.2%} → {m.ece:.2%})"
    if m.nll < m.nll_uncalibrated:
        return (f"On these test images the temperature {change}, though it lowered the negative log-likelihood, "
                "which is what it is fitted to lower. The two weigh different answers: a few confidently wrong ones "
                "dominate the log-likelihood, the many ordinary ones the calibration error. The diagrams show "
                "where the bins moved.")
    return (f"On these test images the temperature {change}, and the negative log-likelihood larger too: the "
            "held-out images it was fitted on behaved differently from these.")


def render_report(record: RunRecord, doc: dict[str, Any], figures: dict[str, Path], folder: Path) -> str:
    """The self-contained report.html: figures embedded as data URIs, no network needed."""
    images = {name: embed_png(path) for name, path in figures.items()}
    return render(
        "report.html.j2",
        doc=doc, m=record.metrics, images=images, titles=FIGURES, ds=record.dataset,
        criteria=success_criteria(record), folder=str(folder),
        takes_pictures=hasattr(record.fitted.model, "image_shape_"),
        calibration=record.fitted.calibration, unsure=unsure_on_test(record),
        detector=record.fitted.detector, not_a_digit=record.not_a_digit,
        temperature_words=None if record.fitted.calibration is None
        else temperature_in_words(record.fitted.calibration.temperature),
        calibration_caveat=calibration_caveat(record.metrics), min_held=MIN_HELD_DIGITS, min_confidence=MIN_CONFIDENCE,
        convergence_note=record.fitted.convergence_note(), stopped=how_it_stopped(record.fitted.model),
    )


def success_criteria(record: RunRecord) -> list[tuple[str, bool, str]]:
    """The lesson's success criteria, each with whether this run meets it and the evidence.

    Each mark is computed here from the run or the source, never written in.
    """
    m = record.metrics
    documented, total = docstring_coverage()
    return [
        ("Load dataset successfully", True, f"{record.dataset.n_train:,} training and {record.dataset.n_test:,} test images of {record.dataset.image_shape[0]}×{record.dataset.image_shape[1]}"),
        ("Preprocess images (normalization)", True, f"pixels ÷ {record.dataset.pixel_max} → [0, 1]"),
        ("Train model without errors", True, f"{record.fitted.name} in {record.fitted.train_seconds:.2f} s"),
        ("Achieve >90% test accuracy", m.accuracy > 0.90, f"{m.accuracy:.2%}"),
        ("Create confusion matrix", True, "Phase 4 below"),
        ("Visualize misclassified examples", True, f"{m.n_errors} shown in Phase 5" if m.n_errors <= 24 else f"24 of {m.n_errors} in Phase 5"),
        ("Write clean, documented code", documented == total,
         f"{documented} of {total} public functions and classes in digitlab have docstrings (checked in its source now)"),
    ]


def write_run(record: RunRecord, out: Path, step: Callable[[str], None] = lambda _: None) -> Path:
    """Write the run folder under ``out`` atomically; return its final path.

    The folder's name is decided before anything is written, so ``metrics.json`` and the report
    name the folder they are in even when two runs start in the same second.
    """
    from digitlab.store import save_model

    out = Path(out)
    check_writable(out)
    with atomic_folder(out / run_name(record)) as staged:
        staging, final = staged.path, staged.final
        doc = metrics_document(record, final.name)
        write_text_atomic(staging / "metrics.json", json.dumps(doc, indent=2) + "\n")
        write_predictions_csv(staging / "predictions.csv", record)
        figures = draw_figures(record, staging / "figures", step)
        step("saving model")
        save_model(record.fitted, record.dataset, staging, metrics=record.metrics.for_card())
        step("writing report")
        write_text_atomic(staging / "report.html", render_report(record, doc, figures, final))
    return staged.final
