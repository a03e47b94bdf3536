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
from typing import Any

import numpy as np

from digitlab.data.dataset import Dataset
from digitlab.data.handwriting import HandwritingSet, Sample
from digitlab.data.handwriting_io import split_samples, writer_of
from digitlab.errors import DigitlabError
from digitlab.evaluate import Metrics, Predictions, evaluate_on_test, wilson_interval

__all__ = ["SetScore", "WriterRow", "per_writer", "samples_to_score", "score_samples"]


@dataclass(frozen=True)
class WriterRow:
    """One writer's samples scored: count, errors, accuracy and its Wilson 95% interval."""

    writer: str
    n: int
    errors: int
    accuracy: float
    ci_low: float
    ci_high: float


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-sample arrays)."""
        return {"model": self.model_id, "set": self.set_name, "part": self.part, **self.metrics.to_dict(),
                "per_writer": [row.__dict__ for row in self.writers]}


def per_writer(samples: list[Sample], predicted: np.ndarray) -> list[WriterRow]:
    """Accuracy of ``predicted`` per writer, writers sorted by name."""
    rows = []
    writers = np.array([writer_of(s) for s in samples])
    right = np.array([s.label for s in samples]) == np.asarray(predicted)
    for writer in sorted(set(writers.tolist())):
        mine = right[writers == writer]
        low, high = wilson_interval(int(mine.sum()), len(mine))
        rows.append(WriterRow(writer, len(mine), int((~mine).sum()), float(mine.mean()), low, high))
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
    tuned = card.finetuned_from or {}
    if tuned.get("set") == store.name:  # fine-tuned here: never a sample, nor a writer, it trained on
        seen, writers = set(tuned.get("trained_on", [])), set(tuned.get("train_writers") or [])
        test = [s for s in samples if s.id not in seen and writer_of(s) not in writers]
        who = "by writers the model never trained on" if writers else "the model never trained on"
        return _some(test, store), f"the held-out part: {len(test):,} samples {who}"
    if card.dataset != store.name:
        return samples, f"all {len(samples):,} samples"
    split = card.split or {}  # trained from scratch on this set: its own test part
    _, test, _ = split_samples(samples, test_size=split.get("test_size"), seed=split.get("seed", 42))
    return test, f"the test part of the run's split: {len(test):,} samples"


def _some(samples: list[Sample], store: HandwritingSet) -> list[Sample]:
    if not samples:
        raise DigitlabError(f"every sample in {store.name!r} was used to fine-tune this model; add samples by "
                            "a new writer to measure it, or evaluate the model it was fine-tuned from")
    return samples


def score_samples(model: Any, temperature: float, store: HandwritingSet, samples: list[Sample],
                  *, model_id: str, part: str) -> SetScore:
    """Predict ``samples`` with ``model`` (probabilities divided by ``temperature``) and score them."""
    images, labels = store.images(samples)
    as_test = Dataset(store.name, images[:0], labels[:0], images, labels, 255)
    predictions, metrics = evaluate_on_test(model, as_test, temperature)
    return SetScore(model_id, store.name, part, samples, images, predictions, metrics,
                    per_writer(samples, predictions.labels))
