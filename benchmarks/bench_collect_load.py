"""A class saving drawings at once into a large handwriting set, through ``digitlab serve --collect``.

Fills a new set in a temporary data folder with ``--samples`` pictures (one ``digitlab data import``), starts the
real server on loopback with ``--workers`` processes collecting into it, then ``--students`` clients each save
``--saves`` different drawings one after another (``POST /api/samples/image``, as the page does), all at once.
Prints each save's latency (median, 90th percentile, slowest), the statuses, and how long one ``GET /api/samples``
(the page's counts) takes after. Run it with ``PYTHONPATH=<other checkout>/src`` to measure other code the same way.

    python benchmarks/bench_collect_load.py [--samples 9000] [--students 30] [--saves 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw


def drawing(seed: str) -> bytes:
    rng = random.Random(seed)
    picture = Image.new("L", (112, 112), 255)
    ImageDraw.Draw(picture).line([(rng.randint(20, 90), rng.randint(15, 95)) for _ in range(4)], fill=0, width=8)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=9000)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        env = {**os.environ, "DIGITLAB_DATA": str(Path(tmp) / "data")}
        pictures = Path(tmp) / "pictures"
        for k in range(args.samples):
            (pictures / str(k % 10)).mkdir(parents=True, exist_ok=True)
            (pictures / str(k % 10) / f"{k}.png").write_bytes(drawing(f"fill{k}"))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "digitlab", "data", "import", "class", str(pictures), "--writer",
                               "bulk"], env=env, capture_output=True, text=True)
        if done.returncode not in (0, 1):  # 1: a picture could not be used (said), the rest went in
            sys.exit(done.stderr)
        added = [line for line in done.stdout.splitlines() if "added" in line]
        print(f"set filled in {time.perf_counter() - start:.1f} s: {added[-1] if added else done.stdout[-200:]}")
        _model(Path(tmp), env)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--port", str(port), "--workers",
                                   str(args.workers), "--collect", "class", "--runs", str(Path(tmp) / "runs")],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _measure(f"http://127.0.0.1:{port}", args)
        finally:
            server.terminate()
            server.wait(timeout=30)


def _model(tmp: Path, env: dict) -> None:
    """The lesson's model, to serve (the saves do not use it)."""
    subprocess.run([sys.executable, "-m", "digitlab", "run", "--out", str(tmp / "runs")], env=env, check=True,
                   capture_output=True)


def _measure(url: str, args) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("the server did not start")
            time.sleep(0.3)
    time.sleep(3)  # every worker up

    def student(s: int) -> list[tuple[int, float]]:
        out = []
        for k in range(args.saves):
            request = urllib.request.Request(f"{url}/api/samples/image?label={k}&writer=student{s}",
                                             data=drawing(f"s{s}-{k}"), headers={"Content-Type": "image/png"})
            start = time.perf_counter()
            try:
                status = urllib.request.urlopen(request, timeout=120).status
            except urllib.error.HTTPError as exc:
                status = exc.code
            out.append((status, time.perf_counter() - start))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(args.students) as pool:
        results = [r for one in pool.map(student, range(args.students)) for r in one]
    took = time.perf_counter() - start
    times = sorted(t for _, t in results)
    print(f"{args.students} students x {args.saves} saves in {took:.1f} s: {dict(Counter(s for s, _ in results))}; "
          f"a save: median {times[len(times) // 2]:.3f} s, p90 {times[int(len(times) * 0.9)]:.3f} s, "
          f"slowest {times[-1]:.3f} s")
    counts = []
    for _ in range(5):
        start = time.perf_counter()
        urllib.request.urlopen(f"{url}/api/samples", timeout=60).read()
        counts.append(time.perf_counter() - start)
    print(f"GET /api/samples: median {sorted(counts)[2] * 1000:.0f} ms of 5")


if __name__ == "__main__":
    main()
