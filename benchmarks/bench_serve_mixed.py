"""Students' drawings while others upload large photos: the drawings' latency on ``digitlab serve`` (one worker).

An engineer's load: `hey` (Debian package ``hey``) sends ``--big-clients`` (20) clients' uploads of a
``--side`` (3000) px square PNG for ``--seconds`` + 2 s, and, starting a second later, ``--small-clients`` (5)
clients send the page's 112-px drawing for ``--seconds`` (``--explain``: asking ``?explain=true``, as the page's
toggle does). The server runs in its own process (``python -m digitlab serve --workers 1``) with ``--src`` first
on ``PYTHONPATH``, so the same script measures another checkout's code (``git archive COMMIT src | tar -x -C
/tmp/old``). Prints each load's requests per second, p50/p90/p99 and
status codes.

Usage::

    python benchmarks/bench_serve_mixed.py --model runs/<an MNIST cnn run> [--src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_serve import _free_port, _hey  # noqa: E402  (the same hey driver)


def _pictures(folder: Path, side: int) -> tuple[Path, Path]:
    """A ``side``×``side`` PNG of scribbles (well inside the limits) and the page's 112-px drawing."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    big = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(big)
    for _ in range(40):
        draw.line([tuple(rng.integers(0, side, 2)) for _ in range(4)], fill=0, width=12)
    small = Image.new("L", (112, 112), 255)
    ImageDraw.Draw(small).line([(56, 15), (56, 97)], fill=0, width=8)
    paths = folder / "big.png", folder / "small.png"
    for picture, path in zip((big, small), paths):
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        path.write_bytes(buffer.getvalue())
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder to serve")
    parser.add_argument("--src", type=Path, default=HERE.parent / "src", help="the digitlab source to serve with")
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--big-clients", type=int, default=20)
    parser.add_argument("--small-clients", type=int, default=5)
    parser.add_argument("--side", type=int, default=3000, help="the large photos' side (4096: the pixel budget's fill)")
    parser.add_argument("--explain", action="store_true", help="the drawings ask ?explain=true (the page's toggle)")
    args = parser.parse_args()
    hey = shutil.which("hey")
    if hey is None:
        print("hey missing: apt-get install -y hey")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-mixed-"))
    big, small = _pictures(work, args.side)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(args.model), "--port",
                               str(port), "--workers", "1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/predict"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        results: dict[str, dict] = {}
        uploads = threading.Thread(target=lambda: results.setdefault("large photos", _hey(
            hey, url, None, args.big_clients, big, "image/png", seconds=args.seconds + 2)))
        uploads.start()
        time.sleep(1)
        results["drawings"] = _hey(hey, url + ("?explain=true" if args.explain else ""), None, args.small_clients,
                                   small, "image/png", seconds=args.seconds)
        uploads.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"source: {args.src}{'; drawings explained' if args.explain else ''}")
    for name in ("drawings", "large photos"):
        r = results[name]
        print(f"{name:>12}: {r['rps']:7.1f} req/s, p50 {r['p50_ms']:7.1f} ms, p90 {r['p90_ms']:7.1f} ms, "
              f"p99 {r['p99_ms']:7.1f} ms, status {r['status']}, errors {r['errors'][:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
