"""A handwriting set's index as a snapshot and a journal (digitlab.data.handwriting_index): a save appends one line, a
reader reads only what was appended since, a line cut short by a kill is not read, and the snapshot is written whole
again once the journal has grown."""

from __future__ import annotations

import json

import pytest

from digitlab.data import handwriting_index
from digitlab.data.handwriting import HandwritingSet
from digitlab.data.handwriting_index import INDEX

from test_handwriting import picture, snapshot


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def _journal(store: HandwritingSet):
    [journal] = store.folder.glob("journal-*.jsonl")
    return journal


def test_a_save_appends_a_line_and_the_snapshot_is_written_again_once_the_journal_grows(data_dir, monkeypatch):
    monkeypatch.setattr(handwriting_index, "COMPACT_AT", 4)
    store = HandwritingSet.open("class", create=True)
    made = (store.folder / INDEX).read_bytes()
    for digit in range(4):
        store.add(picture(digit), digit, writer="ada")
    assert (store.folder / INDEX).read_bytes() == made  # four saves: four lines, the snapshot untouched
    assert [list(json.loads(line)) for line in _journal(store).read_text().splitlines()] == [["add"]] * 4
    gone = store.samples()[1]
    store.remove(gone.id)  # the fifth change: folded into a new snapshot, with a new (empty) journal
    doc = json.loads((store.folder / INDEX).read_text())
    assert [s["label"] for s in doc["samples"]] == [0, 2, 3] and _journal(store).read_bytes() == b""
    store.add(picture(5), 5)
    assert [s.label for s in HandwritingSet.open("class").samples()] == [0, 2, 3, 5]


def test_a_reader_reads_what_another_process_appended_and_removed(data_dir):
    mine, theirs = HandwritingSet.open("class", create=True), HandwritingSet.open("class")
    mine.add(picture(1), 1, writer="ada")
    assert [s.label for s in theirs.samples()] == [1]
    second, _ = theirs.add(picture(2), 2, writer="ADA")  # spelt as the set spells it, from the cache kept
    assert second.writer == "ada" and [s.label for s in mine.samples()] == [1, 2]
    mine.remove(second.id)
    theirs.add(picture(3), 3)
    assert [s.label for s in theirs.samples()] == [1, 3] == [s.label for s in mine.samples()]
    assert [s.label for s in HandwritingSet.open("class").samples()] == [1, 3]  # and a process reading it all


def test_a_line_cut_short_by_a_kill_is_not_read_and_the_next_save_cuts_it_off(data_dir):
    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1)
    store.add(picture(2), 2)
    journal = _journal(store)
    whole = journal.read_bytes()
    journal.write_bytes(whole + whole.splitlines(keepends=True)[-1][:40])  # a killed append: no "\n"
    assert [s.label for s in HandwritingSet.open("class").samples()] == [1, 2] and not store.problems
    store.add(picture(3), 3)
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().count(b"\n") == 3
    assert [s.label for s in HandwritingSet.open("class").samples()] == [1, 2, 3]


def test_a_first_import_killed_before_its_first_line_leaves_no_sample(data_dir):
    """An engineer: a first `data import` killed before its index existed left 119-208 samples readable (read back
    from their prepared files), which `evaluate` then used; a new set is made with its empty index now."""
    store = HandwritingSet.open("class", create=True)
    store._write_index = lambda entries, **change: None  # the files are written; the line never is
    store.add(picture(1), 1)
    assert len(list((store.folder / "prepared").glob("*.png"))) == 1
    assert HandwritingSet.open("class").samples() == []


def test_an_index_from_before_the_journal_reads_and_the_next_save_writes_the_new_form(data_dir):
    store = HandwritingSet.open("class", create=True)
    first, _ = store.add(picture(1), 1, writer="ada")
    index = snapshot(store)
    doc = json.loads(index.read_text())
    index.write_text(json.dumps({"format": "digitlab-handwriting", "version": 1, "name": "class",
                                 "samples": doc["samples"]}))
    assert HandwritingSet.open("class").samples() == [first]
    store.add(picture(2), 2)
    assert json.loads(index.read_text())["format"] == "digitlab-handwriting-2"
    assert [s.label for s in HandwritingSet.open("class").samples()] == [1, 2]


def test_a_damaged_journal_line_is_damage_kept_aside_and_nothing_is_lost(data_dir):
    store = HandwritingSet.open("class", create=True)
    for digit in (1, 2):
        store.add(picture(digit), digit)
    journal = _journal(store)
    journal.write_bytes(journal.read_bytes() + b'{"add": [{"id": 5}]}\n')  # a whole line, but no record
    again = HandwritingSet.open("class")
    assert sorted(s.label for s in again.samples()) == [1, 2]  # read from the prepared files
    assert journal.name in again.problems[0] and "is damaged" in again.problems[0]
    again.add(picture(3), 3)  # written whole; the damaged index and journal kept beside it
    assert len(list(store.folder.glob(f"{journal.name}.damaged-*"))) == 1
    assert len(list(store.folder.glob("index.json.damaged-*"))) == 1
    assert sorted(s.label for s in HandwritingSet.open("class").samples()) == [1, 2, 3]


