"""Load test of ``POST /api/predict`` with `hey` (Debian package ``hey``) against ``digitlab serve`` on loopback.

One run measures three loads on the same server, one after the other:

1. ``GET /healthz`` (``--requests`` at ``--concurrency`` clients): the framework's own ceiling;
2. ``POST /api/predict`` with the page's request, the same count and clients, as fast as answers come;
3. the classroom: ``--drawers`` simulated students, each sending the page's request at most
   ``--rate`` times a second (the page's own pace while the pen moves) for ``--seconds``; each waits
   for its answer before the next, as the page does, so a slow server shows as fewer requests.

The page's request (``--payload page``, the default) is what ``static/app.js`` sends: the drawing shrunk
to 112 px, a one-channel PNG as ``static/graypng.js`` writes it as the raw body, ``?input=true``.
``--payload page-rgba`` is the same drawing as canvas.toBlob's RGBA PNG (the page before its grey PNGs, and
browsers without CompressionStream); ``--payload page400`` is the page before issue 14 (the
400×400 canvas as a multipart file, the 28×28 echo always on); ``--payload json`` a 28×28 pixel grid.
The server is the real ``digitlab serve --workers N`` (ONNX Runtime where installed; ``--engine
estimator`` sets ``DIGITLAB_SERVE_ONNX=0``), its log written to ``bench-output/bench_serve_server.log``.
Everything stays on 127.0.0.1 and every load is bounded in requests or seconds.

Usage::

    python benchmarks/bench_serve.py --model runs/<mnist-cnn-run>                  # 2 workers on 2 cores
    python benchmarks/bench_serve.py --model runs/<run> --engine estimator --payload page400 --workers 1

Prints requests/s, p50/p95/p99, the errors, the ratio to ``/healthz`` and the server's CPU time per request
(the user + system time of its processes, from Linux's /proc) of each load, and each server process's resident
memory after the loads (now and at its peak; "torch" where PyTorch is loaded in it); writes
``bench-output/bench_serve.json``. Exit code 1 when any request failed or the classroom's p99 is over
``--p99-limit-ms`` (100 ms).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "digitlabbenchboundary"
PAGE_SIDE = 112  # app.js SEND_SIDE
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder (or model.json) to serve")
    parser.add_argument("--requests", "-n", type=int, default=10_000)
    parser.add_argument("--concurrency", "-c", type=int, default=50)
    parser.add_argument("--payload", choices=["page", "page-rgba", "page400", "json"], default="page")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes")
    parser.add_argument("--engine", choices=["onnx", "estimator"], default="onnx")
    parser.add_argument("--drawers", type=int, default=100, help="simulated students drawing at once (0: skip)")
    parser.add_argument("--rate", type=float, default=12.0, help="requests per second per drawer, at most")
    parser.add_argument("--seconds", type=int, default=30, help="how long the class draws")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output")
    args = parser.parse_args()

    hey = shutil.which("hey")
    if hey is None:
        sys.exit("bench_serve: the load tool `hey` is missing; install it with `apt-get install -y hey`")
    args.out.mkdir(parents=True, exist_ok=True)
    body_path, content_type, query = _payload(args.payload, args.out)

    port = _free_port()
    log_path = args.out / "bench_serve_server.log"
    server = _start_server(args.model, port, args.workers, args.engine, log_path)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server)
        _wait_workers(log_path, args.workers, server)
        health = json.loads(urllib.request.urlopen(f"{url}/healthz").read())
        predict_url = f"{url}/api/predict{query}"
        # warm-up: first requests pay for lazy imports and allocator growth, in every worker
        _hey(hey, predict_url, 1000, min(args.concurrency, 10), body_path, content_type)
        results = {
            "GET /healthz": _with_cpu(server.pid, _hey, hey, f"{url}/healthz", args.requests, args.concurrency),
            "POST /api/predict": _with_cpu(server.pid, _hey, hey, predict_url, args.requests, args.concurrency,
                                           body_path, content_type),
        }
        if args.drawers:
            results["classroom"] = _with_cpu(server.pid, _hey, hey, predict_url, None, args.drawers, body_path,
                                             content_type, qps=args.rate, seconds=args.seconds)
        memory = _server_memory(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()

    load = os.getloadavg()
    print(f"model {health['model_id']} on {health.get('engine', 'estimator')}, payload {args.payload} "
          f"({body_path.stat().st_size:,} bytes, {content_type.split(';')[0]}{query}), {args.workers} worker(s), "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'':20s} {'clients':>8s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}"
          f" {'vs healthz':>10s} {'CPU ms/req':>10s}  status / errors")
    base = results["GET /healthz"]["rps"]
    clients = {"GET /healthz": args.concurrency, "POST /api/predict": args.concurrency, "classroom": args.drawers}
    for name, r in results.items():
        print(f"{name:20s} {clients[name]:8d} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['slowest_ms']:8.2f} {r['rps'] / base:10.1%} {r['server_cpu_ms']:10.3f}  "
              f"{r['status']} errors={r['errors']}")
    if memory:
        print("server processes, resident MB now (peak): " + ", ".join(
            f"{m['rss_mb']:.0f} ({m['peak_mb']:.0f}){' torch' if m['torch'] else ''}" for m in memory))
    checks = []
    for name in results:
        r = results[name]
        bad = sum(v for k, v in r["status"].items() if k != "200") + (r["errors"] != "none")
        checks.append((f"{name}: {bad} failed", bad == 0))
    if "classroom" in results:
        room = results["classroom"]
        offered = args.drawers * args.rate
        print(f"classroom: {args.drawers} drawers x {args.rate:g} req/s offered {offered:,.0f} req/s for "
              f"{args.seconds} s; served {room['rps']:,.0f} req/s ({room['rps'] / offered:.0%} of offered), "
              f"{room['total']:,} requests")
        checks.append((f"classroom p99 {room['p99_ms']:.1f} ms (limit {args.p99_limit_ms:g} ms)",
                       room["p99_ms"] <= args.p99_limit_ms))
    passed = all(ok for _, ok in checks)
    print(("PASS: " if passed else "FAIL: ") + "; ".join(text for text, _ in checks))
    record = {
        "model_id": health["model_id"], "engine": health.get("engine"), "payload": args.payload,
        "bytes": body_path.stat().st_size, "requests": args.requests, "concurrency": args.concurrency,
        "drawers": args.drawers, "rate": args.rate, "seconds": args.seconds, "workers": args.workers,
        "cpus": os.cpu_count(), "load_average": load, "results": results, "memory": memory, "passed": passed,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    (args.out / "bench_serve.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0 if passed else 1


# ---------------------------------------------------------------------------------------------


def _drawing() -> "object":
    """A 7 drawn with the page's brush on its 400×400 white canvas."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (400, 400), "white")
    ImageDraw.Draw(canvas).line([(110, 90), (290, 90), (170, 330)], fill="black", width=26, joint="curve")
    return canvas


