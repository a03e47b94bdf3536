"""``digitlab read``: the whole number in each picture, digit by digit.

The main CLI registers :func:`read` as a command and turns a :class:`~digitlab.errors.DigitlabError`
into one line and exit code 2. As ``digitlab predict`` does, a picture that cannot be read gets one
line of its own, the others are still answered, and the exit code is 1. Heavy imports stay inside
the command so that ``digitlab --help`` starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from digitlab import terminal
from digitlab.errors import DigitlabError
from digitlab.onnx_model import engine_of  # also predict's: "engine" in --json


def read(
    images: List[Path] = typer.Argument(..., help="Pictures of numbers (PNG, JPEG, BMP, GIF, WebP or TIFF), or folders "
                                                  "of them."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="A run folder or model file (default: newest in runs/)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Where to look for the newest model."),
    min_confidence: Optional[float] = typer.Option(
        None, "--min-confidence", parser=terminal.number(0, 1), metavar="<0..1>",
        help="Show a digit as ? below this probability (default: the model's own threshold, as predict)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines: each digit's box and top 3 too."),
    save_prepared: Optional[Path] = typer.Option(
        None, "--save-prepared", help="Write each digit as the model saw it, as PNG, into this folder."),
) -> None:
    """Read whole handwritten numbers: find the digits in each picture and read them left to right.

    A digit the model is not sure of shows as ? in the number, with its two most likely readings. Points, commas,
    minus signs, dashes and colons are read by their shape and place (3.14, 1,000, -40, 555-1234, 7:30); a slash is
    not: 12/5 reads 1215.
    """
    from digitlab.terminal import escape

    from digitlab.cli import _model_for_pictures, _save_prepared, console, err_console
    from digitlab.data.images import WORK_SIDE, read_image
    from digitlab.predict import percent_needed
    from digitlab.read import read_number

    loaded = _model_for_pictures(model, runs, save_prepared)
    images = pictures_to_read(images)  # a folder: the pictures in it
    stems = prepared_stems(images)
    results, failed = [], 0
    for n, image in enumerate(images):
        try:
            picture = read_image(image, draft=WORK_SIDE)
            reading = read_number(loaded.model, loaded.card, picture,
                                  detector=getattr(loaded, "detector", None), min_confidence=min_confidence)
        except DigitlabError as exc:
            failed += 1
            message = str(exc) if str(image) in str(exc) else f"{image}: {exc}"
            err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            results.append({"image": str(image), "error": message})
            continue
        entry = {"image": str(image), **reading.in_picture(image, picture.size)}  # boxes in the file's pixels
        if save_prepared is not None:
            for k, (digit, data) in enumerate(zip(reading.digits, entry["digits"]), 1):
                path = save_prepared / f"{stems[n]}-digit{k:02d}.png"
                data["prepared"] = str(_save_prepared(digit.prepared, loaded.pixel_max, path))
        results.append(entry)
        if not as_json:
            shown = reading.text.replace("\n", " | ")  # a line each, on one line of the terminal
            console.print(f"{escape(str(image))}: [bold]{escape(shown)}[/]  ({_digits_line(reading)})"
                          + (f"  [yellow]{reading.doubtful} doubtful[/]" if reading.doubtful else "")
                          + (f" (sure from {percent_needed(reading.sure_from)})" if _any_unsure(reading) else ""),
                          soft_wrap=True)
            advice = _advice(reading, entry)
            if advice:
                console.print(f"  [yellow]note:[/] {advice}", soft_wrap=True)
    if as_json:
        typer.echo(json.dumps({"model": loaded.id, "engine": engine_of(loaded), "readings": results}, indent=2))
    if failed:
        raise typer.Exit(1)


def pictures_to_read(paths: List[Path]) -> List[Path]:
    """The pictures named and those in the folders named (:func:`~digitlab.data.image_files.pictures_in`), with a
    note naming the other files in those folders, left out: for ``predict`` and ``read`` (an engineer's folder of
    scans answered for less than it held, and the command ended well)."""
    from digitlab.terminal import escape

    from digitlab.cli import err_console
    from digitlab.data.image_files import pictures_and_passed_over

    pictures, left = pictures_and_passed_over(paths)
    if left:
        shown = ", ".join(str(p) for p in left[:5]) + (f" and {len(left) - 5:,} more" if len(left) > 5 else "")
        what = "file that is not a picture" if len(left) == 1 else "files that are not pictures"
        err_console.print(f"note: left out {len(left):,} {what} (PNG, JPEG, BMP, GIF, WebP or TIFF): {escape(shown)}",
                          soft_wrap=True)
    return pictures


def prepared_stems(images: List[Path]) -> List[str]:
    """A name for each picture's ``--save-prepared`` files, none the same: its own (its stem), or numbered by its
    place when another picture has that stem, or when its numbered name is yet another's own (``a/x.png``,
    ``b/x.png`` and ``001-x.png``: the last one's file had overwritten the first one's), regardless of case.

    >>> prepared_stems([Path("a/x.png"), Path("b/X.png"), Path("001-x.png"), Path("y.jpg")])
    ['001-001-x', '002-X', '001-x', 'y']
    """
    from collections import Counter

    from digitlab.fileio import short_name

    stems = [short_name(image.stem) for image in images]  # a 246-character name's "-prepared.png" would not fit
    folded = Counter(stem.casefold() for stem in stems)  # X.png and x.png are one file on macOS and Windows
    names: List[str] = []
    taken: set[str] = set()
    for n, stem in enumerate(stems, 1):
        name = stem if folded[stem.casefold()] == 1 else f"{n:03d}-{stem}"
        while name.casefold() in taken or (name != stem and name.casefold() in folded):
            name = f"{n:03d}-{name}"
        names.append(name)
        taken.add(name.casefold())
    return names


SMALL = 16
"""Digits under this many pixels tall (the median, in the picture) are too small to read well: MNIST's are 20."""


