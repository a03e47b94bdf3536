"""Sweeps: models × parameter grid × seeds (× training-set sizes), each cell one task on Dask.

A sweep is a folder ``<out>/<UTC stamp>-<name>/`` holding ``sweep.json`` (the plan), one small JSON file per
finished cell in ``cells/``, and, once the cells are done, ``results.csv`` and ``sweep.html`` (see
:mod:`digitlab.sweep_report`). Each cell trains one model and evaluates it on the test part; its JSON is written
atomically, so an interrupted sweep leaves only finished cells and the next run with the same folder skips them.

Cells run on a :class:`distributed.Client`: a ``LocalCluster`` of worker processes by default, or an existing
cluster at ``tcp://HOST:PORT``. Tasks carry only the cell's description; each worker loads the dataset from its own
cache once (the 8×8 digits are bundled, MNIST is read from the local cache) and keeps it for later cells. When a
worker has no copy (a cluster on other machines without MNIST or your handwriting set in their cache), and on any
cluster of other machines (a worker may join later without one), the dataset is loaded here and scattered to every
worker once, and the tasks refer to it. Each result is written here too, as it comes back: a worker's own file may
be on another machine's disk. Without ``dask[distributed]``
installed the cells run one after another in this process.

Examples
--------
>>> cells = plan_cells(["logreg", "knn"], {"knn": {"n_neighbors": [1, 3]}}, seeds=[0, 1])
>>> len(cells), cells[0].model, cells[-1].params
(6, 'logreg', {'n_neighbors': 3})
"""

from __future__ import annotations

import contextlib
import gc
import glob
import hashlib
import itertools
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from digitlab.cores import usable_cores
from digitlab.data import DATASETS
from digitlab.errors import DigitlabError
from digitlab.fileio import write_text_atomic
from digitlab.sweep_cluster import as_finished, check_speaks_dask, local_cluster, scatter_to_all, serves_dashboard

__all__ = ["Cell", "SweepPlan", "cell_result", "check_workers", "find_sweep", "have_dask", "plan_cells", "read_cell",
           "run_cell", "run_sweep"]

WORKER_WAIT = 60  # seconds a sweep waits for a cluster's first worker

NO_DASK = ("dask is not installed: running the cells one at a time in this process; "
           "`pip install 'digitlab[cluster]'` (in a clone of digitlab: `make install`) runs them in parallel")


@dataclass(frozen=True)
class Cell:
    """One task of a sweep: a model with its parameters, a seed and a training-set size."""

    model: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    seed: int = 0
    limit: int | None = None

    @property
    def cell_id(self) -> str:
        """A stable 12-character hash of model, parameters, seed and limit (the cell's file name)."""
        text = json.dumps([self.model, sorted((k, repr(v)) for k, v in self.params.items()), self.seed, self.limit])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def config(self) -> str:
        """The configuration this cell belongs to: everything but the seed, e.g. ``svm C=10 limit=500``."""
        parts = [self.model] + [f"{k}={v!r}" for k, v in sorted(self.params.items())]
        return " ".join(parts + ([f"limit={self.limit}"] if self.limit is not None else []))


@dataclass
class SweepPlan:
    """What a sweep runs: the dataset, the cells, the folder they are written to, and whether each cell
    saves its model (under ``models/<cell-id>/``; the report later keeps only the best of each configuration)."""

    dataset: str
    cells: list[Cell]
    folder: Path
    save_models: bool = True

    def done(self) -> set[str]:
        """Ids of the cells whose result file holds a result (:func:`read_cell`)."""
        return {c.cell_id for c in self.cells if read_cell(c, self.folder) is not None}


class SweepStopped(DigitlabError):
    """The sweep stopped before its cells were done (its scheduler went away); the finished cells are kept."""


