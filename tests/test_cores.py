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


def test_busy_seconds_counts_the_busy_fields_of_the_cpus_asked_for(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  900 0 90 5000 7 0 3 0 0 0\n"
                    "cpu0 100 1 10 2000 5 2 3 4 0 0\n"  # user nice system idle iowait irq softirq steal guest guest_nice
                    "cpu1 800 0 80 3000 2 0 0 0 0 0\n"
                    "intr 123 4 5\n")
    ticks = os.sysconf("SC_CLK_TCK")
    assert busy_seconds({0}, str(stat)) == pytest.approx((100 + 1 + 10 + 2 + 3 + 4) / ticks)  # idle, iowait left out
    assert busy_seconds({0, 1}, str(stat)) == pytest.approx((120 + 880) / ticks)
    assert busy_seconds({5}, str(stat)) == 0
    assert busy_seconds({0}, str(tmp_path / "missing")) is None  # not Linux: nothing to read, nothing changed


def test_the_threads_are_the_free_cores_at_least_one_at_most_the_cap():
    share = CoreShare(watch=False, cpus=set(range(8)), cap=6)
    assert [share.threads_for(others) for others in (0, 1.4, 1.6, 3.0, 7.6, 20)] == [6, 6, 6, 5, 1, 1]


def test_an_unwatched_share_changes_nothing():
    before = torch.get_num_threads()
    with CoreShare(every=0.0, watch=False, cap=before + 3) as share:
        share.tick()
    assert torch.get_num_threads() == before and share.changes == 0


def _stat(path, busy_ticks: int) -> None:
    path.write_text(f"cpu  {busy_ticks} 0 0 0 0 0 0 0 0 0\ncpu0 {busy_ticks} 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\n")


def test_the_share_leaves_the_others_their_cores_and_takes_them_back_when_they_stop(tmp_path):
    """The kernel's busy time (a file in /proc/stat's format) against this process's own CPU time: two seconds
    of others' work a second gives one thread; none gives the cap again; closing sets back the count found."""
    stat, ticks = tmp_path / "stat", os.sysconf("SC_CLK_TCK")
    _stat(stat, 1000)
    torch.set_num_threads(2)
    try:
        with CoreShare(every=0.05, cpus={0, 1}, cap=2, stat=str(stat)) as share:
            time.sleep(0.1)
            _stat(stat, 1000 + 10 * ticks)  # ten seconds of others' CPU time in a tenth of a second
            share.tick()
            assert torch.get_num_threads() == 1 and share.changes == 1
            time.sleep(0.1)  # the busy time stands still: nobody else ran
            share.tick()
            assert torch.get_num_threads() == 2 and share.changes == 2
            time.sleep(0.1)
            _stat(stat, 1000 + 20 * ticks)
            share.tick()
            assert torch.get_num_threads() == 1
            share.tick()  # within ``every`` of the last look: nothing measured, nothing changed
            assert share.changes == 3
        assert torch.get_num_threads() == 2  # closed while at one thread: the count it found
    finally:
        torch.set_num_threads(os.cpu_count() or 1)


TWO_CORES = pytest.mark.skipif(not LINUX or len(os.sched_getaffinity(0)) != 2,
                               reason="reads /proc/stat; one busy program is one of two cores (CI's machine)")


@TWO_CORES
def test_one_thread_beside_a_real_busy_program():
    """A real busy process (a `while True: pass` loop) beside this one: the share leaves it a core. (Taking the
    core back when it stops is tested above: under `make test` another test process keeps a core busy.)"""
    os_threads = torch.get_num_threads()
    torch.set_num_threads(2)
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
        torch.set_num_threads(os_threads)


@TWO_CORES
def test_a_cnn_fit_beside_a_busy_program_leaves_the_thread_count_it_found():
    from digitlab.models.cnn import CNNClassifier

    rng = np.random.default_rng(0)
    X, y = rng.random((2000, 64), dtype=np.float32), rng.integers(0, 10, 2000)
    os_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        CNNClassifier(epochs=100, time_budget=2.0, width=4, verbose=False).fit(X, y)
        assert torch.get_num_threads() == 2
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(os_threads)