def _payload(kind: str, out: Path) -> tuple[Path, str, str]:
    """The request body on disk, its content type and the query string."""
    from PIL import Image

    canvas = _drawing()
    if kind == "json":
        small = 255 - __import__("numpy").asarray(canvas.convert("L").resize((28, 28), Image.Resampling.BOX))
        path = out / "bench_body.json"
        path.write_text(json.dumps({"pixels": small.tolist()}))
        return path, "application/json", ""
    buffer = io.BytesIO()
    if kind in ("page", "page-rgba"):  # app.js: drawImage to 112 px (smoothed), then graypng.js or toBlob's RGBA
        small = canvas.resize((PAGE_SIDE, PAGE_SIDE), Image.Resampling.BILINEAR)
        path = out / "bench_body.png"
        if kind == "page":
            from digitlab.data.plain_png import grey_png

            path.write_bytes(grey_png(small.convert("L").tobytes(), PAGE_SIDE, PAGE_SIDE))
        else:
            small.convert("RGBA").save(buffer, "PNG")
            path.write_bytes(buffer.getvalue())
        return path, "image/png", "?input=true"
    canvas.save(buffer, "PNG")  # the page before issue 14: the 400 px canvas, multipart, the echo always on
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"drawing.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + buffer.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()
    path = out / "bench_body.multipart"
    path.write_bytes(body)
    return path, f"multipart/form-data; boundary={BOUNDARY}", "?input=true"