def _advice(reading, entry: dict) -> str | None:
    """What to do when a picture was read badly: a digit doubtful and the digits too small (a number 15 px tall read
    as a row of ?), or none read surely (a texture read as ``?``, exit 0, with nothing said): a mark no digit, or
    a model unsure of them all (the lesson's logistic regression is unsure of most digits cut from a number)."""
    if not reading.doubtful:
        return None
    heights = sorted(d["box"][3] - d["box"][1] for d in entry["digits"])
    if heights[len(heights) // 2] < SMALL:
        return (f"its digits are only {heights[len(heights) // 2]} px tall: photograph or scan the number closer "
                "(MNIST's, which models learn from, are 20 px tall)")
    if reading.doubtful == len(reading.digits):
        weak = all(d.kind == "unsure" for d in reading.digits)
        return ("no digit read surely: " + ("this model is unsure of them all; a stronger one (a CNN run) may read "
                                            "them, or " if weak else "") + "crop the picture to the number, or write "
                "or photograph it larger")
    return None


def _any_unsure(reading) -> bool:
    """Whether a digit is doubtful for want of confidence (not for looking like no digit at all)."""
    return any(digit.kind == "unsure" for digit in reading.digits)


def _digits_line(reading) -> str:
    """Each digit and its confidence: ``4 99.8%``; ``? 7 61.0% / 1 30.2%`` for one the model is unsure of (to 0.1%,
    as the bar it missed, "sure from 98.7%", is written); ``? not a digit`` for a mark the detector says is none
    (its probabilities would look like a confident digit). A digit that would read 100.0% reads ``>99.9%``
    (:func:`digitlab.predict.shown_percent`)."""
    from digitlab.predict import shown_percent, shown_top

    parts = []
    for digit in reading.digits:
        if digit.kind == "digit":
            parts.append(f"{digit.digit} {shown_percent(digit.probability)}"
                         + (" [magenta]but might not be a digit[/]" if digit.unlike_a_digit else ""))
        elif digit.kind == "not_a_digit":
            parts.append("[yellow]?[/] not a digit")
        else:
            shown = shown_top(digit.top[:2], reading.sure_from)  # not "59.9%; sure from 59.9%"
            parts.append("[yellow]?[/] " + " / ".join(f"{d} {text}" for (d, _), text in zip(digit.top, shown)))
    return ", ".join(parts)
