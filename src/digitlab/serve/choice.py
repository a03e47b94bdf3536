"""Which saved model answers a request: the one being served, or another run the page chose.

The server stays stateless: there is no server-wide "current model" (with ``--workers N`` one would
differ between the processes). A client that wants another model names it in each request
(``?model=ID``, an id that ``GET /api/models`` lists); each worker process loads that run on first use
and keeps the last :data:`CACHED` of them in memory. Only runs found under the runs folder can be
chosen, by their card's id — never a path from the request.

The served model runs on ONNX Runtime when it can (:mod:`digitlab.serve.engine`); a chosen one does
when its run already holds a reusable ``model.onnx`` (``digitlab export`` makes one), else on its
estimator: an export checks the run's whole test set, too long to do inside a request.

Examples
--------
>>> choice = ModelChoice(served)          # doctest: +SKIP
>>> choice.pick(None) is served           # doctest: +SKIP
True
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from digitlab.card import CARD_NAME, ModelCard
from digitlab.errors import DigitlabError
from digitlab.serve.engine import serving_export, serving_model
from digitlab.serve.errors import ApiError
from digitlab.store import LoadedModel, load_model

__all__ = ["CACHED", "ModelChoice", "Served", "list_models", "tune_threads"]

CACHED = 4
"""Chosen models (beside the served one) each worker process keeps loaded; the least recently used goes."""

log = logging.getLogger("digitlab.serve")


@dataclass
class Served:
    """A model ready to answer, and where the other saved models are.

    Attributes
    ----------
    loaded : LoadedModel
        The run's card, detector and the model that runs the forward pass.
    runs_dir : Path
        The runs folder (``GET /api/models`` lists it).
    engine : str
        What runs the forward pass: ``"onnxruntime"`` or ``"estimator"``.
    estimator : Any
        The fitted estimator itself, even when ONNX Runtime serves: ``?explain=true`` needs it. None: loaded on
        first use (:meth:`explainable`), for a model served on its ``model.onnx`` without it.
    """

    loaded: LoadedModel
    runs_dir: Path
    engine: str = "estimator"
    estimator: Any = None
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def explainable(self) -> Any:
        """The fitted estimator, loaded from the run's model file the first time it is asked for (blocking: call it
        in a worker thread). A served ONNX graph answers without it; only a saliency map needs it.

        Raises
        ------
        ApiError
            503 when the run's model file no longer loads, or is another model (deleted or replaced since the
            server started).
        """
        with self._loading:
            if self.estimator is None:
                if not Path(self.loaded.path).is_file():  # a folder shipped with model.onnx alone
                    raise ApiError(503, f"cannot explain: {Path(self.loaded.path).parent} holds the model's ONNX "
                                        f"export without its model file ({Path(self.loaded.path).name}), which "
                                        "explaining needs")
                try:
                    again = load_model(self.loaded.path, detector=False)  # the map needs the classifier only
                except DigitlabError as exc:
                    raise ApiError(503, f"cannot explain: {(str(exc).splitlines() or [''])[0]}") from None
                if (again.card.id, again.card.sha256) != (self.loaded.card.id, self.loaded.card.sha256):
                    raise ApiError(503, f"cannot explain: the model in {Path(self.loaded.path).parent} is not the one "
                                        "being served any more (replaced since the server started); restart it")
                self.estimator = again.model
                tune_threads(self.estimator)
                log.info("loaded %s's estimator to explain its answers", self.loaded.id)
            return self.estimator


class ModelChoice:
    """The served model, and the runs chosen by id, loaded on first use and cached (at most :data:`CACHED`).

    Parameters
    ----------
    served : Served
        The model the server was started with: the answer when no model is named.
    onnx : bool, optional
        As for :func:`~digitlab.serve.engine.serving_model`; chosen models never export.
    """

    def __init__(self, served: Served, onnx: bool | None = None) -> None:
        self.served = served
        self.onnx = onnx
        self._cache: OrderedDict[str, Served] = OrderedDict()
        self._lock = threading.Lock()  # guards the cache, briefly
        self._loading = threading.Lock()  # one load at a time: two requests for one new model load it once

    @property
    def cached(self) -> list[str]:
        """Ids of the chosen models held in memory, least recently used first."""
        with self._lock:
            return list(self._cache)

    def pick(self, model_id: str | None) -> Served | None:
        """The model for ``model_id`` when it needs no loading (None or the served id: the served one); else None."""
        if model_id is None or model_id == self.served.loaded.id:
            return self.served
        with self._lock:
            found = self._cache.get(model_id)
            if found is not None and not Path(found.loaded.path).is_file():  # its run was deleted or moved: so is
                del self._cache[model_id]  # the model (one fine-tuned on a student's writing, say), at once
                found = None
            if found is not None:
                self._cache.move_to_end(model_id)
            return found

    def load(self, model_id: str) -> Served:
        """Load the run whose card id is ``model_id`` (blocking: call it in a worker thread) and cache it.

        Raises
        ------
        ApiError
            404 when no run under the runs folder has that id; 422 when its files do not load.
        """
        with self._loading:
            found = self.pick(model_id)
            if found is not None:
                return found
            folders = _folders_of(self.served, model_id)
            if not folders:
                raise ApiError(404, f"no saved model {model_id[:80]!r} under the runs folder; "
                                    "GET /api/models lists the ones to choose")
            chosen, folder = _first_that_loads(folders, model_id, self.served.runs_dir, self.onnx)
            log.info("loaded %s from %s for requests that choose it (%s)", model_id, folder, chosen.engine)
            with self._lock:
                self._cache[model_id] = chosen
                while len(self._cache) > CACHED:
                    self._cache.popitem(last=False)
            return chosen


def tune_threads(model: Any) -> None:
    """One thread per request: requests already run side by side. The PyTorch CNN gets one intra-op thread;
    a scikit-learn model ``n_jobs=1`` wherever it has one (a random forest saved with ``n_jobs=-1`` started a
    pool of threads for each drawing: 43.5 ms a prediction against 12.5 ms, an engineer measured).

    Only the CNN needs torch; for the scikit-learn models torch is never imported.
    """
    if not type(model).__module__.startswith("digitlab.models.cnn"):
        if hasattr(model, "get_params") and hasattr(model, "set_params"):
            jobs = {name: 1 for name, value in model.get_params(deep=True).items()
                    if name.split("__")[-1] == "n_jobs" and value not in (None, 1)}
            if jobs:
                model.set_params(**jobs)
        for fitted in getattr(model, "calibrated_classifiers_", []):  # the fitted copies inside a calibration
            tune_threads(getattr(fitted, "estimator", None))
        return
    import torch  # already imported: loading the CNN needed it

    torch.set_num_threads(1)


def _summary(card: ModelCard, folder: Path, active: bool) -> dict[str, Any]:
    return {
        "id": card.id,
        "model": card.model,
        "dataset": card.dataset,
        "image_shape": list(card.image_shape),
        "pixel_max": card.pixel_max,
        "accuracy": card.accuracy,
        "n_test": (card.accuracy_measured or (None,))[0],  # a fine-tuned run's accuracy is on a few samples
        "ci95": list(card.accuracy_measured[1:]) if card.accuracy_measured else None,
        **_finetuned(card, folder),
        "path": os.fsencode(folder).decode("utf-8", "replace"),  # a folder named in Latin-1 had made the list a 500
        "active": active,
    }


def _finetuned(card: ModelCard, folder: Path) -> dict[str, Any]:
    """A fine-tuned run's figures beside its accuracy on a few held-out samples, which alone read as far worse than
    its base's on MNIST (a teacher: "78% of 59" beside "99.56%"): its base model's on those same samples, and both
    on MNIST's test set after fine-tuning (for a card saved before they were kept, from its run's metrics.json: an
    upgrade audit's older runs showed 86.7% of 30 alone); {} for other runs, or where neither holds them."""
    tuned = card.finetuned_from or {}
    before, mnist = tuned.get("accuracy_before"), tuned.get("mnist_accuracy")
    if tuned and before is None:
        try:
            doc = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            before, mnist = doc["before"]["accuracy"], [row["accuracy"] for row in doc["mnist"]][-2:]
        except (OSError, ValueError, RecursionError, KeyError, TypeError):  # none, damaged: no figures beside it
            pass
    share = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0  # noqa: E731
    if not (share(before) and isinstance(mnist, list) and len(mnist) == 2 and all(map(share, mnist))):
        return {}
    return {"set": str(tuned.get("set", card.dataset)), "accuracy_before": float(before),
            "mnist_accuracy": float(mnist[1])}


