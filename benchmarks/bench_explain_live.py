"""Latency of ``POST /api/predict?explain=true`` (issue 13, part 2) against the same request without it.

The app is built in-process (:func:`digitlab.serve.app.create_app`, ONNX Runtime where installed, as
``digitlab serve`` does) and driven by FastAPI's TestClient, one request at a time: the drawing page's own
request (a digit drawn at 400 px, shrunk to 112 px, the PNG as the body, ``?input=true``), with and without
``&explain=true``, alternating in rounds so both see the same machine. Times are the client's wall clock
per request (TestClient's in-process transport included, no network) and the server's own ``milliseconds``.

Usage::

    python benchmarks/bench_explain_live.py --model /tmp/<copy-of-an-mnist-cnn-run> [--requests 300]
    python benchmarks/bench_explain_live.py --model RUN --plain-only   # e.g. against an older checkout

Target: p50 with ``explain=true`` ≤ 30 ms for the CNN. Exit code 1 when it is missed.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path


def _page_request() -> bytes:
    """A 7 drawn as the page draws it (26 px brush on 400 px), shrunk to 112 px, as PNG."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(image).line([(100, 80), (300, 80), (160, 340)], fill=0, width=26, joint="curve")
    buffer = io.BytesIO()
    image.resize((112, 112), Image.LANCZOS).save(buffer, "PNG")
    return buffer.getvalue()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a run folder (an MNIST CNN for the target)")
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind (after 20 warm-up)")
    parser.add_argument("--plain-only", action="store_true", help="only the request without explain")
    parser.add_argument("--target-ms", type=float, default=30.0)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from digitlab.serve.app import create_app

    body = _page_request()
    headers = {"Content-Type": "image/png"}
    kinds = {"plain": "/api/predict?input=true"}
    if not args.plain_only:
        kinds["explain"] = "/api/predict?input=true&explain=true"
    times: dict[str, list[float]] = {k: [] for k in kinds}
    server: dict[str, list[float]] = {k: [] for k in kinds}
    with TestClient(create_app(args.model, args.model.parent)) as client:
        engine = client.get("/healthz").json()["engine"]
        for _ in range(20):
            for url in kinds.values():
                assert client.post(url, content=body, headers=headers).status_code == 200
        for _ in range(args.requests):
            for kind, url in kinds.items():
                start = time.perf_counter()
                response = client.post(url, content=body, headers=headers)
                times[kind].append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text
                server[kind].append(response.json()["milliseconds"])
        answer = client.post(kinds.get("explain", kinds["plain"]), content=body, headers=headers).json()
    result = {"model": str(args.model), "engine": engine, "requests": args.requests,
              "saliency_method": answer.get("saliency_method"), "activations": len(answer.get("activations") or [])}
    for kind in kinds:
        result[kind] = {
            "p50_ms": round(statistics.median(times[kind]), 2),
            "p95_ms": round(_percentile(times[kind], 95), 2),
            "server_p50_ms": round(statistics.median(server[kind]), 2),
            "server_p95_ms": round(_percentile(server[kind], 95), 2),
        }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if "explain" in result:
        ok = result["explain"]["p50_ms"] <= args.target_ms
        print(f"explain=true p50 {result['explain']['p50_ms']} ms: {'meets' if ok else 'MISSES'} the "
              f"{args.target_ms:g} ms target")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
