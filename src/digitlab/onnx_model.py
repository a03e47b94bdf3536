"""Predict with an exported ONNX file through ONNX Runtime: :class:`OnnxModel` and :func:`load_onnx`.

An ONNX file written by :func:`digitlab.export.export_onnx` holds one graph with one input and two
outputs, the same for every model in the zoo:

- ``features``: float32, shape ``[batch, H·W]``: the pixels divided by the card's ``pixel_max`` and
  flattened row by row (:func:`digitlab.preprocess.to_features`). The graph does not scale raw pixels:
  it takes exactly what every digitlab estimator's ``predict_proba`` takes.
- ``label``: int64, shape ``[batch]``: the most probable class.
- ``probabilities``: float32, shape ``[batch, n_classes]``, columns in the order of ``classes``: the
  model's own probabilities, *before* the card's calibration temperature (which
  :func:`digitlab.predict.predict_images` applies, as it does for the estimator).

:class:`OnnxModel` offers ``predict_proba``, ``predict`` and ``classes_``, so every digitlab function that
takes a fitted estimator takes it too. ONNX Runtime is imported only when a model is built, so
``import digitlab`` stays fast and works without it.

Beside ``model.onnx`` sits its card, ``model.onnx.json``: a :class:`~digitlab.card.ModelCard` with
``format="onnx"``, the file's SHA-256 and size. :func:`load_onnx` checks both before ONNX Runtime
reads a byte of the graph.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from digitlab.card import MAX_CARD_BYTES, ModelCard
from digitlab.errors import DigitlabError, InvalidValueError
from digitlab.onnx_safety import check_graph

if TYPE_CHECKING:  # pragma: no cover
    from digitlab.store import LoadedModel

__all__ = ["INPUT", "OUTPUTS", "ONNX_FORMAT", "OnnxModel", "load_for_prediction", "load_onnx", "onnx_card_path",
           "read_onnx_card"]

INPUT = "features"
"""The graph's one input: float32 features ``[batch, H·W]`` in [0, 1]."""
OUTPUTS = ("label", "probabilities")
"""The graph's outputs: int64 labels ``[batch]`` and float32 probabilities ``[batch, n_classes]``."""
ONNX_FORMAT = "onnx"
"""The ``format`` an ONNX file's card names."""
CARD_SUFFIX = ".json"
"""An ONNX file's card is the file's name plus this: ``model.onnx`` → ``model.onnx.json``."""
BATCH = 256
"""Rows per ONNX Runtime call: bounds the memory of a large prediction (k-NN's graph holds a
``batch × n_train`` distance matrix)."""


def onnx_card_path(onnx_path: str | Path) -> Path:
    """The card beside an ONNX file: its name plus ``.json``.

    Examples
    --------
    >>> onnx_card_path("runs/x/model.onnx").as_posix()
    'runs/x/model.onnx.json'
    """
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + CARD_SUFFIX)


