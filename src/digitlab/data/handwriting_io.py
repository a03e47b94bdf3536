"""A handwriting set as a :class:`Dataset` (split by writer), imported from pictures, exported as IDX.

Examples
--------
>>> import io, os, tempfile
>>> from PIL import Image, ImageDraw
>>> from unittest import mock
>>> scratch = mock.patch.dict(os.environ, DIGITLAB_DATA=tempfile.mkdtemp())  # yours comes back at the end
>>> _ = scratch.start()
>>> folder = Path(tempfile.mkdtemp())
>>> for digit in range(10):
...     for k in range(2):
...         picture = Image.new("L", (60, 60), 255)
...         ImageDraw.Draw(picture).text((20 + k, 20), str(digit), fill=0)
...         _ = (folder / f"{digit}-{k}.png").write_bytes(_png(picture))
>>> summary = import_pictures("mine", [folder], writer="ada")
>>> summary.added, summary.duplicates, summary.failures
(20, 0, [])
>>> data = load_handwriting("mine", test_size=0.5)
>>> data.n_train, data.n_test, data.split["kind"]
(10, 10, 'stratified')
>>> _ = scratch.stop()
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from digitlab.data.dataset import Dataset
from digitlab.data.handwriting import HandwritingSet, NewSample, Sample, StoreWriteError, new_sample
from digitlab.data.handwriting_names import NO_NAME, check_new_writer, listed, meant, writer_key, written_by
from digitlab.data.image_files import PICTURES, UNREAD, hidden
from digitlab.data.image_files import MAX_FILE_BYTES
from digitlab.errors import DigitlabError

__all__ = ["ImportSummary", "export_idx", "export_pictures", "import_pictures", "load_handwriting",
           "split_as_recorded", "split_samples", "held_out_digest", "writer_of", "written_by"]

DEFAULT_TEST_SIZE = 0.2
IMPORT_BATCH, IMPORT_BATCH_BYTES = 256, 64 << 20
"""An import saves its pictures this many (or this many bytes) at a time, each batch with one index write."""
SEVERAL = 4
"""A picture of this many separate marks or more is no one digit's (:func:`one_digit`)."""


def writer_of(sample: Sample) -> str:
    """The writer a sample counts for in splits and tables (unnamed samples share one)."""
    return sample.writer or NO_NAME