def list_models(served: Served) -> list[dict[str, Any]]:
    """The served model first, then every other run folder whose card reads and whose model file is whole (hidden
    staging folders are not runs).

    A run whose card has an id already listed is left out: the same id means the same weights (two runs of one
    recipe and seed, or a copy), and the page's menu would show two entries that cannot be told apart. Choosing that
    id loads the first of its folders that loads (:meth:`ModelChoice.load`), so a damaged copy hides no good one.

    Parameters
    ----------
    served : Served
        The model being served (listed first, ``active``) and the runs folder.

    Returns
    -------
    list of dict
        One summary per model: id, model, dataset, image_shape, pixel_max, accuracy (with n_test and ci95, the
        test images it was measured on and its 95% interval, where recorded), path, active.
    """
    listed, ids = [], set()
    for card, folder, active in _runs(served):
        # a teacher chose a listed run, and was told its model file is missing
        if card.id not in ids and (active or _whole(card, folder, onnx=served.engine == "onnxruntime")):
            ids.add(card.id)
            listed.append(_summary(card, folder, active))
    return listed


def _runs(served: Served) -> Iterator[tuple[ModelCard, Path, bool]]:
    """The served model's card and folder, then every other run folder's whose card reads, newest name first."""
    active, runs = served.loaded, served.runs_dir
    folder = active.path.parent  # shown as the others are when it is one of them: runs/NAME, not /abs/.../runs/NAME
    yield active.card, runs / folder.name if folder.resolve().parent == runs.resolve() else folder, True
    if runs.is_dir():
        for folder in sorted(runs.iterdir(), reverse=True):
            card_path = folder / CARD_NAME
            hidden_or_served = folder.name.startswith(".") or folder.resolve() == active.path.parent.resolve()
            if hidden_or_served or not card_path.is_file():
                continue
            try:
                card = ModelCard.from_file(card_path)
            except DigitlabError:
                continue  # a damaged card is not listed; loading it would refuse it too
            yield card, folder, False