def _with_cpu(pid: int, run, *args, **kwargs) -> dict:
    """``run(*args, **kwargs)``'s hey results, with the server's CPU time per request (``server_cpu_ms``):
    the user and system time of the server process and its workers over the run (Linux; NaN elsewhere)."""
    before = _server_cpu_s(pid)
    result = run(*args, **kwargs)
    after = _server_cpu_s(pid)
    result["server_cpu_ms"] = (after - before) * 1000 / max(result["total"], 1) if None not in (before, after) else float("nan")
    return result


def _server_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and its children, read from /proc; None without /proc."""
    total, found = 0, False
    try:
        stats = list(Path("/proc").glob("[0-9]*/stat"))
    except OSError:
        return None
    for stat in stats:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except (OSError, IndexError):
            continue  # a process that ended meanwhile
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
            found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None


def _server_memory(pid: int) -> list[dict]:
    """Resident and peak resident memory (MB) of process ``pid`` and its children, and whether each has PyTorch
    mapped, from /proc; [] without /proc."""
    found = []
    for status in sorted(Path("/proc").glob("[0-9]*/status")):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if int(status.parent.name) != pid and int(fields["PPid"]) != pid:
                continue
            torch = "/torch/" in (status.parent / "maps").read_text()
        except (OSError, KeyError, ValueError):
            continue  # a process that ended meanwhile, or no /proc
        kb = lambda name: int(fields[name].split()[0])  # noqa: E731
        found.append({"pid": int(status.parent.name), "rss_mb": kb("VmRSS") / 1024, "peak_mb": kb("VmHWM") / 1024,
                      "torch": torch})
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(model: Path, port: int, workers: int, engine: str, log_path: Path) -> subprocess.Popen:
    """``digitlab serve`` as a person runs it, its output in ``log_path``."""
    env = {**os.environ, "DIGITLAB_SERVE_ONNX": "1" if engine == "onnx" else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "digitlab", "serve", "--model", str(model.resolve()), "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]
    log = open(log_path, "w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_workers(log_path: Path, workers: int, server: subprocess.Popen, timeout: float = 120) -> None:
    """Until every worker process has read its model (the first logs ``serving <id> from <file>``, each other
    ``worker process <pid> is serving too``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"bench_serve: the server exited with code {server.returncode}; see {log_path}")
        text = log_path.read_text(errors="replace")
        if len(re.findall(r"serving \S+ from |worker process \d+ is serving too", text)) >= workers:
            time.sleep(1)  # the last one's uvicorn starts accepting
            return
        time.sleep(0.2)
    sys.exit(f"bench_serve: not every worker started; see {log_path}")


def _wait_ready(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"bench_serve: the server exited with code {server.returncode}")
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("bench_serve: the server did not become ready")


def _hey(hey: str, url: str, n: int | None, c: int, body: Path | None = None, content_type: str | None = None,
         qps: float | None = None, seconds: int | None = None) -> dict:
    """Run hey: ``n`` requests, or for ``seconds``; ``qps`` caps each client's rate."""
    command = [hey, "-c", str(c), "-t", "30"] + (["-z", f"{seconds}s"] if seconds else ["-n", str(n)])
    command += ["-q", str(qps)] if qps else []
    if body is not None:
        command += ["-m", "POST", "-D", str(body), "-T", content_type or "application/octet-stream"]
    done = subprocess.run(command + [url], capture_output=True, text=True, check=True,
                          timeout=(seconds or 600) + 120)
    return _parse_hey(done.stdout)


def _parse_hey(text: str) -> dict:
    """Pick the summary, the percentiles and the status codes out of hey's report."""

    def seconds(label: str) -> float:
        m = re.search(rf"{label}:\s+([\d.]+) secs", text)
        return float(m.group(1)) * 1000 if m else float("nan")

    def percentile(p: int) -> float:
        m = re.search(rf"\s{p}%% in ([\d.]+) secs".replace("%%", "%"), text)
        return float(m.group(1)) * 1000 if m else float("nan")

    status = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", text))
    errors = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": percentile(50), "p90_ms": percentile(90), "p95_ms": percentile(95), "p99_ms": percentile(99),
        "total": sum(int(v) for v in status.values()),
        "slowest_ms": seconds("Slowest"), "average_ms": seconds("Average"),
        "status": {k: int(v) for k, v in status.items()},
        "errors": errors.group(1).strip() if errors else "none",
    }


if __name__ == "__main__":
    sys.exit(main())
