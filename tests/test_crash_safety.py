"""Kill real `digitlab run` and `digitlab data fetch` processes with SIGKILL at random moments.

After every kill, each visible run folder is complete and reproduces its metrics, the MNIST cache
is either whole and verified or not there at all, and the next command works and leaves no staging
folder behind. ``DIGITLAB_KILLS`` sets the number of kills of each command (default 3; the figure
in RELIABILITY.md uses 20).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import mnist_source

KILLS = int(os.environ.get("DIGITLAB_KILLS", "3"))
RUN_FILES = {"model.json", "metrics.json", "predictions.csv", "report.html", "figures"}


def _kill_after(args: list[str], seconds: float, env: dict[str, str], writing: Path | None = None) -> int | None:
    """Start ``digitlab ARGS`` and SIGKILL it ``seconds`` later, unless it ended; return its exit code or None.

    With ``writing``, the clock starts only once a staging folder appears there, so the kill lands
    in the middle of the writes, where it can do the most harm.
    """
    child = subprocess.Popen([sys.executable, "-m", "digitlab", *args], env={**os.environ, **env},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while writing is not None and child.poll() is None and time.monotonic() < deadline:
        if any(p.name.startswith((".tmp-", ".fetch-")) for p in writing.iterdir()):
            break
        time.sleep(0.005)
    try:
        return child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        return None


def _check_runs(runs: Path) -> int:
    """Every visible folder is a whole run that reproduces; return how many there are."""
    from digitlab.reproduce import reevaluate

    visible = [p for p in runs.iterdir() if not p.name.startswith(".")]
    for folder in visible:
        assert RUN_FILES <= {p.name for p in folder.iterdir()}, f"partial run folder {folder.name}"
        assert reevaluate(folder).matches, f"{folder.name} does not reproduce its metrics"
    return len(visible)


@pytest.mark.slow
def test_killed_runs_leave_only_whole_runs(tmp_path):
    runs, rng = tmp_path / "runs", random.Random(7)
    runs.mkdir()
    ended = left = 0
    for i in range(KILLS):  # every other kill lands while the run folder is being written
        writing = runs if i % 2 else None
        ended += _kill_after(["run", "--out", str(runs)], rng.uniform(0, 1.0) if writing else rng.uniform(0.5, 4.0),
                             {}, writing) is not None
        _check_runs(runs)
        left = max(left, sum(p.name.startswith(".tmp-") for p in runs.iterdir()))
    print(f"{KILLS} runs: {KILLS - ended} killed, {ended} ended first; at most {left} staging folder(s) seen")
    whole = _check_runs(runs)  # a kill after the final rename, before the process exits, leaves a whole run
    assert ended <= whole <= KILLS
    subprocess.run([sys.executable, "-m", "digitlab", "run", "--out", str(runs)], check=True,
                   capture_output=True, timeout=300)
    assert _check_runs(runs) == whole + 1
    assert [p.name for p in runs.iterdir() if p.name.startswith(".")] == []  # no staging survives the next run


@pytest.mark.slow
def test_killed_fetches_leave_a_whole_cache_or_none(tmp_path):
    source = mnist_source()
    if source is None:
        pytest.skip("the real MNIST files are absent")
    from digitlab.data.mnist import load_mnist, _checksums_hold, _read_manifest

    cache, rng = tmp_path / "mnist", random.Random(11)
    env = {"DIGITLAB_DATA": str(tmp_path)}
    for i in range(KILLS):
        (cache / "manifest.json").unlink(missing_ok=True)  # make every attempt fetch again
        writing = cache if i % 2 and cache.is_dir() else None
        _kill_after(["data", "fetch", "mnist", "--from", str(source)],
                    rng.uniform(0, 0.3) if writing else rng.uniform(0.3, 1.5), env, writing)
        if cache.is_dir() and _read_manifest(cache) is not None:
            assert _checksums_hold(cache)  # a manifest means four verified files
    result = subprocess.run([sys.executable, "-m", "digitlab", "data", "fetch", "mnist", "--from", str(source)],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []
    assert load_mnist(cache=cache).n_test == 10_000


def test_sigterm_while_a_run_is_written_leaves_no_staging_folder(tmp_path):
    """SIGTERM (`kill`, a scheduler's stop) ended the process on the spot: a run's, a fine-tune's or a pictures
    export's `.tmp-<name>` staging folder stayed, a student's pictures in it (a crash audit). It unwinds as Ctrl-C
    does now: "terminated", nothing left, and then it dies by the signal, as a service manager expects (systemd
    counts an exit status of 143 a failure)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    child = subprocess.Popen([sys.executable, "-m", "digitlab", "run", "--out", str(runs)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while child.poll() is None and not any(p.name.startswith(".tmp-") for p in runs.iterdir()):
        assert time.monotonic() < deadline, "the run never began writing"
        time.sleep(0.002)
    child.send_signal(signal.SIGTERM)
    stderr = child.communicate(timeout=120)[1]
    assert child.returncode == -signal.SIGTERM and stderr.strip().splitlines()[-1] == "terminated", stderr
    assert list(runs.iterdir()) == []
