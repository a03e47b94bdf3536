"""``digitlab export``: a saved run's model as an ONNX file, checked against the estimator first.

The main CLI registers :func:`export` as a command and turns a :class:`~digitlab.errors.DigitlabError`
into one line and exit code 2. Heavy imports stay inside the command so that ``digitlab --help``
starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from digitlab.errors import DigitlabError

__all__ = ["FORMATS", "export"]

FORMATS = ("onnx",)
"""Formats ``digitlab export`` writes."""


def export(
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="A run folder or model file (default: newest in runs/)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Where to look for the newest model."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="Export format: onnx."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="The file to write (default: model.onnx in the run folder); its card is <out>.json."),
    with_head: bool = typer.Option(
        False, "--with-head", help="Append the calibration and the not-a-digit detector, for use without digitlab "
                                   "(default file: model-head.onnx)."),
) -> None:
    """Export a saved model to ONNX; refuse to write it unless ONNX Runtime matches the model on the test set."""
    from digitlab import terminal
    from digitlab.terminal import escape

    from digitlab.runs import model_or_newest

    console, err_console = terminal.console(), terminal.console(stderr=True)
    if fmt not in FORMATS:
        raise DigitlabError(f"--format {fmt!r}: digitlab exports to {', '.join(FORMATS)}")
    model = model_or_newest(model, runs, lambda line: err_console.print(escape(line), soft_wrap=True))
    from digitlab.export import export_onnx

    with console.status("exporting and checking on the test set…", spinner="dots"):
        result = export_onnx(model, out, head=with_head)
    console.print(escape(result.parity.describe()), soft_wrap=True)
    console.print(f"wrote {escape(str(result.path))} ({result.card.size_bytes:,} bytes) "
                  f"and its card {escape(str(result.card_path))}", soft_wrap=True)
    if with_head:
        console.print("its outputs head/probabilities (calibrated) and head/nondigit (the not-a-digit score) give "
                      "the answer as its metadata_props 'answer' says", soft_wrap=True)
