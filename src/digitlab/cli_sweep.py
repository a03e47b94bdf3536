"""``digitlab sweep``: models × parameter grid × seeds (× training-set sizes), on Dask when installed.

The main CLI registers :func:`sweep` as a command and turns a :class:`~digitlab.errors.DigitlabError`
into one line and exit code 2. The heavy imports stay inside the command.

A sweep can also be written down once, in a TOML file (``--file``), with the options' names as keys::

    dataset = "digits"
    models = ["logreg", "svm"]
    seeds = [0, 1, 2, 3, 4]
    limit = [500, 1000]            # optional: training-set sizes
    name = "svm-c"
    [params]
    "svm.C" = [1, 10]
    "mlp.hidden_layer_sizes" = [[64], [128, 64]]   # lists are tuples

Options given on the command line win over the file.

Examples
--------
>>> parse_grid(["svm.C=1,10", "mlp.hidden_layer_sizes=(64,),(128, 64)"], ["svm", "mlp"])
{'svm': {'C': [1, 10]}, 'mlp': {'hidden_layer_sizes': [(64,), (128, 64)]}}
>>> options_from_toml('models = ["logreg", "svm"]', "s.toml"), options_from_toml('params = {"svm.C" = [1, 10]}', "s.toml")
({'models': 'logreg,svm'}, {'param': ['svm.C=1,10']})
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

from digitlab import terminal
from digitlab.errors import DigitlabError
from digitlab.fileio import read_regular


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and quotes: ``"(1, 2),3"`` → ``["(1, 2)", "3"]``."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_grid(pairs: list[str], models: list[str]) -> dict[str, dict[str, list[Any]]]:
    """Parse ``MODEL.NAME=V1,V2`` options into ``{model: {name: [values]}}``; values as in ``compare``.

    Parameters
    ----------
    pairs : list of str
        The ``--param`` options; a name given twice gets the values of both.
    models : list of str
        The swept models; every ``MODEL`` must be one of them.
    """
    from digitlab.models import parse_params

    grid: dict[str, dict[str, list[Any]]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        model, dot, name = key.strip().partition(".")
        if not sep or not dot or not name or model not in models:
            raise DigitlabError(f"--param {pair!r}: write MODEL.NAME=V1,V2 with MODEL one of {', '.join(models)}")
        values = [parse_params([f"{name}={piece}"])[name] for piece in _split_top(raw)]
        if not values:
            raise DigitlabError(f"--param {pair!r} has no values")
        grid.setdefault(model, {}).setdefault(name, []).extend(v for v in values
                                                                if v not in grid[model].get(name, []))
    return grid


def _ints(text: str | None, option: str, minimum: int, maximum: int | None = None) -> list[int]:
    try:
        values = [int(p) for p in (text or "").split(",") if p.strip()]
    except ValueError:
        raise DigitlabError(f"{option} expects whole numbers separated by commas, got {text!r}") from None
    if any(v < minimum or (maximum is not None and v > maximum) for v in values) or (text is not None and not values):
        bounds = f"≥ {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise DigitlabError(f"{option} expects whole numbers {bounds} separated by commas, got {text!r}")
    if again := ", ".join(map(str, sorted({v for v in values if values.count(v) > 1}))):  # a cell runs once
        raise DigitlabError(f"{option} {text!r} gives {again} more than once; give each value once")
    return values


FILE_KEYS = {"dataset": str, "models": (str, list), "seeds": (str, list), "limit": (str, list, int),
             "params": dict, "out": str, "name": str, "scheduler": str, "workers": int, "keep_models": bool}


def options_from_toml(text: str, where: str) -> dict[str, Any]:
    """A sweep file's settings as the values the command-line options would hold; one line for anything wrong."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DigitlabError(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:
        raise DigitlabError(f"{where}: not a sweep file (arrays or tables nested far too deeply)") from None
    options: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in FILE_KEYS:
            raise DigitlabError(f"{where}: unknown setting {key!r}; the settings are: {', '.join(FILE_KEYS)}")
        if isinstance(value, bool) != (FILE_KEYS[key] is bool) or not isinstance(value, FILE_KEYS[key]):
            raise DigitlabError(f"{where}: {key} has the wrong type ({type(value).__name__})")
        if key == "workers" and value < 1:
            raise DigitlabError(f"{where}: workers must be at least 1, got {value}")
        if key in ("seeds", "limit") and isinstance(value, list) and not all(type(v) is int for v in value):
            raise DigitlabError(f"{where}: {key} must be whole numbers, got {value!r}")  # ("0,1,2" is read as given)
        if key == "params":  # "svm.C" = [1, 10], or svm.C = [1, 10], which TOML reads as the table svm = {C = [1, 10]}
            flat = {}
            for name, vs in value.items():
                for k, v in (vs.items() if isinstance(vs, dict) else [(None, vs)]):
                    flat[name if k is None else f"{name}.{k}"] = v
            options["param"] = [f"{name}={','.join(_literal(v) for v in (vs if isinstance(vs, list) else [vs]))}"
                                for name, vs in flat.items()]
        elif isinstance(value, list):
            options[key] = ",".join(str(v) for v in value)
        else:
            options[key] = Path(value) if key == "out" else str(value) if key == "limit" else value
    return options


