"""``digitlab serve --workers N``: N processes answer on one port, and stopping the first stops them all."""

from __future__ import annotations

import http.client
import json
import os
import re
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
    """The child processes of every thread of ``pid`` (a replaced worker is started from a thread of its own)."""
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in path.read_text().split()]
        except OSError:  # the thread ended meanwhile
            pass
    return found


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
            if "is serving too" in text and "startup complete" in text:  # the worker: one line, not its model's
                break
            assert server.poll() is None, text
            time.sleep(0.3)
        else:
            pytest.fail((tmp_path / "serve.log").read_text())
        assert text.count("model.safetensors") == 1, text  # which model it serves: said once, not by each worker
        time.sleep(1)
        workers = _children(server.pid)
        assert len(workers) == 1, workers  # this process, and one more
        score = lambda pid: int(Path(f"/proc/{pid}/oom_score_adj").read_text())  # noqa: E731
        assert score(workers[0]) == score(server.pid) + 500  # out of memory, a worker goes first, and is replaced
        grid = [[255 if 4 <= y < 24 and 13 <= x < 16 else 0 for x in range(28)] for y in range(28)]
        for _ in range(20):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict",
                                             data=json.dumps({"pixels": grid}).encode(),
                                             headers={"content-type": "application/json"})
            assert json.loads(urllib.request.urlopen(request, timeout=10).read())["digit"] == 1
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
        assert health["engine"] == "estimator"
        time.sleep(0.5)
        assert "HTTP/1.1\" 200" not in (tmp_path / "serve.log").read_text()  # no line per request by default
        os.kill(workers[0], signal.SIGKILL)  # killed (out of memory, by hand): another takes its place
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the replacement has built its app
            after = (tmp_path / "serve.log").read_text().partition(f"worker process {workers[0]} exited")[2]
            if "is serving too" in after.partition("in its place")[2]:
                break
            time.sleep(0.3)
        text = (tmp_path / "serve.log").read_text()
        assert f"worker process {workers[0]} exited (code -9); started" in text, text
        (replacement,) = _children(server.pid)
        assert replacement != workers[0] and _alive(replacement), text
        workers.append(replacement)
        assert json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())["status"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert server.returncode == -signal.SIGTERM  # a service manager's clean stop: not exit 143, "failed" to systemd
    assert not [pid for pid in workers if _alive(pid)]  # stopped by the server before it ended (a reviewer: orphaned)
    assert "in its place" not in (tmp_path / "serve.log").read_text().split(f"started {workers[-1]} in its place")[-1]
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def _sockets(port: int, state: str) -> list[str]:
    """The inodes of the TCP sockets on local ``port`` in ``state`` (``01`` established, ``0A`` listening)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.append(fields[9])
    return found


def _established(pid: int, port: int, state: str = "01") -> int:
    """How many of ``pid``'s sockets are connections to ``port`` in ``state`` (Linux /proc); 0 once it has exited."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:  # a child listed a moment ago may be gone (a short-lived helper during start-up)
        return 0
    for fd in fds:
        try:
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if match:
            inodes.add(match.group(1))
    return sum(inode in inodes for inode in _sockets(port, state))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux deals connections out (SO_REUSEPORT)")
def test_a_burst_of_keep_alive_connections_is_shared_by_the_workers(lesson_run, tmp_path):
    """A class opening its pages at once: each worker gets a fair share of the 40 connections (one shared
    socket used to let the first worker to wake accept nearly all of them, and keep them); with
    ``--access-log`` every worker logs each request it answers."""
    port = _free_port()
    env = {**os.environ, "DIGITLAB_SERVE_ONNX": "0"}
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(lesson_run.folder),
                               "--port", str(port), "--workers", "2", "--access-log"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    connections = []
    try:
        deadline = time.monotonic() + 90
        while True:  # until both workers listen (each on its own socket, or the one they share) and have started
            workers = [server.pid, *_children(server.pid)]
            if len(workers) == 2 and all(_established(pid, port, "0A") for pid in workers) \
                    and "startup complete" in (tmp_path / "serve.log").read_text():
                break
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        time.sleep(1)
        for _ in range(40):  # all connected before any is answered: a burst
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.connect()
            connections.append(connection)
        for connection in connections:
            connection.request("GET", "/healthz")
            assert connection.getresponse().read()
        shares = [_established(pid, port) for pid in workers]
        assert sum(shares) == 40, shares
        assert min(shares) >= 8, shares  # Binomial(40, 1/2) falls under 8 about once in 100,000 runs
        with socket.create_connection(("127.0.0.1", port), timeout=10) as big:  # refused before it is read:
            big.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
            assert big.recv(100).startswith(b"HTTP/1.1 431 ")
        time.sleep(0.5)
        logged = (tmp_path / "serve.log").read_text()
        assert logged.count('"GET /healthz HTTP/1.1" 200') == 40
        assert '"- (refused before its request was read) HTTP/1.1" 431' in logged and "Logging error" not in logged
    finally:
        for connection in connections:
            connection.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_a_port_held_by_a_starting_server_is_refused_to_a_second_one(lesson_run, tmp_path):
    """The first server holds its port from before it reads its model; a second one started meanwhile (one
    worker or several) is refused in one line rather than joining the first one's SO_REUSEPORT group."""
    from digitlab.serve.workers import listen

    port = _free_port()
    first = listen("127.0.0.1", port)
    try:
        for workers in ("2", "1"):
            second = subprocess.run([sys.executable, "-m", "digitlab", "serve", "--model", str(lesson_run.folder),
                                     "--port", str(port), "--workers", workers], capture_output=True, text=True,
                                    timeout=60)
            assert second.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in second.stderr, second.stderr
            assert "Traceback" not in second.stderr
        with pytest.raises(OSError):
            listen("127.0.0.1", port)
    finally:
        first.close()


def test_workers_that_cannot_start_say_why_in_one_line_and_are_tried_again_after_a_pause(tmp_path):
    """An engineer moved the run folder and killed a worker: five replacements printed tracebacks, and after six
    deaths no worker was ever started again, the server serving on half its processes until restarted."""
    from digitlab.serve.workers import _Keeper

    env = {**os.environ, "DIGITLAB_MODEL": str(tmp_path / "gone"), "DIGITLAB_RUNS": str(tmp_path),
           "DIGITLAB_SERVE_PARENT": str(os.getpid())}
    code = "from digitlab.serve.workers import _worker_main; _worker_main()"
    failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
    assert re.fullmatch(r"ERROR: +worker process \d+ cannot start: .*gone.*\n", failed.stderr), failed.stderr
    starts: list[float] = []

    def start() -> subprocess.Popen:  # a worker that has died by the time it is handed over, as a refused one
        starts.append(time.monotonic())  # would on a calm machine (one alive at the next look, 0.5 s on, was seen
        worker = subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])  # dying 1 s after the last)
        worker.wait(60)
        return worker

    keeper = _Keeper([start()], start, lambda: False, most=2, within_s=2.0)
    keeper.start()
    time.sleep(7)
    keeper.stop()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert max(gaps) >= 1.9 and len(starts) >= 5, gaps  # a pause, then replacing again


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_a_folder_shipped_with_the_onnx_export_alone_is_served_by_every_worker(lesson_run, tmp_path):
    """An engineer: the README's four files served by 2 workers; each worker was given the model file the folder
    lacks (model.safetensors or .skops), refused it, and was started again, six times, then paused."""
    import shutil

    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    shutil.copytree(lesson_run.folder, run)
    exported = subprocess.run([sys.executable, "-m", "digitlab", "export", "--model", str(run)], capture_output=True,
                              text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("model.json", "model.onnx", "model.onnx.json", "notdigit.safetensors"):
        if (run / name).exists():
            shutil.copy(run / name, shipped / name)
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(shipped),
                               "--port", str(port), "--workers", "2"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = (tmp_path / "serve.log").read_text()
            if "is serving too" in text and text.count("startup complete") >= 1:
                break
            assert server.poll() is None, text
            time.sleep(0.3)
        else:
            pytest.fail((tmp_path / "serve.log").read_text())
        time.sleep(2)  # a refused worker says so, and is started again, within this
        text = (tmp_path / "serve.log").read_text()
        assert "cannot start" not in text and "in its place" not in text, text
        assert f"from {shipped}\n" in text, text  # the folder it serves, not a model file it lacks
        (worker,) = _children(server.pid)
        assert _alive(worker)
        grid = [[255 if 4 <= y < 24 and 13 <= x < 16 else 0 for x in range(28)] for y in range(28)]
        for _ in range(10):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict/pixels",
                                             data=json.dumps({"pixels": grid}).encode(),
                                             headers={"content-type": "application/json"})
            assert urllib.request.urlopen(request, timeout=10).status == 200
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
        assert health["engine"] == "onnxruntime"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_sigterm_stops_a_one_worker_server_by_the_signal(lesson_run, tmp_path):
    """A reviewer: with SIGTERM unwinding commands as Ctrl-C does, a `--workers 1` server swallowed it and exited 0
    (uvicorn stops on an interrupt), and two workers exited 143, a failure to systemd; it dies by the signal again."""
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(lesson_run.folder),
                               "--port", str(port), "--workers", "1"], env={**os.environ, "DIGITLAB_SERVE_ONNX": "0"},
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "startup complete" not in (tmp_path / "serve.log").read_text():
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert server.returncode == -signal.SIGTERM, (tmp_path / "serve.log").read_text()


def test_a_server_on_every_address_says_the_address_to_open_and_that_the_network_can(monkeypatch):
    """A security audit: `--host 0.0.0.0` printed "http://0.0.0.0:8853/", which opened nothing on a student's laptop,
    and nothing said the page was open to every device on the network, with no password."""
    from rich.console import Console

    from digitlab import cli, cli_serve

    monkeypatch.setattr(cli, "console", Console(record=True, width=200))
    cli_serve._say_where("0.0.0.0", 8853, 1)
    said = cli.console.export_text()
    assert "http://0.0.0.0" not in said and "anyone on this network can open it" in said, said
    assert f"http://{cli_serve._address_for_others('0.0.0.0')}:8853/" in said
    monkeypatch.setattr(cli, "console", Console(record=True, width=200))
    cli_serve._say_where("127.0.0.1", 8853, 1)
    assert "http://127.0.0.1:8853/" in (said := cli.console.export_text()) and "anyone" not in said
