"""Reload a saved model and check that it reproduces its run's metrics exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitlab.card import ModelCard
from digitlab.data import DATASETS, load_dataset
from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError
from digitlab.evaluate import Metrics, evaluate_on_test
from digitlab.store import load_model

CALIBRATION = ("ece", "nll", "brier", "ece_uncalibrated", "nll_uncalibrated", "brier_uncalibrated")
COMPARED = ("accuracy", "n_errors", "n_test", "ci95", "confusion", "per_class", "macro_precision", "macro_recall",
            "macro_f1")
CARD = ("accuracy", "n_errors", "n_test", "ci95", "ece")  # what a model card holds of its test figures
AGREED = ("seed", "split", "params", "calibration")  # written to both model.json and metrics.json by the run


@dataclass
class Reevaluation:
    """A saved model's metrics recomputed, and how they compare with its run's ``metrics.json``."""

    model_id: str
    dataset: str
    metrics: Metrics
    recorded: dict[str, Any] | None
    differences: list[str] = field(default_factory=list)
    unreadable: bool = False  # metrics.json is there but damaged (not JSON, not an object): every value "differs"
    source: str = "metrics.json"  # or "model.json": a compare's or sweep's model has only its card's figures

    @property
    def matches(self) -> bool:
        """True when there was a ``metrics.json`` and every compared value is identical."""
        return self.recorded is not None and not self.differences


def run_dataset(card: ModelCard, where: str = "model card") -> Dataset:
    """The dataset a card names, split as its run split it: the test part is the run's own test set.

    Raises :class:`~digitlab.errors.DigitlabError` (naming ``where``) when the card does not say how.
    """
    split = card.split or {}
    if card.dataset not in DATASETS:
        from digitlab.data.handwriting import list_sets

        if card.dataset in list_sets():  # a handwriting set: its split as recorded, whatever was added since
            from digitlab.data.handwriting_io import load_handwriting

            return load_handwriting(card.dataset, record=split)
        raise DigitlabError(f"{where}: the model was trained on {card.dataset!r}, which this digitlab cannot "
                            f"load; it knows {', '.join(DATASETS)} and the handwriting sets in its data folder")
    if split.get("kind") == "random":
        test_size, seed = split.get("test_size"), split.get("seed")
        if not isinstance(test_size, float) or type(seed) is not int:
            raise DigitlabError(f"{where}: the model card's split lacks a test_size and seed; "
                                "cannot rebuild the test images")
        return load_dataset(card.dataset, test_size=test_size, seed=seed)
    return load_dataset(card.dataset)


def reevaluate(path: Path, dataset: str | None = None) -> Reevaluation:
    """Load the model at ``path``, rebuild its test split, and recompute the metrics.

    With ``dataset`` other than the model's own, the comparison with ``metrics.json`` is skipped, but for a fine-tuned
    run on MNIST, whose accuracy and errors on MNIST's test set it recorded after fine-tuning (it had said "nothing
    to compare with").
    """
    loaded = load_model(Path(path))
    card = loaded.card
    name = dataset or card.dataset
    if name not in DATASETS:
        raise DigitlabError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if tuple(DATASETS[name].image_shape) != loaded.image_shape:
        raise DigitlabError(
            f"the model takes {loaded.image_shape[0]}×{loaded.image_shape[1]} images but {name} has "
            f"{DATASETS[name].image_shape[0]}×{DATASETS[name].image_shape[1]}; choose a dataset of the same size")
    data = run_dataset(card, str(loaded.path.parent)) if name == card.dataset else load_dataset(name)
    metrics = evaluate_on_test(loaded.model, data, loaded.temperature)[1]
    recorded, unreadable, compared = None, False, COMPARED
    metrics_file = loaded.path.parent / "metrics.json"
    if name == card.dataset and metrics_file.is_file():
        try:
            recorded = json.loads(metrics_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested far too deeply
            recorded = {}
        if not isinstance(recorded, dict) or not recorded:
            recorded, unreadable = {}, True
    elif card.finetuned_from is not None and name == "mnist" and metrics_file.is_file():
        (recorded, unreadable), compared = _mnist_after(metrics_file), _TUNED
    elif name == card.dataset and any(key in card.metrics for key in CARD):  # a compare's or sweep's model (it had
        recorded, compared = card.metrics, tuple(key for key in CARD if key in card.metrics)  # said "nothing to compare")
    differences = []
    if recorded is not None:
        now = _comparable(metrics)
        same = _close if recorded is card.metrics else (lambda a, b: a == b)  # a card's ECE: to 1e-9, as below
        differences = [key for key in compared if not same(recorded.get(key), now[key])]
        if compared is COMPARED and not unreadable:
            differences += _against_the_card(card, recorded, now) + _changed_data(recorded, data)
    source = "model.json" if recorded is card.metrics else "metrics.json"
    return Reevaluation(loaded.id, name, metrics, recorded, differences, unreadable, source)


def _against_the_card(card: ModelCard, recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The calibration measures (a calibrated run recorded them all: one deleted is a difference, not a pass), the
    card's own figures against today's, and what the run wrote to both files against each other (an audit edited
    metrics.json's temperature, n_test and seed, and the card's accuracy, and read "Matches … exactly")."""
    expected = [key for key in CALIBRATION if card.calibration is not None and now[key] is not None
                and (key not in _LATER or _LATER[key] in recorded)]  # not what the run's digitlab did not yet write
    differences = [key for key in CALIBRATION if (key in recorded or key in expected)
                   and not _close(recorded.get(key), now[key])]
    differences += [f"model.json's {key}" for key, value in card.metrics.items()
                    if key in now and not _close(value, now[key])]
    ours = {"seed": card.seed, "split": card.split, "params": card.params,
            "calibration": None if card.calibration is None else json.loads(json.dumps(card.calibration.to_dict()))}
    theirs = {key: recorded[key] for key in AGREED if key in recorded}
    detector = recorded.get("not_a_digit")
    if isinstance(detector, dict) and "threshold" in detector:  # the card's threshold is the one every answer uses
        theirs["not_a_digit threshold"] = detector["threshold"]
        ours["not_a_digit threshold"] = None if card.not_a_digit is None else card.not_a_digit.threshold
    return differences + [f"{key} (model.json says otherwise)" for key, value in theirs.items() if value != ours[key]]


