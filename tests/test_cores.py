"""digitlab.cores: PyTorch's CPU threads fitted to the cores other programs leave free (benchmarks/bench_busy_cpu.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from digitlab.cores import CoreShare, busy_seconds  # noqa: E402

LINUX = os.path.exists("/proc/stat") and hasattr(os, "sched_getaffinity")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
TWO_CORES = pytest.mark.skipif(not LINUX or len(os.sched_getaffinity(0)) != 2,
                               reason="reads /proc/stat; one busy program is one of two cores (CI's machine)")


@pytest.fixture
def threads(monkeypatch):
    """Two threads for the test, watched (no OMP_NUM_THREADS, which `make test` sets); the count found set back."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    found = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(found)


def test_busy_seconds_counts_the_busy_fields_of_the_cpus_asked_for(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  900 0 90 5000 7 0 3 0 0 0\n"
                    "cpu0 100 1 10 2000 5 2 3 4 0 0\n"  # user nice system idle iowait irq softirq steal guest guest_nice
                    "cpu1 800 0 80 3000 2 0 0 0 0 0\n"
                    "intr 123 4 5\n")
    assert busy_seconds({0}, str(stat)) == pytest.approx((100 + 10 + 2 + 3 + 4) / TICKS)  # idle, iowait, nice out
    assert busy_seconds({0}, str(stat), niced=True) == pytest.approx((100 + 1 + 10 + 2 + 3 + 4) / TICKS)
    assert busy_seconds({0, 1}, str(stat)) == pytest.approx((119 + 880) / TICKS)
    assert busy_seconds({5}, str(stat)) == 0
    assert busy_seconds({0}, str(tmp_path / "missing")) is None  # not Linux: nothing to read, nothing changed
    stat.write_bytes(b"cpu0 12 1 x 3\n")
    assert busy_seconds({0}, str(stat)) is None  # another format: not watched, rather than a fit that fails
    stat.write_bytes(b"cpu0 \xff\xfe 1 2\n")
    assert busy_seconds({0}, str(stat)) is None


def test_the_threads_are_the_free_cores_at_least_one_at_most_the_cap():
    share = CoreShare(watch=False, cpus=set(range(8)), cap=6)
    assert [share.threads_for(others) for others in (0, 1.4, 1.6, 3.0, 7.6, 20)] == [6, 6, 6, 5, 1, 1]


def test_an_unwatched_share_changes_nothing():
    before = torch.get_num_threads()
    with CoreShare(every=0.0, watch=False, cap=before + 3) as share:
        share.tick()
    assert torch.get_num_threads() == before and share.changes == 0


def _stat(path, busy_ticks: float, nice_ticks: int = 0) -> None:
    busy = int(busy_ticks)
    path.write_text(f"cpu  {busy} {nice_ticks} 0 0 0 0 0 0 0 0\n"
                    f"cpu0 {busy} {nice_ticks} 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\n")


def _burn(seconds: float) -> None:
    """This process's own CPU time: the share must not take it for another program's."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_share_leaves_the_others_their_cores_and_takes_them_back_when_they_stop(tmp_path, threads):
    """The kernel's busy time (a file in /proc/stat's format) against this process's own CPU time: ten seconds
    of others' work in a third of a second gives one thread; none gives the cap again; closing sets back the
    count found."""
    stat = tmp_path / "stat"
    _stat(stat, 1000)
    with CoreShare(every=0.3, cpus={0, 1}, cap=2, stat=str(stat)) as share:
        time.sleep(0.35)
        _stat(stat, 1000 + 10 * TICKS)
        share.tick()
        assert torch.get_num_threads() == 1 and share.changes == 1
        time.sleep(0.35)  # the busy time stands still: nobody else ran
        share.tick()
        assert torch.get_num_threads() == 2 and share.changes == 2
        time.sleep(0.35)
        _stat(stat, 1000 + 20 * TICKS)
        share.tick()
        assert torch.get_num_threads() == 1
        share.tick()  # within ``every`` of the last look: nothing measured, nothing changed
        assert share.changes == 3
    assert torch.get_num_threads() == 2  # closed while at one thread: the count it found


def test_the_share_does_not_count_its_own_work_or_niced_programs(tmp_path, threads):
    """Busy time that is this process's own (plus a little), or a niced program's, leaves both threads."""
    stat = tmp_path / "stat"
    _stat(stat, 1000)
    with CoreShare(every=0.3, cpus={0, 1}, cap=2, stat=str(stat), niced=False) as share:  # as if not run niced
        start_cpu, start = time.process_time(), time.perf_counter()
        _burn(0.4)
        own, wall = time.process_time() - start_cpu, time.perf_counter() - start
        _stat(stat, 1000 + (own + 0.3 * wall) * TICKS, nice_ticks=100 * TICKS)  # others: 0.3 of a core
        share.tick()
        assert torch.get_num_threads() == 2 and share.changes == 0


def test_a_thread_count_set_in_the_environment_is_kept(tmp_path, threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    stat = tmp_path / "stat"
    _stat(stat, 1000)
    with CoreShare(every=0.0, cpus={0, 1}, cap=2, stat=str(stat)) as share:
        _stat(stat, 1000 + 10 * TICKS)
        share.tick()
    assert torch.get_num_threads() == 2 and share.changes == 0


@TWO_CORES
def test_one_thread_beside_a_real_busy_program(threads):
    """A real busy process (a `while True: pass` loop) beside this one: the share leaves it a core. (Taking the
    core back when it stops is tested above: under `make test` another test process keeps a core busy.)"""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with CoreShare(every=0.25, cap=2) as share:
            a, end = torch.rand(256, 256), time.perf_counter() + 10.0
            while torch.get_num_threads() == 2 and time.perf_counter() < end:
                for _ in range(20):
                    a = torch.tanh(a @ a)
                share.tick()
            assert torch.get_num_threads() == 1, "still two threads beside a busy core"
        assert torch.get_num_threads() == 2
    finally:
        busy.kill()
        busy.wait()


@TWO_CORES
def test_a_cnn_fit_beside_a_busy_program_gives_it_a_core_and_leaves_the_thread_count_it_found(threads, monkeypatch):
    from digitlab.models.cnn import CNNClassifier

    seen = []  # each share's changes when it closes (the fit's, and its validations' predictions)
    close = CoreShare.close
    monkeypatch.setattr(CoreShare, "close", lambda self: (seen.append(self.changes), close(self))[-1])
    rng = np.random.default_rng(0)
    X, y = rng.random((2000, 64), dtype=np.float32), rng.integers(0, 10, 2000)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        CNNClassifier(epochs=100, time_budget=2.0, width=4, verbose=False).fit(X, y)
        assert torch.get_num_threads() == 2
    finally:
        busy.kill()
        busy.wait()
    assert max(seen) >= 1, "the fit's share never gave the busy program its core"
