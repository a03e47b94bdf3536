"""Stress figures of ``digitlab serve`` on loopback: big uploads, half-open connections, load (issue 9).

The real command runs in its own process (``python -m digitlab serve --access-log``: every request
logged, the noisier case) on 127.0.0.1; the script measures three things against it, in this order:

1. **Memory**: ``--uploads`` clients (32) each POST a 4096×4096 RGBA PNG (≈ 76 KB, inside the
   documented limits) at once. The server's resident memory (``/proc/PID/status``) before, its peak,
   and after; every request must be answered (200, 4xx or 503).
2. **Half-open connections**: ``--connections`` sockets (8,000) that stop mid-request, half in their
   headers and half in their body, held ``--hold`` seconds and then closed, while a probe asks
   ``GET /healthz`` on a fresh connection every 50 ms: the worst probe latency, and the server log
   lines written meanwhile (goal: at most 1 per 1,000 disconnects, no traceback). Then ``--stalled``
   (200) such connections are left open: how many the server itself closes within 12 s (its header and
   body timeouts are 10 s).
3. **Load**: `hey` (Debian package ``hey``) sends ``--requests`` (10,000) predictions of the page's
   400×400 PNG from ``--concurrency`` (50) clients: status codes and errors.

Usage::

    python benchmarks/bench_serve_stress.py                       # trains a quick 8×8 model first
    python benchmarks/bench_serve_stress.py --model runs/<run> --connections 2000 --skip-hey

Prints a table of each figure against its target; exit code 1 when one misses.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_serve import _free_port, _hey, _payload  # noqa: E402  (the same payload and hey driver)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="run folder to serve (default: train digits/logreg)")
    parser.add_argument("--uploads", type=int, default=32)
    parser.add_argument("--connections", type=int, default=8000)
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the half-open connections stay")
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--skip-hey", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    _raise_open_files(args.connections + 256)
    model = args.model or _train(args.out)
    log_path = args.out / "bench_serve_stress.log"
    server, url = _start(model, log_path)
    rows: list[tuple[str, str, str, bool]] = []
    try:
        rows += _memory_phase(url, server.pid, args.uploads)
        rows += _half_open_phase(url, log_path, args.connections, args.hold)
        rows += _stalled_phase(url, args.stalled, wait=12.0)
        if not args.skip_hey:
            rows += _load_phase(url, args.out, args.requests, args.concurrency)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{'figure':44s} {'measured':>24s} {'target':>18s}")
    for name, measured, target, ok in rows:
        print(f"{name:44s} {measured:>24s} {target:>18s}  {'ok' if ok else 'MISSED'}")
    print(f"server log: {log_path}")
    return 0 if all(ok for *_, ok in rows) else 1


# ---------------------------------------------------------------------------------------------
# The server


def _raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _train(out: Path) -> Path:
    from digitlab.pipeline import run_pipeline

    return run_pipeline("digits", "logreg", out=Path(tempfile.mkdtemp(prefix="stress-runs-", dir=out))).folder


def _start(model: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "digitlab", "serve", "--model", str(model), "--port", str(port), "--access-log"]
    server = subprocess.Popen(command, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    url = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"bench_serve_stress: the server exited with code {server.returncode}; see {log_path}")
        if _get(url, "/healthz", timeout=1)[0] == 200:
            return server, url
        time.sleep(0.2)
    server.kill()
    sys.exit("bench_serve_stress: the server did not become ready")


def _get(url: str, path: str, timeout: float) -> tuple[int, float]:
    """Status (0 when no answer came) and seconds, on a fresh connection."""
    host, port = url.split(":")
    start = time.perf_counter()
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except OSError:
        status = 0
    finally:
        connection.close()
    return status, time.perf_counter() - start


def _post(url: str, body: bytes, content_type: str, timeout: float = 120) -> int:
    host, port = url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", "/api/predict/image", body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def memory_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` (now) and ``VmHWM`` (peak since start or the last reset) of a process, in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", text).group(1)) / 1024 for key in ("VmRSS", "VmHWM")}


def big_png(side: int = 4096) -> bytes:
    """A side×side RGBA PNG holding one dark stroke on a transparent background (≈ 76 KB at 4096)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    ImageDraw.Draw(image).line([(side // 2, side // 7), (side // 2, side * 6 // 7)], fill=(0, 0, 0, 255),
                               width=max(1, side // 14))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# 1. Memory


def _memory_phase(url: str, pid: int, uploads: int) -> list[tuple[str, str, str, bool]]:
    body = big_png()
    small = big_png(400)
    for _ in range(5):  # warm-up: lazy imports, first allocations
        _post(url, small, "image/png")
    time.sleep(0.5)
    start = memory_mb(pid)["VmRSS"]
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM from here on
    began = time.perf_counter()
    with ThreadPoolExecutor(uploads) as pool:
        statuses = list(pool.map(lambda _: _post(url, body, "image/png"), range(uploads)))
    seconds = time.perf_counter() - began
    peak = memory_mb(pid)["VmHWM"]
    time.sleep(2.0)
    after = memory_mb(pid)["VmRSS"]
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    answered = all(s == 200 or 400 <= s < 500 or s == 503 for s in statuses)
    print(f"{uploads} uploads of a {len(body):,}-byte 4096×4096 PNG in {seconds:.1f} s: statuses {counts}")
    return [
        (f"{uploads}× 4096² PNG: server RSS before", f"{start:.0f} MB", "", True),
        (f"{uploads}× 4096² PNG: server peak RSS", f"{peak:.0f} MB", "≤ 1024 MB", peak <= 1024),
        (f"{uploads}× 4096² PNG: RSS 2 s after - before", f"{after - start:+.0f} MB", "≤ +100 MB",
         after - start <= 100),
        (f"{uploads}× 4096² PNG: answered 200/4xx/503", f"{sum(1 for s in statuses if s)}/{uploads} {counts}",
         "all", answered),
    ]


# ---------------------------------------------------------------------------------------------
# 2. Half-open connections


def _half_open_phase(url: str, log_path: Path, count: int, hold: float) -> list[tuple[str, str, str, bool]]:
    host, port = url.split(":")
    lines_before = _log_lines(log_path)
    probes: list[tuple[int, float]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            probes.append(_get(url, "/healthz", timeout=5))
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    opened: list[socket.socket] = []
    began = time.perf_counter()
    try:
        for i in range(count):
            opened.append(_half_open(host, int(port), headers_only=i % 2 == 0))
        time.sleep(hold)
    finally:
        for sock in opened:
            sock.close()
        open_seconds = time.perf_counter() - began
        time.sleep(2.0)
        stop.set()
        prober.join()
    new_lines = [line for line in _log_lines(log_path)[len(lines_before):]
                 if '"GET /healthz HTTP/1.1" 200' not in line]  # the probes' own access lines
    tracebacks = sum("Traceback" in line for line in new_lines)
    worst = max(seconds for _, seconds in probes)
    failed = sum(1 for status, _ in probes if status != 200)
    print(f"{len(opened):,} half-open connections over {open_seconds:.1f} s; {len(probes)} /healthz probes, "
          f"{failed} not 200; {len(new_lines)} log lines ({tracebacks} tracebacks)")
    return [
        (f"{count:,} half-open: worst /healthz latency", f"{worst * 1000:.0f} ms", "≤ 1000 ms", worst <= 1.0),
        (f"{count:,} half-open: /healthz probes not 200", f"{failed}/{len(probes)}", "0", failed == 0),
        (f"{count:,} half-open: server log lines", f"{len(new_lines)} ({tracebacks} tracebacks)",
         f"≤ {max(1, count // 1000)}, 0 tracebacks", len(new_lines) <= max(1, count // 1000) and not tracebacks),
    ]


def _half_open(host: str, port: int, headers_only: bool) -> socket.socket:
    """A connection that stops mid-request: in its headers, or 100 bytes into a 4,000-byte body."""
    sock = socket.create_connection((host, port), timeout=10)
    if headers_only:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n")
    else:
        sock.sendall(b"POST /api/predict/image HTTP/1.1\r\nHost: bench\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 4000\r\n\r\n" + b"\x89PNG\r\n\x1a\n" + bytes(92))
    return sock


def _stalled_phase(url: str, count: int, wait: float) -> list[tuple[str, str, str, bool]]:
    """Stalled connections left open by the client: does the server close them?"""
    host, port = url.split(":")
    stalled = [_half_open(host, int(port), headers_only=i % 2 == 0) for i in range(count)]
    deadline = time.monotonic() + wait
    closed = 0
    for sock in stalled:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            while sock.recv(65536):
                pass
            closed += 1
        except TimeoutError:
            pass
        except OSError:
            closed += 1
        sock.close()
    print(f"{count} stalled connections: {closed} closed by the server within {wait:g} s")
    return [(f"{count} stalled: closed by the server in {wait:g} s", f"{closed}/{count}", "all", closed == count)]


def _log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


# ---------------------------------------------------------------------------------------------
# 3. Load


def _load_phase(url: str, out: Path, requests: int, concurrency: int) -> list[tuple[str, str, str, bool]]:
    hey = shutil.which("hey")
    if hey is None:
        return [("hey load test", "hey missing: apt-get install -y hey", "", False)]
    body, content_type = _payload("png", out)
    result = _hey(hey, f"http://{url}/api/predict", requests, concurrency, body, content_type)
    ok = result["status"].get("200", 0)
    print(f"hey: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
          f"statuses {result['status']}, errors {result['errors']}")
    return [(f"{requests:,} predictions at {concurrency} clients: 200s", f"{ok:,}/{requests:,}", "all",
             ok == requests and result["errors"] == "none")]


if __name__ == "__main__":
    sys.exit(main())
