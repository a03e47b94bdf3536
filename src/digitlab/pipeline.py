"""The whole lesson in one call: load → preprocess → train → evaluate → figures → report.

Examples
--------
>>> import tempfile
>>> result = run_pipeline("digits", "logreg", out=tempfile.mkdtemp())
>>> f"{result.metrics.accuracy:.2%}", result.metrics.n_errors
('96.67%', 12)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from digitlab.data import load_dataset, split_validation
from digitlab.errors import DigitlabError, require_name
from digitlab.preprocess import to_features
from digitlab.evaluate import Metrics, evaluate_not_a_digit, evaluate_on_test
from digitlab.notdigit import fit_detector
from digitlab.report import RunRecord, write_run
from digitlab.runs import made_for_run, now_utc
from digitlab.saveable import check_saveable
from digitlab.train import calibrate, calibration_split, check_folds, held_out_predictions, train


@dataclass
class RunResult:
    """A finished run: its folder, test metrics, everything it wrote, and the validation accuracy if asked."""

    folder: Path
    metrics: Metrics
    record: RunRecord
    validation_accuracy: float | None = None

    @property
    def report(self) -> Path:
        """The run's report.html."""
        return self.folder / "report.html"


def run_pipeline(
    dataset: str = "digits",
    model: str = "logreg",
    *,
    seed: int = 42,
    test_size: float | None = None,
    limit: int | None = None,
    validation: float | None = None,
    params: dict[str, Any] | None = None,
    out: Path | str = "runs",
    step: Callable[[str], None] = lambda _: None,
) -> RunResult | None:
    """Run the five phases and write a run folder under ``out``; ``step`` hears each phase's name.

    Under ``torchrun`` every process loads the data and they train the CNN together (see
    :mod:`digitlab.models.ddp`); then rank 0 alone calibrates, evaluates and writes the run,
    and the other ranks return None at once.
    """
    from digitlab.models import ddp, make_model

    require_name(dataset, "run_pipeline")
    estimator = make_model(model, dataset=dataset, seed=seed, params=params)  # fail fast on a bad name or parameter
    check_saveable(estimator)  # and on one its model card could not hold
    world = ddp.world()  # None without torchrun
    if world is not None:
        _ready_distributed(model, estimator, world.size)
        step = step if world.rank == 0 else (lambda _: None)
    writes = world is None or world.rank == 0  # rank 0 alone writes the run
    with made_for_run(Path(out), writes):  # after the refusals: a refused command makes no folder, a failed one none
        started = now_utc()
        step(f"loading {dataset}")
        data = load_dataset(dataset, test_size=test_size, seed=seed, limit=limit)
        held_out = None
        fraction = validation if validation is not None else calibration_split(data)
        if fraction is not None:  # asked for, or the training part is large: calibrate on a held-out share
            data, held_out = split_validation(data, fraction, seed=seed)
        check_folds(model, estimator, data, seed, held_out)  # calibrated on 3 folds: their bounds before training
        with ddp.session(world):  # without torchrun: nothing; with it, "training" once every process has joined
            step(f"training {model} on {data.n_train:,} images")
            fitted = train(model, data, seed=seed, params=params)
        if world is not None and world.rank != 0:
            return None  # rank 0 holds the same weights and does the rest, with no other rank to wait for
        validation_accuracy = None
        if validation is not None:
            step("validating")
            val_images, val_labels = held_out
            validation_accuracy = float(fitted.model.score(to_features(val_images, data.pixel_max), val_labels))
        step("calibrating")
        held = held_out_predictions(fitted, data, held_out)
        fitted.calibration = calibrate(fitted, data, predictions=held)
        step("teaching the not-a-digit detector")
        fitted.detector = fit_detector(data, fitted.model, held, temperature=fitted.temperature, seed=seed)
        step("evaluating")
        predictions, metrics = evaluate_on_test(fitted.model, data, fitted.temperature)
        not_a_digit = None if fitted.detector is None else evaluate_not_a_digit(
            fitted.detector, fitted.model, data, predictions, fitted.temperature)
        record = RunRecord(dataset=data, fitted=fitted, predictions=predictions, metrics=metrics, started=started,
                           validation_accuracy=validation_accuracy, not_a_digit=not_a_digit)
        folder = write_run(record, Path(out), step)
        return RunResult(folder=folder, metrics=metrics, record=record, validation_accuracy=validation_accuracy)


def _ready_distributed(name: str, estimator: Any, size: int) -> None:
    """Refuse, in one line, a model that cannot train under ``torchrun`` (all but the CNN), or a batch too small to
    share among ``size`` processes; then tie this process's life to its launcher's (no orphans)."""
    from digitlab.models import ddp
    from digitlab.models.cnn import CNNClassifier

    if not isinstance(estimator, CNNClassifier):
        raise DigitlabError(f"only the cnn model trains under torchrun, not {name!r}; run it without torchrun")
    if why := ddp.too_small(estimator.batch_size, size):
        raise DigitlabError(why)
    ddp.die_with_launcher()
