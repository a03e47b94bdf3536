"""Export a saved run's model to ONNX, checked against the estimator on the run's whole test set.

ONNX is a graph format that runs without digitlab, scikit-learn or PyTorch (ONNX Runtime, in C, C#,
Java, JavaScript, ...) and, like safetensors, cannot run code when it is loaded. :func:`export_onnx`
writes ``model.onnx`` beside the run's model (or where ``out`` says) and its card ``model.onnx.json``:

- the CNN through ``torch.onnx.export`` (the ``torch.export``-based exporter, which needs
  ``onnxscript``), in eval mode with each BatchNorm that follows a convolution folded into it
  (:func:`digitlab.models.cnn_torch.fuse_bn`) and the test-time augmentation its ``predict_proba``
  applies (the image and its one-pixel shifts as one batch: four with ``tta=True``, eight with
  ``tta=9``, none with ``tta=False``);
- k-nearest neighbours as a graph written here (distances in float64, ``TopK``, the same
  distance weights as scikit-learn): skl2onnx 1.20 turns ``weights="distance"`` into equal weights
  (onnx/sklearn-onnx#1214), which moves probabilities by up to 0.04 on the digits;
- every other zoo model (logistic regression, the calibrated SVM, the forest, the MLP) through
  skl2onnx, probabilities as a plain float tensor (no ZipMap).

Every graph has the same contract, stated in the file's ``metadata_props``: input ``features``
(float32 ``[batch, H·W]``, pixels / ``pixel_max`` flattened row by row: the graph takes the scaled
features every digitlab model takes, not raw pixels); outputs ``label`` (int64 ``[batch]``) and
``probabilities`` (float32 ``[batch, n_classes]``, columns in the order of ``classes``). The
probabilities are the model's own, before calibration: the card's temperature is recorded in the metadata and
applied outside the graph (``softmax(log(p + 1e-12) / T)``, as :func:`digitlab.predict.predict_images` does), so
the ONNX model answers exactly what the estimator's ``predict_proba`` answers and one file serves both.

Before anything is written, the graph runs in ONNX Runtime on the run's whole test set beside the
estimator. The export is refused (:class:`~digitlab.errors.DigitlabError`, nothing on disk) when the
two pick a different class on more than 0.01% of the images, or when a probability differs by more
than 1e-4 (the CNN) or 1e-3 (the other models).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.card import ModelCard, picture_preparation
from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError, require_extra
from digitlab.onnx_head import HEAD_OUTPUTS, check_headable, headed_graph
from digitlab.onnx_model import INPUT, ONNX_FORMAT, OUTPUTS, OnnxModel, onnx_card_path

__all__ = [
    "MAX_PROBABILITY_GAP", "MIN_AGREEMENT", "OPSET", "ExportResult", "Parity", "check_parity", "export_onnx",
    "run_dataset", "to_onnx",
]

OPSET = 18
"""ONNX operator set of every graph (ONNX Runtime ≥ 1.14 runs it)."""
ML_OPSET = 3
"""Operator set of the ``ai.onnx.ml`` domain (scikit-learn's trees, linear and SVM operators)."""
MIN_AGREEMENT = 0.9999
"""Least share of test images on which ONNX Runtime and the estimator pick the same class."""
MAX_PROBABILITY_GAP = {"cnn": 1e-4}
"""Largest |Δprobability| allowed between ONNX Runtime and the estimator, per model (others:
:data:`DEFAULT_PROBABILITY_GAP`)."""
DEFAULT_PROBABILITY_GAP = 1e-3
"""Largest |Δprobability| allowed for a model :data:`MAX_PROBABILITY_GAP` does not list."""


@dataclass(frozen=True)
class Parity:
    """How closely ONNX Runtime reproduces the estimator on a set of images.

    Attributes
    ----------
    n_images : int
        Images compared.
    n_disagree : int
        Images on which the two pick a different class (argmax of the probabilities).
    max_abs_diff : float
        Largest absolute difference between any two probabilities.
    """

    n_images: int
    n_disagree: int
    max_abs_diff: float

    @property
    def agreement(self) -> float:
        """Share of images on which both pick the same class."""
        return 1.0 - self.n_disagree / self.n_images if self.n_images else 1.0

    def describe(self) -> str:
        """One line: images, identical argmax share, max |Δp|.

        Examples
        --------
        >>> Parity(10_000, 0, 2.4e-7).describe()
        'parity on 10,000 test images: identical argmax on 100.00% (0 differ), max |Δp| 2.4e-07'
        """
        return (f"parity on {self.n_images:,} test images: identical argmax on {self.agreement:.2%} "
                f"({self.n_disagree:,} differ), max |Δp| {self.max_abs_diff:.1e}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for the card."""
        return {**dataclasses.asdict(self), "agreement": self.agreement}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes
    ----------
    path, card_path : Path
        The ONNX file, and its card ``<path>.json``.
    card : ModelCard
        The card's contents.
    parity : Parity
        ONNX Runtime against the estimator on the run's test set.
    """

    path: Path
    card_path: Path
    card: ModelCard
    parity: Parity


# ----------------------------------------------------------------- conversion


def to_onnx(model: Any, card: ModelCard) -> Any:
    """Convert a fitted zoo estimator to an ``onnx.ModelProto`` with digitlab's contract in its metadata.

    Parameters
    ----------
    model : estimator
        Fitted: a :class:`~digitlab.models.cnn.CNNClassifier` or one of the zoo's scikit-learn models.
    card : ModelCard
        The model's card: the input contract (image shape, pixel scale, classes), id and temperature.

    Returns
    -------
    onnx.ModelProto
        Input ``features`` with a dynamic batch axis; outputs ``label`` and ``probabilities``.

    Raises
    ------
    DigitlabError
        One line naming the model and why, when it cannot be converted.
    """
    _need("onnx")
    from sklearn.neighbors import KNeighborsClassifier

    from digitlab.models.cnn import CNNClassifier

    n_features = int(getattr(model, "n_features_in_", card.n_pixels))
    if n_features != card.n_pixels:
        raise DigitlabError(f"{card.model}: the model takes {n_features} features but its card says "
                            f"{card.image_shape[0]}×{card.image_shape[1]} images")
    classes = tuple(int(c) for c in getattr(model, "classes_", card.classes))
    if classes != tuple(card.classes):  # the graph's labels come from the card
        raise DigitlabError(f"{card.model}: the model answers the classes {list(classes)} but its card says "
                            f"{list(card.classes)}; give the card the model's classes")
    if isinstance(model, CNNClassifier):
        from digitlab.export_cnn import cnn_to_onnx

        proto = cnn_to_onnx(model, card)
    elif isinstance(model, KNeighborsClassifier):
        from digitlab.export_knn import knn_to_onnx

        proto = knn_to_onnx(model, card, n_features, OPSET)
    else:
        proto = _sklearn_to_onnx(model, card, n_features)
    _name_batch_axis(proto, card)
    _add_contract(proto, model, card)
    return proto


def _need(*modules: str) -> None:
    require_extra("onnx", modules, "ONNX export")


def check_exporters(model: str) -> None:
    """Refuse in one line, before any work, when the converters that export the zoo's ``model`` are missing."""
    _need(*{"cnn": ("onnx", "onnxscript", "torch"), "knn": ("onnx",)}.get(model, ("onnx", "skl2onnx")))


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress lines, deprecation warnings and log messages."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _sklearn_to_onnx(model: Any, card: ModelCard, n_features: int) -> Any:
    """A scikit-learn classifier through skl2onnx: float32 input, probabilities as a tensor (ZipMap off)."""
    _need("skl2onnx")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    try:
        with _quiet():
            proto = convert_sklearn(
                model, initial_types=[(INPUT, FloatTensorType([None, n_features]))],
                options={id(model): {"zipmap": False}}, target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
            )
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, its own kinds...
        raise DigitlabError(f"{card.model}: skl2onnx cannot convert a {type(model).__name__} "
                            f"({_first_line(exc)})") from None
    names = [output.name for output in proto.graph.output]
    if names != list(OUTPUTS):
        raise DigitlabError(f"{card.model}: skl2onnx gave outputs {names}, not {list(OUTPUTS)}; cannot export it")
    return proto


def _name_batch_axis(proto: Any, card: ModelCard) -> None:
    """Call the first axis of the input and outputs ``batch``; refuse a graph whose batch size is fixed."""
    dims = [value.type.tensor_type.shape.dim for value in (*proto.graph.input, *proto.graph.output)]
    if not all(len(d) >= 1 for d in dims) or any(d[0].HasField("dim_value") for d in dims):
        raise DigitlabError(f"{card.model}: the exported graph has a fixed batch size; cannot export it")
    for d in dims:
        d[0].dim_param = "batch"


def _add_contract(proto: Any, model: Any, card: ModelCard) -> None:
    """Write the input contract into the graph's ``metadata_props`` (all strings)."""
    from onnx import helper

    from digitlab import __version__

    props = {
        "digitlab_contract": "1",
        "model_card_id": card.id,
        "model": card.model,
        "dataset": card.dataset,
        "estimator": card.estimator or f"{type(model).__module__}.{type(model).__qualname__}",
        "source_sha256": card.sha256,
        "image_shape": json.dumps(list(card.image_shape)),
        "pixel_max": str(card.pixel_max),
        "classes": json.dumps([int(c) for c in card.classes]),
        "input": f"{INPUT}: float32 [batch, {card.n_pixels}]: raw pixels (0..{card.pixel_max}) / pixel_max, row by "
                 "row, each finite and in 0..1; unchecked (NaN gives NaN and label 0; -1..1 or 0..255 confident "
                 "answers), but a graph exported --with-head scores such a row 1, not a digit",
        "preprocessing": card.preprocessing,
        "picture_preparation": picture_preparation(card.image_shape),
        "outputs": f"{OUTPUTS[0]}: int64 [batch], the most probable class; {OUTPUTS[1]}: float32 "
                   "[batch, n_classes], columns in the order of classes, before the calibration temperature",
        "temperature_applied": "outside the graph: softmax(log(probabilities + 1e-12) / temperature), in float64 "
                               "(digitlab.calibrate.apply_temperature); unsure when the top one < unsure_below - 1e-9",
    }
    if hasattr(model, "tta"):  # the CNN
        from digitlab.models.cnn_torch import tta_shifts

        if shifts := len(tta_shifts(model.tta)):
            props["test_time_augmentation"] = (f"in the graph: the mean of the probabilities of the image and its "
                                               f"{shifts} one-pixel shifts")
    if card.calibration is not None:
        props["temperature"] = repr(float(card.calibration.temperature))
        props["unsure_below"] = repr(float(card.calibration.unsure_below))
    helper.set_model_props(proto, props)
    proto.producer_name, proto.producer_version = "digitlab", __version__
    proto.doc_string = f"digitlab {card.model} on {card.dataset} ({card.id}); see metadata_props for the input contract"


# --------------------------------------------------------------------- parity


def check_parity(estimator: Any, onnx_model: OnnxModel, features: np.ndarray) -> Parity:
    """Compare the estimator's and ONNX Runtime's probabilities on ``features``.

    Parameters
    ----------
    estimator : estimator
        Fitted, with ``predict_proba``.
    onnx_model : OnnxModel
        Its export.
    features : ndarray of shape (n, n_features)

    Returns
    -------
    Parity
        Images compared, images where the argmax differs, the largest |Δprobability|.
    """
    expected = np.asarray(estimator.predict_proba(features), dtype=np.float64)
    got = np.asarray(onnx_model.predict_proba(features), dtype=np.float64)
    if expected.shape != got.shape:
        raise DigitlabError(f"ONNX Runtime gave probabilities of shape {got.shape}, the estimator {expected.shape}")
    n_disagree = int(np.sum(expected.argmax(axis=1) != got.argmax(axis=1)))
    gap = float(np.max(np.abs(expected - got))) if expected.size else 0.0
    if not np.isfinite(gap):
        gap = float("inf")
    return Parity(n_images=len(features), n_disagree=n_disagree, max_abs_diff=gap)


def run_dataset(card: ModelCard) -> Dataset:
    """The dataset a card names, split as the run split it (:func:`digitlab.reproduce.run_dataset`).

    A model fine-tuned to a handwriting set is checked on MNIST's 10,000 test digits instead: more images
    than a person's held-out part, and present wherever the model could be fine-tuned.
    """
    from digitlab.reproduce import run_dataset as rebuild

    if card.finetuned_from is not None and card.image_shape == (28, 28):
        from digitlab.data import load_dataset

        return load_dataset("mnist")
    return rebuild(card, f"model {card.id}")


# --------------------------------------------------------------------- export


def export_onnx(run: str | Path, out: str | Path | None = None, *, threads: int = 0,
                head: bool = False) -> ExportResult:
    """Export the model of a saved run to ONNX, after checking it against the estimator.

    Parameters
    ----------
    run : path
        A run folder, its ``model.json``, or the model file in it.
    out : path, optional
        The ``.onnx`` file to write; default ``model.onnx`` in the run folder. Its card is written
        beside it as ``<out>.json``.
    threads : int
        ONNX Runtime's intra-op threads for the parity check (0: every core).
    head : bool
        Append calibration and detector (:func:`digitlab.onnx_head.headed_graph`); default ``model-head.onnx``.

    Returns
    -------
    ExportResult
        The paths written, the card, and the parity figures.

    Raises
    ------
    DigitlabError
        One line, nothing written: the run cannot be read, the model cannot be converted (or, ``head``, have
        a head), or ONNX Runtime disagrees with it beyond :data:`MIN_AGREEMENT` / :data:`MAX_PROBABILITY_GAP`.
    """
    from digitlab.fileio import atomic_path, remove_stale_parts
    from digitlab.preprocess import test_features
    from digitlab.store import load_model

    if out is not None:
        _check_out(Path(out))
    loaded = load_model(Path(run))
    source = loaded.card
    out = loaded.path.parent / ("model-head.onnx" if head else "model.onnx") if out is None else Path(out)
    _check_out(out)
    _need("onnxruntime")
    if head:
        check_headable(loaded, out)  # before the test set's parity check, which takes a while

    from digitlab.export_cnn import on_cpu

    estimator = on_cpu(loaded.model)
    proto = to_onnx(estimator, source)
    data = proto.SerializeToString()
    features, _ = test_features(run_dataset(source))
    parity = check_parity(estimator, OnnxModel(data, threads=threads, where=f"{source.model} export"), features)
    _refuse_disagreement(source.model, parity, out)
    data = headed_graph(proto, loaded) if head else data  # the calibration and the detector appended
    card, doc = _onnx_card(source, out, data, parity, head)
    card_path = onnx_card_path(out)
    remove_stale_parts(out.parent, (out.name, card_path.name))  # a killed export's temporary files
    # the inner block is renamed first: the graph lands, then its card, which is the commit point (a kill
    # between the two leaves the old card beside a new graph, refused by its checksum and exported again)
    with atomic_path(card_path) as tmp_card, atomic_path(out) as tmp_onnx:
        tmp_onnx.write_bytes(data)
        tmp_card.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return ExportResult(path=out, card_path=card_path, card=card, parity=parity)


def _refuse_disagreement(model: str, parity: Parity, out: Path) -> None:
    """One line, nothing written, when ONNX Runtime and the estimator disagree beyond the bounds."""
    bound = MAX_PROBABILITY_GAP.get(model, DEFAULT_PROBABILITY_GAP)
    if parity.agreement < MIN_AGREEMENT or not parity.max_abs_diff <= bound:
        raise DigitlabError(
            f"{model}: ONNX Runtime disagrees with the estimator on the test set — identical argmax on "
            f"{parity.agreement:.2%} ({parity.n_disagree:,} of {parity.n_images:,} differ; at least "
            f"{MIN_AGREEMENT:.2%} needed), max |Δp| {parity.max_abs_diff:.1e} (at most {bound:.0e}); "
            f"refusing to write {out}")


def _onnx_card(source: ModelCard, out: Path, data: bytes, parity: Parity,
               head: bool = False) -> tuple[ModelCard, dict[str, Any]]:
    """The exported file's card (the run's, with the ONNX file's name, checksum and size) and its JSON."""
    card = dataclasses.replace(
        source, format=ONNX_FORMAT, file=out.name, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
        state=None, versions={**source.versions, **_onnx_versions(source.model)},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    doc = json.loads(card.to_json())
    doc["onnx"] = {  # beyond ModelCard's fields: read by people, ignored by ModelCard.from_dict
        "source": {"file": source.file, "format": source.format, "sha256": source.sha256},
        "opset": OPSET, "input": INPUT, "outputs": list(OUTPUTS), "parity": parity.to_dict(),
        "temperature": "applied outside the graph (digitlab.calibrate.apply_temperature)",
    }
    if head:  # the calibration in the graph too: its metadata_props say how to call the answer
        doc["onnx"].update(outputs=[*OUTPUTS, *HEAD_OUTPUTS], temperature=f"applied in the graph: {HEAD_OUTPUTS[0]}")
    return card, doc


def _check_out(out: Path) -> None:
    """Fail early, with one line, when ``out`` cannot be the ONNX file to write."""
    from digitlab.runs import check_writable

    if out.is_dir() or not out.name:  # '.', '/', '' and folders: no file name to write
        raise DigitlabError(f"--out {out}: is a folder; give a file name ending in .onnx, e.g. {out / 'model.onnx'}")
    if out.suffix != ".onnx":
        stem = out.stem if out.stem not in ("", ".onnx") else "model"  # 'exp/.onnx' is a name without a suffix
        raise DigitlabError(f"--out {out}: an ONNX file's name ends in .onnx; choose e.g. {stem}.onnx")
    if not out.parent.is_dir():
        raise DigitlabError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another")
    if onnx_card_path(out).is_dir():  # else the graph landed without its card, the error naming a temporary file
        raise DigitlabError(f"--out {out}: its card's place, {onnx_card_path(out)}, is a folder; move it away or "
                            "choose another name")
    check_writable(out.parent, "--out's folder", "choose a writable place with --out FILE.onnx")


def _onnx_versions(model: str) -> dict[str, str]:
    """Versions of the libraries that made and checked the graph."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("onnx", "onnxruntime", "onnxscript", "torch") if model == "cnn" else ("onnx", "onnxruntime", "skl2onnx")
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def _first_line(exc: BaseException) -> str:
    """``Kind: first line of the message``, short enough for one line of output."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