class OnnxModel:
    """An exported digitlab model run by ONNX Runtime, with the estimator's prediction methods.

    One ``InferenceSession`` serves every call; ONNX Runtime's ``run`` is safe to call from several
    threads at once, and this object keeps no other state, so one instance can serve a whole web app.

    Parameters
    ----------
    source : path or bytes
        The ``.onnx`` file, or its bytes. :func:`load_onnx` is the way to read a file from disk: it
        checks the file against its card first.
    threads : int
        ONNX Runtime's intra-op threads. 1 (the default) is the fastest for one or a few images and
        leaves the other cores to other requests; 0 lets ONNX Runtime take every core.
    where : str
        How error messages name the model.

    Attributes
    ----------
    classes_ : ndarray of int64
        The labels, in the order of the probability columns.
    n_features_in_ : int
        Features per row (height × width).
    image_shape : tuple of int
        Height and width of the images the features come from.
    pixel_max : int
        Brightest pixel value of the model's images (features are pixels / ``pixel_max``).
    metadata : dict of str
        The file's ``metadata_props``: the input contract, the card id, the temperature.
    session : onnxruntime.InferenceSession
        The session every call runs on.
    where : str
        How error messages name the model.

    See Also
    --------
    load_onnx : read an ONNX file from disk, checked against its card first.
    """

    def __init__(self, source: str | Path | bytes, *, threads: int = 1, where: str = "ONNX model"):
        self.where = where
        self.session = _session(source, threads, where)
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_graph()

    def _check_graph(self) -> None:
        """The graph must be one of ours: the ``features`` input, the two outputs, the contract in its metadata."""
        inputs = self.session.get_inputs()
        outputs = {o.name for o in self.session.get_outputs()}
        if len(inputs) != 1 or inputs[0].name != INPUT or inputs[0].type != "tensor(float)" \
                or not set(OUTPUTS) <= outputs:
            raise DigitlabError(f"{self.where}: not a digitlab ONNX model (expected one float input "
                                f"{INPUT!r} and outputs {', '.join(OUTPUTS)})")
        try:
            classes = json.loads(self.metadata["classes"])
            shape = json.loads(self.metadata["image_shape"])
            pixel_max = int(self.metadata["pixel_max"])
            temperature = float(self.metadata.get("temperature", 1.0))
            n_features = inputs[0].shape[1]
        except (KeyError, ValueError, TypeError, IndexError):
            raise DigitlabError(f"{self.where}: the ONNX file lacks digitlab's input contract in its metadata "
                                "(classes, image_shape, pixel_max); export it with `digitlab export`") from None
        if not (isinstance(classes, list) and classes and all(type(c) is int for c in classes)
                and isinstance(shape, list) and len(shape) == 2 and all(type(s) is int and s > 0 for s in shape)
                and isinstance(n_features, int) and 0 < n_features == shape[0] * shape[1]
                and math.isfinite(temperature) and temperature > 0):
            raise DigitlabError(f"{self.where}: the ONNX file's metadata does not match its graph; the file is damaged")
        self.classes_ = np.asarray(classes, dtype=np.int64)
        self.image_shape = (shape[0], shape[1])
        self.pixel_max = pixel_max
        self.n_features_in_ = n_features
        self._temperature = temperature

    @property
    def temperature(self) -> float:
        """The calibration temperature recorded in the file's metadata; 1 for an uncalibrated model.

        The graph's probabilities are before it: apply it with :func:`digitlab.calibrate.apply_temperature`
        (:func:`digitlab.predict.predict_images` does, from the card).
        """
        return self._temperature

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one row per image, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n, n_features_in_)
            Features in [0, 1] (:func:`digitlab.preprocess.to_features`), any float dtype.

        Returns
        -------
        ndarray of float32, shape (n, n_classes)
            The model's own probabilities, before any calibration temperature.
        """
        X = self._rows(X)
        if len(X) == 0:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        return self._run([OUTPUTS[1]], X)[0]

    def _run(self, outputs: list[str], X: np.ndarray) -> list[np.ndarray]:
        """The named outputs for checked rows ``X`` (at least one), in batches of :data:`BATCH` rows."""
        if len(X) <= BATCH:  # the hot path: one image from the web page
            return self.session.run(outputs, {INPUT: X})
        parts = [self.session.run(outputs, {INPUT: X[i : i + BATCH]}) for i in range(0, len(X), BATCH)]
        return [np.concatenate(column) for column in zip(*parts)]

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row of ``X``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _rows(self, X: Any) -> np.ndarray:
        """``X`` as contiguous float32 rows of this model's width, all finite (else one-line errors)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InvalidValueError(f"X has shape {X.shape}, but this ONNX model takes {self.n_features_in_} "
                                    f"features per row ({self.image_shape[0]}x{self.image_shape[1]} images)")
        if not np.isfinite(X).all():
            raise InvalidValueError("X contains NaN or infinity; features are pixel values scaled to [0, 1]")
        return X

    def __repr__(self) -> str:
        return f"OnnxModel({self.metadata.get('model_card_id', self.where)!r})"


