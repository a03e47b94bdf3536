"""A handwriting set's index: a snapshot of its samples, and a journal of what was saved or removed since.

::

    index.json            {"format": "digitlab-handwriting-2", "name": ..., "samples": [...], "journal": JOURNAL}
    journal-<hex>.jsonl   one line per save, {"add": [records]}, or removal, {"remove": [ids]}, each ended by "\\n"

A save appends one line and syncs it to disk, so its cost does not grow with the set: an index rewritten whole for
each save took 290-370 ms at 9,000 samples, and a class of 30 saving at once waited 7.6 s a save (an engineer's load
test). Once the journal holds more records than a quarter of the snapshot (and at least :data:`COMPACT_AT`), the
snapshot is written again whole, naming a new journal, by a rename; the old journal is removed after. A kill leaves
the old snapshot or the new one, and a line cut short (no "\\n") is not read: the next writer cuts it off before
it appends. Every reader keeps what it read and reads only the lines appended since, or everything when the
snapshot was replaced. Readers and writers take turns on the set's lock (:mod:`digitlab.data.handwriting`).

An index written before the journal (format ``digitlab-handwriting``) reads as a snapshot with an empty journal;
the next save writes this format, which an older digitlab reads as a damaged index: it falls back on the records
kept in the prepared files, and so loses nothing.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat as stat_module
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from digitlab.data.handwriting_files import records_in_prepared
from digitlab.data.handwriting_names import one_spelling, writer_key
from digitlab.data.handwriting_sample import Sample
from digitlab.fileio import atomic_path, read_regular, signals_held

__all__ = ["COMPACT_AT", "FORMAT", "INDEX", "SetIndex", "empty_index"]

INDEX = "index.json"
FORMAT = "digitlab-handwriting-2"
OLD_FORMAT = "digitlab-handwriting"  # a snapshot alone, every save rewriting it
MAX_INDEX_BYTES = 256 * 2**20  # an entry is a few hundred bytes: larger is no index digitlab wrote
COMPACT_AT = 256
HEAD = 160  # bytes of the snapshot holding its journal's name (the format, then the name: ~80)
_HEAD_JOURNAL = re.compile(rb'"journal": "(journal-[0-9a-f]{16}\.jsonl)"')
"""The journal is folded into the snapshot from this many records on (or a quarter of the snapshot, if more)."""


def empty_index(name: str) -> tuple[bytes, str]:
    """A new set's index (no samples) and the name of its journal, which is made with it, empty."""
    journal = _journal_name()
    return _snapshot(name, journal, []).encode(), journal


def _snapshot(name: str, journal: str, entries: list[Sample]) -> str:
    """The snapshot's text: the journal's name first, within :data:`HEAD` bytes, where a reader looks for it."""
    return json.dumps({"format": FORMAT, "journal": journal, "name": name, "samples": [s.to_dict() for s in entries]})


def _key(stat: os.stat_result, path: Path) -> tuple:
    """What tells one snapshot from another: its file's identity, size and time, and the journal it names."""
    named = _named_journal(path) if stat_module.S_ISREG(stat.st_mode) else None  # a pipe would never answer
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, named


def _named_journal(path: Path) -> bytes | None:
    """The journal's name in the snapshot's first bytes: two snapshots never share one, though a file system may
    give the second the first one's inode, size and time (one-second times: a chaos tester's stale reader wrote into
    a journal no index named, and its saves were lost)."""
    try:
        with open(path, "rb") as handle:
            found = _HEAD_JOURNAL.search(handle.read(HEAD))
    except OSError:
        return None
    return found.group(1) if found else None


def _journal_name() -> str:
    return f"journal-{secrets.token_hex(8)}.jsonl"