def _changed_data(recorded: dict[str, Any], data: Dataset) -> list[str]:
    """The test images or labels, when the run recorded their SHA-256 (:func:`~digitlab.store.provenance`) and
    today's differ: a difference in the figures then comes from the data, not the model."""
    provenance = recorded.get("provenance")
    digests = provenance.get("data_sha256") if isinstance(provenance, dict) else None
    then = digests.get("test") if isinstance(digests, dict) else None
    changed = then is not None and then != data.sha256("test")
    return ["test data (its SHA-256 differs from the run's)"] if changed else []


_LATER = {"brier_uncalibrated": "provenance"}
"""A figure a calibrated run may lack because its digitlab did not write it yet, with a key every metrics.json that
holds it holds too (an upgrade audit: every run made before 2026-12-02 "differed" in its brier_uncalibrated)."""

_TUNED = ("accuracy", "n_errors", "n_test")  # what a fine-tuned run records of itself on MNIST's test set


def _mnist_after(metrics_file: Path) -> tuple[dict[str, Any], bool]:
    """A fine-tuned run's own figures on MNIST (its ``metrics.json``'s ``mnist`` list, after fine-tuning), and whether
    they cannot be read."""
    try:
        rows = json.loads(metrics_file.read_text(encoding="utf-8"))["mnist"]
        after = rows[-1] if isinstance(rows, list) and rows and isinstance(rows[-1], dict) else {}
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError):
        after = {}
    return after, not after


def _comparable(metrics: Metrics) -> dict[str, Any]:
    doc = metrics.to_dict()
    doc["ci95"] = [metrics.ci_low, metrics.ci_high]
    return json.loads(json.dumps(doc))


def _close(recorded: Any, now: Any) -> bool:
    """Calibration measures sum many floats: equal to 1e-9, not to the last bit, across machines."""
    import math

    if isinstance(recorded, (int, float)) and isinstance(now, (int, float)):
        return math.isclose(recorded, now, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(recorded, list) and isinstance(now, list) and len(recorded) == len(now):
        return all(_close(a, b) for a, b in zip(recorded, now))  # a card's ci95
    return recorded == now
