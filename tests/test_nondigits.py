"""The non-digit pictures (digitlab.data.nondigits): MNIST form, every kind, reproducible, a test part kept unseen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from digitlab.data import fonts as font_files_module
from digitlab.data import nondigits
from digitlab.data.nondigits import (
    ALL_KINDS,
    LETTERS,
    LOOKALIKE_LETTERS,
    SYMBOLS,
    font_files,
    make_nondigits,
)
from digitlab.data.written import HANDS
from digitlab.errors import InvalidValueError

N = 80  # ten of each kind


@pytest.fixture(scope="module")
def parts():
    return {split: make_nondigits(N, seed=0, split=split) for split in ("train", "test")}


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    mass = image.astype(float).sum()
    return float((ys * image).sum() / mass), float((xs * image).sum() / mass)


@pytest.mark.parametrize("split", ["train", "test"])
def test_shapes_dtype_and_range(parts, split):
    images, kinds = parts[split]
    assert images.shape == (N, 28, 28) and images.dtype == np.uint8
    assert kinds.shape == (N,) and kinds.dtype.kind == "U"
    assert int(images.min()) == 0 and int(images.max()) == 255


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_kind_present_in_equal_shares(parts, split):
    _, kinds = parts[split]
    names, counts = np.unique(kinds, return_counts=True)
    assert sorted(names) == sorted(ALL_KINDS)
    assert set(counts) == {N // len(ALL_KINDS)}


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_picture_has_ink_in_mnist_form(parts, split):
    """As prepare_digit makes them: light ink on black, about 20 px, centre of mass at the centre."""
    images, kinds = parts[split]
    for image, kind in zip(images, kinds):
        assert image.max() > 100, kind
        assert (image > 25).sum() >= 12, kind  # more than a speck
        cy, cx = centre_of_mass(image)
        assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0, (kind, cy, cx)
        rows, cols = np.flatnonzero(image.max(axis=1) > 25), np.flatnonzero(image.max(axis=0) > 25)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22, kind
        if kind != "shade":  # a wedge of shadow has its centre of mass near one side: centring it can reach the edge
            assert image[[0, -1]].max() < 64 and image[:, [0, -1]].max() < 64, kind  # black around the ink


def test_same_seed_same_pictures_other_seed_other_pictures(parts):
    images, kinds = make_nondigits(N, seed=0, split="train")
    assert np.array_equal(images, parts["train"][0]) and np.array_equal(kinds, parts["train"][1])
    other, _ = make_nondigits(N, seed=1, split="train")
    assert not np.array_equal(other, images)


def test_a_picture_does_not_depend_on_how_many_are_asked_for():
    few, _ = make_nondigits(4, seed=3, kinds=("letter", "pair"))
    more, _ = make_nondigits(10, seed=3, kinds=("letter", "pair"))
    assert {image.tobytes() for image in few} <= {image.tobytes() for image in more}


def test_train_and_test_share_no_picture(parts):
    train = {image.tobytes() for image in parts["train"][0]}
    test = {image.tobytes() for image in parts["test"][0]}
    assert not train & test


def test_train_and_test_use_disjoint_fonts_and_symbols_and_type_every_letter_but_the_lookalikes():
    assert not set(font_files("train")) & set(font_files("test"))
    assert not set(SYMBOLS["train"]) & set(SYMBOLS["test"])
    every_letter = {chr(c) for c in range(ord("A"), ord("Z") + 1)} | {chr(c) for c in range(ord("a"), ord("z") + 1)}
    for part in ("train", "test"):  # a letter the detector never met typed is let through (a typed "a" a sure 2)
        assert set(LETTERS[part]) == every_letter - set(LOOKALIKE_LETTERS) and len(LETTERS[part]) == 32
    assert set("OoIlZzSsBbgqGT") <= set(LOOKALIKE_LETTERS)


def test_written_letters_every_letter_but_the_lookalikes_in_two_hands():
    """Both hands write the same letters (every one a digit cannot be taken for), each in other strokes."""
    letters = set(HANDS["train"])
    assert letters == set(HANDS["test"]) and not letters & set(LOOKALIKE_LETTERS)
    assert letters == set(LETTERS["train"] + LETTERS["test"])  # the typed letters of both parts
    for letter in letters:
        train, test = HANDS["train"][letter], HANDS["test"][letter]
        same = len(train) == len(test) and all(
            a[0] == b[0] and a[1].shape == b[1].shape and np.allclose(a[1], b[1]) for a, b in zip(train, test))
        assert not same, letter
    images, kinds = make_nondigits(16, seed=0, kinds=("written",), split="test")
    again, _ = make_nondigits(16, seed=0, kinds=("written",), split="train")
    assert set(kinds) == {"written"} and not {i.tobytes() for i in images} & {i.tobytes() for i in again}


def test_test_part_uses_only_fonts_shipped_with_matplotlib():
    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = font_files("test")
    assert len(fonts) >= 4 and all(path.parent == bundled and path.is_file() for path in fonts)
    a, _ = make_nondigits(12, seed=5, split="test", system_fonts=True)
    b, _ = make_nondigits(12, seed=5, split="test", system_fonts=False)
    assert np.array_equal(a, b)


def test_works_without_system_fonts(monkeypatch, tmp_path):
    """A fresh CI machine may have no /usr/share/fonts: the train part falls back to matplotlib's."""
    font_files_module.fonts.cache_clear()
    font_files_module.system_fonts.cache_clear()
    monkeypatch.setattr(font_files_module, "SYSTEM_DIR", tmp_path / "absent")
    try:
        fonts = font_files("train")
        assert fonts and all(path.is_relative_to(matplotlib.get_data_path()) for path in fonts)
        with_system_off, _ = make_nondigits(6, seed=2, kinds=("letter",), system_fonts=False)
        images, _ = make_nondigits(6, seed=2, kinds=("letter",))
        assert np.array_equal(images, with_system_off)
    finally:
        font_files_module.fonts.cache_clear()
        font_files_module.system_fonts.cache_clear()