def read_cell(cell: Cell, folder: Path) -> dict[str, Any] | None:
    """The result in ``folder/cells/<cell-id>.json``, or None where that file is missing or damaged.

    A damaged file (not JSON, not an object, an accuracy that is not a number from 0 to 1) counts as a
    cell not yet done: a rerun computes it again and replaces the file. The cell's own model, parameters,
    seed and limit stand in for what the file says of them.
    """
    try:
        result = json.loads((Path(folder) / "cells" / f"{cell.cell_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not UTF-8, not JSON, nested far too deeply
        return None
    if not isinstance(result, dict):
        return None
    error = result.get("error")
    scores = [result.get(k) for k in ("accuracy", "ci_low", "ci_high")]
    if not (isinstance(error, str) and error or error is None and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in scores)):
        return None
    return {**result, "cell_id": cell.cell_id, "config": cell.config, "model": cell.model, "params": cell.params,
            "seed": cell.seed, "limit": cell.limit}


def plan_cells(models: list[str], grid: dict[str, dict[str, list[Any]]] | None = None,
               seeds: list[int] = (0,), limits: list[int | None] = (None,)) -> list[Cell]:
    """Every combination of model, that model's parameter values, seed and limit, in a stable order.

    Parameters
    ----------
    models : list of str
        Registry names.
    grid : dict, optional
        ``{model: {parameter: [values]}}``; a model absent here runs with its defaults.
    seeds : list of int
        Seeds of the split, the ``limit`` subset and the model.
    limits : list of int or None
        Training-set sizes (``None``: all of it).

    Returns
    -------
    list of Cell
    """
    cells = []
    for model in models:
        axes = (grid or {}).get(model, {})
        names = sorted(axes)
        for values in itertools.product(*(axes[n] for n in names)):
            for limit in limits:
                for seed in seeds:
                    cells.append(Cell(model, dict(zip(names, values)), seed, limit))
    return cells


def have_dask() -> bool:
    """True when ``distributed`` can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=8)
def _dataset(name: str, seed: int, limit: int | None):
    # loaded once per worker process and kept: tasks carry names, never arrays
    from digitlab.data import load_dataset

    return load_dataset(name, seed=seed, limit=limit)


def can_load(dataset: str) -> bool:
    """True when this process can load ``dataset`` from its own cache (run on each worker)."""
    from digitlab.data import load_dataset

    try:
        _dataset(dataset, 0, None) if dataset in DATASETS else load_dataset(dataset)
    except DigitlabError:
        return False
    return True


def _from_shipped(data, cell: Cell):
    """The cell's dataset from a copy scattered by the client: the seed's split, then its ``limit`` subset."""
    from digitlab.data import stratified_subset

    return data if cell.limit is None else stratified_subset(data, cell.limit, seed=cell.seed)


def cell_result(cell: Cell, dataset: str, keep_model: Path | None = None, data: Any = None) -> dict[str, Any]:
    """Train and evaluate one cell on ``dataset`` (a registry name, loaded from this process's cache, unless
    ``data``, the dataset as split for ``cell.seed``, was scattered by the client); save the model into
    ``keep_model`` if given. Returns the JSON-ready result: the cell, accuracy and its interval, errors, timings,
    the process id; a failure becomes ``{"error": "..."}`` in it, not an exception."""
    result: dict[str, Any] = {"cell_id": cell.cell_id, "config": cell.config, "model": cell.model,
                              "params": cell.params, "seed": cell.seed, "limit": cell.limit, "dataset": dataset,
                              "pid": os.getpid(), "host": socket.gethostname()}  # where its model is kept
    import warnings

    caught: list[warnings.WarningMessage] = []
    try:
        from digitlab.evaluate import evaluate_on_test
        from digitlab.train import train

        data = _cell_data(cell, dataset, data)
        with warnings.catch_warnings(record=True) as caught:  # kept in the result, not printed by each worker
            warnings.simplefilter("always")
            fitted = train(cell.model, data, seed=cell.seed, params=cell.params)
            _, metrics = evaluate_on_test(fitted.model, data)
        history = getattr(fitted.model, "history_", None)  # a CNN's: how much training its time budget bought
        result.update(accuracy=metrics.accuracy, ci_low=metrics.ci_low, ci_high=metrics.ci_high,
                      n_errors=metrics.n_errors, n_test=metrics.n_test, n_train=data.n_train,
                      train_seconds=round(fitted.train_seconds, 4), error=None,
                      epochs=round(sum(h.get("share", 1.0) for h in history), 3) if history else None)
        if keep_model is not None:
            _keep(fitted, data, metrics, keep_model, result)
    except Exception as exc:  # noqa: BLE001 - one bad cell must not stop the sweep
        result.update(accuracy=None, error=f"{type(exc).__name__}: {exc}" if not isinstance(exc, DigitlabError)
                      else str(exc))
    result["warnings"] = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
                                            for w in caught))[:5]
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def _keep(fitted: Any, data: Any, metrics: Any, folder: Path, result: dict[str, Any]) -> None:
    """Save the cell's model into ``folder``; where this worker cannot (no such folder on its machine, no right to
    write there), the result stands and says so (a reviewer: every cell of such a worker was counted as failed)."""
    from digitlab.fileio import atomic_folder
    from digitlab.store import save_model

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if not folder.exists():
            with atomic_folder(folder) as staged:
                save_model(fitted, data, staged.path, metrics=metrics.for_card())
    except OSError as exc:
        result["model_not_kept"] = f"{folder} on {result['host']}: {exc.strerror or exc}"


def _cell_data(cell: Cell, dataset: str, data: Any) -> Any:
    """The cell's dataset: the one shipped by the client, else this process's cached copy."""
    if data is not None:
        return _from_shipped(data, cell)
    if dataset in DATASETS:
        return _dataset(dataset, cell.seed, cell.limit)
    from digitlab.data import load_dataset  # a handwriting set can grow between sweeps on a long-lived cluster

    return load_dataset(dataset, seed=cell.seed, limit=cell.limit)


def run_cell(cell: Cell, dataset: str, folder: str, keep_models: bool = True, data: Any = None, *,
             here: bool = True) -> dict[str, Any]:
    """The task sent to a worker: compute one cell and write ``cells/<cell-id>.json`` atomically.

    Parameters
    ----------
    cell : Cell
    dataset : str
    folder : str
        The sweep folder, as a path the worker can write to (shared by all workers).
    keep_models : bool
        Save the fitted model under ``models/<cell-id>/``.
    data : Dataset, optional
        See :func:`cell_result`.
    here : bool
        False on a Dask worker, whose client writes the result too: a worker that cannot write the file (the folder
        not on its machine, or not its to write) still returns the result.

    Returns
    -------
    dict
        The result written to the cell's file.
    """
    folder = Path(folder)
    result = cell_result(cell, dataset, folder / "models" / cell.cell_id if keep_models else None, data)
    try:
        (folder / "cells").mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / "cells" / f"{cell.cell_id}.json", json.dumps(result, indent=1) + "\n")
    except OSError:
        if here:
            raise
    return result


def find_sweep(out: Path, name: str) -> Path | None:
    """The newest sweep folder ``<out>/<stamp>-<name>``, or None."""
    found = sorted(p for p in Path(out).glob(f"*-{glob.escape(name)}") if (p / "sweep.json").is_file()
                   and p.name.split("-", 1) == [p.name.split("-", 1)[0], name] and p.name[:8].isdigit())
    return found[-1] if found else None


def check_workers(workers: int | None, scheduler: str = "local") -> None:
    """Over 4 local workers a usable core (8 at least) compete for them: one line (100000 grew on, silently)."""
    if scheduler == "local" and workers is not None and workers > (most := max(8, 4 * (cores := usable_cores()))):
        raise DigitlabError(f"workers {workers:,}: more than {most} local workers only compete for the {cores} "
                            "core(s) this process may use: give fewer, or start them elsewhere (--scheduler)")


def run_sweep(plan: SweepPlan, *, scheduler: str = "local", workers: int | None = None,
              say: Callable[[str], None] = print, advance: Callable[[int], None] = lambda _: None) -> dict[str, Any]:
    """Run the cells of ``plan`` not yet done, on Dask when installed, else one by one here.

    Parameters
    ----------
    plan : SweepPlan
    scheduler : str
        ``"local"`` for a new ``LocalCluster``, or a scheduler address such as ``tcp://host:8786``.
    workers : int, optional
        Worker processes of the local cluster (default: one per core; at most :func:`check_workers`').
    say : callable
        Receives one-line messages (the dashboard address, the wait for a first worker, the serial fallback).
    advance : callable
        Called with 1 as each cell finishes (for a progress bar).

    Returns
    -------
    dict
        ``{"ran": n, "skipped": n, "mode": "dask" | "serial" | "none"}``.
    """
    check_workers(workers, scheduler)
    done = plan.done()
    todo = [c for c in plan.cells if c.cell_id not in done]
    (plan.folder / "cells").mkdir(parents=True, exist_ok=True)
    summary = {"ran": len(todo), "skipped": len(done), "mode": "none"}
    if not todo:
        return summary
    keep = plan.save_models
    if not have_dask():
        if scheduler != "local":
            raise DigitlabError(f"--scheduler {scheduler} needs dask; `pip install 'digitlab[cluster]'`")
        say(NO_DASK)
        summary["mode"] = "serial"
        for cell in todo:
            run_cell(cell, plan.dataset, str(plan.folder), keep)
            advance(1)
        return summary
    summary["mode"] = "dask"
    _run_on_dask(plan, todo, scheduler, workers, say, advance, keep)
    return summary


def _run_on_dask(plan: SweepPlan, todo: list[Cell], scheduler: str, workers: int | None,
                 say: Callable[[str], None], advance: Callable[[int], None], keep: bool) -> None:
    from distributed import Client

    # Dask's config gives the client a level of its own; tornado logs a result's fetch cut off by a lost scheduler
    for name in ("distributed", "distributed.client", "tornado.application"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # what goes wrong is said here, in one line
    cluster = None
    try:
        if scheduler == "local":
            cluster = local_cluster(workers or os.cpu_count() or 1)
            client = Client(cluster)
        else:
            check_speaks_dask(scheduler)  # a dashboard's port answers nothing: the client had waited for ever
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise DigitlabError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        link = getattr(client, "dashboard_link", None)
        if link and serves_dashboard(link):  # made from a template: a scheduler may serve none
            say(f"Dask dashboard: {link}")
        said: set[str] = set()  # each line once, however often the data is sent again
        once = lambda line: None if line in said else (said.add(line), say(line))  # noqa: E731
        for attempt in range(3):  # a cell lost with a worker that held the only copy of its data is sent again
            todo = _gather(client, plan, todo, _ship_if_needed(client, plan.dataset, todo, once, scheduler), keep,
                           advance, attempt)
            if not todo or client.status != "running":
                break
        if todo:
            where = "" if scheduler == "local" else f" at {scheduler}"
            raise SweepStopped(f"the Dask scheduler{where} went away before the cells were done"
                               if client.status != "running" else "Dask lost cells with the workers that held them")
        # our own idle workers exit without the garbage collector's passes over PyTorch's objects (0.2 s, not 1.2 s)
        if cluster is not None:
            with contextlib.suppress(Exception):
                client.run(gc.freeze)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _gather(client, plan: SweepPlan, todo: list[Cell], shipped: dict[int | None, Any], keep: bool,
            advance: Callable[[int], None], attempt: int = 0) -> list[Cell]:
    """Submit ``todo``, write each result here as it comes (a worker's own file may be on another machine's disk),
    and return the cells lost with their worker or scheduler. Each future is let go once written: Dask would
    compute a finished cell again when the worker holding its result dies."""
    futures = {client.submit(run_cell, cell, plan.dataset, str(plan.folder.resolve()), keep,
                             shipped.get(_split_key(plan.dataset, cell.seed)), here=False,
                             key=f"cell-{cell.cell_id}" + f"-again-{attempt}" * (attempt > 0),  # not the lost one
                             retries=2, pure=False): cell for cell in todo}
    lost: list[Cell] = []
    try:
        # the results fetched on the client's own loop: Future.result() here, as a worker died, once raised "Event
        # bound to a different event loop" for a cell that had finished
        for future, outcome in as_finished(client, list(futures)):
            cell = futures.pop(future)
            if isinstance(outcome, dict):
                result = outcome
            elif future.status == "error":  # the task itself failed (a worker died too often): (type, error, trace)
                result = {"cell_id": cell.cell_id, "config": cell.config, "model": cell.model, "params": cell.params,
                          "seed": cell.seed, "limit": cell.limit, "dataset": plan.dataset, "accuracy": None,
                          "error": repr(outcome[1])}
            else:  # cancelled: its scheduler, or its data's worker, went away
                lost.append(cell)  # not counted as done: "6 of 6 done" had stood above "2 of 6 are done" (an engineer)
                continue
            write_text_atomic(plan.folder / "cells" / f"{cell.cell_id}.json", json.dumps(result, indent=1) + "\n")
            future.release()
            advance(1)
    except BaseException:
        client.cancel(list(futures))
        raise
    return lost + list(futures.values())  # those not finished when the scheduler went away


def _split_key(dataset: str, seed: int) -> int | None:
    """Seeds that give the same split share one copy: every seed for an official split."""
    from digitlab.data import DATASETS

    return None if dataset in DATASETS and DATASETS[dataset].official_split else seed


def _ship_if_needed(client, dataset: str, todo: list[Cell], say: Callable[[str], None],
                    scheduler: str = "local") -> dict[int | None, Any]:
    """Scatter the dataset to every worker once (one copy per distinct split) unless all can load it themselves
    from this machine's cache (our own local cluster): a worker that joins a remote cluster later may have no copy,
    and fetches the scattered one from the others."""
    from digitlab.data import load_dataset

    if not client.scheduler_info().get("workers"):  # said before the wait: a log showed 60 s of nothing
        say(f"waiting for the Dask cluster's first worker (up to {WORKER_WAIT} s)")
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except TimeoutError:  # stopped: the cells done are kept, and the resume line said (every worker lost midway)
        raise SweepStopped(f"the Dask cluster has no workers (none joined in {WORKER_WAIT} s); start some with "
                           f"`dask worker {'tcp://SCHEDULER:8786' if scheduler == 'local' else scheduler}`") from None
    able = client.run(can_load, dataset)  # {worker address: bool}, run once on each worker
    # our own local cluster shares this cache; a remote one's later workers need the copy sent, if there is one here
    if all(able.values()) and (scheduler == "local" or not can_load(dataset)):
        return {}
    if not all(able.values()):
        say(f"{sum(not ok for ok in able.values())} of {len(able)} Dask workers have no copy of {dataset}: "
            "sending it to the cluster once")
    shipped: dict[int | None, Any] = {}
    for seed in sorted({cell.seed for cell in todo}):
        key = _split_key(dataset, seed)
        if key not in shipped:
            shipped[key] = scatter_to_all(client, load_dataset(dataset, seed=seed), SweepStopped)
    return shipped
