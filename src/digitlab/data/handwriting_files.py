"""The files in a handwriting set's folder (:mod:`digitlab.data.handwriting` decides when each is written).

A sample is two files, ``originals/<id>.<ext>`` and ``prepared/<id>.png`` (its 28×28 form, with the sample's
record in a text chunk, so that a damaged index can be rebuilt); ``.lock`` holds the set's random identity.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from digitlab.data.handwriting_sample import Sample
from digitlab.data.image_files import MAX_BYTES
from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_path, read_regular


def write_sample_files(folder: Path, sample: Sample, picture: bytes, prepared: np.ndarray) -> None:
    """Write a sample's original and its prepared PNG, each whole and on disk (fsync) before an index names it."""
    info = PngImagePlugin.PngInfo()
    info.add_text("digitlab", json.dumps(sample.to_dict()))
    buffer = io.BytesIO()
    Image.fromarray(prepared, "L").save(buffer, "PNG", pnginfo=info)
    for path, data in ((folder / sample.original, picture), (folder / "prepared" / f"{sample.id}.png", buffer.getvalue())):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())  # on disk before the index names it, even if the power goes


def remove_sample_files(folder: Path, sample: Sample) -> None:
    """Remove a sample's two files, as far as the system lets (what is left, the next writer removes)."""
    for path in (folder / "prepared" / f"{sample.id}.png", folder / sample.original):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def records_in_prepared(folder: Path) -> list[Sample]:
    """Samples recovered from the records in ``prepared/*.png`` whose original is present, each picture once (the
    oldest: a save stopped and run again wrote the same picture under another id), oldest first."""
    found = []
    for path in sorted((folder / "prepared").glob("*.png")):
        try:
            data = read_regular(path, MAX_BYTES)
        except OSError as exc:  # unreadable now is not damaged: never rebuild from a partial picture
            raise DigitlabError(f"cannot read {path} ({exc.strerror or exc}); nothing was changed") from None
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                sample = Sample.from_dict(json.loads(image.text["digitlab"]))
        except Exception:  # a file that does not decode is skipped, like a torn save
            continue
        if (folder / sample.original).is_file():
            found.append(sample)
    once: dict[str, Sample] = {}
    for sample in sorted(found, key=lambda s: s.id):
        once.setdefault(sample.sha256, sample)
    return list(once.values())


def remove_strays(folder: Path, entries: list[Sample]) -> None:
    """Remove the sample files that a sound index (``entries``) does not name, and any ``.part`` file beside it.

    Only under the set's exclusive lock, where no save is half-way: such files are a killed save's or a killed
    removal's. Were they kept, a damaged index would bring them back as samples.
    """
    named = {folder / s.original for s in entries} | {folder / "prepared" / f"{s.id}.png" for s in entries}
    for where in (folder / "originals", folder / "prepared", folder):
        for entry in os.scandir(where):
            stray = entry.name.endswith(".part") if where == folder else Path(entry.path) not in named
            if stray and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


def new_lock_file(folder: Path) -> None:
    """Give a new set its ``.lock``, holding a random identity. One that exists is never changed: a process holding
    the set compares it with what it read, and so learns that the set was deleted and made anew."""
    if (folder / ".lock").exists():
        return
    tmp = folder / f".lock.{secrets.token_hex(4)}.part"
    try:
        tmp.write_text(secrets.token_hex(16), encoding="ascii")
        os.link(tmp, folder / ".lock")  # never over one another process made meanwhile
    except (FileExistsError, FileNotFoundError):  # made by another process; or its temp removed by a writer
        pass
    finally:
        tmp.unlink(missing_ok=True)