def test_a_line_the_disk_cut_short_is_a_failed_save_and_the_set_is_as_before(data_dir, monkeypatch):
    """A reviewer: a nearly full disk wrote part of the line and said so; the save was acknowledged, the sample then
    lost, and this process's next line followed NUL bytes."""
    import os

    from digitlab.data.handwriting import StoreWriteError

    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1)
    journal = _journal(store)
    whole = journal.read_bytes()
    real = os.pwrite
    monkeypatch.setattr(handwriting_index.os, "pwrite", lambda fd, data, at: real(fd, data[: len(data) // 2], at))
    with pytest.raises(StoreWriteError, match="nothing was changed"):
        store.add(picture(2), 2)
    monkeypatch.setattr(handwriting_index.os, "pwrite", real)
    assert journal.read_bytes() == whole
    assert [s.label for s in store.samples()] == [1] == [s.label for s in HandwritingSet.open("class").samples()]
    assert store.add(picture(2), 2)[1] and b"\0" not in journal.read_bytes()
    assert [s.label for s in HandwritingSet.open("class").samples()] == [1, 2]


def test_a_journal_that_cannot_be_opened_leaves_no_stale_picture_of_the_set(data_dir, monkeypatch):
    """A reviewer: with no file descriptor left, the save failed but this process kept the sample as saved, answered
    "already in the set" when it was sent again, and another process's next save removed its files."""
    import errno
    import os

    from digitlab.data.handwriting import StoreWriteError

    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1)
    real = os.open

    def no_descriptors(path, *args, **kwargs):
        if str(path).endswith(".jsonl"):
            raise OSError(errno.EMFILE, "Too many open files")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(handwriting_index.os, "open", no_descriptors)
    with pytest.raises(StoreWriteError):
        store.add(picture(2), 2)
    monkeypatch.setattr(handwriting_index.os, "open", real)
    assert [s.label for s in store.samples()] == [1]
    assert store.add(picture(2), 2)[1]  # saved now, not "already in the set"
    HandwritingSet.open("class").add(picture(3), 3)  # another process's save keeps it
    assert [s.label for s in store.samples()] == [1, 2, 3]


def test_a_new_writers_name_is_spelt_as_the_set_spells_it_when_the_index_is_damaged(data_dir):
    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1, writer="Ada")
    (store.folder / INDEX).write_text("nonsense{")
    assert HandwritingSet.open("class").add(picture(2), 2, writer="ADA")[0].writer == "Ada"


def test_a_journal_gone_is_damage_and_nothing_is_lost(data_dir):
    """A chaos tester deleted the journal (as a person or a sync tool might): it read as "nothing saved since", and
    the next save removed every sample it had held. It is made with its snapshot now, so a missing one is damage."""
    store = HandwritingSet.open("class", create=True)
    store.add(picture(1), 1)
    store.add(picture(2), 2)
    assert len(store.samples()) == 2
    journal = _journal(store)
    journal.unlink()
    for reader in (store, HandwritingSet.open("class")):  # the one that had read some of it, and a new one
        assert sorted(s.label for s in reader.samples()) == [1, 2]  # from the prepared files
        assert "is damaged (its journal is missing)" in reader.problems[0]
    store.add(picture(3), 3)
    assert sorted(s.label for s in HandwritingSet.open("class").samples()) == [1, 2, 3]
    assert len(list(store.folder.glob("index.json.damaged-*"))) == 1


def test_a_reader_whose_snapshot_was_replaced_by_one_alike_reads_it_again(data_dir, monkeypatch):
    """On one-second times a new snapshot can have the old one's inode, size and time: a chaos tester's reader then
    kept its old picture of the set and wrote into a journal no index named. The journal's name tells them apart."""
    real = handwriting_index._key
    monkeypatch.setattr(handwriting_index, "_key", lambda stat, path: (0, 0, 0, 0, real(stat, path)[-1]))  # all alike
    store, other = HandwritingSet.open("class", create=True), HandwritingSet.open("class")
    first, _ = store.add(picture(1), 1)
    assert [s.label for s in other.samples()] == [1]
    store.remove(first.id)
    snapshot(store)  # written whole, naming a new journal
    assert other.samples() == []  # the same stat, another journal: read again
    assert other.add(picture(2), 2)[1] and [s.label for s in HandwritingSet.open("class").samples()] == [2]
