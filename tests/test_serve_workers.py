"""``digitlab serve --workers N``: N processes answer on one port, and stopping the first stops them all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from digitlab.serve.workers import default_workers  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_default_workers_is_the_cores():
    assert 1 <= default_workers() <= (os.cpu_count() or 1)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_two_workers_share_the_port_and_stop_together(lesson_run, tmp_path):
    port = _free_port()
    env = {**os.environ, "DIGITLAB_SERVE_ONNX": "0"}  # the estimator: this test is about the processes
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(lesson_run.folder),
                               "--port", str(port), "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = (tmp_path / "serve.log").read_text()
            if text.count("serving ") >= 2 and "startup complete" in text:
                break
            assert server.poll() is None, text
            time.sleep(0.3)
        else:
            pytest.fail((tmp_path / "serve.log").read_text())
        time.sleep(1)
        workers = _children(server.pid)
        assert len(workers) == 1, workers  # this process, and one more
        grid = [[255 if 4 <= y < 24 and 13 <= x < 16 else 0 for x in range(28)] for y in range(28)]
        for _ in range(20):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict",
                                             data=json.dumps({"pixels": grid}).encode(),
                                             headers={"content-type": "application/json"})
            assert json.loads(urllib.request.urlopen(request, timeout=10).read())["digit"] == 1
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
        assert health["engine"] == "estimator"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)
