"""``digitlab explain``: why a saved model decides, as ``explain.html`` beside its report.

The main CLI registers :func:`explain` as a command and turns a :class:`~digitlab.errors.DigitlabError`
into one line and exit code 2. Heavy imports stay inside the command so that ``digitlab --help``
starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from digitlab.errors import DigitlabError

__all__ = ["explain"]


def explain(
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="A run folder or model file (default: newest in runs/)."),
    compare: Optional[List[Path]] = typer.Option(
        None, "--compare", "-c", metavar="RUN", help="Another run to draw on the same robustness axes (repeatable)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Where to look for the newest model."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Folder for explain.html and its figures (default: the model's run folder)."),
    robustness_images: int = typer.Option(
        1000, "--robustness-images", min=10, help="Test images (stratified, seeded) per robustness curve."),
    map_images: int = typer.Option(1500, "--map-images", min=10, help="Test images (stratified, seeded) in the t-SNE map."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1,  # a larger one crashed in scikit-learn's split
                             help="Seed of the subsets, noise, distortions and t-SNE."),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", metavar="SET",
        help="Explain it on a handwriting set's samples (a class's), not its test images; the page goes to "
             "explain-SET/ in the run folder."),
) -> None:
    """Explain a saved model: saliency maps, robustness curves, a t-SNE map, and the CNN's filters and feature maps."""
    from digitlab import terminal
    from digitlab.terminal import escape

    from digitlab.runs import model_or_newest

    console, err_console = terminal.console(), terminal.console(stderr=True)
    model = model_or_newest(model, runs, lambda line: err_console.print(escape(line), soft_wrap=True))
    for path in [model, *(compare or [])]:
        if not Path(path).exists():
            raise DigitlabError(f"{path}: no such run folder or model file")
    from digitlab.explain.page import explain_run

    with terminal.spinner(console, "explaining…") as status:
        result = explain_run(model, compare or (), out, n_robustness=robustness_images, n_map=map_images,
                             seed=seed, dataset=dataset,
                             step=lambda text: status.update(f"explaining: {escape(text)}…"))
    for note in result.notes:
        err_console.print(f"note: {escape(note)}", soft_wrap=True)
    console.print(f"wrote {escape(str(result.html))} with {len(result.figures)} figures "
                  f"in {result.seconds['total']:.1f} s", soft_wrap=True)