def split_samples(samples: list[Sample], *, test_size: float | None = None, seed: int = 42,
                  hold_out: list[str] | None = None) -> tuple[list[Sample], list[Sample], dict]:
    """Split samples into training and test parts; return them and the split's record.

    With two writers or more, whole writers go to one side (``GroupShuffleSplit``): the test writers
    are never seen in training; samples saved with no name train (they may be any writer's). With one writer, a seeded split stratified by digit (plain random when
    some digit has a single sample). The record names the training writers (or, with one writer, the
    training samples' ids), so that a model is never scored on what it learned from, even after the set grows
    (see :func:`split_as_recorded`). ``hold_out`` names the test writers instead (names compared regardless of
    case; every other writer trains): a teacher's class model that learns from the students it reads worst.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if hold_out:
        return _held_out(samples, hold_out, seed)
    test_size = DEFAULT_TEST_SIZE if test_size is None else test_size
    if not 0.0 < test_size < 1.0:
        raise DigitlabError(f"--test-size must be between 0 and 1 (exclusive), got {test_size}")
    if len(samples) < 2:
        raise DigitlabError(f"a handwriting set needs at least 2 samples to split into training and test, "
                            f"it has {len(samples)}")
    writers = np.array([writer_of(s) for s in samples])
    index = np.arange(len(samples))
    named = writers != NO_NAME  # saved with no name: anyone's, so never held out as a writer "never trained on"
    try:
        if len(set(writers[named])) >= 2:  # (a teacher's class: its nameless drawings had been a test "writer")
            train, test = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
                               .split(index[named], groups=writers[named]))
            train, test = np.concatenate([index[named][train], index[~named]]), index[named][test]
            record = {"kind": "by-writer", "test_size": test_size, "seed": seed,
                      "train_writers": sorted(set(writers[train].tolist())),
                      "test_writers": sorted(set(writers[test].tolist()))}
        else:
            labels = np.array([s.label for s in samples])
            stratify = labels if np.unique(labels, return_counts=True)[1].min() >= 2 else None
            n_test = max(1, round(test_size * len(samples)))
            if stratify is not None:
                n_test = max(n_test, len(set(labels)))
            if n_test >= len(samples) or (stratify is not None and len(samples) - n_test < len(set(labels))):
                stratify = None
            train, test = train_test_split(index, test_size=min(n_test, len(samples) - 1), stratify=stratify,
                                           random_state=seed)
            record = {"kind": "stratified" if stratify is not None else "random-by-sample",
                      "test_size": test_size, "seed": seed, "train_ids": sorted(samples[i].id for i in train)}
    except ValueError:  # scikit-learn: an empty side (its message counts writers as "samples")
        raise DigitlabError(f"--test-size {test_size} cannot split {len(samples)} samples by "
                            f"{len(set(writers))} writer(s) into two non-empty parts; choose another "
                            "--test-size or collect more") from None
    if len(train) == 0 or len(test) == 0:
        raise DigitlabError(f"--test-size {test_size} leaves one side empty for {len(set(writers))} writer(s); "
                            "choose another --test-size or collect samples by more writers")
    return [samples[i] for i in sorted(train)], [samples[i] for i in sorted(test)], record


def _held_out(samples: list[Sample], hold_out: list[str], seed: int) -> tuple[list[Sample], list[Sample], dict]:
    """The split that holds out the writers named (:func:`split_samples`)."""
    writers = sorted({writer_of(s) for s in samples})
    for name in hold_out:
        if writer_key(name) == writer_key(NO_NAME):
            raise DigitlabError(f"--hold-out {name!r}: the drawings saved with no name may be any writer's, so they "
                                "only ever train; hold out writers by their names")
        if not any(written_by([name])(s) for s in samples):
            raise DigitlabError(f"--hold-out {name!r}: no samples by that writer; the set's writers are "
                                + ", ".join(writers[:20]) + (", ..." if len(writers) > 20 else "")
                                + meant(name, writers))
    held = written_by(hold_out)
    train, test = [s for s in samples if not held(s)], [s for s in samples if held(s)]
    if not train:
        raise DigitlabError("--hold-out names every writer of the set, which leaves nothing to train on; "
                            "hold out fewer")
    record = {"kind": "by-writer", "test_size": round(len(test) / len(samples), 4), "seed": seed, "chosen": True,
              "train_writers": sorted({writer_of(s) for s in train}),
              "test_writers": sorted({writer_of(s) for s in test})}
    return train, test, record


def split_as_recorded(samples: list[Sample], record: dict) -> tuple[list[Sample], list[Sample]]:
    """Training and test parts as a recorded split made them: whatever was trained on stays in training.

    Samples added since go to the test part unless their writer trained (a split by writer) — so a model
    is never scored on samples, or writers, it learned from. A record without names is split again.
    """
    writers, ids = set(record.get("train_writers") or []), set(record.get("train_ids") or [])
    if not writers and not ids:
        train, test, _ = split_samples(samples, test_size=record.get("test_size"), seed=record.get("seed", 42))
        return train, test
    by_them = written_by(writers)
    seen = [s.id in ids or by_them(s) for s in samples]
    return [s for s, x in zip(samples, seen) if x], [s for s, x in zip(samples, seen) if not x]


def held_out_digest(samples: Iterable[Sample]) -> str:
    """A short fingerprint of which samples a model was measured on (their ids, in any order): ``evaluate`` tells a
    held-out part that changed since from the same one, where counting them could not (one removed, one added)."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(s.id for s in samples)).encode()).hexdigest()[:16]


def load_handwriting(name: str, *, test_size: float | None = None, seed: int = 42,
                     record: dict | None = None) -> Dataset:
    """The handwriting set ``name`` as a :class:`Dataset` of 28×28 images (see :func:`split_samples`).

    With ``record`` (a run's recorded split), the parts are rebuilt as :func:`split_as_recorded` says; the training
    part may then be empty (the writers it was trained on removed since): its test part is what is measured.
    Problems found while reading (a damaged index, missing files) are in ``split["problems"]``.
    """
    store = HandwritingSet.open(name)
    samples = store.samples()
    if record is not None:
        train, test = split_as_recorded(samples, record)
        record = dict(record)
    else:
        train, test, record = split_samples(samples, test_size=test_size, seed=seed)
        record["tested"] = held_out_digest(test)
    if not test:
        raise DigitlabError(f"handwriting set {name!r} has no samples left to test on: every one was trained on")
    if not train and record is None:  # a run's split rebuilt needs only its test part: its writers may have gone
        raise DigitlabError(f"handwriting set {name!r} has too few samples to hold some out for testing")
    train_images, train_labels = store.images(train)
    test_images, test_labels = store.images(test)
    if store.problems:
        record["problems"] = list(store.problems)
    record["n_samples"] = len(samples)
    return Dataset(name, train_images, train_labels, test_images, test_labels, 255, record)


