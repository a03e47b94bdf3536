"""Save and load models without pickle, each beside a JSON model card.

A saved model is two files in one folder:

- ``model.safetensors``: plain tensors, nothing that can run code. Used for the PyTorch CNN and
  for every scikit-learn model whose learned state is only arrays and plain values (logistic
  regression): the card lists each attribute, and loading rebuilds the registry's estimator
  and sets them. This also spares the seconds skops spends importing all of scikit-learn.
- ``model.skops`` for the other scikit-learn models (SVM, forest, k-NN, MLP), loaded with skops'
  trusted types only (:mod:`digitlab.skops_file`);
- ``model.json``, the model card: what the model is, how its input was prepared, the data it
  saw, its test metrics, library versions, and the SHA-256 of the weights file.

Beside them, ``notdigit.safetensors`` holds the run's digit-or-not detector
(:mod:`digitlab.notdigit`), listed with its own checksum and threshold in the card's ``not_a_digit``.

Loading refuses a file whose checksum does not match its card, a pickle in disguise, and any
type outside the trusted set, with one clear line, before anything in the file is run.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from digitlab import skops_file
from digitlab.calibrate import Calibration
from digitlab.card import CARD_NAME, FORMATS, ModelCard
from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_path, sha256_file, write_text_atomic
from digitlab.notdigit import DETECTOR_FILE, NotDigitCheck, NotDigitDetector
from digitlab.saveable import as_it_is_now, check_saveable
from digitlab.train import NOT_PLAIN, FittedModel, plain_value

__all__ = ["LoadedModel", "ModelCard", "load_model", "read_card", "save_model"]

@dataclass
class LoadedModel:
    """A model read back from disk, with its card."""

    model: Any
    card: ModelCard
    path: Path  # the weights file
    detector: NotDigitDetector | None = None  # None: saved before digitlab had one, or an ONNX file away from its run

    def __repr__(self) -> str:
        """``LoadedModel(id=..., path=...)``: which model, from where (the fields' own reprs list every weight)."""
        return f"LoadedModel(id={self.id!r}, path={str(self.path)!r})"

    @property
    def id(self) -> str:
        """The card's id, ``<model>-<dataset>-<checksum prefix>``."""
        return self.card.id

    @property
    def image_shape(self) -> tuple[int, int]:
        """Height and width of the images the model takes."""
        return self.card.image_shape

    @property
    def calibration(self) -> Calibration | None:
        """The card's calibration (temperature, "unsure" threshold), or None for a model saved uncalibrated."""
        return self.card.calibration

    @property
    def temperature(self) -> float:
        """The card's calibration temperature, or 1 for a model saved uncalibrated."""
        return 1.0 if self.card.calibration is None else self.card.calibration.temperature

    @property
    def pixel_max(self) -> int:
        """Brightest pixel value of the model's input."""
        return self.card.pixel_max

    @property
    def sure_right(self) -> float | None:
        """How often this model's answers from its "unsure" threshold on were right on held-out images, or None
        when no such figure is this model's: saved uncalibrated, fine-tuned (it keeps its base's threshold), or sure
        of fewer than :data:`MIN_SURE` held-out images (an SVM sure of 3 of 5,000 was "right 100% of the time")."""
        calibration = self.card.calibration
        if calibration is None or self.card.finetuned_from is not None:
            return None
        return calibration.kept_accuracy if calibration.coverage * calibration.n_held_out >= MIN_SURE - 0.5 else None


MIN_SURE = 100
"""Held-out answers a "right X% of the time from its threshold on" figure needs (all 100 right: at least 96% by
Wilson's 95% interval); fewer give no figure."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("digitlab", "numpy", "scikit-learn", "skops", "torch", "safetensors"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def provenance(data: Dataset) -> dict[str, Any]:
    """What a reader citing a run needs besides its versions (an audit found none of it recorded): the command that
    made it (:data:`digitlab.runs.COMMAND`; None from the library), the data's SHA-256s
    (:meth:`~digitlab.data.dataset.Dataset.sha256`, after any validation share was held out), the cores it could use
    and whether ``OMP_NUM_THREADS`` fixed the thread count, the platform."""
    import shlex

    from digitlab.cores import usable_cores
    from digitlab.runs import COMMAND

    return {"command": shlex.join(COMMAND) if COMMAND else None,
            "data_sha256": {part: data.sha256(part) for part in ("train", "test")},
            "usable_cores": usable_cores(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS") or None,
            "platform": platform.platform(), "machine": platform.machine()}


def split_array_state(model: Any, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Split a fitted estimator's learned state into arrays and JSON values, or None if it holds objects.

    Returns ``(arrays, state)``: ``arrays`` maps attribute name → numeric ndarray; ``state`` maps every
    learned attribute to ``{"kind": "array"}`` or ``{"kind": "json"|"tuple"|"float64", "value": ...}``.
    """
    import numpy as np

    if any(plain_value(v) is NOT_PLAIN for v in model.get_params(deep=False).values()):
        return None  # a parameter the card cannot give back as it was (a dict, an object, inf): skops keeps it
    arrays: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for name, value in vars(model).items():
        if name in params:
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arrays[name] = np.ascontiguousarray(value)
            state[name] = {"kind": "array"}
        elif isinstance(value, np.floating):
            state[name] = {"kind": "float64", "value": float(value)}
        elif value is None or isinstance(value, (bool, int, float, str)):
            state[name] = {"kind": "json", "value": value}
        elif isinstance(value, tuple) and all(isinstance(v, (int, float, str)) for v in value):
            state[name] = {"kind": "tuple", "value": list(value)}
        else:
            return None
    return arrays, state


def _restore_array_state(estimator: Any, params: dict[str, Any], state: dict[str, Any],
                         tensors: dict[str, Any], weights: Path) -> Any:
    """Rebuild a fitted estimator from its card's params and state and the file's arrays."""
    import numpy as np

    known = estimator.get_params()  # a parameter scikit-learn was removing, left at its default, is "deprecated":
    params = {k: v for k, v in params.items() if k in known or v != "deprecated"}  # 1.6's multi_class, gone in 1.8
    try:
        estimator.set_params(**params)
    except (ValueError, TypeError) as exc:
        raise DigitlabError(f"{weights}: the card's parameters do not fit this scikit-learn's "
                            f"{type(estimator).__name__} ({exc}); a model saved by another version of scikit-learn "
                            "may need that version") from None
    if set(tensors) != {n for n, s in state.items() if s.get("kind") == "array"}:
        raise DigitlabError(f"{weights}: the tensors in the file do not match the state listed in its card")
    for name, entry in state.items():
        # learned attributes only: a name scikit-learn gives fitted state, never one of the class's own
        learned = name.endswith("_") or (name.startswith("_") and not name.startswith("__"))
        if not (name.isidentifier() and learned and not hasattr(type(estimator), name) and isinstance(entry, dict)):
            raise DigitlabError(f"{weights}: the card lists an invalid attribute {name!r}")
        kind, value = entry.get("kind"), entry.get("value")
        if kind == "array":
            value = tensors[name]
        elif kind == "float64" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = np.float64(value)
        elif kind == "tuple" and isinstance(value, list) and all(isinstance(v, (int, float, str)) for v in value):
            value = tuple(value)
        elif kind == "json" and "value" in entry and (value is None or isinstance(value, (bool, int, float, str))):
            pass
        else:
            raise DigitlabError(f"{weights}: the card lists attribute {name!r} with a bad kind or value")
        setattr(estimator, name, value)
    return estimator


def save_model(
    fitted: FittedModel, dataset: Dataset, folder: Path, metrics: dict[str, Any] | None = None,
    finetuned_from: dict[str, Any] | None = None,
) -> Path:
    """Write ``fitted`` into ``folder`` as weights + ``model.json``; return the card's path.

    ``finetuned_from`` is the card's record of the base model for a fine-tuned one (``digitlab finetune``).

    Examples
    --------
    >>> import tempfile
    >>> from digitlab.data import load_dataset
    >>> from digitlab.store import load_model, save_model
    >>> from digitlab.train import train
    >>> ds = load_dataset("digits")
    >>> card = save_model(train("logreg", ds), ds, tempfile.mkdtemp())
    >>> load_model(card).card.model
    'logreg'
    """
    folder = Path(folder)
    fitted = as_it_is_now(fitted, dataset)
    check_saveable(fitted.model)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, no permission, a full disk
        raise DigitlabError(f"{folder}: cannot make the model's folder ({exc.strerror or exc})") from None
    fmt, weights, state = _write_weights(fitted, folder)
    digest = sha256_file(weights)
    not_a_digit = None if fitted.detector is None else _write_detector(fitted.detector, folder)
    model = fitted.model
    card = ModelCard(
        id=f"{fitted.name}-{dataset.name}-{digest[:12]}",
        model=fitted.name,
        estimator=f"{type(model).__module__}.{type(model).__qualname__}",
        format=fmt,
        file=weights.name,
        sha256=digest,
        size_bytes=weights.stat().st_size,
        params=fitted.params,
        state=state,
        seed=fitted.seed,
        dataset=dataset.name,
        split=dataset.split,
        n_train=dataset.n_train,
        image_shape=dataset.image_shape,
        pixel_max=dataset.pixel_max,
        classes=tuple(int(c) for c in getattr(model, "classes_", range(10))),
        metrics=metrics or {},
        calibration=fitted.calibration,
        not_a_digit=not_a_digit,
        train_seconds=fitted.train_seconds,
        versions=library_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        finetuned_from=finetuned_from,
    )
    card_path = folder / CARD_NAME
    write_text_atomic(card_path, card.to_json())
    return card_path


def _write_weights(fitted: FittedModel, folder: Path) -> tuple[str, Path, dict[str, Any] | None]:
    """Write the weights file atomically: safetensors for array state, else skops. Return format, path, state."""
    model, state = fitted.model, None
    if hasattr(model, "export_tensors"):
        fmt, tensors = "safetensors", model.export_tensors()
    else:
        split = split_array_state(model, fitted.params)
        fmt = "skops" if split is None else "safetensors"
        if split is not None:
            tensors, state = split
    weights = folder / FORMATS[fmt]
    with atomic_path(weights) as tmp:
        if fmt == "safetensors":
            from safetensors.numpy import save

            tmp.write_bytes(save(tensors))  # written by Python: a full disk is an OSError, as everywhere else
        else:
            skops_file.dump(model, tmp)
    return fmt, weights, state


def _write_detector(detector: NotDigitDetector, folder: Path) -> NotDigitCheck:
    """Write the detector's weights atomically; return the card's entry for them."""
    from safetensors.numpy import save

    path = folder / DETECTOR_FILE
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(detector.to_tensors()))
    return NotDigitCheck(
        file=DETECTOR_FILE, sha256=sha256_file(path), threshold=detector.threshold,
        digits_flagged=detector.digits_flagged, nondigits_flagged=detector.nondigits_flagged,
        n_digits=detector.n_digits, n_nondigits=detector.n_nondigits, unlike_from=detector.unlike_from,
    )


