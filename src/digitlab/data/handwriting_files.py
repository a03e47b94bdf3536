"""The files in a handwriting set's folder (:mod:`digitlab.data.handwriting` decides when each is written).

A sample is two files, ``originals/<id>.<ext>`` and ``prepared/<id>.png`` (its 28×28 form, with the sample's
record in a text chunk, so that a damaged index can be rebuilt); ``.lock`` holds the set's random identity, and the
threads of one process that use a set take turns on a thread lock too (:func:`threads_take_turns`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, PngImagePlugin

from digitlab.data.handwriting_sample import Sample
from digitlab.data.image_files import MAX_BYTES
from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_path, read_regular


def write_sample_files(folder: Path, sample: Sample, picture: bytes, prepared: np.ndarray) -> None:
    """Write a sample's prepared PNG, then its original, each whole and on disk (fsync) before an index names it.

    In that order (and removed in the other), a file of a sample no index names is always a prepared PNG holding
    its record, which :func:`remove_strays` can judge; an original alone is never a killed save's.
    """
    write_prepared(folder, sample, prepared)
    _write_whole(folder / sample.original, picture)


def write_prepared(folder: Path, sample: Sample, prepared: np.ndarray) -> None:
    """Write (or replace) a sample's prepared PNG, with its record, whole and on disk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("digitlab", json.dumps(sample.to_dict()))
    buffer = io.BytesIO()
    Image.fromarray(prepared, "L").save(buffer, "PNG", pnginfo=info)
    _write_whole(folder / "prepared" / f"{sample.id}.png", buffer.getvalue())


def _write_whole(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the index names it, even if the power goes


def remove_sample_files(folder: Path, sample: Sample) -> None:
    """Remove a sample's two files, its original first, as far as the system lets (a prepared PNG left behind, the
    next writer removes: :func:`remove_strays`)."""
    for path in (folder / sample.original, folder / "prepared" / f"{sample.id}.png"):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def records_in_prepared(folder: Path) -> list[Sample]:
    """Samples recovered from the records in ``prepared/*.png`` whose original is present, each picture once (the
    oldest: a save stopped and run again wrote the same picture under another id), oldest first."""
    found = []
    for path in sorted((folder / "prepared").glob("*.png")):
        sample = _record(path)
        if sample is not None and (folder / sample.original).is_file():
            found.append(sample)
    once: dict[str, Sample] = {}
    for sample in sorted(found, key=lambda s: s.id):
        once.setdefault(sample.sha256, sample)
    return list(once.values())


def _record(path: Path) -> Sample | None:
    """The sample record a prepared PNG holds, or None when the file does not decode (a torn or damaged one)."""
    try:
        data = read_regular(path, MAX_BYTES)
    except OSError as exc:  # unreadable now is not damaged: never rebuild from a partial picture
        raise DigitlabError(f"cannot read {path} ({exc.strerror or exc}); nothing was changed") from None
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            return Sample.from_dict(json.loads(image.text["digitlab"]))
    except Exception:  # noqa: BLE001 - whatever is wrong with it, it is no sample's
        return None


def remove_strays(folder: Path, entries: list[Sample]) -> None:
    """Remove the samples a sound index (``entries``) does not name, and the ``.part`` files killed writes left.

    Only under the set's exclusive lock, where no save is half-way: a whole prepared PNG no index names is a killed
    save's or a killed removal's, and goes with its original (were they kept, a damaged index would bring them back).
    An original without one, or beside a prepared PNG that does not decode, is left for a person to look at: it
    is not a killed save's (:func:`write_sample_files`), and may be all that is left of a sample.
    """
    prepared, originals = folder / "prepared", folder / "originals"
    named = {f"{s.id}.png" for s in entries}
    listed = {where: os.listdir(where) for where in (folder, originals, prepared)}  # names only: each folder once
    left = [name for name in listed[prepared] if name not in named]
    by_id: dict[str, list[str]] = {}
    if left:
        for name in listed[originals]:
            by_id.setdefault(name.split(".", 1)[0], []).append(name)
    for name in left:
        try:
            sample = None if name.startswith(".") else _record(prepared / name)
        except DigitlabError:  # unreadable now: left as it is
            sample = None
        if sample is not None and f"{sample.id}.png" == name:
            for original in by_id.get(sample.id, []):
                _unlink(originals / original)
            _unlink(prepared / name)
    for where, names in listed.items():
        for name in names:
            if name.startswith(".") and name.endswith(".part"):
                _unlink(where / name)


def _unlink(path: Path) -> None:
    try:
        if path.is_file() and not path.is_symlink():
            path.unlink()
    except OSError:
        pass


def make_set_folder(folder: Path, index: tuple[bytes, str]) -> None:
    """Make a new set's folder whole at once: ``originals/``, ``prepared/``, ``.lock`` with a random identity,
    ``index.json`` holding ``index[0]`` (no samples: a first save killed midway leaves none) and its empty journal
    ``index[1]``, made aside and renamed into place, so no process ever sees the set without its identity or its
    index. A set that exists
    is left as it is (its ``.lock`` is never changed: a process holding the set compares it with what it read, and
    so learns that the set was deleted and made anew)."""
    if folder.is_dir():
        try:
            for sub in ("originals", "prepared"):
                (folder / sub).mkdir(exist_ok=True)
            return
        except FileNotFoundError:  # deleted this instant: made anew, whole, below
            pass
    folder.parent.mkdir(parents=True, exist_ok=True)
    for left in folder.parent.glob(f".new-{glob.escape(folder.name)}-*"):  # a maker killed midway, a minute ago
        with contextlib.suppress(OSError):
            if time.time() - left.stat().st_mtime > 60:
                shutil.rmtree(left, ignore_errors=True)
    aside = folder.with_name(f".new-{folder.name}-{secrets.token_hex(4)}")  # no set name starts with '.'
    try:
        for sub in ("originals", "prepared"):
            (aside / sub).mkdir(parents=True)
        (aside / ".lock").write_text(secrets.token_hex(16), encoding="ascii")
        (aside / "index.json").write_bytes(index[0])
        (aside / index[1]).touch()
        os.rename(aside, folder)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not folder.is_dir():
            raise  # anything but another process making the same set first
    finally:
        shutil.rmtree(aside, ignore_errors=True)


_TURNS: dict[str, threading.Lock] = {}
_TURNS_GUARD = threading.Lock()


@contextmanager
def threads_take_turns(folder: Path) -> Iterator[None]:
    """One thread at a time per set in this process, reading or writing (each is short)."""
    with _TURNS_GUARD:
        turn = _TURNS.setdefault(str(folder), threading.Lock())
    with turn:
        yield


def remove_deleted(root: Path, name: str | None = None) -> list[Path]:
    """Remove what deletes of sets (of the set ``name``; of any) left: ``.deleted-<set>-<hex>``, where a delete
    interrupted after its rename left every picture of the set, out of sight (an audit's Ctrl-C in a big set's
    delete; only a later delete of a set of that name removed them). The folders that could not all be removed."""
    leftover = re.compile((re.escape(f".deleted-{name}-") if name else r"\.deleted-.+-") + "[0-9a-f]{8}")  # 'a-b''s
    left = []  # are not set 'a''s
    for folder in [f for f in root.iterdir() if leftover.fullmatch(f.name)]:
        shutil.rmtree(folder, ignore_errors=True)  # another delete may be removing it too: judged by what is left
        left += [folder] if folder.exists() else []
    return left