@dataclass
class ImportSummary:
    """What ``digitlab data import`` did: counts, and one line per picture that did not go in (with ``sheet``:
    the sheets cut, and the marks on them left out as no one digit)."""

    added: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)
    sheets: int = 0
    left_out: int = 0
    short_lines: list[str] = field(default_factory=list)  # a sheet's lines that gave fewer digits than its others


def label_from_path(path: Path) -> int | None:
    """The digit a picture shows, from its folder (``3/abc.jpg``) or a file name starting with it (``7-ada.png``).

    A name that starts with a longer number (``2041.jpg``) or with no digit (``IMG_2041.jpg``) gives None:
    guessing would mislabel.

    Examples
    --------
    >>> label_from_path(Path("photos/3/img_0042.jpg")), label_from_path(Path("7-ada.png")), label_from_path(Path("5.png"))
    (3, 7, 5)
    >>> label_from_path(Path("IMG_2041.jpg")), label_from_path(Path("2041.jpg"))
    (None, None)
    """
    if re.fullmatch(r"[0-9]", path.parent.name):
        return int(path.parent.name)
    match = re.match(r"([0-9])(?![0-9])", path.stem)
    return int(match.group(1)) if match else None


def import_pictures(name: str, paths: Iterable[Path], *, writer: str | None = None, source: str = "import",
                    log: Callable[[str], None] = lambda line: None, sheet: str | None = None) -> ImportSummary:
    """Add pictures (files, or folders searched recursively) to the set ``name``, creating it if new.

    A picture that cannot be read or labelled is one line in ``failures`` and the rest go in; exact
    duplicates of pictures already in the set are skipped and counted. With ``sheet`` (the digit each line
    holds, top line first, e.g. ``"0123456789"``) every picture is a sheet of handwritten digits, cut into one
    sample per digit by :func:`digitlab.sheet.cut_sheet` (source ``"sheet"``); a sheet whose lines do not match
    is one line in ``failures``, and none of its digits go in.
    """
    writer = check_new_writer(writer)
    if sheet is not None:
        from digitlab.sheet import check_rows

        sheet = check_rows(sheet)
    from digitlab.data.handwriting import list_sets

    new = name not in list_sets()
    store = HandwritingSet.open(name, create=True)
    summary = ImportSummary()
    try:
        _import_into(store, paths, writer, source, log, summary, sheet)
    finally:
        if new and summary.added == 0:  # nothing went in: leave no empty set behind
            try:
                store.delete(only_if_empty=True)  # under the set's lock: not if another writer saved into it
            except DigitlabError:
                pass
    return summary


def _import_into(store: HandwritingSet, paths: Iterable[Path], writer: str | None, source: str,
                 log: Callable[[str], None], summary: ImportSummary, sheet: str | None) -> None:
    batch: list[tuple[Path, NewSample]] = []
    for path in _pictures(paths, summary):
        try:
            items = _sheet(path, sheet, writer, summary) if sheet else _picture(path, writer, source, summary)
        except OSError as exc:
            summary.failures.append(f"{path}: cannot read it ({exc.strerror or exc})")
            continue
        except DigitlabError as exc:
            summary.failures.append(f"{path}: {exc}")
            continue
        size = sum(len(item.picture) for item in items)
        if batch and (len(batch) + len(items) > IMPORT_BATCH
                      or sum(len(item.picture) for _, item in batch) + size > IMPORT_BATCH_BYTES):
            _save_batch(store, batch, log, summary)  # a sheet's digits go in together, in one batch
        batch += [(path, item) for item in items]
    _save_batch(store, batch, log, summary)