def _load_detector(card: ModelCard, folder: Path) -> NotDigitDetector | None:
    """The detector the card lists, checksum-verified; None when the card lists none."""
    check = card.not_a_digit
    if check is None:
        return None
    path = folder / check.file
    if not path.is_file():
        raise DigitlabError(f"{path}: the not-a-digit detector its card lists is missing; retrain or restore it")
    if sha256_file(path) != check.sha256:
        raise DigitlabError(f"{path}: checksum does not match its model card; the file was changed or damaged")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError, AttributeError) as exc:  # bf16, f8: numpy has none
        raise DigitlabError(f"{path}: not a valid safetensors file ({exc})") from None
    detector = NotDigitDetector.from_tensors(tensors, check.threshold, card.n_pixels, str(path))
    # with how it did when trained, as the card recorded: a model saved again (fine-tuned) keeps the figures
    return dataclasses.replace(detector, digits_flagged=check.digits_flagged, nondigits_flagged=check.nondigits_flagged,
                               n_digits=check.n_digits, n_nondigits=check.n_nondigits, unlike_from=check.unlike_from)


def _card_path(path: Path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise DigitlabError(f"give a run folder (e.g. runs/<name>) or a file in it, got {path!r}")
    path = Path(path)
    if not path.exists():
        raise DigitlabError(f"{path}: no such file or folder; give a run folder (e.g. runs/<name>) or a file in it")
    if path.is_file() and path.name.endswith((".onnx", ".onnx.json")):
        if path.with_name(CARD_NAME).is_file():  # the run's own model.onnx: the run it sits in
            return path.with_name(CARD_NAME)
        raise DigitlabError(f"{path} is an ONNX export, which digitlab writes for other programs (ONNX Runtime loads "
                            "it); give the run folder it was exported from instead, which `digitlab serve` also "
                            "runs on ONNX Runtime")
    if path.is_dir():
        card = path / CARD_NAME
        if not card.is_file():
            inner = sorted(found.parent for found in path.glob(f"[!.]*/{CARD_NAME}"))  # a compare folder: a run a model
            runs = f"; it holds runs in its folders: give one, e.g. {inner[0]}" if inner else ""
            raise DigitlabError(f"{path}: no {CARD_NAME} in this folder; give a run folder made by `digitlab run`"
                                + runs)
        return card
    if path.name == CARD_NAME or path.suffix == ".json":
        return path
    card = path.with_name(CARD_NAME)
    if not card.is_file():
        raise DigitlabError(f"{path}: no model card ({CARD_NAME}) beside it; digitlab loads only models it saved")
    return card


def read_card(path: Path, *, weights_needed: bool = True) -> tuple[ModelCard, Path]:
    """Read and check a model card; return it and the path of its weights file (which must be there, unless not
    ``weights_needed``: a folder shipped with the run's ``model.onnx`` alone)."""
    card_path = _card_path(path)
    card = ModelCard.from_file(card_path)
    weights = card_path.with_name(card.file)
    if weights_needed and not weights.is_file():
        shipped = card_path.with_name("model.onnx").is_file()  # a folder shipped with the export alone
        raise DigitlabError(f"{weights}: model file is missing; " + (
            "this folder holds only the ONNX export, which `predict`, `read` and `serve` answer through (with "
            "onnxruntime installed, and DIGITLAB_PREDICT_ONNX or DIGITLAB_SERVE_ONNX not 0): "
            f"copy {card.file} from the run it came from for anything else" if shipped else
            "copy it back from where the run was made, or train the run again"))
    return card, weights


def load_model(path: Path, *, detector: bool = True) -> LoadedModel:
    """Load a model saved by :func:`save_model`, refusing anything that could run code.

    ``path`` may be a run folder, its ``model.json``, or the weights file in it. With ``detector=False``
    the not-a-digit detector is not read (nor required): for work that never uses it, such as ``explain``.
    """
    card, weights = read_card(path)
    actual = sha256_file(weights)
    if actual != card.sha256:
        raise DigitlabError(
            f"{weights}: checksum {actual[:16]}… does not match its model card ({card.sha256[:16]}…); "
            "the file was changed or damaged — retrain or restore it"
        )
    if card.format == "skops":
        model = skops_file.load(weights)
    else:
        model = _load_safetensors(weights, card)
    _check_loaded(model, card, weights)
    return LoadedModel(model=model, card=card, path=weights,
                       detector=_load_detector(card, weights.parent) if detector else None)


def _check_loaded(model: Any, card: ModelCard, weights: Path) -> None:
    """The file must hold the model its card names, with sound trees, answering for the card's image size."""
    import numpy as np

    from digitlab.models import MODELS, make_model

    if card.model not in MODELS:
        raise DigitlabError(f"{weights}: unknown model {card.model!r} in its card")
    expected = type(make_model(card.model, dataset=card.dataset))
    if type(model) is not expected:
        raise DigitlabError(f"{weights}: holds a {type(model).__name__}, but its card says {card.model!r} "
                            f"({expected.__name__}); refusing it")
    skops_file.check_trees(model, weights)
    try:
        with np.errstate(all="ignore"):  # a NaN or infinite weight is refused below, in one line, not warned of
            blank = np.zeros((1, card.n_pixels), dtype=np.float32)
            if not hasattr(model, "predict_proba"):  # a predict-only model (one registered as the models' docs show)
                model.predict(blank)
                return
            proba = model.predict_proba(blank)
    except (ValueError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
        raise DigitlabError(f"{weights}: the model does not work on {card.image_shape[0]}×"
                            f"{card.image_shape[1]} images as its card says ({type(exc).__name__})") from None
    if np.shape(proba) != (1, len(getattr(model, "classes_", []))):
        raise DigitlabError(f"{weights}: the model's output does not match its classes; the file is damaged")
    if not np.all(np.isfinite(proba)):  # a NaN or infinite weight: every answer would be NaN
        raise DigitlabError(f"{weights}: the model answers NaN (its weights are not all finite); the file is damaged")


def _load_safetensors(weights: Path, card: ModelCard) -> Any:
    from digitlab.models import MODELS, make_model

    if card.model not in MODELS:
        raise DigitlabError(f"{weights}: unknown model {card.model!r} in its card")
    estimator = make_model(card.model, dataset=card.dataset)
    params = dict(card.params)
    if "device" in params:
        params["device"] = "auto"  # a model trained on a GPU loads on a laptop
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, TypeError, AttributeError) as exc:  # bf16, f8: numpy has none
        raise DigitlabError(f"{weights}: not a valid safetensors file ({exc})") from None
    if hasattr(type(estimator), "from_tensors"):
        return type(estimator).from_tensors(params, tensors)
    if card.state is None:
        raise DigitlabError(f"{weights}: the model card lists no state for model {card.model!r}")
    return _restore_array_state(estimator, params, card.state, tensors, weights)
