"""What killed or failed writes leave in a handwriting set, and what the next writer makes of it (an audit's
findings): files no index names, a damaged index, a set deleted and made anew under a process that holds it."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import run_cli
from digitlab.data.handwriting import HandwritingSet, SetDeletedError, StoreWriteError, new_sample
from test_handwriting import picture


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def _files(store: HandwritingSet) -> list[str]:
    return sorted(p.relative_to(store.folder).as_posix() for sub in ("originals", "prepared")
                  for p in (store.folder / sub).iterdir())


KILLED_BEFORE_THE_INDEX = textwrap.dedent("""
    import os, signal, sys
    from digitlab.data.handwriting import HandwritingSet
    from test_handwriting import picture
    store = HandwritingSet.open("class", create=True)
    store._write_index = lambda entries, **change: os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no finally
    store.add(picture(7, 70), 7, writer=sys.argv[1])
""")


def _killed_save(writer: str) -> None:
    tests = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", KILLED_BEFORE_THE_INDEX, writer], env=env)
    assert child.returncode == -signal.SIGKILL


def test_a_killed_saves_files_are_removed_by_the_next_writer_and_never_come_back(data_dir):
    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1, writer="ada")
    store.add(picture(2), 2, writer="bob")
    _killed_save("bob")
    assert len(_files(store)) == 6  # bob's killed save left its two files, which no index names
    store.remove_writer("bob")  # `digitlab data remove class --writer bob`
    assert [s.writer for s in store.samples()] == ["ada"] and len(_files(store)) == 2  # none of bob's is left
    (store.folder / "index.json").write_text("nonsense{")  # and a damaged index brings none of it back
    assert [s.writer for s in HandwritingSet.open("class").samples()] == ["ada"]


def test_a_damaged_index_is_rebuilt_with_each_picture_once(data_dir):
    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1, writer="ada")
    _killed_save("bob")
    _killed_save("bob")  # the same picture twice more, under two other ids, named by no index
    (store.folder / "index.json").write_text("nonsense{")
    again = HandwritingSet.open("class")
    samples = again.samples()
    assert "is damaged" in again.problems[0]
    assert sorted(s.label for s in samples) == [1, 7] and len({s.sha256 for s in samples}) == 2


def test_a_save_that_fails_on_a_damaged_index_changes_nothing(data_dir, monkeypatch):
    store = HandwritingSet.open("class", create=True)
    for digit in range(3):
        store.add(picture(digit), digit, writer="ada")
    (store.folder / "index.json").write_text("nonsense{")
    files = _files(store)
    fresh = [new_sample(picture(d, 5), d, writer="cy") for d in (4, 5)]
    real = HandwritingSet._write_files

    def full_after_one(self, sample, *args):  # the disk fills up during the second sample's files
        if sample.id == fresh[1].sample.id:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, sample, *args)

    monkeypatch.setattr(HandwritingSet, "_write_files", full_after_one)
    with pytest.raises(StoreWriteError, match="the disk is full .* nothing was changed"):
        store.save(fresh)
    assert _files(store) == files and sorted(s.label for s in HandwritingSet.open("class").samples()) == [0, 1, 2]
    monkeypatch.setattr(HandwritingSet, "_write_files", real)

    def index_full(*args):  # now the index itself cannot be written
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("digitlab.data.handwriting_index.atomic_path", index_full)
    with pytest.raises(StoreWriteError, match="nothing was changed"):
        store.add(picture(6, 5), 6, writer="dan")
    assert (store.folder / "index.json").read_text() == "nonsense{"  # still there, damaged as it was
    assert sorted(p.name for p in store.folder.glob("index.json*")) == ["index.json"]  # and no copy made
    assert _files(store) == files


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_an_index_nested_too_deeply_is_damaged_not_a_traceback(data_dir, depth):
    store = HandwritingSet.open("class", create=True)
    store.add(picture(3), 3)
    (store.folder / "index.json").write_text("[" * depth + "]" * depth)
    again = HandwritingSet.open("class")
    assert [s.label for s in again.samples()] == [3] and "is damaged" in again.problems[0]
    result = run_cli("data", "info", process=True)
    assert result.returncode == 0 and "Traceback" not in result.stderr and "damaged" in result.stdout, result.stderr


def test_a_set_deleted_and_made_anew_is_not_written_by_who_held_the_old_one(data_dir):
    held = HandwritingSet.open("class", create=True)  # a collecting server's set
    held.add(picture(1), 1)
    worker = HandwritingSet.open("class", identity=held.identity)  # one of its workers, pinned to it
    HandwritingSet.open("class").delete()  # `digitlab data remove class --all`
    with pytest.raises(SetDeletedError):
        held.add(picture(2), 2)
    anew = HandwritingSet.open("class", create=True)  # `digitlab data import class ...` makes it again
    anew.add(picture(3), 3, writer="teacher")
    assert anew.identity != held.identity
    for process in (held, worker, HandwritingSet.open("class", identity=held.identity)):  # a worker started now too
        with pytest.raises(SetDeletedError):
            process.add(picture(4), 4, writer="kid")
        with pytest.raises(SetDeletedError):
            process.samples()
    assert [s.writer for s in anew.samples()] == ["teacher"]


def test_a_set_on_read_only_storage_can_be_read(data_dir, monkeypatch):
    store = HandwritingSet.open("class", create=True)
    store.add(picture(5), 5)
    real_open = os.open

    def read_only(path, flags, *args):  # what a read-only mount answers (root ignores chmod, so it is told so)
        if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    assert [s.label for s in HandwritingSet.open("class").samples()] == [5]
    os.unlink(store.folder / ".lock")  # a set copied there without its lock file
    assert [s.label for s in HandwritingSet.open("class").samples()] == [5]


def test_leftover_part_files_go_once_old(tmp_path):
    from digitlab.fileio import STALE_PART_S, remove_stale_parts

    old, young = tmp_path / ".model.onnx.abc12_yz.part", tmp_path / ".model.onnx.def45678.part"
    others = [tmp_path / "x.part", tmp_path / ".notes.txt.abcdefgh.part", tmp_path / ".model.onnx.part"]
    for path in (old, young, *others):
        path.write_bytes(b"half")
        os.utime(path, (0, os.path.getmtime(path) - STALE_PART_S - 5))
    os.utime(young, None)
    remove_stale_parts(tmp_path, ("model.onnx", "model.onnx.json"))
    assert not old.exists() and young.exists()  # a live write's is kept
    assert all(path.exists() for path in others)  # and what is not a temporary file of ours


def test_a_damaged_sweep_or_manifest_nested_too_deeply_is_one_line(tmp_path):
    from digitlab.cli_sweep import options_from_toml
    from digitlab.data.mnist import _read_manifest
    from digitlab.errors import DigitlabError

    with pytest.raises(DigitlabError, match="nested far too deeply"):
        options_from_toml("seeds = " + "[" * 5000 + "]" * 5000, "sweep.toml")
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert _read_manifest(tmp_path) is None  # not vouched for: the files are checked again


def test_an_original_whose_prepared_picture_is_damaged_is_kept_for_a_person(data_dir):
    """The sweep removes whole samples no index names; an original beside a prepared PNG that does not decode, or
    with none, may be all that is left of a sample, and stays."""
    store = HandwritingSet.open("class", create=True)
    for digit in (1, 2, 3):
        store.add(picture(digit), digit)
    damaged, missing, whole = store.samples()
    (store.folder / "prepared" / f"{damaged.id}.png").write_bytes(b"\x89PNG\r\n\x1a\n torn")
    (store.folder / "prepared" / f"{missing.id}.png").unlink()
    (store.folder / "index.json").write_text("nonsense{")  # rebuilt from the prepared files: only `whole` is read
    store.add(picture(4), 4)  # a writer: it writes a whole index again, then the next one sweeps
    store.add(picture(5), 5)
    assert (store.folder / damaged.original).is_file() and (store.folder / missing.original).is_file()
    assert sorted(s.label for s in store.samples()) == [3, 4, 5]


def test_a_holder_never_makes_the_lock_of_a_set_made_anew(data_dir):
    """A process that knows its set's identity treats a missing ``.lock`` as the set gone, and never makes an
    empty one (which a set made anew would then keep, and the stale process would match)."""
    held = HandwritingSet.open("class", create=True)
    held.add(picture(1), 1)
    HandwritingSet.open("class").delete()
    for sub in ("originals", "prepared"):  # a folder of that name again, its .lock not yet there
        (data_dir / "handwriting" / "class" / sub).mkdir(parents=True)
    with pytest.raises(SetDeletedError):
        held.add(picture(2), 2)
    assert not (data_dir / "handwriting" / "class" / ".lock").exists()
    legacy = HandwritingSet.open("class")  # a process opening it by name now (a set made by hand: no .lock)
    assert legacy.samples() == [] and legacy.identity == ""
    assert HandwritingSet.open("other", create=True).identity not in ("", None)  # made whole, identity and all


def test_a_damaged_index_is_kept_aside_where_there_are_no_hard_links(data_dir, monkeypatch):
    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1)
    (store.folder / "index.json").write_text("nonsense{")

    def no_links(*args):  # what a FAT-formatted USB stick answers
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store.add(picture(2), 2)
    kept = list(store.folder.glob("index.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == "nonsense{"
    assert sorted(s.label for s in HandwritingSet.open("class").samples()) == [1, 2]


def test_threads_of_one_process_take_turns_where_flock_would_not_part_them(data_dir, monkeypatch):
    """On NFS, ``flock`` may not keep one process's threads apart (a server saves from many threads): with it doing
    nothing at all, two threads saving at once still lose no sample."""
    import fcntl
    import threading

    monkeypatch.setattr(fcntl, "flock", lambda fd, how: None)
    HandwritingSet.open("class", create=True)
    errors = []

    def save(start: int):
        try:
            store = HandwritingSet.open("class")
            for k in range(start, start + 15):
                store.add(picture(k % 10, k), k % 10)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(start,)) for start in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(HandwritingSet.open("class").samples()) == 30


def test_a_set_on_a_read_only_file_system_refuses_a_save_in_one_line_and_still_reads(data_dir, monkeypatch):
    """An audit: a collecting server whose set lay on a read-only mount answered every save and undo 500, with two
    tracebacks logged; reading it went on. A save is now a StoreWriteError (the API's 507), saying where and why."""
    import os

    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1, writer="ada")
    real = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(".lock") and flags & (os.O_RDWR | os.O_WRONLY):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    again = HandwritingSet.open("class")
    assert [s.label for s in again.samples()] == [1]  # reading takes a shared lock, read-only
    with pytest.raises(StoreWriteError, match=r"^handwriting set 'class' cannot be written here \(Read-only file "
                                              r"system: .*\); nothing was changed"):
        again.add(picture(2), 2, writer="ada")
    monkeypatch.setattr(os, "open", real)
    assert [s.label for s in HandwritingSet.open("class").samples()] == [1]