def _picture(path: Path, writer: str | None, source: str, summary: ImportSummary) -> list[NewSample]:
    """One picture of one digit, labelled by its folder or name; none (and a line in ``summary``) if it cannot be."""
    label = label_from_path(path)
    if label is None:
        summary.failures.append(f"{path}: no digit to label it by: put it in a folder named by its digit "
                                "(3/abc.jpg) or start its name with the digit (3-abc.jpg)")
        return []
    if path.stat().st_size > MAX_FILE_BYTES:  # refused before it is read into memory; a phone's photo is 5-10 MiB, as
        summary.failures.append(f"{path}: {path.stat().st_size / 2**20:.1f} MiB; the limit is "  # `predict` takes
                                f"{MAX_FILE_BYTES // 2**20} MiB, send a smaller file")  # (5 MiB refused them: a tester)
        return []
    from digitlab.data.image_files import read_image_and_bytes
    from digitlab.data.images import WORK_SIDE, prepare_digit

    image, data = read_image_and_bytes(path, draft=WORK_SIDE)
    one_digit(image)
    return [new_sample(data, label, writer=writer, source=source, prepared=prepare_digit(image, (28, 28), 255))]


def one_digit(image: Any) -> None:
    """Refuse a picture of :data:`SEVERAL` separate marks or more (:func:`digitlab.read.count_marks`): a whole sheet
    imported as one digit's sample (or a row of digits saved on the collecting page) would teach the model its label
    for all its digits. Each of 540 photos of one digit is one mark; of the 10,000 MNIST test digits, 35 are 2 (a
    broken stroke), 3 are 3 and 1 is 5."""
    from digitlab.read import count_marks

    try:
        marks: int | None = count_marks(image)
    except DigitlabError:  # more marks than a number holds
        marks = None
    if marks is None or marks >= SEVERAL:
        held = "very many" if marks is None else f"{marks:,}"
        raise DigitlabError(f"holds {held} separate marks, not one digit: crop each digit to a picture of its own, or "
                            "import a sheet of digits with `digitlab data import --sheet DIGITS` (one digit to a line)")


