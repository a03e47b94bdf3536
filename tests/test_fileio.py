"""Atomic folders: the name is decided first, nothing half-written shows, and a killed writer's leftovers go."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from digitlab.fileio import atomic_folder, remove_stale_staging, scratch_folder


def test_the_name_is_decided_before_the_block_runs(tmp_path):
    (tmp_path / "run").mkdir()
    with atomic_folder(tmp_path / "run") as first:
        assert first.final == tmp_path / "run-2"
        with atomic_folder(tmp_path / "run") as second:  # a second writer at the same moment
            assert second.final == tmp_path / "run-3"
            (second.path / "name").write_text(second.final.name)
        (first.path / "name").write_text(first.final.name)
    for name in ("run-2", "run-3"):
        assert (tmp_path / name / "name").read_text() == name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run-2", "run-3"]


def test_a_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "run") as staged:
            (staged.path / "half").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_live_writers_staging_is_never_removed(tmp_path):
    with atomic_folder(tmp_path / "run") as staged:
        assert remove_stale_staging(tmp_path) == []
        assert staged.path.is_dir()
    with scratch_folder(tmp_path, ".fetch-") as scratch:
        assert remove_stale_staging(tmp_path, ".fetch-") == [] and scratch.is_dir()
    assert list(tmp_path.iterdir()) == [tmp_path / "run"]


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from digitlab.fileio import atomic_folder
    with atomic_folder(Path(sys.argv[1]) / "run") as staged:
        (staged.path / "half").write_text("x")
        print(staged.path, flush=True)
        time.sleep(60)
""")


def test_a_killed_writers_staging_is_removed_by_the_next_writer(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    staging = Path(child.stdout.readline().strip())
    assert staging.is_dir() and remove_stale_staging(tmp_path) == []  # alive: left alone
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert staging.is_dir()  # the kill left it
    with atomic_folder(tmp_path / "run") as staged:
        assert staged.final == tmp_path / "run"  # the name the dead writer had reserved is free again
        assert list(staged.path.iterdir()) == [staged.path / ".lock"]  # its half-written file is gone
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert not (tmp_path / "run" / ".lock").exists()


def test_an_unlocked_staging_folder_is_removed_only_when_old(tmp_path):
    orphan = tmp_path / ".tmp-run"
    orphan.mkdir()
    assert remove_stale_staging(tmp_path) == []  # might be a writer that is just starting
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    assert remove_stale_staging(tmp_path) == [orphan] and not orphan.exists()


def test_two_runs_in_the_same_second_name_their_own_folders(tmp_path):
    from datetime import datetime, timezone

    from digitlab.data import load_dataset
    from digitlab.evaluate import evaluate_on_test
    from digitlab.report import RunRecord, write_run
    from digitlab.train import train

    data = load_dataset("digits", limit=200)
    fitted = train("logreg", data)
    predictions, metrics = evaluate_on_test(fitted.model, data)
    record = RunRecord(data, fitted, predictions, metrics, datetime(2026, 1, 1, tzinfo=timezone.utc))
    folders = [write_run(record, tmp_path) for _ in range(2)]
    assert [f.name for f in folders] == ["20260101T000000Z-digits-logreg", "20260101T000000Z-digits-logreg-2"]
    for folder in folders:
        assert json.loads((folder / "metrics.json").read_text())["run"] == folder.name
        assert str(folder) in (folder / "report.html").read_text()


@pytest.mark.parametrize("kind", ["SIGINT", "SIGTERM"])
def test_files_moved_together_are_all_moved_before_a_signal_is_acted_on(tmp_path, kind):
    """A reviewer: a signal mask held the main thread's signals only, and OpenBLAS's threads took Ctrl-C, so a
    KeyboardInterrupt (or SIGTERM's end) came between the moves: one new file beside three old ones."""
    script = f"""
import os, signal, sys, pathlib
import numpy as np  # OpenBLAS's threads, as in every digitlab command
from digitlab import fileio
a, b = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
real = os.replace
def replace(src, dst):
    real(src, dst)
    if pathlib.Path(dst).name == "w":
        os.kill(os.getpid(), signal.{kind})  # as the first file lands
        sum(range(10**5))  # bytecodes enough for a handler to run
fileio.os.replace = replace
try:
    fileio.replace_together([a / n for n in "wxyz"], b)
except KeyboardInterrupt:
    print("interrupted after", "".join((b / n).read_text() for n in "wxyz"))
"""
    staged, final = tmp_path / "staged", tmp_path / "final"
    staged.mkdir(), final.mkdir()
    for name in "wxyz":
        (staged / name).write_text("n")
        (final / name).write_text("o")
    threads = {**os.environ, "OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"}  # make test sets 1: a mask then held
    done = subprocess.run([sys.executable, "-c", script, str(staged), str(final)], capture_output=True, text=True,
                          timeout=60, env=threads)
    assert "".join((final / n).read_text() for n in "wxyz") == "nnnn", done.stderr
    if kind == "SIGINT":
        assert done.stdout.strip() == "interrupted after nnnn", done.stderr
    else:
        assert done.returncode == -15, done.stderr


@pytest.mark.parametrize("maker", ["atomic_folder", "scratch_folder"])
def test_sigterm_just_after_the_staging_folder_is_made_leaves_nothing(tmp_path, maker):
    """SIGTERM between making (and locking) the staging folder and the block that removes it on an error left
    `.tmp-<name>` behind: 1 run in 7 of the crash test (a test auditor). The window is widened here to 5 s."""
    script = textwrap.dedent(f"""
        import sys, time
        from digitlab import fileio, terminal
        terminal.unwind_on_sigterm()
        owner = fileio if {maker!r} == "atomic_folder" else fileio.tempfile
        slow = owner._reserve if {maker!r} == "atomic_folder" else owner.mkdtemp
        def reserve_slowly(*args, **kwargs):
            made = slow(*args, **kwargs)
            print("made", flush=True)
            time.sleep(5)
            return made
        setattr(owner, slow.__name__, reserve_slowly)
        try:
            with (fileio.atomic_folder(sys.argv[1] + "/run") if {maker!r} == "atomic_folder"
                  else fileio.scratch_folder(sys.argv[1], ".scratch-")):
                print("never", flush=True)
        except terminal.Terminated:
            print("terminated", flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "made\n"
    child.send_signal(signal.SIGTERM)
    out = child.communicate(timeout=30)[0]
    assert out == "terminated\n" and list(tmp_path.iterdir()) == []
