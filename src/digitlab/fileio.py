"""Atomic writes: a file is either absent or whole, never half-written."""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import itertools
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{short_name(path.name)}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def short_name(name: str, most: int = 200) -> str:
    """``name``, or for one over ``most`` bytes (a temporary name adds 15 to it, and a file system takes 255: a
    picture's legal 246-character name had stopped a batch) its start and a hash, its extension kept.

    >>> short_name("x.png"), len(short_name("a" * 300 + ".png").encode()) <= 200, short_name("a" * 300 + ".png")[-4:]
    ('x.png', True, '.png')
    """
    if len(os.fsencode(name)) <= most:
        return name
    import hashlib

    stem, extension = os.path.splitext(name)
    extension = extension if len(os.fsencode(extension)) <= 20 else ""
    keep = stem
    while len(os.fsencode(keep)) > most - 17 - len(os.fsencode(extension)):  # whole characters
        keep = keep[:-1]
    return f"{keep}-{hashlib.blake2b(os.fsencode(name), digest_size=8).hexdigest()}{extension}"


STALE_PART_S = 600.0  # a temporary file written by atomic_path is whole or gone within seconds


_PART = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.part")  # atomic_path's temporary name for <name>: .<name>.<random>.part


def remove_stale_parts(folder: str | os.PathLike[str], names: tuple[str, ...],
                       older_than_s: float = STALE_PART_S) -> None:
    """Remove the temporary files that killed writers of ``names`` (file names, or patterns such as ``*.png``) left
    in ``folder``, once they are older than any live write's. For folders written in place (a run's export, its
    explain page); a set's own writer removes its strays under its lock. Nothing else in the folder is touched."""
    now = time.time()
    for path in Path(folder).glob(".*.part"):
        made_for = _PART.fullmatch(path.name)
        if made_for is None or not any(fnmatch.fnmatchcase(made_for.group(1), name) for name in names):
            continue
        try:
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > older_than_s:
                path.unlink()
        except OSError:
            continue  # gone already, or not ours to remove


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


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically. A file name that is not UTF-8 (a folder from an old USB stick,
    read by Python as "lone surrogates") is written as its escape, ``\\udce9``: in a JSON string that escape reads
    back as the same name; a page shows it as it is (a run whose --out was such a folder had ended in a traceback)."""
    with atomic_open(path, "w", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(text)


@dataclass
class StagedFolder:
    """A folder being written (``path``) and where it lands when done (``final``)."""

    path: Path
    final: Path


STAGING_PREFIX = ".tmp-"
_LOCK = ".lock"
_UNLOCKED_GRACE_S = 60.0  # a staging folder whose writer has not locked it yet is that young


@contextmanager
def atomic_folder(final: str | os.PathLike[str]) -> Iterator[StagedFolder]:
    """Write into a hidden staging folder beside ``final``; rename it into place when the block succeeds.

    The final name is decided when the staging folder is made, before the block runs: when
    ``final`` (or another writer's staging for it) exists, the folder is ``final-2``, ``final-3``, ...
    (``staged.final`` says which), so whatever the block writes can name its folder. On any error
    the staging folder is removed, so nothing half-written is ever visible. The writing process
    holds a lock on the staging folder while it lives; a folder left by a killed writer is removed
    by the next ``atomic_folder`` in the same place (:func:`remove_stale_staging`).

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
    remove_stale_staging(final.parent)
    staged = lock = None
    try:
        with signals_held():  # a Ctrl-C or SIGTERM between making the folder and holding its name: acted on below
            staged, lock = _reserve(final)
        yield staged
        os.chmod(staged.path, 0o777 & ~_UMASK)
        (staged.path / _LOCK).unlink()  # the open handle keeps the lock; the finished folder has no .lock
        os.rename(staged.path, staged.final)  # no one else can take this name: we hold its staging folder
    except BaseException:
        if staged is not None:
            shutil.rmtree(staged.path, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)


@contextmanager
def scratch_folder(parent: str | os.PathLike[str], prefix: str) -> Iterator[Path]:
    """A hidden, locked working folder in ``parent``, removed on exit (or by the next call after a kill)."""
    remove_stale_staging(parent, prefix)
    folder = lock = None
    try:
        with signals_held():  # as in atomic_folder: no signal between making the folder and the try
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            lock = _lock_new(folder)
        yield folder
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def replace_together(staged: list[Path], folder: str | os.PathLike[str]) -> list[Path]:
    """Move the files ``staged`` (written whole elsewhere on the same file system) into ``folder`` under their own
    names, all of them or, when killed, each already whole: under an exclusive lock on ``folder``, so that two
    writers' sets of files never mix, and with Ctrl-C and SIGTERM held until the last is in place (SIGKILL cannot
    be held: only the moves themselves, microseconds, are exposed to it). A staged folder
    replaces one of its name, which goes beside it (``.old-<name>``, in the folder it was staged in: a
    :func:`scratch_folder` removes it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> a, b = pathlib.Path(tempfile.mkdtemp()), pathlib.Path(tempfile.mkdtemp())
    >>> _ = (a / "x").write_text("1"); _ = (a / "y").write_text("2")
    >>> [p.name for p in replace_together([a / "x", a / "y"], b)], sorted(p.name for p in a.iterdir())
    (['x', 'y'], [])
    """
    folder = Path(folder)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        with signals_held():
            for path in staged:
                if path.is_dir() and (folder / path.name).is_dir():
                    os.rename(folder / path.name, path.parent / f".old-{path.name}")
                os.replace(path, folder / path.name)
    finally:
        os.close(descriptor)  # and with it the lock
    return [folder / path.name for path in staged]


def unreadable(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is there but this user may not read it (a file saved under another's ``umask 077``)."""
    try:
        Path(path).open("rb").close()
    except PermissionError:
        return True
    except OSError:  # not there, a folder...: not a question of permission
        pass
    return False


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM arriving during the block are acted on when it ends, as they would have been. Python
    handlers, not a signal mask: a mask holds one thread's signals, and a process has others (BLAS, torch) that
    take them. Off the main thread, where handlers cannot be set, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {kind: signal.signal(kind, lambda number, frame: caught.append(number)) for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in reversed(before.items()):  # SIGINT last: a Ctrl-C after it cannot strand SIGTERM's
            signal.signal(kind, handler)
        for number in caught[:1]:
            signal.raise_signal(number)  # as it came: KeyboardInterrupt, or the process ends


def _reserve(final: Path) -> tuple[StagedFolder, int]:
    """Make ``.tmp-<name>`` for the first free name among final, final-2, ...; return it locked."""
    for attempt in itertools.count(1):
        candidate = final if attempt == 1 else final.with_name(f"{final.name}-{attempt}")
        staging = candidate.with_name(STAGING_PREFIX + candidate.name)
        if candidate.exists():
            continue
        try:
            os.mkdir(staging)
        except FileExistsError:
            continue  # another writer is making this name (or a stale one the next cleanup removes)
        try:
            lock = _lock_new(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if candidate.exists():  # a writer renamed it into place between our two looks
            os.close(lock)
            shutil.rmtree(staging, ignore_errors=True)
            continue
        return StagedFolder(staging, candidate), lock
    raise AssertionError("unreachable")


def _lock_new(folder: Path) -> int:
    """Create ``folder/.lock`` already locked (locked under a temporary name, then renamed)."""
    tmp = folder / f"{_LOCK}.{os.getpid()}"
    fd = os.open(tmp, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(tmp, folder / _LOCK)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd


def remove_stale_staging(parent: str | os.PathLike[str], prefix: str = STAGING_PREFIX) -> list[Path]:
    """Remove the staging folders under ``parent`` whose writing process is gone; never a live one.

    A writer holds an exclusive lock on its folder's ``.lock`` for as long as it runs; the kernel
    drops it when the process dies, however it dies. Returns the folders removed.
    """
    removed = []
    for trash in Path(parent).glob(".stale-*"):  # a cleaner was killed while deleting: finish its job
        shutil.rmtree(trash, ignore_errors=True)
    for folder in Path(parent).glob(prefix + "*"):
        try:
            if folder.is_dir() and _move_if_abandoned(folder):
                removed.append(folder)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def _move_if_abandoned(folder: Path) -> bool:
    """Rename an abandoned staging folder out of the way and delete it, holding its lock throughout.

    Holding the dead writer's lock while renaming means no second cleaner can act on the same folder,
    and the inode check means a new writer's folder of the same name is never mistaken for it.
    """
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR)
    except FileNotFoundError:  # never locked: its writer died at once, or is starting this instant
        fd = None
        if time.time() - folder.stat().st_mtime <= _UNLOCKED_GRACE_S:
            return False
    trash = folder.with_name(f".stale-{os.getpid()}-{folder.name}")
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its writer is alive
            if os.fstat(fd).st_ino != os.stat(folder / _LOCK).st_ino:
                return False  # another cleaner removed it and a new writer took the name
        os.rename(folder, trash)
    finally:
        if fd is not None:
            os.close(fd)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write a Matplotlib figure atomically, its folder made if new, in the format its name ends in (``.jpg``,
    ``.svg``, ``.pdf``...; PNG for any other name, ``fig.v2`` too); then close it and return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        kind = path.suffix[1:].lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=kind if kind in fig.canvas.get_supported_filetypes() else "png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes; OSError for a folder, a device, a pipe or more than ``limit`` bytes.

    A link to a device would read without end (``/dev/zero``), and opening a pipe would wait for a writer.
    """
    with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
        info = os.fstat(handle.fileno())
        data = handle.read(limit + 1) if stat.S_ISREG(info.st_mode) else b""
    if not stat.S_ISREG(info.st_mode) or len(data) > limit:
        raise OSError(f"not a file of at most {limit / 2**20:g} MiB")
    return data