class SetIndex:
    """The index of the set in ``folder``, as this process last read it (call every method under the set's lock).

    Attributes
    ----------
    sound : bool
        Whether the last :meth:`read` came from a whole index (else from the records in the prepared files).
    problems : list of str
        What that read found wrong, one line each.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.sound, self.problems = False, []
        self._forget()

    def _forget(self) -> None:
        self._key: tuple | None = None  # the snapshot's file, as read
        self._journal: str | None = None
        self._offset = self._logged = 0  # bytes of the journal read, and the records in it
        self._records: dict[str, Sample] = {}
        self._spelled: list[Sample] = []  # the records, each writer under one spelling (one_spelling)
        self._first: dict[str, str] = {}  # writer_key -> that spelling
        self._respell = False  # _spelled and _first wait for _spelling after a removal

    @property
    def journal(self) -> str | None:
        """The journal's file name, as last read or written (None for an index written before journals)."""
        return self._journal

    # ------------------------------------------------------------------------------ reading

    def read(self) -> list[Sample]:
        """Every sample the index names, oldest first, each writer under one spelling (:func:`one_spelling`); when
        there is no index or it is damaged, the records kept in the prepared files (:attr:`sound` False).

        Only a malformed index counts as damaged; a file the system cannot read now (no permission, too many open
        files) raises OSError, so that no save ever rewrites the index from a partial picture."""
        path = self.folder / INDEX
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._forget()
            self.sound, self.problems = False, []
            found = any((self.folder / "prepared").glob("*.png"))
            return one_spelling(records_in_prepared(self.folder)) if found else []
        key = _key(stat, path)
        try:
            if key != self._key or not self.sound or not self._read_journal():
                self._load(path, key)
                self._read_journal()
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
            where = path if self._key != key or "journal is missing" in str(exc) else self.folder / str(self._journal)
            self._forget()
            found = records_in_prepared(self.folder)
            self.sound, self.problems = False, [
                f"{where} is damaged ({str(exc)[:80] or type(exc).__name__}); read {len(found)} samples from their "
                "prepared files instead (the next save keeps a copy of the damaged index and writes a whole one)"]
            return one_spelling(found)
        self._spelling()
        return list(self._spelled)

    def spelled(self, samples: list[Sample]) -> list[Sample]:
        """``samples`` (new ones, in order) each with its writer as the set spells that name, or as the first of
        them does (:func:`one_spelling`, without going through the whole set)."""
        self._spelling()
        first, out = dict(self._first), []
        for sample in samples:
            name = sample.writer and first.setdefault(writer_key(sample.writer), sample.writer)
            out.append(sample if name == sample.writer else replace(sample, writer=name))
        return out

    def _load(self, path: Path, key: tuple) -> None:
        self._forget()
        self.sound, self.problems = False, []
        doc = json.loads(read_regular(path, MAX_INDEX_BYTES).decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, OLD_FORMAT) or not isinstance(
                doc.get("samples"), list):
            raise ValueError("not a digitlab handwriting index")
        journal = doc.get("journal")
        if doc["format"] == FORMAT and not (isinstance(journal, str) and journal.startswith("journal-")
                                            and journal.endswith(".jsonl") and "/" not in journal):
            raise ValueError("no journal named")
        self._add([Sample.from_dict(entry) for entry in doc["samples"]])
        self._key, self._journal, self.sound = key, journal if doc["format"] == FORMAT else None, True

    def _read_journal(self) -> bool:
        """Apply the whole lines appended to the journal since the last read; False (nothing applied) when the
        journal is gone or shorter than what was read of it: not the journal read before, so read everything."""
        if self._journal is None or self._key is None:
            return self._key is not None
        try:
            with open(self.folder / self._journal, "rb") as handle:
                if os.fstat(handle.fileno()).st_size < self._offset:
                    return False
                handle.seek(self._offset)
                tail = handle.read()
        except FileNotFoundError:  # made before its snapshot named it: gone since (a person, a sync tool)
            raise ValueError("its journal is missing") from None
        whole = tail[: tail.rfind(b"\n") + 1]  # a last line without its "\n": a killed append, not read
        for line in whole.splitlines():
            self._apply(json.loads(line.decode("utf-8")))
        self._offset += len(whole)
        return True

    def _apply(self, change: dict) -> None:
        if not isinstance(change, dict) or len(change) != 1:
            raise ValueError("a journal line is not one change")
        if isinstance(change.get("add"), list):
            self._add([Sample.from_dict(entry) for entry in change["add"]])
            self._logged += len(change["add"])
        elif isinstance(change.get("remove"), list) and all(isinstance(i, str) for i in change["remove"]):
            self._drop(set(change["remove"]))
            self._logged += len(change["remove"])
        else:
            raise ValueError("a journal line is neither an add nor a remove")

    def _add(self, samples: list[Sample]) -> None:
        for sample in samples:
            if sample.id in self._records:
                self.problems.append(f"sample {sample.id} is listed more than once in the index; counted once")
                continue
            self._records[sample.id] = sample
            self._spell_in(sample)

    def _drop(self, ids: set[str]) -> None:
        for sample_id in ids:
            self._records.pop(sample_id, None)
        self._respell = True  # the first spelling of a name may have gone with them: once, when next asked for

    def _spell_in(self, sample: Sample) -> None:
        if not self._respell:
            name = sample.writer and self._first.setdefault(writer_key(sample.writer), sample.writer)
            self._spelled.append(sample if name == sample.writer else replace(sample, writer=name))

    def _spelling(self) -> None:
        """Spell every record again after removals (each removal line doing it took 7 s for 2,000 undos)."""
        if self._respell:
            self._respell, self._spelled, self._first = False, [], {}
            for sample in self._records.values():
                self._spell_in(sample)

    # ------------------------------------------------------------------------------ writing

    def change(self, entries: list[Sample], added: list[Sample], removed: list[Sample], whole: bool) -> None:
        """``entries`` (as read) with the samples ``added`` or ``removed``: one line in a sound index's journal
        (:meth:`append`); a damaged (or missing) index is written whole instead, and so is the index when ``whole``
        (a writer's removal: their name and pictures' SHA-256s had stayed in the journal, or the snapshot, for a
        privacy audit to find) unless the disk is full, where the line, which fits, still lets them go."""
        gone = {s.id for s in removed}
        if not self.sound or whole:
            try:
                self.rewrite([s for s in entries if s.id not in gone] + added)
                return
            except OSError as exc:
                if not self.sound or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise
        self.append({"add": [s.to_dict() for s in added]} if added else {"remove": [s.id for s in removed]})

    def append(self, change: dict) -> None:
        """Append one change (``{"add": [records]}`` or ``{"remove": [ids]}``) to the journal, synced to disk; the
        snapshot is written again whole instead when the journal has grown to a quarter of it (:data:`COMPACT_AT`),
        or the line alone when the disk has no room for a whole snapshot. What this process keeps changes only once
        the change is on disk; whatever stops it, the next read reads everything again. Call it only after
        :meth:`read` under the exclusive lock, with a sound index."""
        try:
            added = [Sample.from_dict(entry) for entry in change.get("add", [])]  # a malformed change: before any write
            gone = set(change.get("remove", []))
            grown = self._logged + len(added) + len(gone) > max(COMPACT_AT, len(self._records) // 4)
            if self._journal is None or grown:
                try:
                    self.rewrite([s for s in self._records.values() if s.id not in gone] + added)
                    return
                except OSError as exc:  # no room for the whole snapshot: the one line may fit
                    if self._journal is None or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                        raise
            self._append_line(json.dumps(change).encode("utf-8") + b"\n")
            self._apply(change)
        except BaseException:
            self._forget()
            raise

    def _append_line(self, line: bytes) -> None:
        """``line`` written whole after the last whole line, and synced; a line cut short (a full disk writes part of
        it) is cut off again and an OSError raised."""
        fd = os.open(self.folder / str(self._journal), os.O_WRONLY)  # made with its snapshot: never made here
        try:
            if os.fstat(fd).st_size != self._offset:
                os.ftruncate(fd, self._offset)  # a line a killed writer left half-written
            written = os.pwrite(fd, line, self._offset)
            if written != len(line):
                os.ftruncate(fd, self._offset)
                raise OSError(errno.ENOSPC, "No space left on device (the line was cut short)")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._offset += len(line)

    def rewrite(self, entries: list[Sample]) -> None:
        """Write the snapshot whole (``entries``, oldest first) with a new, empty journal, then remove the journals
        no index names; a damaged index (and journal) is kept beside it for a person to inspect."""
        with signals_held():  # Ctrl-C between the rename and the old journal's removal left it, a removed writer's
            self._rewrite(entries)  # name in it (a reviewer)

    def _rewrite(self, entries: list[Sample]) -> None:
        journal = _journal_name()
        kept = self._keep_damaged()
        try:
            _make_empty(self.folder / journal)  # before the snapshot names it: a journal named is never missing
            with atomic_path(self.folder / INDEX) as tmp:
                with open(tmp, "w", encoding="utf-8") as handle:
                    handle.write(_snapshot(self.name, journal, entries))  # dumps: json's C encoder
                    handle.flush()
                    os.fsync(handle.fileno())  # the new index is on disk before it replaces the old one
            sync_folder(self.folder)
        except BaseException:
            for path in kept:
                path.unlink(missing_ok=True)
            if _named_journal(self.folder / INDEX) != journal.encode():
                (self.folder / journal).unlink(missing_ok=True)
            self._key = None
            raise
        for name in os.listdir(self.folder):
            if name.startswith("journal-") and name.endswith(".jsonl") and name != journal:
                (self.folder / name).unlink(missing_ok=True)
        stat = os.stat(self.folder / INDEX)
        self._forget()
        self._add(entries)
        self._key, self._journal, self.sound, self.problems = (
            (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, journal.encode()), journal, True, [])

    def _keep_damaged(self) -> list[Path]:
        """Second names for a damaged index and its journals, so that the rewrite keeps them; [] for a sound one."""
        damaged = not self.sound and self.problems and "is damaged" in self.problems[0]
        if not damaged or not (self.folder / INDEX).exists():
            return []
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}"
        kept: list[Path] = []
        try:
            journals = [n for n in os.listdir(self.folder) if n.startswith("journal-") and n.endswith(".jsonl")]
            for name in [INDEX] + journals:
                kept.append(self.folder / f"{name}.damaged-{stamp}")
                try:
                    os.link(self.folder / name, kept[-1])  # a second name: the file stays as it was if the write fails
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        kept.pop()  # not ours to remove
                        raise
                    shutil.copyfile(self.folder / name, kept[-1])  # storage without hard links (a USB stick's FAT)
        except BaseException:
            for path in kept:
                path.unlink(missing_ok=True)
            raise
        return kept


def _make_empty(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """The folder's entries (a file renamed or made in it) on disk, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system that cannot sync a folder (some network ones)
        pass
    finally:
        os.close(fd)
