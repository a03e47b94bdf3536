"""Load test of ``POST /api/predict`` with `hey` (Debian package ``hey``) against the app on loopback.

The app runs in its own process (uvicorn, the ``app_from_env`` factory) with the model given; `hey`
sends ``--requests`` predictions from ``--concurrency`` clients at once, each the PNG that the drawing
page sends (a 400×400 canvas with a drawn digit) or, with ``--payload json``, a 28×28 pixel grid.
The baseline, run in the same script, is ``GET /healthz`` under the same load: the framework's own
floor, so the ratio shows what preparing and predicting adds.

Usage::

    python benchmarks/bench_serve.py --model runs/<mnist-cnn-run>            # 10,000 requests, 50 clients
    python benchmarks/bench_serve.py --model runs/<run> --payload json --workers 2

Prints p50/p90/p99 latency, throughput, and the status codes; writes ``bench-output/bench_serve.json``.
Exit code 1 when any request failed or p99 is over ``--p99-limit-ms`` (20 ms).
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder (or model.json) to serve")
    parser.add_argument("--requests", "-n", type=int, default=10_000)
    parser.add_argument("--concurrency", "-c", type=int, default=50)
    parser.add_argument("--payload", choices=["png", "json"], default="png")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--qps", type=float, default=None,
                        help="requests per second per client (open loop); default: as fast as answers come")
    parser.add_argument("--p99-limit-ms", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    hey = shutil.which("hey")
    if hey is None:
        sys.exit("bench_serve: the load tool `hey` is missing; install it with `apt-get install -y hey`")
    args.out.mkdir(parents=True, exist_ok=True)
    body_path, content_type = _payload(args.payload, args.out)

    port = _free_port()
    server = _start_server(args.model, port, args.workers)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server)
        model_id = json.loads(urllib.request.urlopen(f"{url}/healthz").read())["model_id"]
        # warm-up: first requests pay for lazy imports and allocator growth
        _hey(hey, f"{url}/api/predict", 500, min(args.concurrency, 10), body_path, content_type)
        results = {}
        if not args.skip_baseline:
            results["baseline GET /healthz"] = _hey(hey, f"{url}/healthz", args.requests, args.concurrency,
                                                    qps=args.qps)
        results["POST /api/predict"] = _hey(
            hey, f"{url}/api/predict", args.requests, args.concurrency, body_path, content_type, qps=args.qps
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    predict = results["POST /api/predict"]
    rate = f"{args.qps:g} req/s each" if args.qps else "closed loop"
    print(f"model {model_id}, payload {args.payload} ({body_path.stat().st_size:,} bytes), "
          f"{args.concurrency} clients ({rate}), {args.workers} worker(s), {os.cpu_count()} CPUs")
    print(f"{'':24s} {'req/s':>8s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}  status")
    for name, r in results.items():
        print(f"{name:24s} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p90_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['slowest_ms']:8.2f}  {r['status']} errors={r['errors']}")
    if "baseline GET /healthz" in results:
        base = results["baseline GET /healthz"]
        print(f"ratio predict/baseline: p99 x{predict['p99_ms'] / base['p99_ms']:.2f}, "
              f"throughput x{predict['rps'] / base['rps']:.2f}")
    ok_count = predict["status"].get("200", 0)
    failed = args.requests - ok_count
    passed = failed == 0 and predict["p99_ms"] <= args.p99_limit_ms
    print(f"{'PASS' if passed else 'FAIL'}: {ok_count:,}/{args.requests:,} answered 200, "
          f"p99 {predict['p99_ms']:.2f} ms (limit {args.p99_limit_ms} ms)")
    record = {
        "model_id": model_id, "payload": args.payload, "requests": args.requests,
        "concurrency": args.concurrency, "qps_per_client": args.qps, "workers": args.workers, "cpus": os.cpu_count(),
        "results": results, "passed": passed,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    (args.out / "bench_serve.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0 if passed else 1


# ---------------------------------------------------------------------------------------------


def _payload(kind: str, out: Path) -> tuple[Path, str]:
    """The request body on disk, and its content type."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (400, 400), "white")  # what the drawing page sends
    ImageDraw.Draw(canvas).line([(110, 90), (290, 90), (170, 330)], fill="black", width=26, joint="curve")
    if kind == "json":
        small = 255 - __import__("numpy").asarray(canvas.convert("L").resize((28, 28), Image.Resampling.BOX))
        path = out / "bench_body.json"
        path.write_text(json.dumps({"pixels": small.tolist()}))
        return path, "application/json"
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"drawing.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + buffer.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()
    path = out / "bench_body.multipart"
    path.write_bytes(body)
    return path, f"multipart/form-data; boundary={BOUNDARY}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(model: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DIGITLAB_MODEL": str(model.resolve()),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    arguments = ["--factory", "digitlab.serve.app:app_from_env", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    # Import the CNN module first so its registry entry exists even where digitlab.models does not
    # import it yet (with --workers > 1 the workers import only the app).
    preamble = ("import importlib.util, sys, uvicorn\n"
                "if importlib.util.find_spec('torch'): import digitlab.models.cnn\n"
                f"sys.argv = ['uvicorn', *{arguments!r}]\n"
                "sys.exit(uvicorn.main())")
    return subprocess.Popen([sys.executable, "-c", preamble], env=env)


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


def _hey(hey: str, url: str, n: int, c: int, body: Path | None = None, content_type: str | None = None,
         qps: float | None = None) -> dict:
    command = [hey, "-n", str(n), "-c", str(c), "-t", "30"] + (["-q", str(qps)] if qps else [])
    if body is not None:
        command += ["-m", "POST", "-D", str(body), "-T", content_type or "application/octet-stream"]
    done = subprocess.run(command + [url], capture_output=True, text=True, check=True)
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
        "p50_ms": percentile(50), "p90_ms": percentile(90), "p99_ms": percentile(99),
        "slowest_ms": seconds("Slowest"), "average_ms": seconds("Average"),
        "status": {k: int(v) for k, v in status.items()},
        "errors": errors.group(1).strip() if errors else "none",
    }


if __name__ == "__main__":
    sys.exit(main())