def _literal(value: Any) -> str:
    """A TOML value written as the Python literal ``--param`` would parse (arrays become tuples)."""
    return repr(tuple(value)) if isinstance(value, list) else repr(value)


def sweep(
    ctx: typer.Context,
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="A TOML file holding the sweep's settings "
                                                                   "(the options' names as keys); options given here win."),
    dataset: str = typer.Option("digits", "--dataset", "-d", help="Dataset name: digits (bundled 8x8), mnist, or a handwriting set."),
    models: str = typer.Option("logreg,knn", "--models", "-m", help="Comma-separated model names."),
    seeds: str = typer.Option("0,1,2,3,4", "--seeds", help="Comma-separated seeds (split, subset and model)."),
    param: Optional[List[str]] = typer.Option(
        None, "--param", "-p", metavar="MODEL.NAME=V1,V2", help="One model's values to sweep, e.g. svm.C=1,10."),
    limit: Optional[str] = typer.Option(None, "--limit", help="Comma-separated training-set sizes (learning curve)."),
    out: Path = typer.Option(Path("sweeps"), "--out", "-o", help="Folder that receives the sweep folder."),
    name: Optional[str] = typer.Option(
        None, "--name", help="Sweep name; given, rerunning resumes the newest <out>/<stamp>-NAME "
                    "(default: DATASET-sweep, a new folder each time)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="A sweep folder to finish as it was planned (its "
                                                                 "sweep.json): done cells are skipped."),
    scheduler: str = typer.Option("local", "--scheduler", help="local (a LocalCluster) or tcp://HOST:PORT."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes of the local cluster "
                                                                         "(default: one per core)."),
    keep_models: bool = typer.Option(False, "--keep-models", help="Keep every cell's model, not just the best "
                                                                  "of each configuration."),
) -> None:
    """Train every model × parameter value × seed (× --limit size) as tasks on Dask; summarize over seeds.

    Writes cells/<id>.json per cell, results.csv and sweep.html; rerun with the same --name (or --resume DIR)
    to finish an interrupted sweep: done cells are skipped; a rerun that asks for other models, values, seeds or
    sizes is refused, so the sweep's results stay whole. Exits 1 when a cell failed (its error is listed;
    delete its file in cells/ and rerun to try it again).
    """
    from digitlab.terminal import escape

    from digitlab.cli import console, err_console
    from digitlab.sweep import SweepPlan, check_workers
    from digitlab.sweep_report import budget_notes, limit_notes, load_results, prune_models, summarize, write_report

    s = _settings(ctx, file, resume, dict(dataset=dataset, models=models, seeds=seeds, param=param, limit=limit, out=out,
                                          name=name, scheduler=scheduler, workers=workers, keep_models=keep_models))
    dataset, models, seeds, param, limit = s["dataset"], s["models"], s["seeds"], s["param"], s["limit"]
    out, name, scheduler, workers, keep_models = s["out"], s["name"], s["scheduler"], s["workers"], s["keep_models"]
    check_workers(workers, scheduler)  # before a folder is made
    names, grid, cells, seed_list, limits = _plan(dataset, models, seeds, param, limit, scheduler)
    had = {p.name for p in out.iterdir()} if out.is_dir() else set()
    folder = _sweep_folder(_plan_doc(dataset, names, grid, seed_list, limits, cells, keep_models), out, name, resume)
    keep_models = keep_models or _read_sweep_json(folder).get("keep_models") is True  # as it began: never pruned
    plan = SweepPlan(dataset, cells, folder)
    with _only_sweep_in(folder), _kept_if_begun(plan, folder.name not in had and resume is None, scheduler):
        summary = _run_with_progress(plan, scheduler, workers)

    summaries = summarize(rows := load_results(folder, cells))
    paths = write_report(folder, dataset, rows, summaries)
    if not keep_models:
        prune_models(folder, summaries)
    _print_table(dataset, len(cells), summary, summaries, rows)
    for note in limit_notes(rows) + budget_notes(rows):
        err_console.print(f"note: {escape(note)}", soft_wrap=True)
    console.print(f"Results: {escape(str(paths['csv']))}")
    console.print(f"Sweep page: {escape(str(paths['html']))}")
    if any(r.get("error") for r in rows):
        raise typer.Exit(1)  # as predict does: every cell reported, and a script sees that some failed


