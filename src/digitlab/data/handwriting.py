"""A person's (or a class's) own handwritten digits, kept on disk like a real dataset.

One folder per set under the data cache (``$DIGITLAB_DATA/handwriting/<name>/``)::

    index.json            every sample: id, label, writer, source, when, SHA-256 of the original
    journal-<hex>.jsonl   the samples saved and removed since index.json was written
    originals/<id>.<ext>  the picture as it arrived (the page's PNG, a photo, an imported file)
    prepared/<id>.png     its 28×28 MNIST form (ink bright), with the sample's record in a text chunk

How nothing is lost: a sample's two files are written (each to a temporary name, then renamed) before the index
names it, and the index only ever changes by a whole line appended to its journal or a whole snapshot renamed into
place (:mod:`digitlab.data.handwriting_index`; a writer's removal: the snapshot, so none of theirs stays), under an
exclusive lock on ``.lock`` — so two writers take turns, a kill leaves either the old index or the new one, and files
of a save that never reached the index (or of a removal killed before it deleted them) are ignored, and removed by
the next writer. Many samples are saved under one lock with one journal line (:meth:`HandwritingSet.save`; an
import, 256 at a time). A new set is made with an empty index, so a first import killed midway leaves no samples
behind. A damaged index is one line and the samples are read back from the records in their prepared files.
``.lock`` holds the set's random identity, so a process holding a set that was deleted and made anew
under the same name writes into neither (:class:`SetDeletedError`).

Examples
--------
>>> import io, os, tempfile
>>> from PIL import Image, ImageDraw
>>> from unittest import mock
>>> scratch = mock.patch.dict(os.environ, DIGITLAB_DATA=tempfile.mkdtemp())  # yours comes back at the end
>>> _ = scratch.start()
>>> picture = Image.new("L", (100, 100), 255)
>>> ImageDraw.Draw(picture).line([(50, 15), (50, 85)], fill=0, width=9)
>>> buffer = io.BytesIO(); picture.save(buffer, "PNG")
>>> mine = HandwritingSet.open("mine", create=True)
>>> sample, added = mine.add(buffer.getvalue(), 1, writer="ada", source="drawn")
>>> added, sample.label, [s.writer for s in mine.samples()]
(True, 1, ['ada'])
>>> mine.add(buffer.getvalue(), 1, writer="ada", source="drawn")[1]  # the same picture again
False
>>> mine.images()[0].shape
(1, 28, 28)
>>> _ = scratch.stop()
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from digitlab.data.cache import data_root
from digitlab.data.image_files import MAX_FILE_BYTES
from digitlab.data.handwriting_files import (make_set_folder, remove_deleted, remove_sample_files, remove_strays,
                                             threads_take_turns, write_prepared, write_sample_files)
from digitlab.data.handwriting_index import INDEX, SetIndex, empty_index
from digitlab.data.handwriting_names import (NAME, NO_NAME, RESERVED, check_set_name, check_writer, one_spelling,
                                             written_by)
from digitlab.data.handwriting_sample import SOURCES, NewSample, Sample, new_sample, with_free_id
from digitlab.errors import DigitlabError
from digitlab.fileio import read_regular, signals_held

__all__ = ["HandwritingSet", "NewSample", "Sample", "SampleNotFoundError", "SOURCES", "SetDeletedError", "StoreWriteError", "check_set_name",
           "check_writer", "handwriting_root", "list_sets", "new_sample"]


class SampleNotFoundError(DigitlabError):
    """The set holds no sample with that id (HTTP 404 in the API)."""


class StoreWriteError(DigitlabError):
    """The disk refused a write (full, read-only, ...); nothing was changed (HTTP 507 in the API)."""


class SetDeletedError(DigitlabError):
    """The set was deleted (``digitlab data remove NAME --all``) while this process held it (HTTP 409)."""


def handwriting_root() -> Path:
    """The folder holding every handwriting set: ``<data cache>/handwriting``."""
    return data_root() / "handwriting"


def list_sets() -> list[str]:
    """Names of the handwriting sets present in the data cache, sorted."""
    root = handwriting_root()
    if not root.is_dir():
        return []
    remove_deleted(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and NAME.fullmatch(p.name) and p.name not in RESERVED)


class HandwritingSet:
    """A handwriting set's folder: add, remove and read samples (see the module's notes on safety).

    ``problems`` lists, one line each, what the last read found wrong (a damaged index, a missing file);
    the samples that could be read are returned all the same.
    """

    def __init__(self, name: str, folder: Path, identity: str | None = None):
        self.name, self.folder = name, folder
        self.identity = identity  # what .lock holds; None: the first lock reads it
        self.problems: list[str] = []
        self._checked: dict[tuple, bool] = {}
        self._index = SetIndex(folder, name)  # as this process last read it: a read gets only what was added since

    @classmethod
    def open(cls, name: str, *, create: bool = False, identity: str | None = None) -> "HandwritingSet":
        """The set called ``name``; with ``create``, make its folder if it is new.

        ``identity`` (another process's :attr:`identity`, e.g. a server's worker) pins the set that process
        opened: if it was deleted since, even if made anew, every use raises :class:`SetDeletedError`.
        """
        folder = handwriting_root() / check_set_name(name)
        if identity is not None:
            return cls(name, folder, identity)
        if create:
            make_set_folder(folder, empty_index(name))
            store = cls(name, folder)
            with store._lock(shared=True):  # reads its identity
                return store
        if not folder.is_dir():
            known = ", ".join(list_sets()) or "none yet"
            raise DigitlabError(f"no handwriting set called {name!r} (sets present: {known}); collect one with "
                                f"`digitlab serve --collect {name}` or `digitlab data import {name} PICTURES...`")
        return cls(name, folder)

    # ------------------------------------------------------------------------------ reading

    def samples(self) -> list[Sample]:
        """Every sample the index names whose files are present, oldest first."""
        with self._lock(shared=True):
            return self._intact(self._read_index())

    def images(self, samples: list[Sample] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The prepared 28×28 images (uint8, N×28×28, ink bright) and labels of ``samples`` (default: all)."""
        samples = self.samples() if samples is None else samples
        images = np.zeros((len(samples), 28, 28), dtype=np.uint8)
        for i, sample in enumerate(samples):
            images[i] = self._prepared(sample)
        return images, np.array([s.label for s in samples], dtype=np.int64)

    def original_bytes(self, sample: Sample) -> bytes:
        """The picture as it arrived (OSError if it is not a file of at most :data:`MAX_FILE_BYTES`: an imported
        photo can be more than the 5 MiB a request may bring)."""
        return read_regular(self.folder / sample.original, MAX_FILE_BYTES)

    # ------------------------------------------------------------------------------ writing

    def add(self, picture: bytes, label: int, *, writer: str | None = None, source: str = "import",
            prepared: np.ndarray | None = None) -> tuple[Sample, bool]:
        """Save a picture of the digit ``label``; return the sample and whether it was new.

        An exact copy (same SHA-256) of a picture already in the set is not saved again: the existing
        sample comes back with ``False``. ``prepared`` (the picture's 28×28 MNIST form) is computed
        with :func:`~digitlab.data.images.prepare_digit` when not given; given, the caller has decoded
        the picture already (the server, within its decode budget) and only its header is read here. Nothing is
        written unless the whole sample is; a picture without ink is refused. Many pictures at once: :meth:`save`.
        """
        return self.save([new_sample(picture, label, writer=writer, source=source, prepared=prepared)])[0]

    def save(self, new: list[NewSample]) -> list[tuple[Sample, bool]]:
        """Save samples made by :func:`new_sample` under one lock with one index write; as :meth:`add` for each.

        A picture already in the set, or earlier in ``new``, is not saved again. A writer's name that differs only
        in case from one in the set is saved as the set spells it. Nothing of ``new`` is in the set unless all of
        it is: a disk error removes the files written so far.
        """
        with self._lock():
            entries = self._read_for_writing()
            samples = [item.sample for item in new]  # "ada" is saved as "Ada"; from a damaged index, as its records
            spelled = (self._index.spelled(samples) if self._index.sound
                       else one_spelling([*entries, *samples])[len(entries):])
            new = [replace(item, sample=sample) for item, sample in zip(new, spelled)]
            by_sha: dict[str, Sample] = {}
            for sample in entries:
                by_sha.setdefault(sample.sha256, sample)
            results, fresh, taken = [], [], {sample.id for sample in entries}
            for item in new:
                known = by_sha.get(item.sample.sha256)
                if known is None:
                    item = with_free_id(item, taken)  # an id the set (or an earlier item) has: drawn again
                    taken.add(item.sample.id)
                    by_sha[item.sample.sha256] = item.sample
                    fresh.append(item)
                results.append((known or item.sample, known is None))
            try:
                for item in fresh:
                    self._write_files(item.sample, item.picture, item.prepared)
                if fresh:
                    self._write_index(entries, added=[item.sample for item in fresh])
                    self.problems = []  # a damaged index, if it was, is whole again
            except BaseException as exc:  # a full disk, or Ctrl-C in a long import
                self._remove_unnamed([item.sample for item in fresh])
                if isinstance(exc, OSError):
                    raise _disk_error(exc, f"saving {'the sample' if len(fresh) == 1 else f'{len(fresh)} samples'}") from None
                raise
        return results

    def remove(self, sample_id: str) -> Sample:
        """Delete one sample (the index first, then its files); raise if the set has no such sample."""
        return self._remove(lambda s: s.id == sample_id, f"no sample {str(sample_id)[:40]!r}")[0]

    def remove_writer(self, writer: str) -> list[Sample]:
        """Delete every sample by ``writer`` (a student who asks for theirs back), in one index write. Names are
        compared regardless of case; :data:`NO_NAME` is the samples saved without a name."""
        writer = check_writer(writer)
        return self._remove(written_by([writer or NO_NAME]), f"no samples by writer {str(writer)[:64]!r}", whole=True)

    def delete(self, *, only_if_empty: bool = False) -> bool:
        """Delete the whole set (with ``only_if_empty``, only a set nothing was saved into); whether it did. The
        folder is renamed aside under the lock (a save waiting for it then finds the set gone), then its files
        are removed, with any an interrupted delete left behind."""
        with self._lock():
            if only_if_empty and (self._read_index()
                                  or any(any((self.folder / sub).iterdir()) for sub in ("originals", "prepared"))):
                return False
            trash = self.folder.with_name(f".deleted-{self.name}-{secrets.token_hex(4)}")  # no set name starts with '.'
            try:
                os.rename(self.folder, trash)
            except OSError as exc:
                raise _disk_error(exc, "deleting the set") from None
        for folder in remove_deleted(self.folder.parent, self.name):
            raise StoreWriteError(f"the set is deleted, but {folder} could not all be removed; delete it by hand")
        return True

    def prepare_again(self, prepare: Callable[[Path, Sample, np.ndarray | None], np.ndarray],
                      batch: int = 64) -> tuple[int, int]:
        """Prepare every sample again (``prepare``: the original's path, the sample and its prepared form as saved,
        None if damaged, to its 28×28 form), and replace the prepared pictures that change (a preparation improved
        since they were saved); how many samples were looked at and how many changed. The work is done outside the
        set's lock, the writes ``batch`` at a time under it, each sample still in the set then, so a collecting
        server waits a moment at most."""
        entries, looked, changed = self.samples(), 0, 0
        for start in range(0, len(entries), batch):
            fresh = {}
            for sample in entries[start:start + batch]:
                try:
                    saved: np.ndarray | None = self._prepared(sample)
                except DigitlabError:  # removed meanwhile (then not written below), or damaged: written again
                    saved = None
                try:
                    again = prepare(self.folder / sample.original, sample, saved)
                except (OSError, DigitlabError):  # removed meanwhile, or an original it cannot read: left as it is
                    continue
                looked += 1
                if saved is None or not np.array_equal(again, saved):
                    fresh[sample.id] = again
            if fresh:
                with self._lock():
                    for entry in self._read_for_writing():
                        if entry.id in fresh:
                            try:
                                write_prepared(self.folder, entry, fresh[entry.id])
                            except OSError as exc:
                                raise _disk_error(exc, f"writing {entry.id}'s prepared picture") from None
                            changed += 1
        return looked, changed

    def records(self) -> list[Sample]:
        """Every sample the index names, its files present or not (what :meth:`remove_writer` matches)."""
        with self._lock(shared=True):
            return self._read_index()

    def _remove(self, matches: Callable[[Sample], bool], none: str, whole: bool = False) -> list[Sample]:
        with self._lock():
            entries = self._read_for_writing()
            found = [s for s in entries if matches(s)]
            if not found:
                raise SampleNotFoundError(f"handwriting set {self.name!r} has {none}")
            with signals_held():  # Ctrl-C from the index's write on: the files go too (an audit's left 442 of a
                try:  # writer's pictures, which the next save alone removed)
                    self._write_index(entries, removed=found, whole=whole)
                    self.problems = []
                except OSError as exc:
                    raise _disk_error(exc, "removing samples") from None
                for sample in found:
                    self._remove_files(sample)
        return found

    # ------------------------------------------------------------------------------ internals

    @contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        """An advisory lock on ``.lock``: exclusive for writers, shared for readers (released on exit or death).

        A set on read-only storage is read under a lock on a read-only ``.lock``, or none if it has none. The threads
        of one process also take turns on a thread lock, first: on NFS, ``flock`` may not keep them apart.
        """
        with threads_take_turns(self.folder), self._lock_file(shared):  # on a local disk flock alone would do
            yield

    @contextmanager
    def _lock_file(self, shared: bool) -> Iterator[None]:
        """The ``flock`` on ``.lock``, checking it is still this set's (:attr:`identity`)."""
        # once this process knows the set's identity, a missing .lock means the set is gone: it is never made here
        flags = os.O_RDWR if self.identity is not None else os.O_RDWR | os.O_CREAT
        try:
            fd = os.open(self.folder / ".lock", flags, 0o666)
        except FileNotFoundError:
            raise self._gone() from None
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            if not shared:  # a collecting server on a read-only set answered every save 500, a traceback logged
                raise StoreWriteError(f"handwriting set {self.name!r} cannot be written here ({exc.strerror}: "
                                      f"{self.folder}); nothing was changed — choose a writable folder "
                                      "($DIGITLAB_DATA)") from None
            try:
                fd = os.open(self.folder / ".lock", os.O_RDONLY)
            except FileNotFoundError:  # nothing can write here, and nothing has
                yield
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:  # deleted while this waited (the lock file now lies in the renamed folder), perhaps made anew
                now = os.stat(self.folder / ".lock")
            except FileNotFoundError:
                raise self._gone() from None
            held = os.fstat(fd)
            identity = os.pread(fd, 64, 0).decode("ascii", "replace")
            if self.identity is None:
                self.identity = identity
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino) or identity != self.identity:
                raise self._gone()
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _gone(self) -> SetDeletedError:
        return SetDeletedError(f"handwriting set {self.name!r} was deleted while in use ({self.folder})")

    def _read_index(self) -> list[Sample]:
        """The index's samples (:meth:`SetIndex.read <digitlab.data.handwriting_index.SetIndex.read>`); a file the
        system cannot read now is an error, so that no save ever rewrites the index from a partial picture."""
        try:
            entries = self._index.read()
        except OSError as exc:
            raise DigitlabError(f"cannot read {self.folder / INDEX} ({exc.strerror or exc}); nothing was "
                                "changed") from None
        self.problems = list(self._index.problems)
        return entries

    def _read_for_writing(self) -> list[Sample]:
        """The index, read under the exclusive lock; from a sound one, first remove the files it does not name
        (:func:`~digitlab.data.handwriting_files.remove_strays`)."""
        entries = self._read_index()
        if self._index.sound:
            remove_strays(self.folder, entries)
        return entries

    def _intact(self, entries: list[Sample]) -> list[Sample]:
        """``entries`` whose original is present and whose prepared 28×28 reads back; each other one is a problem line.
        Each folder is listed once (two stats per sample through pathlib took 0.15 s a read at 10,000 samples)."""
        try:
            originals = set(os.listdir(self.folder / "originals"))
            with os.scandir(self.folder / "prepared") as found:
                prepared = {entry.name: entry for entry in found}
        except FileNotFoundError:  # the set was deleted meanwhile
            originals, prepared = set(), {}
        intact = []
        for sample in entries:
            if sample.original.partition("/")[2] not in originals:
                self.problems.append(f"sample {sample.id} ({sample.label}) is in the index but its original picture "
                                     "is missing; skipped")
            elif not self._readable(sample, prepared.get(f"{sample.id}.png")):
                self.problems.append(f"sample {sample.id} ({sample.label}): its prepared picture is missing or damaged; "
                                     f"skipped (remove it with `digitlab data remove {self.name} {sample.id}`)")
            else:
                intact.append(sample)
        return intact

    def _readable(self, sample: Sample, entry: os.DirEntry | None) -> bool:
        """True when the prepared PNG (``entry``) decodes to 28×28; remembered per file (its inode: every write makes
        a new one, by a rename), so a set is decoded once and a read needs no call per file."""
        try:
            if entry is None or not entry.is_file():
                return False
        except OSError:
            return False
        key = (sample.id, entry.inode())
        if key not in self._checked:
            try:
                self._prepared(sample)
                self._checked[key] = True
            except _NotYours:  # whole, but not this user's to read: the set's owner can fix it, not a removal
                raise
            except DigitlabError:
                self._checked[key] = False
        return self._checked[key]

    def _prepared(self, sample: Sample) -> np.ndarray:
        path = self.folder / "prepared" / f"{sample.id}.png"
        try:
            with Image.open(path, formats=["PNG"]) as image:
                array = np.asarray(image.convert("L"))
        except FileNotFoundError:  # removed (an Undo) between listing the samples and reading them
            raise DigitlabError(f"sample {sample.id} was removed from {self.name!r} while it was being read; "
                                "run the command again") from None
        except PermissionError:  # saved under umask 077 by its owner: it was "missing or damaged, remove it"
            raise _NotYours(f"{path}: permission denied, so the set {self.name!r} cannot be read whole; its owner can "
                            f"let others read it (`chmod -R a+rX {self.folder}`); nothing was changed") from None
        except Exception:
            raise DigitlabError(f"{path} is damaged; remove the sample with "
                                f"`digitlab data remove {self.name} {sample.id}`") from None
        if array.shape != (28, 28):
            raise DigitlabError(f"{path} is {array.shape[1]}×{array.shape[0]}, not 28×28; remove the sample")
        return array

    def _write_files(self, sample: Sample, picture: bytes, prepared: np.ndarray) -> None:
        write_sample_files(self.folder, sample, picture, prepared)

    def _write_index(self, entries: list[Sample], *, added: list[Sample] = (), removed: list[Sample] = (),
                     whole: bool = False) -> None:
        """``entries`` with the samples ``added`` or ``removed``: one journal line (:meth:`SetIndex.change`)."""
        self._index.change(entries, list(added), list(removed), whole)

    def _remove_unnamed(self, samples: list[Sample]) -> None:
        """Remove the files of ``samples`` that the index on disk does not name (a save failed or was stopped).
        An index that is missing or damaged names none of them: a save that landed would have made it whole."""
        try:
            entries = self._read_index()
        except Exception:  # unsure what the index names: leave the files (the next writer removes them)
            return
        named = {s.id for s in entries} if self._index.sound else set()
        for sample in samples:
            if sample.id not in named:
                self._remove_files(sample)

    def _remove_files(self, sample: Sample) -> None:
        remove_sample_files(self.folder, sample)


def _disk_error(exc: OSError, doing: str) -> StoreWriteError:
    why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else (exc.strerror or str(exc))
    return StoreWriteError(f"{why} while {doing}; nothing was changed — free some space and try again")


class _NotYours(DigitlabError):
    """A sample's file that this user may not read: said in one line, never taken for a damaged one."""