def test_a_subset_of_kinds_and_no_pictures():
    images, kinds = make_nondigits(5, seed=0, kinds=("noise", "shape"))
    assert images.shape == (5, 28, 28) and sorted(kinds) == ["noise"] * 3 + ["shape"] * 2
    images, kinds = make_nondigits(0, seed=0)
    assert images.shape == (0, 28, 28) and kinds.shape == (0,)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"n": -1, "seed": 0}, "n must be"),
        ({"n": 2, "seed": -1}, "seed must be"),
        ({"n": 2, "seed": 0, "kinds": ("letter", "digit")}, "kinds must be"),
        ({"n": 2, "seed": 0, "kinds": ()}, "kinds must be"),
        ({"n": 2, "seed": 0, "split": "validation"}, "split must be"),
    ],
)
def test_bad_arguments_are_one_clear_error(arguments, message):
    with pytest.raises(InvalidValueError, match=message):
        make_nondigits(**arguments)


def _ink_box(image: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero((image > 25).any(axis=1)), np.flatnonzero((image > 25).any(axis=0))
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def test_a_shade_is_a_block_of_light_never_a_solid_bar_that_would_be_a_1():
    """Shaded paper prepares to a block (much of its box inked); a narrow one must be a gradient, since a
    narrow solid bar is a thick 1 and teaching the detector otherwise would flag 1s."""
    images, _ = make_nondigits(70, seed=4, kinds=("shade",), split="train")
    for image in images:
        box = _ink_box(image)
        assert (box > 25).mean() >= 0.25
        if min(box.shape) / max(box.shape) < 0.45:
            ink = box[box > 25]
            assert np.percentile(ink, 90) - np.percentile(ink, 10) >= 100
    tests, _ = make_nondigits(70, seed=4, kinds=("shade",), split="test")
    assert not any((a == b).all() for a in images for b in tests)


SPEC = {"n": 8, "seed": 0, "kinds": ["letter", "shape"], "split": "test", "system_fonts": False,
        "image_shape": [28, 28], "pixel_max": 255}  # make_nondigits' arguments, as it gives them to its workers


def test_worker_processes_draw_the_same_pictures(monkeypatch, parts):
    """Drawn by three worker processes (real Python ones), in the same order; a NumPy integer for the pixels'
    maximum (a Dataset made from an array's max) is no JSON, and must not stop them."""
    monkeypatch.setattr(nondigits, "PER_WORKER", 20)
    images, kinds = make_nondigits(N, seed=0, split="test", workers=3, pixel_max=np.int64(255))
    assert np.array_equal(images, parts["test"][0]) and np.array_equal(kinds, parts["test"][1])
    assert nondigits._in_workers(SPEC, 2).shape == (8, 28, 28)  # they did run: here they give pictures
    with pytest.raises(InvalidValueError, match="workers must be a whole number of at least 1, got 2.5"):
        make_nondigits(N, seed=0, workers=2.5)


@pytest.mark.parametrize("python", ["/bin/false", "/bin/true", "/no/such/python", ""])
def test_workers_that_fail_or_cannot_start_leave_the_drawing_here(monkeypatch, parts, python):
    """Failing (/bin/false), answering nothing (/bin/true: a reviewer's EOFError), not there, or no Python known."""
    monkeypatch.setattr(nondigits, "PER_WORKER", 20)
    monkeypatch.setattr(sys, "executable", python)
    assert nondigits._in_workers(SPEC, 2) is None
    images, _ = make_nondigits(N, seed=0, split="test", workers=2)
    assert np.array_equal(images, parts["test"][0])


def test_a_learners_own_modules_in_the_current_folder_are_not_imported_by_the_workers(monkeypatch, tmp_path):
    """A reviewer: `python -m` puts the current folder first, so a json.py there ran in every worker."""
    (tmp_path / "json.py").write_text("raise SystemExit('imported')\n")
    (tmp_path / "numpy.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.chdir(tmp_path)
    assert nondigits._in_workers(SPEC, 2).shape == (8, 28, 28)


def test_a_bundled_app_starts_no_workers(monkeypatch):
    """A PyInstaller app's sys.executable is the app itself: run with -m it would start the app again."""
    assert nondigits._in_workers(SPEC, 2).shape == (8, 28, 28)  # this Python starts workers
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert nondigits._in_workers(SPEC, 2) is None


_LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc: Linux only")


def _drawing(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """A Python drawing 40,000 non-digits in two workers, in a session of its own; its workers' pids."""
    script = tmp_path / "draw.py"
    script.write_text(
        "import sys\nfrom digitlab.data.nondigits import make_nondigits\n"
        "print('drawing', flush=True)\n"
        "try:\n    make_nondigits(40_000, seed=0, workers=2)\nexcept KeyboardInterrupt:\n    print('stopped')\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout.readline() == "drawing\n"
    for _ in range(100):  # the workers start
        if len(_children(proc.pid)) == 2:
            break
        time.sleep(0.1)
    time.sleep(1)  # and draw
    return proc, _children(proc.pid)


@_LINUX_PROC
def test_workers_of_a_caller_killed_outright_stop_within_a_second_or_so(tmp_path):
    """A reviewer: SIGKILL (or SIGTERM) runs no `finally`, and the workers went on drawing for seconds."""
    proc, workers = _drawing(tmp_path)
    proc.kill()
    proc.wait()
    start = time.perf_counter()
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.perf_counter() - start < 10:
        time.sleep(0.1)
    assert len(workers) == 2 and time.perf_counter() - start < 3, time.perf_counter() - start


def test_a_worker_whose_caller_died_while_it_was_starting_stops_at_once():
    """Its caller killed while it still imported, a worker took its new parent for its caller and drew on (under load,
    a run killed in its first seconds left its two workers drawing 20,000 pictures)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a caller that has ended: the worker's parent is this test instead
    spec = {"n": 40_000, "seed": 0, "kinds": list(nondigits.ALL_KINDS), "split": "train", "system_fonts": False,
            "image_shape": [28, 28], "pixel_max": 255}
    package = str(Path(nondigits.__file__).resolve().parents[1])
    worker = subprocess.run([sys.executable, "-P", "-c", nondigits._WORKER, package, json.dumps(spec), "0", "2",
                             str(gone.pid)], capture_output=True, timeout=60)
    assert (worker.returncode, worker.stdout) == (1, b"")


@_LINUX_PROC
def test_ctrl_c_stops_the_workers_without_a_traceback(tmp_path):
    """Ctrl+C reaches the terminal's whole process group: the workers end quietly, the caller handles it."""
    proc, workers = _drawing(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (out, err, proc.returncode) == ("stopped\n", "", 0)
    assert len(workers) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
