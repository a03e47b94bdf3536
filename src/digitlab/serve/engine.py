"""What runs the served model's forward pass: ONNX Runtime when it can, else the estimator itself.

ONNX Runtime runs a small model at batch 1 with a fraction of eager PyTorch's (or scikit-learn's
validation) per-call overhead. :func:`serving_model` swaps only the *model* of a loaded run for its
ONNX export (:class:`~digitlab.onnx_model.OnnxModel`); the card (classes, calibration temperature,
"unsure" threshold) and the not-a-digit detector stay the estimator's, so every answer goes through the
same :func:`digitlab.predict.predict_images` as before. Where it can, the served graph also computes the
card's temperature and the detector's score (:mod:`digitlab.onnx_head`), with NumPy's arithmetic, so that
one ONNX Runtime call answers a prediction whole.

The ONNX file is ``model.onnx`` in the run folder. An existing one is reused when its card's checksum
matches the file and the file was exported from this very model (the graph's ``source_sha256`` is the
model's checksum); otherwise :func:`digitlab.export.export_onnx` writes it, after its parity check on the
run's test set. Where the export cannot be made (ONNX Runtime missing, a model that does not convert, a
dataset that cannot be rebuilt, a read-only run folder), the estimator serves and one log line says why.

Examples
--------
>>> from digitlab.store import load_model                        # doctest: +SKIP
>>> served, engine = serving_model(load_model(Path("runs/x")))  # doctest: +SKIP
>>> engine                                                       # doctest: +SKIP
'onnxruntime'
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from pathlib import Path

from digitlab.errors import DigitlabError
from digitlab.store import LoadedModel

__all__ = ["ENGINES", "ONNX_ENV", "onnx_available", "serving_export", "serving_model"]

ENGINES = ("onnxruntime", "estimator")
"""What :func:`serving_model` may answer: the model runs in ONNX Runtime, or as the estimator itself."""
ONNX_ENV = "DIGITLAB_SERVE_ONNX"
"""Set to ``0`` to serve the estimator even where ONNX Runtime is installed (``1``/unset: use it)."""
ONNX_NAME = "model.onnx"

log = logging.getLogger("digitlab.serve")


def onnx_available() -> bool:
    """True when ``onnxruntime`` can be imported (a ``None`` entry in ``sys.modules`` hides it)."""
    import sys

    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"] is not None
    return importlib.util.find_spec("onnxruntime") is not None


def serving_model(loaded: LoadedModel, *, onnx: bool | None = None, export: bool = True) -> tuple[LoadedModel, str]:
    """The run to serve, with its model on ONNX Runtime where possible.

    Parameters
    ----------
    loaded : LoadedModel
        The run's estimator, card and detector (:func:`digitlab.store.load_model`).
    onnx : bool, optional
        True: use ONNX Runtime (falling back, with a log line, where it cannot); False: the estimator;
        None (default): True unless ``$DIGITLAB_SERVE_ONNX`` is ``0``.
    export : bool
        Export ``model.onnx`` when the run has no reusable one (the served model, at start-up); False:
        serve the estimator instead (a model the page chose while the server runs: an export checks the
        whole test set, too long for a request).

    Returns
    -------
    (LoadedModel, str)
        ``loaded`` with ``model`` replaced by an :class:`~digitlab.onnx_model.OnnxModel` (card, path and
        detector unchanged), and ``"onnxruntime"``; or ``loaded`` itself and ``"estimator"``.
    """
    if not _wanted(onnx):
        return loaded, "estimator"
    if not onnx_available():
        log.info("serving %s on the estimator: onnxruntime is not installed (pip install 'digitlab[serve]')",
                 loaded.id)
        return loaded, "estimator"
    try:
        model, how = _onnx_model(loaded, export)
    except DigitlabError as exc:  # expected for a chosen model (export=False) without an export: not a warning
        (log.warning if export else log.info)("serving %s on the estimator: no ONNX export (%s)", loaded.id,
                                              str(exc).splitlines()[0])
        return loaded, "estimator"
    except OSError as exc:  # e.g. a read-only run folder
        log.warning("serving %s on the estimator: cannot write its ONNX export (%s)", loaded.id,
                    exc.strerror or exc)
        return loaded, "estimator"
    log.info("serving %s on ONNX Runtime (%s %s%s)", loaded.id, how, model.where, _head_words(model))
    return dataclasses.replace(loaded, model=model), "onnxruntime"


def serving_export(path: Path, *, onnx: bool | None = None) -> tuple[LoadedModel, str] | None:
    """The run at ``path`` (a run folder, its card or its model file) served on its ``model.onnx`` without loading
    its estimator, when the run already holds a reusable export; else None (:func:`serving_model` then loads the
    estimator, and exports). ``path`` in the answer is the run's model file, as :func:`serving_model` gives it.

    The estimator is loaded only if a request asks why (``?explain=true``): an MNIST CNN's worker process then never
    imports PyTorch, about 225 MB against 420 MB (``benchmarks/bench_serve.py``)."""
    if not _wanted(onnx) or not onnx_available():
        return None
    from digitlab.onnx_model import reusable_onnx

    found = reusable_onnx(path, threads=1)  # not reusable: serving_model says why as it exports again
    if found is None:
        return None
    onnx_loaded, card, weights = found
    served = dataclasses.replace(onnx_loaded, card=card, path=weights)  # temperature and detector: the run's own
    model = _with_head(onnx_loaded, served.temperature, served.detector)
    log.info("serving %s on ONNX Runtime (reusing %s%s; its estimator is loaded only to explain)", card.id,
             onnx_loaded.path, _head_words(model))
    return dataclasses.replace(served, model=model), "onnxruntime"


def _head_words(model) -> str:
    """What the log line adds for a graph that holds the calibration and detector too (:func:`_with_head`)."""
    return "; its calibration and not-a-digit detector in the graph" if hasattr(model, "scored") else ""


def _wanted(onnx: bool | None) -> bool:
    """``onnx`` itself, or when None, True unless ``$DIGITLAB_SERVE_ONNX`` is 0 (false, no, off)."""
    if onnx is None:
        return os.environ.get(ONNX_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    return onnx


def _onnx_model(loaded: LoadedModel, export: bool = True):
    """The run's ``model.onnx`` in ONNX Runtime, with the card's calibration and the detector in its graph
    where it can (:func:`digitlab.onnx_head.head_model`)."""
    onnx, how = _onnx_file(loaded, export)
    return _with_head(onnx, loaded.temperature, loaded.detector), how


def _with_head(onnx: LoadedModel, temperature: float, detector):
    """``onnx``'s model with the calibration and detector appended to its graph, or its plain model where not."""
    from digitlab.onnx_head import head_model

    try:
        headed = head_model(onnx, temperature, detector)
    except Exception as exc:  # the head is only a shortcut: whatever stops it, the plain graph serves
        log.info("%s: serving it without the calibration and detector in its graph (%s)", onnx.path,
                 (str(exc).splitlines() or [type(exc).__name__])[0])
        headed = None
    return onnx.model if headed is None else headed