def _session(source: str | Path | bytes, threads: int, where: str) -> Any:
    """An ONNX Runtime session on the CPU: ``threads`` intra-op threads, every graph optimisation."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DigitlabError("ONNX models need onnxruntime, which is not installed; "
                            "run `pip install 'digitlab[serve]'` (in a clone of digitlab: `make install`)") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InvalidValueError(f"threads must be a non-negative integer, got {threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings on stderr for each session
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    check_graph(data, where)  # a handed-in run's file: no external data, no loops (a security audit)
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own kinds for a malformed or unsupported graph
        raise DigitlabError(f"{where}: not a model ONNX Runtime can run ({_first_line(exc)})") from None


def read_onnx_card(path: str | Path) -> ModelCard:
    """Read and validate the card of an ONNX file (``model.onnx.json``).

    The card is validated field by field by :class:`~digitlab.card.ModelCard`, as any card is; its
    ``format`` must be ``"onnx"`` and its ``file`` a plain name ending in ``.onnx``. (Until
    :data:`digitlab.card.FORMATS` lists ``onnx``, the format and file are checked here and the rest by
    the card's own validation.)
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise DigitlabError(f"{path}: cannot read the model card ({exc.strerror or exc})") from None
    if len(text) > MAX_CARD_BYTES:
        ModelCard.from_json(text, str(path))  # says "far too large" in its own words
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DigitlabError(f"{path}: the model card is nested too deeply; the card is damaged") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DigitlabError(f"{path}: not a readable model card ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != ONNX_FORMAT:
        raise DigitlabError(f"{path}: not the card of an ONNX file (its format is not 'onnx')")
    file = doc.get("file")
    if not (isinstance(file, str) and file.endswith(".onnx") and Path(file).name == file and file != ".onnx"):
        raise DigitlabError(f"{path}: field 'file' of the model card must be the name of an .onnx file beside "
                            "the card; the card is damaged")
    stand_in = {**doc, "format": "safetensors", "file": "model.safetensors"}
    try:
        text = json.dumps(stand_in)  # NaN and Infinity are written as such, and refused by from_json
    except (ValueError, TypeError):
        raise DigitlabError(f"{path}: not a readable model card") from None
    card = ModelCard.from_json(text, str(path))
    return dataclasses.replace(card, format=ONNX_FORMAT, file=file)


def _paths(path: Path) -> tuple[Path, Path]:
    """The ONNX file and its card, from a run folder, the ``.onnx`` file, or its ``.onnx.json`` card."""
    if not path.exists():
        raise DigitlabError(f"{path}: no such file or folder; give an .onnx file made by `digitlab export` "
                            "or the run folder holding model.onnx")
    if path.is_dir():
        onnx_path = path / "model.onnx"
        if not onnx_path.is_file():
            raise DigitlabError(f"{path}: no model.onnx in this folder; run `digitlab export --model {path}`")
    elif path.name.endswith(".onnx" + CARD_SUFFIX):
        onnx_path = path.with_name(path.name[: -len(CARD_SUFFIX)])
    elif path.suffix == ".onnx":
        onnx_path = path
    else:
        raise DigitlabError(f"{path}: not an ONNX model file (.onnx) or its card (.onnx.json)")
    card_path = onnx_card_path(onnx_path)
    if not onnx_path.is_file():
        raise DigitlabError(f"{onnx_path}: the ONNX file its card names is missing")
    if not card_path.is_file():
        raise DigitlabError(f"{onnx_path}: no model card ({card_path.name}) beside it; "
                            "digitlab loads only ONNX files it exported")
    return onnx_path, card_path


def load_onnx(path: str | Path, *, threads: int = 1) -> "LoadedModel":
    """Load an ONNX file written by :func:`digitlab.export.export_onnx`, checked against its card.

    Parameters
    ----------
    path : path
        The ``.onnx`` file, its ``.onnx.json`` card, or a run folder holding ``model.onnx``.
    threads : int
        ONNX Runtime's intra-op threads (see :class:`OnnxModel`).

    Returns
    -------
    digitlab.store.LoadedModel
        ``model`` is an :class:`OnnxModel`; ``card`` the validated card; ``path`` the ONNX file; ``detector``
        the run's not-a-digit detector when its card lists one and its file lies beside the ONNX file.

    Raises
    ------
    DigitlabError
        One line, before ONNX Runtime parses anything, when the file's size or SHA-256 differ from its
        card's (a truncated or changed file); after, when the graph is not the model its card describes.
    """
    import hashlib

    from digitlab.store import LoadedModel, _load_detector

    onnx_path, card_path = _paths(Path(path))
    card = read_onnx_card(card_path)
    if card.file != onnx_path.name:
        raise DigitlabError(f"{card_path}: the card is for {card.file}, not {onnx_path.name}")
    size = onnx_path.stat().st_size
    if card.size_bytes is not None and size != card.size_bytes:
        raise DigitlabError(f"{onnx_path}: {size:,} bytes, but its card says {card.size_bytes:,}; the file is "
                            "truncated or was changed — export it again")
    try:
        data = onnx_path.read_bytes()
    except OSError as exc:
        raise DigitlabError(f"{onnx_path}: cannot read the ONNX file ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != card.sha256:
        raise DigitlabError(f"{onnx_path}: checksum {digest[:16]}… does not match its model card "
                            f"({card.sha256[:16]}…); the file was changed or damaged — export it again")
    model = OnnxModel(data, threads=threads, where=str(onnx_path))
    if (model.image_shape != card.image_shape or model.pixel_max != card.pixel_max
            or tuple(model.classes_.tolist()) != card.classes
            or model.metadata.get("model_card_id") != card.id):
        raise DigitlabError(f"{onnx_path}: the graph's input contract (image shape, pixel scale, classes, card id) "
                            "does not match its card; refusing it")
    listed = card.not_a_digit
    beside = listed is not None and (onnx_path.parent / listed.file).is_file()  # in its run folder
    detector = _load_detector(card, onnx_path.parent) if beside else None
    return LoadedModel(model=model, card=card, path=onnx_path, detector=detector)


def engine_of(loaded: "LoadedModel") -> str:
    """What answers for ``loaded``: ``"onnxruntime"`` (its ONNX export) or ``"estimator"``, as ``GET /healthz`` says
    it; in ``predict --json`` and ``read --json`` (an engineer could tell only from a note's absence)."""
    return "onnxruntime" if isinstance(loaded.model, OnnxModel) else "estimator"


def load_for_prediction(path: str | Path, say: Callable[[str], None] = lambda line: None) -> "LoadedModel":
    """What ``digitlab predict`` and ``read`` answer with: the run's own ``model.onnx`` in ONNX Runtime when one
    was exported from this very model (``digitlab export``, or a first ``digitlab serve``), else the estimator
    (:func:`digitlab.store.load_model`). The answers the export's parity check allows (an MNIST CNN: the same
    digit and kind on 300 pictures, probabilities within 2e-7), without PyTorch: its one-picture ``predict`` in
    about half the time and memory. ``$DIGITLAB_PREDICT_ONNX`` set to 0 (false, no, off) always loads the
    estimator. A ``model.onnx`` there that is not used (damaged, another run's, an older export) is said to ``say``:
    the faster path was lost in silence (an engineer)."""
    import os

    from digitlab.store import load_model

    if os.environ.get("DIGITLAB_PREDICT_ONNX", "1").strip().lower() in ("0", "false", "no", "off"):
        return load_model(Path(path))
    found = reusable_onnx(path, say, threads=0)
    return load_model(Path(path)) if found is None else dataclasses.replace(found[0], card=found[1])


def reusable_onnx(path: str | Path, say: Callable[[str], None] = lambda line: None, *,
                  threads: int = 0) -> "tuple[LoadedModel, ModelCard, Path] | None":
    """The run's ``model.onnx`` in ONNX Runtime (:func:`load_onnx`), the run's card and its model file, when the
    export was made from this very model and ONNX Runtime is installed; else None. The estimator's libraries
    (PyTorch) are not imported. The run's own model file, where it is there (a folder shipped with its export alone
    has none), is still checked against its card, as load_model does: a damaged one gives None, and loading the
    estimator then says what is wrong. A ``model.onnx`` there that is not used
    is said to ``say``; in a folder with no model file to answer instead, one line (:class:`DigitlabError`)."""
    import importlib.util
    import shlex

    from digitlab.fileio import sha256_file
    from digitlab.store import read_card

    card, weights = read_card(Path(path), weights_needed=False)  # shipped with model.onnx alone: served on it
    onnx_path = weights.parent / "model.onnx"
    if (not onnx_path.is_file() or importlib.util.find_spec("onnxruntime") is None
            or weights.is_file() and sha256_file(weights) != card.sha256):  # damaged: load_model says so in one line
        return None

    def not_used(why: str) -> None:
        if not weights.is_file():  # shipped with its export alone: no estimator to answer, nothing to export from
            raise DigitlabError(f"{onnx_path} cannot be used ({why}) and {weights.name} is not in the run to answer "
                                "instead; copy the run's model.onnx and model.onnx.json again from where it was made")
        say(f"{onnx_path} is not used, so the estimator answers (slower, more memory): `digitlab export --model "
            f"{shlex.quote(str(path))}` writes it again from this run's model ({why})")

    other = False
    with contextlib.suppress(DigitlabError):  # another run's export copied in: said so, before its card's checksums
        other = read_onnx_card(onnx_path.with_name("model.onnx.json")).id != card.id  # of the detector file misled
    if other:  # (outside: not_used's own error is not to be suppressed; a reviewer)
        return not_used("it was exported from another model")
    try:
        onnx = load_onnx(onnx_path, threads=threads)
    except (DigitlabError, OSError) as exc:  # damaged, or not a digitlab export: the estimator answers
        return not_used(_first_line(exc) if not isinstance(exc, DigitlabError) else (str(exc).splitlines() or [""])[0])
    same = exported_from(onnx, card)
    lost = onnx.detector is None and onnx.card.not_a_digit is not None  # its detector's file is not beside it
    if same and lost and not weights.is_file():  # a folder shipped with model.onnx but not the detector
        raise DigitlabError(f"{onnx_path.parent / onnx.card.not_a_digit.file}: the not-a-digit detector its card "
                            "lists is missing; copy it from the run beside model.onnx")
    if not same or (card.not_a_digit is not None and onnx.detector is None):  # an older export, or no detector
        return not_used("it was exported from " + ("another model" if onnx.card.id != card.id else
                                                   "an older version of this model" if not same
                                                   else "this model before it had its not-a-digit detector"))
    return onnx, card, weights


def exported_from(onnx: "LoadedModel", card: ModelCard) -> bool:
    """The ONNX file was exported from the very model ``card`` describes (not an older one trained in the same
    folder, nor another run's)."""
    return (onnx.card.id == card.id and onnx.model.metadata.get("source_sha256") == card.sha256
            and onnx.card.image_shape == card.image_shape and onnx.card.classes == card.classes)


def _first_line(exc: BaseException) -> str:
    """``Kind: first line of the message``, short enough for one line of output."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    for noise in ("[ONNXRuntimeError] : ",):
        line = line.replace(noise, "")
    return f"{type(exc).__name__}: {line[:200]}" if line else type(exc).__name__
