"""Cached files checked against their SHA-256 again whenever they changed on disk since they were last checked.

A fetch checks each file's hash before it is kept; after that a load trusted the files' sizes alone, and an
engineer's copy of MNIST with every training label shifted by one (the same size) trained a model to 1.07%
without a word, on a sweep worker too. Hashing the four MNIST files takes about 0.2 s, so it is done only when a
file's size, modification and change times or inode differ from what a small stamp (``verified.json``, beside the
files) recorded when they last matched: a copied cache is hashed once (``cp -a`` keeps the times it can set, not the
change time), then trusted again until a file is touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from digitlab.fileio import sha256_file, write_text_atomic

__all__ = ["STAMP", "changed_files", "resized", "stamp"]

STAMP = "verified.json"


def _seen(path: Path) -> list[int]:
    status = path.stat()  # the change time and inode too: no copy or `touch` sets those back
    return [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino]


def changed_files(folder: Path, expected: dict[str, str]) -> list[str]:
    """The names in ``expected`` (file name → SHA-256) whose file in ``folder`` no longer has that hash. Only files
    whose size, modification or change time or inode differs from the stamp are hashed; when all match, the stamp is brought up to
    date (not where the folder cannot be written: those files are hashed at each load)."""
    try:
        stamped = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        stamped = {}
    seen = {name: _seen(folder / name) for name in expected}  # before hashing: a file changed meanwhile is not
    stale = [name for name in expected if not isinstance(stamped, dict) or stamped.get(name) != seen[name]]  # vouched
    bad = [name for name in stale if sha256_file(folder / name) != expected[name]]
    if stale and not bad and seen == {name: _seen(folder / name) for name in expected}:
        stamp(folder, expected, seen)
    return bad


def resized(folder: Path, sizes: dict[str, int]) -> list[str]:
    """Each file of ``sizes`` (name → bytes) in ``folder`` that is missing or another size, in words."""
    found = []
    for name, size in sizes.items():
        try:
            now = (folder / name).stat().st_size
        except OSError:
            found.append(f"{name} is missing")
            continue
        if now != size:
            found.append(f"{name} is {now:,} bytes, not {size:,}")
    return found


def stamp(folder: Path, expected: dict[str, str], seen: dict[str, list[int]] | None = None) -> None:
    """Record the files of ``expected`` in ``folder`` as they are on disk (``seen``, else now), as checked (best
    effort)."""
    seen = seen or {name: _seen(folder / name) for name in expected}
    try:
        write_text_atomic(folder / STAMP, json.dumps(seen) + "\n")
        os.chmod(folder / STAMP, 0o644)
    except OSError:  # a cache this user cannot write: checked again next time
        pass
