"""A dataset written as MNIST's four IDX files, as ``digitlab data export SET DIR`` writes a handwriting set: never
over files it did not write, and all four or none."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np

from digitlab.data.dataset import Dataset

__all__ = ["EXPORTED", "IDX_NAMES", "unused_idx_folder", "write_idx_files"]

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

_ALL_NAMES = {name + end for name in IDX_NAMES for end in ("", ".gz")}
EXPORTED = ".digitlab-export.json"
"""Beside an export's four files, their SHA-256s: a later export may replace files that are still those."""


def unused_idx_folder(folder: Path) -> Path:
    """``folder``, or ``folder-2``, ``folder-3``… the first holding none of MNIST's four file names (gzipped or not)
    but an earlier export's, unchanged since (:data:`EXPORTED`): an export never replaces files it did not write (an
    audit's export into a copy of MNIST, or into the data cache's own ``mnist`` folder, had left 470 KB where MNIST's
    47 MB had been), and a set exported again to the same folder refreshes it."""
    for n in itertools.count(1):
        candidate = Path(folder) if n == 1 else Path(os.path.abspath(folder) + f"-{n}")  # "." or "..": its name
        there = {name for name in _ALL_NAMES if (candidate / name).exists()}
        marker = candidate / EXPORTED  # a folder or a pipe of that name (a pipe's read hung): a folder not ours
        if (marker.is_file() or not os.path.lexists(marker)) and (not there or there <= _exported_unchanged(candidate)):
            return candidate
    raise AssertionError("unreachable")


def _exported_unchanged(folder: Path) -> set[str]:
    """The names of the files in ``folder`` an export wrote, as it wrote them (their SHA-256s in its
    :data:`EXPORTED`); none when there is no record, or it is damaged."""
    if not (folder / EXPORTED).is_file():
        return set()
    try:
        recorded = json.loads((folder / EXPORTED).read_text(encoding="utf-8"))
        return {name for name, digest in recorded.items() if name in _ALL_NAMES and (folder / name).is_file()
                and _sha256(folder / name) == digest}  # only MNIST's names: a record naming "../x" deletes nothing
    except (OSError, ValueError, AttributeError):  # no record, damaged, not an object: not known to be ours
        return set()


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_idx_files(data: Dataset, folder: Path, *, gzip: bool = False) -> list[Path]:
    """Write ``data``'s split as the four MNIST-format IDX files (MNIST's file names) into ``folder``, with their
    SHA-256s in :data:`EXPORTED`: all four or none of them (written in a hidden folder there first: a full disk or
    Ctrl-C left a set's train files beside another's test files), and two writers' four never mixed
    (:func:`~digitlab.fileio.replace_together`)."""
    from digitlab.data.idx import write_idx
    from digitlab.fileio import replace_together, scratch_folder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (data.train_images, data.train_labels.astype(np.uint8), data.test_images,
              data.test_labels.astype(np.uint8))
    # an earlier export's files of the other ending (gzipped or not), unchanged: replaced too, not left beside these
    stale = [folder / name for name in _exported_unchanged(folder) if name.endswith(".gz") != gzip]
    with scratch_folder(folder, ".export-") as scratch:
        staged = [scratch / (file_name + (".gz" if gzip else "")) for file_name in IDX_NAMES]
        for path, array in zip(staged, arrays):
            write_idx(path, array)
        sums = {path.name: _sha256(path) for path in staged}
        (scratch / EXPORTED).write_text(json.dumps(sums, indent=1) + "\n", encoding="utf-8")
        written = replace_together([*staged, scratch / EXPORTED], folder)[:4]
    for path in stale:
        path.unlink(missing_ok=True)
    return written
