"""How well a model reads a handwriting set: accuracy with its interval, per writer, and its mistakes.

``digitlab evaluate --model RUN --dataset NAME`` and ``digitlab finetune`` score models with
:func:`score_samples`; :mod:`digitlab.report_handwriting` turns the scores into a page.

Examples
--------
>>> import numpy as np
>>> from digitlab.data.handwriting import Sample
>>> s = [Sample(f"20261129T000000Z-0000000{i}", i % 2, w, "drawn", "", "", "") for i, w in enumerate("aabb")]
>>> table = per_writer(s, np.array([0, 0, 0, 1]))
>>> [(row.writer, row.n, row.errors) for row in table]
[('a', 2, 1), ('b', 2, 0)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.data.dataset import Dataset
from digitlab.data.handwriting import HandwritingSet, Sample
from digitlab.data.handwriting_io import split_as_recorded, writer_of, written_by
from digitlab.calibrate import answered, sure as sure_of
from digitlab.errors import DigitlabError
from digitlab.evaluate import Metrics, Predictions, evaluate_on_test, wilson_interval

__all__ = ["SetScore", "WriterRow", "learned_from", "per_writer", "runs_made_from", "samples_to_score", "score_samples",
           "set_as_test_part"]


@dataclass(frozen=True)
class WriterRow:
    """One writer's samples scored: count, errors, accuracy and its Wilson 95% interval; ``page``, where the model
    has an "unsure" bar, how many of them the page would answer "not a digit" and "not sure" (a teacher: a pupil at
    "90.0% (4 wrong)" had a quarter of his pictures turned away, which no per-writer figure showed)."""

    writer: str
    n: int
    errors: int
    accuracy: float
    ci_low: float
    ci_high: float
    page: dict[str, int] | None = None


@dataclass
class SetScore:
    """A model scored on samples of a handwriting set."""

    model_id: str
    set_name: str
    part: str  # which samples, in words
    samples: list[Sample]
    images: np.ndarray  # their prepared 28×28 forms
    predictions: Predictions
    metrics: Metrics
    writers: list[WriterRow]
    answered: dict[str, float] | None = None  # the "unsure" threshold applied (:func:`~digitlab.calibrate.answered`)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-sample arrays)."""
        return {"model": self.model_id, "set": self.set_name, "part": self.part, **self.metrics.to_dict(),
                "answered": self.answered, "per_writer": [row.__dict__ for row in self.writers]}


def per_writer(samples: list[Sample], predicted: np.ndarray, shown: np.ndarray | None = None) -> list[WriterRow]:
    """Accuracy of ``predicted`` per writer, writers sorted by name regardless of case ("ada" before "Eve"); with
    ``shown`` (each sample's answer on the page: "digit", "not_a_digit" or "unsure"), the last two counted."""
    rows = []
    writers = np.array([writer_of(s) for s in samples])
    right = np.array([s.label for s in samples]) == np.asarray(predicted)
    for writer in sorted(set(writers.tolist()), key=lambda name: (name.casefold(), name)):
        mine = right[writers == writer]
        low, high = wilson_interval(int(mine.sum()), len(mine))
        page = None if shown is None else {kind: int((shown[writers == writer] == kind).sum())
                                           for kind in ("not_a_digit", "unsure")}
        rows.append(WriterRow(writer, len(mine), int((~mine).sum()), float(mine.mean()), low, high, page))
    return rows


def samples_to_score(store: HandwritingSet, card: Any) -> tuple[list[Sample], str]:
    """The samples a model should be scored on, and which they are in words.

    A model that learned from this set (``digitlab finetune``) is scored on the held-out part of the
    split it recorded, never on samples it trained on; any other model on every sample.
    """
    samples = store.samples()
    if not samples:
        raise DigitlabError(f"handwriting set {store.name!r} has no samples yet; collect some with "
                            f"`digitlab serve --collect {store.name}`")
    ids, writers = learned_from(card, samples, store.name)
    if not ids and not writers:
        return samples, f"all {len(samples):,} samples"
    learned = written_by(writers)
    test = [s for s in samples if s.id not in ids and not learned(s)]
    who = "by writers the model never trained on" if writers else "the model never trained on"
    return _some(test, store), f"the held-out part: {len(test):,} samples {who}"


def set_as_test_part(store: HandwritingSet, card: Any, image_shape: tuple[int, ...], pixel_max: float
                     ) -> tuple[Dataset, str]:
    """The samples of handwriting set ``store`` a model with ``card`` should be scored on (:func:`samples_to_score`)
    as a dataset's test part at the model's pixel scale, and which they are in words (``digitlab explain``)."""
    name = store.name
    if tuple(image_shape) != (28, 28):
        raise DigitlabError(f"--dataset {name}: a handwriting set's samples are 28×28 and this model takes "
                            f"{image_shape[0]}×{image_shape[1]} images; choose a model trained on MNIST")
    samples, part = samples_to_score(store, card)
    images, labels = store.images(samples)
    if pixel_max != 255:  # a model of another scale (the 8×8 digits' 0-16, padded): rounded as its own pixels were
        images = np.rint(images * (pixel_max / 255)).astype(np.uint8)
    return Dataset(name, images[:0], labels[:0], images, np.asarray(labels), pixel_max), part