def _onnx_file(loaded: LoadedModel, export: bool = True):
    """The run's ``model.onnx`` in ONNX Runtime (one intra-op thread): reused when valid, else exported
    (with ``export``; else a :class:`DigitlabError` saying there is none)."""
    from digitlab.onnx_model import exported_from, load_onnx

    path = Path(loaded.path).parent / ONNX_NAME
    if path.is_file():
        try:
            reused = load_onnx(path, threads=1)
            if exported_from(reused, loaded.card):
                return reused, "reusing"
        except DigitlabError as exc:
            log.info("%s: not reusable (%s); exporting it again", path, str(exc).splitlines()[0])
    if not export:
        raise DigitlabError(f"no reusable {ONNX_NAME} beside it; `digitlab export --model RUN` makes one")
    from digitlab.export import check_exporters, export_onnx

    check_exporters(loaded.card.model)  # a missing converter is said once, without the line below first
    if not os.access(path.parent, os.W_OK):  # on a read-only share: said as such, not as an `--out` serve lacks
        raise DigitlabError(f"its run folder {path.parent} cannot be written; `digitlab export --model RUN` where it "
                            "can be (or a copy of the run) makes the model.onnx it would use")
    log.info("exporting %s to %s for ONNX Runtime, checked on its test images first (once; 15-30 s for an "
             "MNIST CNN on 2 cores)", loaded.id, path)  # otherwise the server says nothing while it works
    export_onnx(loaded.path, path, threads=1)
    return load_onnx(path, threads=1), "exported"