def _run_with_progress(plan, scheduler: str, workers: int | None) -> dict[str, Any]:
    """:func:`~digitlab.sweep.run_sweep` under a progress bar over the cells."""
    from digitlab.terminal import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from digitlab.cli import err_console
    from digitlab.sweep import run_sweep

    if not err_console.is_terminal:  # a log: a line a twentieth of the way (a bar is drawn on a terminal only)
        return run_sweep(plan, scheduler=scheduler, workers=workers, say=lambda text: err_console.print(
            escape(text), soft_wrap=True), advance=terminal.count_lines(err_console, "cells", len(plan.cells),
                                                                         len(plan.done())))
    with Progress(TextColumn("[bold]cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("cells", total=len(plan.cells), completed=len(plan.done()))
        return run_sweep(plan, scheduler=scheduler, workers=workers,
                         say=lambda text: progress.console.print(escape(text), soft_wrap=True),
                         advance=lambda n: progress.advance(task, n))


@contextlib.contextmanager
def _only_sweep_in(folder: Path) -> Iterator[None]:
    """Hold the sweep folder's lock while its cells run: a second command for the same sweep (the same --name, or
    --resume) is refused in one line instead of training every cell again beside it."""
    import fcntl

    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DigitlabError(f"another `digitlab sweep` is running {folder}; wait for it to finish (its results "
                                "will be there), or give another --name") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def _kept_if_begun(plan, new: bool, scheduler: str = "local") -> Iterator[None]:
    """A stopped sweep keeps its done cells and says how to finish, on its cluster; an empty new one goes."""
    import shutil

    from digitlab.sweep import SweepStopped

    try:
        yield
    except BaseException as exc:
        done, where = len(plan.done()), "" if scheduler == "local" else f" --scheduler {scheduler}"
        kept, rest = f"{done} of {len(plan.cells)} cells are done and kept", \
            f"`digitlab sweep --resume {plan.folder}{where}` runs the rest"
        if new and not done:
            shutil.rmtree(plan.folder, ignore_errors=True)
            if isinstance(exc, SweepStopped):
                raise DigitlabError(f"{exc}; none finished, so nothing was kept: run the same command again") from None
        elif isinstance(exc, SweepStopped):
            raise DigitlabError(f"{exc}; {kept}: {rest}") from None
        elif isinstance(exc, KeyboardInterrupt):  # one line, "interrupted: ..." (digitlab.cli)
            raise type(exc)(f"{kept}; {rest}") from None  # Ctrl-C, or SIGTERM (terminal.Terminated)
        raise


def _settings(ctx: typer.Context, file: Path | None, resume: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    """The options as the command line gives them, then a --file's where the command line is silent; with --resume,
    the sweep's own plan (sweep.json) for whatever neither says."""
    from_file = _file_settings(ctx, file) if file is not None else {}
    given = set(from_file) | {key for key in options
                              if getattr(ctx.get_parameter_source(key), "name", "") == "COMMANDLINE"}
    saved = _saved_options(resume) if resume is not None else {}
    settings = {**options, **{key: value for key, value in saved.items() if key not in given}, **from_file}
    if "param" not in given and "models" in given and saved:  # the saved values of the models asked for
        models = {m.strip() for m in settings["models"].split(",")}
        settings["param"] = [pair for pair in saved["param"] if pair.partition(".")[0] in models]
    return settings


def _file_settings(ctx: typer.Context, file: Path) -> dict[str, Any]:
    """The sweep file's settings, less those the command line gave (options given there win)."""
    try:
        text = read_regular(Path(file), 2**20).decode("utf-8")  # a pipe would wait, /dev/zero would never end
    except (OSError, UnicodeDecodeError) as exc:
        raise DigitlabError(f"--file {file}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    return {key: value for key, value in options_from_toml(text, str(file)).items()
            if getattr(ctx.get_parameter_source(key), "name", "") != "COMMANDLINE"}


def _plan(dataset: str, models: str, seeds: str, param: list[str] | None, limit: str | None, scheduler: str):
    """The options checked and turned into the cells to run; one clear line for anything wrong."""
    from digitlab.data import DATASETS, MAX_SEED
    from digitlab.models import make_model
    from digitlab.sweep import plan_cells

    names = list(dict.fromkeys(n.strip() for n in models.split(",") if n.strip()))
    if not names:
        raise DigitlabError("--models is empty; give names such as logreg,knn,svm")
    if dataset not in DATASETS:
        from digitlab.data.handwriting import list_sets

        if dataset not in list_sets():
            mine = f"; your handwriting sets: {', '.join(list_sets())}" if list_sets() else ""
            raise DigitlabError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}{mine}")
    if not (scheduler == "local" or scheduler.startswith(("tcp://", "tls://", "ucx://", "inproc://"))):
        raise DigitlabError(f"--scheduler expects local or tcp://HOST:PORT, got {scheduler!r}")
    seed_list = _ints(seeds, "--seeds", 0, MAX_SEED)  # as run and compare check --seed
    least = 10 if dataset in DATASETS else 1  # one training image of every digit, as run's --limit asks
    limits: list[int | None] = _ints(limit, "--limit", least) if limit is not None else [None]
    grid = parse_grid(param or [], names)
    for model in names:  # unknown models and parameter names fail now, in one line; bad values fail in their cell
        make_model(model, dataset=dataset, params={k: v[0] for k, v in grid.get(model, {}).items()})
    return names, grid, plan_cells(names, grid, seed_list, limits), seed_list, limits


PLAN_KEYS = ("dataset", "models", "grid", "seeds", "limits")  # sweep.json's record of them


def _plan_doc(dataset: str, names: list[str], grid: dict, seed_list: list[int], limits: list, cells: list,
              keep_models: bool) -> dict:
    """What sweep.json records: the plan (values as their Python literals), its cells, and whether every cell keeps
    its model (a rerun without --keep-models then still deletes none)."""
    return {"dataset": dataset, "models": names,
            "grid": {m: {k: [repr(v) for v in vs] for k, vs in g.items()} for m, g in grid.items()},
            "seeds": seed_list, "limits": limits, "cells": [c.cell_id for c in cells], "keep_models": keep_models}


def _saved_options(folder: Path) -> dict[str, Any]:
    """The options that plan a saved sweep again (:data:`PLAN_OPTIONS`), from its sweep.json."""
    if not (folder / "sweep.json").is_file():
        raise DigitlabError(f"--resume {folder}: not a sweep folder (no sweep.json)")
    doc = _read_sweep_json(folder)
    try:
        grid = [f"{m}.{k}={','.join(vs)}" for m, g in doc["grid"].items() for k, vs in g.items()]
        limits = None if doc["limits"] == [None] else ",".join(str(n) for n in doc["limits"])
        return {"dataset": doc["dataset"], "models": ",".join(doc["models"]),
                "seeds": ",".join(str(n) for n in doc["seeds"]), "param": grid, "limit": limits}
    except (KeyError, TypeError, AttributeError):
        raise DigitlabError(f"cannot resume {folder}: its sweep.json is not a sweep's; "
                            "move the folder away to start a new sweep") from None


def _sweep_folder(plan: dict, out: Path, name: str | None, resume: Path | None, waited: int = 0) -> Path:
    """The folder to (re)use: --resume, the newest one of --name, or a new one with its sweep.json. An existing
    sweep is finished only as planned (other models, values, seeds or sizes: one line), its cells left as they are."""
    import itertools
    import json
    import time

    from digitlab.fileio import write_text_atomic
    from digitlab.runs import check_writable, now_utc, run_stamp
    from digitlab.sweep import find_sweep

    sweep_name = name or f"{plan['dataset']}-sweep"
    if any(ch in sweep_name for ch in "/\\") or sweep_name.startswith("."):
        raise DigitlabError(f"--name must be a plain folder name, got {sweep_name!r}")
    if waited:  # another command of this --name made its folder this second and is writing its sweep.json
        if waited > 50:
            raise DigitlabError(f"a sweep folder for --name {name} exists in {out} without its sweep.json; "
                                "move it away and run again")
        time.sleep(0.1)
    folder = resume if resume is not None else (find_sweep(out, sweep_name) if name else None)
    if resume is not None and not (resume / "sweep.json").is_file():
        raise DigitlabError(f"--resume {resume}: not a sweep folder (no sweep.json)")
    if folder is not None:
        previous = _read_sweep_json(folder)
        changed = [key for key in PLAN_KEYS if _unordered(previous.get(key)) != _unordered(plan[key])]
        if changed:
            asked = "; ".join(f"{key} {_shown(previous.get(key))} (this command: {_shown(plan[key])})"
                              for key in changed)
            rerun = f"`digitlab sweep --resume {folder}` finishes it as planned"
            raise DigitlabError(f"{folder} is a sweep of other settings: {asked}; {rerun}, "
                                f"or give another --name{'' if resume is None else ' without --resume'} to start a new one")
        return folder
    check_writable(out)
    stamp = run_stamp(now_utc())
    for attempt in itertools.count(1):  # sweeps started in the same second: the next free name
        folder = out / f"{stamp}-{sweep_name}{'' if attempt == 1 else f'-{attempt}'}"
        try:
            folder.mkdir(parents=True)
            break
        except FileExistsError:
            if name:  # the same --name started at once: one sweep, in one folder
                return _sweep_folder(plan, out, name, resume, waited=waited + 1)
    try:
        write_text_atomic(folder / "sweep.json", json.dumps(plan, indent=1) + "\n")
    except BaseException:  # a full disk: no empty folder left at each try (an audit), which --resume would refuse
        folder.rmdir()
        raise
    return folder


def _unordered(value: Any) -> Any:
    """A plan value with its lists as sets: the same models, seeds, sizes or values in another order: same cells."""
    if isinstance(value, dict):
        return {k: _unordered(v) for k, v in value.items()}
    if isinstance(value, list):
        return frozenset(repr(v) for v in value)
    return value


def _shown(value: Any) -> str:
    """A sweep.json value as the command line writes it: ``logreg,knn``, ``0,1,2``, ``svm.C=1,10``."""
    if isinstance(value, dict):
        return " ".join(f"{m}.{k}={','.join(vs)}" for m, g in value.items() for k, vs in g.items()) or "none"
    if isinstance(value, list):
        return ",".join("all" if v is None else str(v) for v in value)
    return repr(value)


def _read_sweep_json(folder: Path) -> dict[str, Any]:
    """The sweep.json of a sweep to resume; one line if it is damaged (the cells' own files are not touched)."""
    import json

    try:
        doc = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested far too deeply
        raise DigitlabError(f"cannot resume {folder}: its sweep.json is damaged ({getattr(exc, 'strerror', None) or exc}); "
                            "move the folder away to start a new sweep") from None
    if not isinstance(doc, dict):
        raise DigitlabError(f"cannot resume {folder}: its sweep.json is not a sweep's; "
                            "move the folder away to start a new sweep")
    return doc


def _print_table(dataset: str, n_cells: int, summary: dict, summaries: list, rows: list) -> None:
    """Mean ± sd and the 95% interval per configuration, the best starred; then each failed cell."""
    import math

    from digitlab.terminal import escape
    from rich.table import Column, Table

    from digitlab.cli import console, err_console
    from digitlab.sweep_report import CLIPPED, star_note

    numbers = [Column(head, no_wrap=True) for head in ("mean", "± sd", "95% interval", "n", "failed")]
    table = Table("", Column("configuration", overflow="fold"), *numbers,  # a narrow terminal wraps the names
                  title=f"Sweep on {dataset}: {n_cells} cells ({summary['ran']} run, {summary['skipped']} resumed)",
                  title_justify="left", caption=star_note(summaries), caption_justify="left")
    for s in summaries:
        spread = "—" if math.isnan(s.sd) else f"{s.sd:.2%}"
        interval = "—" if math.isnan(s.ci_low) else s.interval(" – ")
        table.add_row("★" if s.best else "", escape(s.config), f"{s.mean:.2%}" if s.n else "—", spread, interval,
                      str(s.n), str(s.n_failed) if s.n_failed else "", style="bold green" if s.best else None)
    console.print(table)
    if any(s.clipped for s in summaries):
        console.print(escape(CLIPPED), soft_wrap=True)
    for r in rows:
        if r.get("error"):
            err_console.print(f"[red]failed:[/] {escape(r['config'])} seed {r['seed']}: {escape(str(r['error']))} "
                              f"(to try it again, delete cells/{r['cell_id']}.json and rerun)", soft_wrap=True)
