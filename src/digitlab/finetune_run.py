"""``digitlab finetune``: a saved MNIST model fine-tuned to a handwriting set, written as a new run.

The set is split (by writer when it has two or more, see :func:`~digitlab.data.handwriting_io.split_samples`);
the model learns from the training part with MNIST replayed beside it (as many MNIST images as the base
model trained on, chosen by its seed; at most :data:`CLASSIC_REPLAY` for a classic model, which is
refitted) so that it does not forget; both models are
then measured on the held-out part and on MNIST's test set. The run folder holds the new model
(its card names the base model, the samples it trained on and the writers), ``metrics.json`` and a
``report.html`` showing before → after with McNemar's test.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from digitlab.compare import McNemar
from digitlab.data import load_dataset, stratified_subset
from digitlab.data.dataset import Dataset
from digitlab.data.handwriting import HandwritingSet
from digitlab.data.handwriting_io import split_samples, held_out_digest, writer_of, written_by
from digitlab.errors import DigitlabError
from digitlab.evaluate import Metrics, evaluate_on_test
from digitlab.fileio import atomic_folder, write_text_atomic
from digitlab.finetune import finetune_model
from digitlab.handwriting_eval import SetScore, learned_from, score_samples
from digitlab.predict import unsure_threshold
from digitlab.runs import made_for_run, now_utc, run_stamp
from digitlab.store import load_model, provenance as run_provenance, save_model
from digitlab.train import FittedModel

__all__ = ["CLASSIC_REPLAY", "FinetuneResult", "finetune_run"]

CLASSIC_REPLAY = 10_000
"""A classic model is refitted from scratch: on at most this many MNIST images beside the set (an SVM on all
60,000 would take hours on a laptop). The CNN continues from its weights and draws from all of them."""


@dataclass
class FinetuneResult:
    """Before and after on the held-out part and on MNIST, the test between them, and the new run."""

    folder: Path
    before: SetScore
    after: SetScore
    mnist_before: Metrics
    mnist_after: Metrics
    mcnemar: McNemar
    seconds: float
    n_train: int


def _check_training_part(name: str, labels: Any, samples: list, n_train: int, split: dict) -> None:
    """One line when the split's training part has too few of some digit; when the whole set has enough, the line
    names --test-size and --seed (a teacher's --test-size 0.5), unless none can help: one writer's split holds out one
    of each digit or more, so that set needs one more of each than training does (with 3 of each, an engineer was sent
    round --test-size and --seed for ever)."""
    from digitlab.finetune import MIN_PER_DIGIT, check_enough

    try:
        check_enough(labels)
    except DigitlabError as exc:
        message = str(exc).replace("serve --collect`", f"serve --collect {name}`")
        counts = np.bincount([s.label for s in samples], minlength=10)
        needed = MIN_PER_DIGIT + (split.get("kind") == "stratified")  # one of each digit or more held out
        if counts.min() >= needed:
            message += (f"; the whole set has enough, but {len(samples) - n_train:,} of its {len(samples):,} "
                        "samples are held out to measure: a smaller --test-size or another --seed may leave enough "
                        "to train on")
        elif counts.min() >= MIN_PER_DIGIT:
            message += (f"; one writer's set holds out one of each digit or more to measure, so it needs {needed} of "
                        "each digit to fine-tune")
        raise DigitlabError(f"{name} (its training part, {n_train} sample{'s' if n_train != 1 else ''}): "
                            f"{message}") from None


def finetune_run(model: Path, name: str, *, out: Path = Path("runs"), seed: int = 42, test_size: float | None = None,
                 hold_out: list[str] | None = None, step: Callable[[str], None] = lambda _: None) -> FinetuneResult:
    """Fine-tune the model at ``model`` to the handwriting set ``name`` and write the new run under ``out``;
    ``hold_out``: the writers to measure on, instead of a share chosen by ``seed`` (:func:`split_samples`).
    Refused or failed, it leaves no folder (:func:`~digitlab.runs.made_for_run`)."""
    with made_for_run(out):
        return _finetune_run(Path(model), name, out, seed, test_size, hold_out, step)


def _finetune_run(model: Path, name: str, out: Path, seed: int, test_size: float | None, hold_out: list[str] | None,
                  step: Callable[[str], None]) -> FinetuneResult:
    from digitlab.report_handwriting import mcnemar_between

    base = load_model(Path(model))
    if tuple(base.image_shape) != (28, 28):
        raise DigitlabError(f"{base.id} takes {base.image_shape[0]}×{base.image_shape[1]} images; fine-tuning "
                            "needs a model of 28×28 digits (`digitlab run --dataset mnist --model cnn`)")
    store = HandwritingSet.open(name)
    samples = store.samples()
    if hold_out and test_size is not None:
        raise DigitlabError("give --hold-out (the writers to measure on) or --test-size (a share of them), not both")
    train, test, split = split_samples(samples, test_size=test_size, seed=seed, hold_out=hold_out)
    seen_ids, seen_writers = learned_from(base.card, samples, name)  # what the base model learned already
    learned = written_by(seen_writers)
    test = [s for s in test if s.id not in seen_ids and not learned(s)]
    for writer in hold_out or []:  # a held-out writer the base model learned from would be measured on nothing
        if not any(written_by([writer])(s) for s in test):
            raise DigitlabError(f"--hold-out {writer!r}: {base.id} already learned from that writer's samples; hold "
                                "out a writer it never saw")
    if not test:
        raise DigitlabError(f"{base.id} already learned from every sample {name} would hold out; add samples by "
                            "a new writer, or fine-tune the model it came from")
    images, labels = store.images(train)
    _check_training_part(name, labels, samples, len(train), split)
    step("loading MNIST to replay")
    mnist = load_dataset("mnist")
    replay = stratified_subset(mnist, _replay_size(base.card, mnist.n_train), seed=base.card.seed or 0)
    step(f"fine-tuning {base.card.model} on {len(train):,} samples of {name}")
    start = time.perf_counter()
    tuned = finetune_model(base.model, images, labels, replay=(replay.train_images, replay.train_labels), seed=seed)
    seconds = time.perf_counter() - start
    step("teaching the not-a-digit detector the set's digits")
    detector = _tuned_detector(base, tuned, (images, labels), replay, mnist, seed)
    step("measuring before and after")
    part = f"the held-out part: {len(test):,} samples" + (" by writers the model never trained on"
                                                           if split["kind"] == "by-writer" else "")
    sure = unsure_threshold(base.card)  # the fine-tuned model keeps the base's calibration, and so its threshold
    before = score_samples(base.model, base.temperature, store, test, model_id=base.id, part=part, unsure_below=sure,
                           detector=base.detector)
    after = score_samples(tuned, base.temperature, store, test, model_id="fine-tuned", part=part, unsure_below=sure,
                          detector=detector)
    mnist_before = evaluate_on_test(base.model, mnist, base.temperature)[1]
    mnist_after = evaluate_on_test(tuned, mnist, base.temperature)[1]
    result = FinetuneResult(Path(), before, after, mnist_before, mnist_after, mcnemar_between(before, after),
                            seconds, len(train))
    fitted = FittedModel(base.card.model, tuned, dict(base.card.params), seed, seconds,
                         calibration=base.card.calibration, detector=detector)
    writers = seen_writers | ({writer_of(s) for s in train} if split["kind"] == "by-writer" else set())
    provenance = {"base": base.id, "base_folder": str(base.path.parent), "set": name, "seconds": round(seconds, 3),
                  "trained_on": sorted(seen_ids | {s.id for s in train}), "replay": replay.n_train,
                  "pictures": _pictures(base.card, samples, seen_ids, train),
                  "train_writers": sorted(writers) or None,
                  "accuracy_before": result.before.metrics.accuracy,  # the base model on the same held-out samples
                  "mnist_accuracy": [mnist_before.accuracy, mnist_after.accuracy]}  # before, after
    split = {**split, "tested": held_out_digest(test)}  # which samples it was measured on: `evaluate` checks them
    data = Dataset(name, images, labels, after.images, np.array([s.label for s in test], dtype=np.int64), 255, split)
    step("writing the run")
    result.folder = _write(result, fitted, data, provenance, store, out)
    return result


def _write(result: FinetuneResult, fitted: FittedModel, data: Dataset, provenance: dict[str, Any],
           store: HandwritingSet, out: Path) -> Path:
    from digitlab.report_handwriting import draw_handwriting_figures, render_handwriting

    after = result.after
    with atomic_folder(Path(out) / f"{run_stamp(now_utc())}-{data.name}-{fitted.name}-finetuned") as staged:
        m = after.metrics
        card_metrics = {"accuracy": m.accuracy, "n_errors": m.n_errors, "n_test": m.n_test,
                        "ci95": [m.ci_low, m.ci_high], "ece": m.ece}
        save_model(fitted, data, staged.path, metrics=card_metrics, finetuned_from=provenance)
        after.model_id = load_model(staged.path).id
        mnist = [{"name": f"before ({result.before.model_id})", **result.mnist_before.to_dict()},
                 {"name": f"after ({after.model_id})", **result.mnist_after.to_dict()}]
        doc = {"run": staged.final.name, "before": result.before.to_dict(), "after": after.to_dict(),
               "mcnemar": result.mcnemar.__dict__, "mnist": [{k: row[k] for k in ("name", "accuracy", "n_errors", "n_test")}
                                                             for row in mnist],
               "finetune": {k: v for k, v in provenance.items() if k not in ("trained_on", "pictures")},
               "provenance": run_provenance(data)}
        write_text_atomic(staged.path / "metrics.json", json.dumps(doc, indent=2) + "\n")
        series = ["before", "after"]
        figures = draw_handwriting_figures([result.before, after], store, staged.path / "figures", series)
        page = render_handwriting([result.before, after], series, figures, mcnemar=result.mcnemar, mnist=mnist,
                                  title=f"{fitted.name} fine-tuned to {data.name}: before → after",
                                  notes=store.problems, info=[_trained_on(provenance, data), _calibration_note(fitted)])
        write_text_atomic(staged.path / "report.html", page)
    return staged.final


def _tuned_detector(base: Any, tuned: Any, samples: tuple[np.ndarray, Any], replay: Dataset, mnist: Dataset,
                    seed: int) -> Any:
    """The base's not-a-digit detector, taught the set's training samples too (:mod:`digitlab.notdigit_tune`)."""
    from digitlab.notdigit_tune import held_digits, tune_detector

    if base.detector is None:
        return None
    images, labels = samples
    return tune_detector(base.detector, images, np.asarray(labels), replay.train_images,
                         held_digits(mnist.train_images, seed), base_model=base.model, model=tuned,
                         temperature=base.temperature, pixel_max=replay.pixel_max, seed=seed)


def _replay_size(card: Any, mnist_train: int) -> int:
    """How many MNIST images to replay: as many as the base model learned from (a fine-tuned base's card counts its
    set's samples: a logistic regression fine-tuned twice was refitted on 48 MNIST images, 89.6% → 70.6% on MNIST),
    at most :data:`CLASSIC_REPLAY` for a classic model."""
    learned = (card.finetuned_from or {}).get("replay") or card.n_train or mnist_train
    return min(learned, mnist_train if card.model == "cnn" else CLASSIC_REPLAY)


def _pictures(card: Any, samples: list, seen_ids: set[str], train: list) -> list[str]:
    """The pictures a fine-tuned model learned from, in any set (the first 16 hex digits of each SHA-256): the base
    model's, the set's samples it had learned from, and the training part's (:func:`~digitlab.handwriting_eval.
    learned_from` finds them in another set)."""
    earlier = set((card.finetuned_from or {}).get("pictures") or [])
    return sorted(earlier | {s.sha256[:16] for s in samples if s.id in seen_ids} | {s.sha256[:16] for s in train})


def _trained_on(provenance: dict[str, Any], data: Dataset) -> str:
    writers = provenance.get("train_writers")
    who = f" by {', '.join(writers)}" if writers else ""
    return (f"Fine-tuned on {data.n_train:,} samples{who}, with {provenance['replay']:,} MNIST images replayed beside "
            f"them; measured on the {data.n_test:,} samples below, none of which it trained on. Writers it did not "
            "train on may gain little: fine-tuning adapts the model to the handwriting it sees.")


def _calibration_note(fitted: FittedModel) -> str:
    if fitted.calibration is None:
        return "The base model was saved uncalibrated; so is this one."
    return (f"Percentages use the base model's calibration (temperature {fitted.calibration.temperature:.2f}), "
            "fitted on MNIST; with few samples of your own it is not refitted.")