def _sheet(path: Path, rows: str, writer: str | None, summary: ImportSummary) -> list[NewSample]:
    """Every digit of the sheet at ``path``, labelled by its line (:func:`digitlab.sheet.cut_sheet`)."""
    from digitlab.data.images import WORK_SIDE, read_image
    from digitlab.sheet import cut_sheet

    cut = cut_sheet(read_image(path, draft=WORK_SIDE), rows)
    items = [new_sample(d.picture, d.label, writer=writer, source="sheet", prepared=d.prepared) for d in cut.digits]
    summary.sheets += 1
    summary.left_out += cut.left_out
    counts = [sum(d.line == n for d in cut.digits) for n in range(len(rows))]
    usual = sorted(counts)[len(counts) // 2]  # a mark left out may hold several digits run together (a teacher's
    summary.short_lines += [f"{path.name}: the line of {rows[n]}s gave {count} digit{'s' * (count != 1)}, the "
                            f"others about {usual}" for n, count in enumerate(counts) if count <= usual - 2]  # 5 of 14)
    return items


def _save_batch(store: HandwritingSet, batch: list[tuple[Path, NewSample]], log: Callable[[str], None],
                summary: ImportSummary) -> None:
    """Save the pictures read so far in one index write (a full disk raises: every later one would fail too)."""
    try:
        saved = store.save([item for _, item in batch])
    except StoreWriteError as exc:
        if not summary.added:
            raise
        raise StoreWriteError(f"{exc} ({summary.added} pictures before these went in; run the import again for "
                              "the rest: pictures already in the set are skipped)") from None
    for (path, item), (_, added) in zip(batch, saved):
        summary.added += added
        summary.duplicates += not added
        log(f"{path} → {item.sample.label}" if added else f"{path}: already in the set, skipped")
    batch.clear()


def _pictures(paths: Iterable[Path], summary: ImportSummary) -> list[Path]:
    """The pictures to import: files named, and in folders those with a picture's ending (:data:`PICTURES`). Photos
    it does not read there (:data:`UNREAD`) are one line each, and so is a folder of no pictures: a folder of a
    phone's HEIC photos imported nothing in silence."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            entries = [p for p in path.rglob("*") if not p.is_dir() and not hidden(p.relative_to(path))]
            root = path.resolve()  # a link out of a handed-in folder had brought a teacher's own file in as a sample
            outside = sorted(p for p in entries if p.is_symlink() and not _leads_into(p, root))
            summary.failures += [f"{p}: a link to a file outside {path}; copy the picture itself in" for p in outside]
            files = sorted(p for p in entries if p.is_file() and p not in outside)
            summary.failures += [f"{p}: not a file but a pipe, a device or a link that leads nowhere" for p in
                                 sorted(set(entries) - set(files) - set(outside))]  # had been passed over in silence
            found += [p for p in files if p.suffix.lower() in PICTURES]
            summary.failures += [f"{p}: a kind of picture digitlab does not read ({p.suffix[1:].upper()}): save it as "
                                 "JPEG or PNG" for p in files if p.suffix.lower() in UNREAD]
            if not any(p.suffix.lower() in PICTURES + UNREAD for p in files):
                summary.failures.append(f"{path}: no pictures in this folder")
        elif path.is_symlink() and path.is_file() and not _leads_into(path, path.parent.resolve()):
            summary.failures.append(f"{path}: a link to a file outside its folder; copy the picture itself in")
        elif path.is_file():
            found.append(path)
        else:
            summary.failures.append(f"{path}: not a file but a pipe or device" if path.exists()
                                    else f"{path}: no such file or folder")
    return found


def _leads_into(link: Path, root: Path) -> bool:
    """Whether ``link`` leads to a place under ``root`` (a loop leads nowhere: it is named so by the caller)."""
    try:
        return link.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a loop of links (Python 3.11 raises RuntimeError)
        return True


def export_idx(name: str, folder: Path, *, test_size: float | None = None, seed: int = 42,
               gzip: bool = False) -> list[Path]:
    """Write the set's split as the four MNIST-format IDX files (MNIST's file names) into ``folder``
    (:func:`digitlab.data.idx_export.write_idx_files`)."""
    from digitlab.data.idx_export import write_idx_files

    return write_idx_files(load_handwriting(name, test_size=test_size, seed=seed), folder, gzip=gzip)


def export_pictures(name: str, folder: Path, *, writer: str | None = None) -> tuple[Path, int]:
    """Write the set's pictures as they arrived (every writer's, or one's) into a new ``folder``:
    ``<digit>/<id>.<ext>``, the layout ``digitlab data import`` reads (labels from the folders; the writer is
    given to it again with ``--writer``), and ``samples.csv`` (id, label, writer, file): a student's drawings given
    back (a name a spreadsheet would take for a formula, "=...", "-...", with "'" before it). All or nothing
    (:func:`~digitlab.fileio.atomic_folder`; ``folder-2`` when ``folder`` exists).
    Returns the folder written and how many pictures it holds."""
    import csv

    from digitlab.fileio import atomic_folder

    store = HandwritingSet.open(name)
    samples = store.samples()
    if writer is not None:
        samples = [s for s in samples if written_by([writer])(s)]
        if not samples:
            named = sorted({writer_of(s) for s in store.samples()})
            raise DigitlabError(f"handwriting set {name!r} has no samples by writer {writer!r} (writers: "
                                f"{listed(named)}){meant(writer, named)}")
    if not samples:
        raise DigitlabError(f"handwriting set {name!r} has no samples to export")
    folder = Path(folder).resolve()  # "." or "..": a folder beside it, named as it is ("/": refused)
    if not folder.name:
        raise DigitlabError(f"{folder} has no name to write a folder beside: give a new folder's name")
    with atomic_folder(folder) as staged:
        rows = []
        for sample in samples:
            file = Path(str(sample.label)) / f"{sample.id}{Path(sample.original).suffix.lower()}"
            (staged.path / file.parent).mkdir(exist_ok=True)
            (staged.path / file).write_bytes(store.original_bytes(sample))
            writer = writer_of(sample)  # a name a spreadsheet would run as a formula ("=1+1"): "'" before it
            rows.append({"id": sample.id, "label": sample.label, "file": file.as_posix(),
                         "writer": "'" + writer if writer[:1] in ("=", "+", "-", "@", "\t", "\r") else writer})
        with open(staged.path / "samples.csv", "w", newline="", encoding="utf-8") as table:
            out = csv.DictWriter(table, ["id", "label", "writer", "file"], lineterminator="\n")
            out.writeheader()
            out.writerows(rows)
    return staged.final, len(samples)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