def learned_from(card: Any, samples: list[Sample], name: str) -> tuple[set[str], set[str]]:
    """The ids of the samples and the writers of set ``name`` a model learned from (both empty: none).

    A fine-tuned model's card lists them (``finetuned_from``), and the pictures it learned from, whatever their set
    (``pictures``: the first 16 hex digits of each one's SHA-256): copied into another set, or imported again under
    another name, they were scored as never seen (240 of an engineer's 300, 98.3% "on new samples"). A model trained
    from scratch on the set has them in its recorded split (a split recorded before names were kept is made again).
    """
    tuned = card.finetuned_from or {}
    pictures = set(tuned.get("pictures") or []) or _pictures_of(tuned.get("set"), tuned.get("trained_on"))
    copies = {s.id for s in samples if s.sha256[:16] in pictures}
    if tuned.get("set") == name:
        return set(tuned.get("trained_on") or []) | copies, set(tuned.get("train_writers") or [])
    if card.dataset != name:
        return copies, set()
    record = card.split or {}
    train, _ = split_as_recorded(samples, record)
    return {s.id for s in train} | copies, set(record.get("train_writers") or [])


def _pictures_of(name: Any, ids: Any) -> set[str]:
    """For a card from before fine-tuned runs recorded their pictures (an upgrade audit's old run scored 98.7% on a
    copy of its set, 90 of the 150 pictures its own): the first 16 hex digits of the SHA-256s of the samples ``ids``
    of the set ``name``, while it holds them."""
    try:
        wanted = set(ids) if isinstance(name, str) and isinstance(ids, list) else set()
        return {s.sha256[:16] for s in HandwritingSet.open(name).records() if s.id in wanted} if wanted else set()
    except (DigitlabError, TypeError, OSError):  # the set is gone, or its name or ids are not a set's
        return set()


def _some(samples: list[Sample], store: HandwritingSet) -> list[Sample]:
    if not samples:
        raise DigitlabError(f"the model learned from every sample in {store.name!r}; add samples by a new "
                            "writer to measure it, or evaluate the model it was fine-tuned from")
    return samples


def score_samples(model: Any, temperature: float, store: HandwritingSet, samples: list[Sample],
                  *, model_id: str, part: str, unsure_below: float | None = None, detector: Any = None) -> SetScore:
    """Predict ``samples`` with ``model`` (probabilities divided by ``temperature``) and score them; with
    ``unsure_below`` (the card's threshold), also how many it would answer rather than call "unsure", and
    with the run's not-a-digit ``detector`` how many of these digits it would turn away (``flagged``)."""
    images, labels = store.images(samples)
    as_test = Dataset(store.name, images[:0], labels[:0], images, labels, 255)
    predictions, metrics = evaluate_on_test(model, as_test, temperature)
    sure, kinds = None, None
    if unsure_below is not None and predictions.probabilities is not None:
        from digitlab.predict import percent_needed

        sure = answered(predictions.confidence, predictions.labels == labels, unsure_below)
        sure["sure_from"] = percent_needed(unsure_below)  # as the page and predict write it
        kinds = np.where(sure_of(predictions.confidence, unsure_below), "digit", "unsure")
        if detector is not None:
            from digitlab.preprocess import to_features

            flags = np.asarray(detector.flags(to_features(images, 255), predictions.probabilities), dtype=bool)
            sure["flagged"] = int(flags.sum())
            # what the page showed: the detector's "not a digit" first, then "not sure" under the bar (a teacher)
            shown = ~flags & sure_of(predictions.confidence, unsure_below)
            sure["page"] = {"digit": int(shown.sum()), "right": int((shown & (predictions.labels == labels)).sum()),
                            "not_a_digit": int(flags.sum()), "unsure": int((~flags & ~shown).sum())}
            kinds = np.where(flags, "not_a_digit", kinds)
    return SetScore(model_id, store.name, part, samples, images, predictions, metrics,
                    per_writer(samples, predictions.labels, kinds), sure)


def runs_made_from(name: str, samples: list, ids: set[str], runs: Path) -> list[str]:
    """The run folders in ``runs`` (a compare's models and a sweep's kept ones too, a level or two down) whose model
    learned from any of the samples ``ids`` of set ``name`` (whose samples, before they went, were ``samples``),
    fine-tuned on them or trained on the set (:func:`~digitlab.handwriting_eval.learned_from`), or was measured on
    them (its report shows them): a student who asks for their drawings back is in those too (a privacy audit found
    a held-out writer's every picture in a run's explain page, and a compare's k-NN holding them, not named)."""
    from digitlab.card import CARD_NAME, ModelCard

    found, first = [], min((s.created for s in samples if s.id in ids), default="")  # theirs: none made before it
    cards = sorted(path for depth in ("*", "*/*", "*/*/*") for path in runs.glob(f"{depth}/{CARD_NAME}"))
    for card_file in cards if runs.is_dir() else []:
        page, made = card_file.parent / f"explain-{name}", set()  # an explain page of the set shows its pictures
        try:  # (looked at whatever the card: a reviewer's damaged card hid one)
            made |= ids if page.is_dir() and _iso(page.stat().st_mtime) >= first else set()
            card = ModelCard.from_file(card_file)
            measured = split_as_recorded(samples, card.split or {})[1] if card.dataset == name else []
            made |= learned_from(card, samples, name)[0] | {s.id for s in measured if s.created <= card.created}
        except (DigitlabError, TypeError, ValueError, AttributeError, OSError):  # a damaged card: not our business
            pass
        if ids & made:  # the held-out part rebuilt today takes in writers added since: those the run never saw
            found.append(str(card_file.parent))  # are left out (an upgrade audit was told to delete such a run)
    return found


def _iso(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")
