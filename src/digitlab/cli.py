"""The command line: parses, calls the library, prints. No logic of its own.

Every error a person can cause is a :class:`~digitlab.errors.DigitlabError`; :func:`main`
prints it as one line and exits with code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from digitlab import terminal
from digitlab.terminal import escape
from digitlab.errors import DigitlabError, describe_os_error

app = typer.Typer(
    help="digitlab: train, evaluate, explain and serve handwritten-digit classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console, err_console = terminal.console(), terminal.console(stderr=True)

DatasetOpt = typer.Option("digits", "--dataset", "-d", help="Dataset name: digits (bundled 8x8) or mnist.")
ModelOpt = typer.Option("logreg", "--model", "-m", help="Model name from the zoo (see `digitlab models`).")
SeedOpt = typer.Option(42, "--seed", help="Seed for the split and the model; same seed, same numbers (a CNN's: with "
                                           "no --time-budget and OMP_NUM_THREADS set, see the README).")
ParamOpt = typer.Option(None, "--param", "-p", metavar="NAME=VALUE", help="A model parameter, e.g. C=10 (repeatable).")
LimitOpt = typer.Option(None, "--limit", min=1, help="N stratified training images (above 10,000, a tenth calibrates).")


def _status(message: str, lines: bool = True):
    return terminal.spinner(console, message, lines)


def _training_options(model: str, **options) -> dict:
    """Turn --device / --time-budget / --target-accuracy into model parameters, for models that have them."""
    from digitlab.models import make_model

    given = {name: value for name, value in options.items() if value is not None}
    accepted = make_model(model).get_params()
    unsupported = [name for name in given if name not in accepted]
    if unsupported:
        flags = ", ".join("--" + name.replace("_", "-") for name in unsupported)
        raise DigitlabError(f"{flags} applies to the cnn model only, not {model!r}")
    if "target_accuracy" in given and "validation_fraction" in accepted:
        given.setdefault("validation_fraction", 0.1)
    if "verbose" in accepted and sys.stdout.isatty():
        given["verbose"] = True
    return given


def _own_convergence_notes(names: list[str]) -> None:
    """Leave out scikit-learn's ConvergenceWarning, one per fit (the model's and each calibration fold's) with a path
    into scikit-learn: the command says in one line when the model's solver stopped at its limit. Only for models
    in the zoo, so that a mistyped name is still refused without importing scikit-learn."""
    import warnings

    from digitlab.models import MODELS

    if all(name in MODELS for name in names):
        from sklearn.exceptions import ConvergenceWarning

        warnings.filterwarnings("ignore", category=ConvergenceWarning)


@app.command()
def run(
    dataset: str = DatasetOpt,
    model: str = ModelOpt,
    seed: int = SeedOpt,
    test_size: Optional[float] = typer.Option(
        None, "--test-size", help="Fraction held out for testing (digits only; default 0.2)."),
    limit: Optional[int] = LimitOpt,
    validation: Optional[float] = typer.Option(
        None, "--validation", help="Carve this fraction of the training images out as a validation split."),
    param: Optional[List[str]] = ParamOpt,
    device: Optional[str] = typer.Option(None, "--device", help="cnn: auto, cpu or cuda."),
    time_budget: Optional[float] = typer.Option(
        None, "--time-budget", parser=terminal.number(0.1), metavar="<seconds>",
        help="cnn: seconds of training (at least 0.1); the schedule is fitted to them. On MNIST it also picks the "
             "recipe measured best for them."),
    target_accuracy: Optional[float] = typer.Option(
        None, "--target-accuracy", parser=terminal.number(0, 1), metavar="<0..1>",
        help="cnn: stop once validation accuracy reaches this."),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Folder that receives the run folder."),
) -> None:
    """Run the whole lesson: load, preprocess, train, evaluate, draw, and write report.html."""
    from digitlab.data import check_dataset
    from digitlab.models import parse_params

    check_dataset(dataset)  # a mistyped name is refused before scikit-learn is imported
    params = parse_params(param or [])
    params.update(_training_options(model, device=device, time_budget=time_budget, target_accuracy=target_accuracy))
    from digitlab.pipeline import run_pipeline

    _own_convergence_notes([model])
    live_bar = "verbose" in params  # the model draws its own progress bar; a spinner would fight it
    with (contextlib.nullcontext() if live_bar else _status("starting")) as status:
        result = run_pipeline(
            dataset, model, seed=seed, test_size=test_size, limit=limit, validation=validation,
            params=params, out=out,
            step=(lambda text: console.print(f"{text}…")) if live_bar else (lambda text: status.update(f"{text}…")),
        )
    if result is None:  # a torchrun rank other than 0: rank 0 prints
        return
    m = result.metrics
    table = Table(title=f"{model} on {dataset}", show_header=False, title_justify="left")
    table.add_row("Accuracy", f"[bold]{m.accuracy:.2%}[/]")
    table.add_row("Errors", f"{m.n_errors} of {m.n_test:,}")
    table.add_row("95% CI (Wilson)", f"{m.ci_low:.2%} – {m.ci_high:.2%}")
    table.add_row("Train time", f"{result.record.fitted.train_seconds:.2f} s")
    if note := result.record.fitted.convergence_note():
        table.add_row("Converged", f"no: {note}")
    if result.validation_accuracy is not None:
        table.add_row("Validation accuracy", f"{result.validation_accuracy:.2%}")
    table.add_row("Run folder", escape(str(result.folder)))
    table.columns[1].overflow = "fold"  # a narrow pane had "c40/20261204T0757…": the folder whole, over lines
    console.print(table)
    if limit is not None and "limit" not in (result.record.dataset.split or {}):
        err_console.print(f"note: --limit {limit:,} is not fewer than the training images, so all of them were used")
    console.print(f"Report: [link=file://{result.report.resolve()}]{escape(str(result.report))}[/link]")


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="A run folder, or the model file in it."),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", help="Evaluate on another dataset of the same image size, or on a handwriting set."),
    out: Path = typer.Option(Path("reports"), "--out", "-o", help="Where a handwriting set's report goes."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON for machines (a handwriting set's: its report's, and the report's path)."),
) -> None:
    """Reload a saved model and recompute its test metrics; say whether they match the run's.

    With --dataset naming a handwriting set (`digitlab data info` lists them): accuracy on every sample
    (on the held-out part for a model fine-tuned to it), per writer, and a report of the mistakes.
    """
    from digitlab.data import DATASETS, check_dataset
    from digitlab.reproduce import reevaluate

    if dataset is None:  # a model trained or fine-tuned on a handwriting set is measured on it
        from digitlab.store import read_card

        dataset = read_card(model)[0].dataset
        dataset = None if dataset in DATASETS else dataset
    if dataset is not None and dataset not in DATASETS:
        from digitlab.cli_handwriting import evaluate_on_handwriting

        check_dataset(dataset)
        evaluate_on_handwriting(model, dataset, out, as_json=as_json)
        return

    with _status("evaluating…", lines=not as_json):
        outcome = reevaluate(model, dataset=dataset)
    m = outcome.metrics
    if as_json:
        typer.echo(json.dumps({"model_id": outcome.model_id, "dataset": outcome.dataset, "metrics": m.to_dict(),
                               "matches": outcome.matches if outcome.recorded is not None else None,
                               "differences": outcome.differences, "metrics_json_unreadable": outcome.unreadable,
                               "compared_with": outcome.source if outcome.recorded is not None else None},
                              indent=2))
        raise typer.Exit(0 if outcome.recorded is None or outcome.matches else 1)
    console.print(f"{escape(outcome.model_id)} on {outcome.dataset}: accuracy [bold]{m.accuracy:.2%}[/], "
                  f"{m.n_errors} error{'s' * (m.n_errors != 1)} of {m.n_test:,}, 95% CI {m.ci_low:.2%} – {m.ci_high:.2%}")
    if outcome.recorded is None and dataset is not None:
        console.print(f"Measured on {escape(dataset)}, not the dataset the run recorded: nothing to compare with.")
    elif outcome.recorded is None:
        console.print("No metrics.json beside the model to compare with.")
    elif outcome.matches:
        console.print(f"[green]Matches the run's {outcome.source} exactly.[/]")
    else:  # damaged, not "differs in every value" (a reviewer emptied the file and read that the model changed)
        console.print("[red]The run's metrics.json cannot be read (damaged, or not its JSON):[/] nothing it recorded can "
                      "be confirmed; the figures above are this evaluation's" if outcome.unreadable else
                      f"[red]Differs from the run's {outcome.source}:[/] {', '.join(outcome.differences)}")
        raise typer.Exit(1)


@app.command()
def compare(
    models: str = typer.Option("logreg,knn,svm,forest", "--models", "-m", help="Comma-separated model names."),
    dataset: str = DatasetOpt,
    seed: int = SeedOpt,
    test_size: Optional[float] = typer.Option(None, "--test-size", help="Fraction held out (digits only)."),
    limit: Optional[int] = LimitOpt,
    param: Optional[List[str]] = typer.Option(
        None, "--param", "-p", metavar="MODEL.NAME=VALUE", help="One model's parameter, e.g. svm.C=5 (repeatable)."),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Folder that receives the comparison folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the leaderboard (leaderboard.json) for machines."),
) -> None:
    """Train several models on the same split; print a leaderboard and write compare.html."""
    from digitlab.data import check_dataset
    from digitlab.models import parse_params

    check_dataset(dataset)  # before scikit-learn is imported
    names = list(dict.fromkeys(name.strip() for name in models.split(",") if name.strip()))  # each once
    if not names:
        raise DigitlabError("--models is empty; give names such as logreg,knn,svm")
    per_model: dict[str, dict] = {}
    for key, value in parse_params(param or []).items():
        model, dot, name = key.partition(".")
        if not dot or model not in names:
            raise DigitlabError(f"--param {key}=…: write MODEL.NAME=VALUE with MODEL one of {', '.join(names)}")
        per_model.setdefault(model, {})[name] = value
    from digitlab.compare import compare_models

    _own_convergence_notes(names)
    with _status("starting", lines=not as_json) as status:
        board = compare_models(names, dataset, seed=seed, test_size=test_size, limit=limit, params=per_model,
                               out=out, step=lambda text: status.update(f"{text}…"))
    if as_json:
        typer.echo((board.folder / "leaderboard.json").read_text(encoding="utf-8").rstrip())
        return
    from rich.filesize import decimal

    rows = [(str(rank), r.model, f"{r.accuracy:.2%}", f"{r.ci_low:.2%} – {r.ci_high:.2%}", str(r.n_errors),
             f"{r.train_seconds:.2f}", f"{r.predict_images_per_second:,.0f}", decimal(r.model_bytes))
            for rank, r in enumerate(board.rows, 1)]
    console.print(terminal.uncut_table(("#", "model", "accuracy", "95% CI", "errors", "train s", "predict img/s",
                                        "size"), rows, title=f"Leaderboard on {dataset}", width=console.width))
    for r in board.rows:
        if r.convergence_note:
            console.print(f"{r.model}: {r.convergence_note}")
    if board.mcnemar:
        t = board.mcnemar
        console.print(f"McNemar {t.first} vs {t.second}: {t.only_first_right} vs {t.only_second_right} "
                      f"discordant images — {t.verdict}")
    console.print(f"Leaderboard: {escape(str(board.folder / 'compare.html'))}")


@app.command()
def predict(
    images: List[Path] = typer.Argument(
        ..., help="Picture files (PNG, JPEG, BMP, GIF, WebP or TIFF), or folders of them."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A run folder or model file (default: newest in runs/)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Where to look for the newest model."),
    min_confidence: Optional[float] = typer.Option(
        None, "--min-confidence", parser=terminal.number(0, 1), metavar="<0..1>",
        help="Mark a prediction unsure below this probability (default: the model's own threshold, "
             "chosen on held-out images; 0.5 for a model saved without calibration)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
    save_prepared: Optional[Path] = typer.Option(None, "--save-prepared",
                                                 help="Write the input the model saw, as PNG, into this folder."),
) -> None:
    """Predict the digit in your own pictures: top 3 with probabilities, and an unsure mark."""
    from digitlab.cli_read import engine_of, pictures_to_read, prepared_stems
    from digitlab.data.images import WORK_SIDE, read_image
    from digitlab.predict import predict_images, prepare_for
    from digitlab.read import count_marks

    loaded = _model_for_pictures(model, runs, save_prepared)
    images = pictures_to_read(images)  # a folder: the pictures in it (too many for the shell's command line, say)
    stems = prepared_stems(images)
    results, failed = [], 0
    for n, image in enumerate(images):
        try:
            picture = read_image(image, draft=WORK_SIDE)
            prepared = prepare_for(loaded.card, picture)
            [prediction] = predict_images(loaded.model, loaded.card, prepared, min_confidence=min_confidence,
                                          detector=loaded.detector)
        except DigitlabError as exc:
            failed += 1
            message = str(exc) if str(image) in str(exc) else f"{image}: {exc}"
            err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            results.append({"image": str(image), "error": message})
            continue
        try:
            marks: int | None = count_marks(picture)
        except DigitlabError:  # more marks than digitlab would read: many, whatever the count
            marks = None
        entry = {"image": str(image), **prediction.to_dict(), "marks": marks}
        if save_prepared is not None:
            named = save_prepared / f"{stems[n]}-prepared.png"
            entry["prepared"] = str(_save_prepared(prepared, loaded.pixel_max, named))
        results.append(entry)
        if not as_json:
            console.print(f"{escape(str(image))}: {_answer_line(prediction)}")
            if marks is None or marks > 1:  # None: more than a number has, which `read` refuses (a learner)
                said = (f"holds {marks} separate marks, so maybe several digits: `digitlab read {escape(str(image))}` "
                        "reads whole numbers") if marks else "holds more separate marks than a number has (grain?)"
                console.print(f"  [yellow]this picture {said}[/]", soft_wrap=True)
    if as_json:
        typer.echo(json.dumps({"model": loaded.id, "engine": engine_of(loaded), "predictions": results}, indent=2))
    if failed:
        raise typer.Exit(1)  # as issue 5 asks: one line per bad picture, the others answered, exit 1


def _model_for_pictures(model: Optional[Path], runs: Path, save_prepared: Optional[Path]):
    """The model that answers (the newest run when none is given: said; its model.onnx when it has one), a line
    when it is uncalibrated or 8×8, ``--save-prepared`` checked: what ``predict`` and ``read`` start with."""
    from digitlab.onnx_model import load_for_prediction as load
    from digitlab.runs import check_writable, model_notes, model_or_newest

    loaded = load(model_or_newest(model, runs, lambda line: err_console.print(escape(line), soft_wrap=True)),
                  lambda line: err_console.print(f"note: {escape(line)}", soft_wrap=True))
    for note in model_notes(loaded):
        err_console.print(f"note: {escape(note)}", soft_wrap=True)
    if save_prepared is not None:
        check_writable(save_prepared, "--save-prepared")
    return loaded


def _answer_line(prediction) -> str:
    """One prediction as the terminal shows it: the digit and top 3, or why there is no sure digit.

    An "unsure" line names the confidence the model needs (the card's threshold or --min-confidence), and the second
    digit only from :data:`~digitlab.predict.RUNNER_UP`; a digit unlike most (``unlike_a_digit``) might not be one."""
    from digitlab.predict import RUNNER_UP, UNLIKE_WORDS, a_digit, percent_needed, shown_top

    shown = shown_top(prediction.top, prediction.sure_from if prediction.kind == "unsure" else None)
    top = "  ".join(f"{d}: {text}" for (d, _), text in zip(prediction.top, shown))  # not "59.9%; sure from 59.9%"
    unlike = f"  [magenta]{UNLIKE_WORDS}[/]" if prediction.unlike_a_digit else ""
    if prediction.kind == "not_a_digit":
        return f"[bold magenta]not a digit[/]  (it would guess {top})"
    if prediction.kind == "unsure":
        named = [d for n, (d, p) in enumerate(prediction.top[:2]) if n == 0 or p >= RUNNER_UP]
        guesses = " or ".join(a_digit(d) for d in named)
        return (f"[bold yellow]unsure[/] — {'is it ' * (len(named) > 1)}{guesses}?  ({top}; sure from "
                f"{percent_needed(prediction.sure_from)}){unlike}")
    return f"[bold]{prediction.digit}[/]  ({top})" + unlike


def _save_prepared(prepared, pixel_max: int, path: Path) -> Path:
    """Write the model's input as a grayscale PNG (white ink on black, as the model sees it)."""
    import numpy as np
    from PIL import Image

    from digitlab.fileio import atomic_path

    pixels = (np.asarray(prepared, dtype=np.float64) * (255.0 / pixel_max)).round().astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
    return path


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON for machines.")) -> None:
    """List the models in the zoo."""
    from digitlab.models import MODELS

    if as_json:
        typer.echo(json.dumps([{"name": s.name, "model": s.summary, "needs": s.needs} for s in MODELS.values()]))
        return
    table = Table("name", "model", "needs")
    for spec in MODELS.values():
        table.add_row(spec.name, spec.summary, spec.needs or "")
    console.print(table)


def _register_subcommands() -> None:
    from digitlab.cli_data import data_app
    from digitlab.cli_explain import explain
    from digitlab.cli_export import export
    from digitlab.cli_handwriting import finetune
    from digitlab.cli_read import read
    from digitlab.cli_serve import serve
    from digitlab.cli_sweep import sweep

    app.add_typer(data_app, name="data")
    app.command("explain")(explain)
    app.command("export")(export)
    app.command("finetune")(finetune)
    app.command("read")(read)
    app.command("serve")(serve)
    app.command("sweep")(sweep)


_register_subcommands()


def main() -> None:
    """Entry point of the ``digitlab`` console script."""
    terminal.steady_streams()
    terminal.unwind_on_sigterm()
    _exit_now(run_command_line(sys.argv[1:]))


def run_command_line(args: list[str], prog_name: str | None = None) -> int | str | None:
    """Run one command line (the words after ``digitlab``) and return its exit code; errors become one line."""
    if args[:1] == ["serve"]:  # `--collect` takes an optional NAME: a bare one collects into the set 'mine'
        args = ["--collect=mine" if arg == "--collect" and (i + 1 == len(args) or args[i + 1].startswith("-"))
                else arg for i, arg in enumerate(args)]
    from digitlab import runs

    runs.COMMAND[:] = ["digitlab", *args]  # a run records it (its provenance)
    try:
        app(args=terminal.home_expanded(terminal.no_empty(args)), prog_name=prog_name)
    except SystemExit as exc:
        if exc.code == 130 and (interrupt := terminal.interrupt_of(exc)) is not None:  # Typer: Ctrl-C is 130, silently
            return terminal.say_stopped(err_console, interrupt)
        return exc.code
    except DigitlabError as exc:
        _say_error(str(exc))
        return 2
    except BrokenPipeError:  # the reader went away (`digitlab predict ... | head`): nothing to say
        return 141
    except OSError as exc:  # a full disk, a read-only folder, a file without permission: the person can fix it
        _say_error(describe_os_error(exc, terminal.folder_named(typer.main.get_command(app), args, exc.filename)))
        return 2
    except KeyboardInterrupt as exc:
        return terminal.say_stopped(err_console, exc)
    finally:
        runs.COMMAND.clear()  # a library call after it (in this process) records no command of its
    return 0


def _say_error(text: str) -> None:
    """``error: TEXT`` on stderr. Under ``torchrun``, a process other than the first on its machine says it 3 s
    later: torchrun stops every process once one exits, so an error they all met (a refused model) is said once,
    by the first, and one only this process met (it lost the first process) is still said."""
    if os.environ.get("LOCAL_RANK", "0") != "0" and os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        import time

        time.sleep(3)
    err_console.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)


def _exit_now(code: int | str | None) -> None:
    """Leave without the interpreter's teardown.

    Freeing every module of NumPy, SciPy, scikit-learn and Matplotlib one by one takes about 0.4 s
    after the work is done. Every file digitlab writes is closed (and renamed into place) before a
    command returns, so once standard output and error are flushed nothing is left to do.
    """
    if isinstance(code, str):  # sys.exit("message") prints the message and means failure
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader is gone or the stream closed: nothing to flush to
            pass
    terminal.matplotlib_cache_removed()  # as Matplotlib does at exit, which this skips
    if code == 143:  # SIGTERM, unwound (terminal.Terminated): now the death by it that a service manager or a shell
        import signal  # expects (exit status 143 is a failure to systemd)

        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
    os._exit(code or 0)
