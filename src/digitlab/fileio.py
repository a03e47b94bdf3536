"""Atomic writes: a file is either absent or whole, never half-written."""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hi")
    >>> target.read_text()
    'hi'
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask is process-wide


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it onto ``path`` when the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


@dataclass
class StagedFolder:
    """A folder being written (``path``) and where it lands when done (``final``)."""

    path: Path
    final: Path


@contextmanager
def atomic_folder(final: str | os.PathLike[str]) -> Iterator[StagedFolder]:
    """Write into a hidden staging folder beside ``final``; rename it into place when the block succeeds.

    On any error the staging folder is removed, so nothing half-written is ever visible. When another
    process took ``final`` meanwhile, the folder lands at ``final-2``, ``final-3``, ... (see ``.final``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "run-1"
    >>> with atomic_folder(target) as staged:
    ...     _ = (staged.path / "metrics.json").write_text("{}")
    >>> staged.final == target, sorted(p.name for p in target.iterdir())
    (True, ['metrics.json'])
    """
    final = Path(final)
    staged = StagedFolder(Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent)), final)
    try:
        yield staged
        os.chmod(staged.path, 0o777 & ~_UMASK)
        for attempt in itertools.count(1):
            candidate = final if attempt == 1 else final.with_name(f"{final.name}-{attempt}")
            try:
                os.rename(staged.path, candidate)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                continue
            staged.final = candidate
            break
    except BaseException:
        shutil.rmtree(staged.path, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
