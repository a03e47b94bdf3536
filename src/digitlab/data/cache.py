"""Where downloaded and generated data is kept: ``$DIGITLAB_DATA``, else the user cache folder; and how
what digitlab makes for itself there (non-digit pictures, detectors' networks) is written and pruned.

Examples
--------
>>> import os
>>> from unittest import mock
>>> scratch = mock.patch.dict(os.environ, DIGITLAB_DATA="/tmp/dl-data")  # yours comes back at the end
>>> _ = scratch.start()
>>> data_root()
PosixPath('/tmp/dl-data')
>>> _ = scratch.stop()
"""

from __future__ import annotations

import os
from pathlib import Path

from digitlab.fileio import atomic_path

__all__ = ["CACHE_FILES", "MADE", "data_root", "keep_in_cache", "made_folder", "mark_used", "prune"]

CACHE_FILES = 32
"""Each folder of files digitlab makes for itself (:data:`MADE`) keeps this many, the most recently used."""
MADE = {"nondigits": "non-digit pictures", "detectors": "not-a-digit detectors' networks"}
"""The data cache's folders of files digitlab makes for itself, and what they hold (``digitlab data info``)."""


def data_root() -> Path:
    """The data cache folder: ``$DIGITLAB_DATA`` when set, else ``<user cache>/digitlab``."""
    root = os.environ.get("DIGITLAB_DATA")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("digitlab")
    return Path(root).expanduser()


def made_folder(name: str) -> Path:
    """The data cache's folder ``name``, one of :data:`MADE`."""
    if name not in MADE:
        raise ValueError(f"{name!r} is not one of the data cache's made folders: {', '.join(MADE)}")
    return data_root() / name


def keep_in_cache(path: Path, data: bytes) -> None:
    """Write a data-cache file atomically, by Python (every failure an OSError): a read-only or full cache
    only costs the next run the work again. (safetensors' own ``save_file`` raises its own error type, and
    its rename would leave the file readable by its owner only.) Then remove all but the :data:`CACHE_FILES`
    most recently used files of its kind in its folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError:
        return
    prune(path.parent, f"*{path.suffix}", keep=path)


def prune(folder: Path, pattern: str, keep: Path | None = None) -> None:
    """Remove all but the :data:`CACHE_FILES` most recently used files matching ``pattern``, never ``keep`` (a
    file another run removes meanwhile, or one that cannot be removed, is passed over)."""
    used = {}
    for file in folder.glob(pattern):  # not the temporary files of a write under way: *.part
        try:
            used[file] = float("inf") if file == keep else file.stat().st_mtime  # even if clocks disagree
        except OSError:
            pass
    for old in sorted(used, key=used.__getitem__, reverse=True)[CACHE_FILES:]:
        try:
            old.unlink(missing_ok=True)
        except OSError:
            pass


def mark_used(path: Path) -> None:
    """Mark a cache file as just used (its time), so that :func:`keep_in_cache` keeps it longest."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache: it is pruned by age, not by use
        pass