def _whole(card: ModelCard, folder: Path, *, onnx: bool) -> bool:
    """The run's model file is there with its card's checksum (or, shipped without it, its ``model.onnx`` is, when
    ``onnx``: this server answers on ONNX Runtime), and so is the not-a-digit detector its card lists."""
    weights = folder / card.file
    whole = _intact(weights, card.sha256) if weights.exists() else onnx and (folder / "model.onnx").is_file()
    detector = card.not_a_digit
    return whole and (detector is None or _intact(folder / detector.file, detector.sha256))


def _intact(path: Path, sha256: str) -> bool:
    """``path`` is there with this checksum."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return _checksum_matches(path, stat.st_size, stat.st_mtime_ns, sha256)


@functools.lru_cache(maxsize=8192)  # two files a run (model, detector): 512 hashed every file again past 256 runs
def _checksum_matches(path: Path, size: int, mtime_ns: int, sha256: str) -> bool:
    """Hashed once per version of a file (its size and time are in the key): ``/api/models`` is asked often."""
    from digitlab.fileio import sha256_file

    try:
        return sha256_file(path) == sha256
    except OSError:
        return False


def _folders_of(served: Served, model_id: str) -> list[Path]:
    """Every run folder (not the served one) whose card has ``model_id``, in :func:`_runs`' order."""
    return [folder for card, folder, active in _runs(served) if card.id == model_id and not active]


def _first_that_loads(folders: list[Path], model_id: str, runs_dir: Path,
                      onnx: bool | None) -> tuple[Served, Path]:
    """The first of ``folders`` whose model loads, ready to serve (on its ``model.onnx`` alone when it holds a
    reusable one, else on its estimator), and that folder; else 422 with the first one's reason."""
    first: DigitlabError | None = None
    for folder in folders:
        try:
            light = serving_export(folder, onnx=onnx)
            if light is not None:
                return Served(light[0], runs_dir, light[1]), folder
            original = load_model(folder)
        except DigitlabError as exc:
            first = first or exc
            continue
        loaded, engine = serving_model(original, onnx=onnx, export=False)
        tune_threads(original.model)
        return Served(loaded, runs_dir, engine, original.model), folder
    raise ApiError(422, f"model {model_id[:80]!r} cannot be loaded: {first}")
