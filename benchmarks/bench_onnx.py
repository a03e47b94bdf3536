"""Single-image latency of a saved model: PyTorch eager (the estimator) against ONNX Runtime, and parity.

The run's model is exported with :func:`digitlab.export.export_onnx` into a temporary folder (the run
is not touched), read back with :func:`digitlab.onnx_model.load_onnx`, and then:

- parity on the run's whole test set (the MNIST CNN: all 10,000 test images): identical argmax share
  and max |Δprobability| between ``estimator.predict_proba`` and ONNX Runtime;
- single-image latency, one thread each: the median of ``--calls`` calls (after ``--warmup``) of
  ``predict_proba`` on one test image (a different one each call), measured in alternating blocks so
  that both see the same machine load. Three paths: the estimator (PyTorch eager, as the library
  predicts today), :class:`~digitlab.onnx_model.OnnxModel` (ONNX Runtime with the input checks the
  library does), and a bare ``InferenceSession.run`` (ONNX Runtime alone). The ratio is eager / ONNX.

Examples
--------
    DIGITLAB_MNIST_SOURCE=../shared/data/mnist digitlab run --dataset mnist --model cnn --out /tmp/onnx-runs
    python benchmarks/bench_onnx.py --model /tmp/onnx-runs/<run>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import numpy as np  # noqa: E402

from digitlab.export import check_parity, export_onnx, run_dataset  # noqa: E402
from digitlab.onnx_model import INPUT, OUTPUTS, load_onnx  # noqa: E402
from digitlab.preprocess import test_features  # noqa: E402
from digitlab.runs import find_latest_model  # noqa: E402
from digitlab.store import load_model  # noqa: E402


def latencies(paths: dict, X: np.ndarray, calls: int, warmup: int, block: int = 100) -> dict[str, float]:
    """Median milliseconds per single-image call of each path, measured in alternating blocks."""
    for call in paths.values():
        for i in range(warmup):
            call(X[i % len(X) : i % len(X) + 1])
    times: dict[str, list[float]] = {name: [] for name in paths}
    done = 0
    while done < calls:
        for name, call in paths.items():
            for i in range(done, done + block):
                row = X[i % len(X) : i % len(X) + 1]
                tick = time.perf_counter()
                call(row)
                times[name].append(time.perf_counter() - tick)
        done += block
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def main() -> None:
    """Export, check parity, time one image through each path, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="run folder (default: the newest in --runs)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--calls", type=int, default=3000, help="timed single-image calls per path (≥ 1,000)")
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # one thread each (the estimator also drops to one for ≤ 16 images)
    run = args.model or find_latest_model(args.runs)
    if run is None:
        sys.exit(f"no run in {args.runs}/; pass --model RUN")
    estimator = load_model(run)
    card = estimator.card
    with tempfile.TemporaryDirectory() as tmp:
        tick = time.perf_counter()
        result = export_onnx(run, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - tick
        onnx = load_onnx(result.path, threads=1)
        size = result.path.stat().st_size
    X, _ = test_features(run_dataset(card))
    parity = check_parity(estimator.model, onnx.model, X)  # the file as read back, on the whole test set

    session = onnx.model.session
    paths = {
        "pytorch eager (estimator.predict_proba)": estimator.model.predict_proba,
        "onnx runtime (OnnxModel.predict_proba)": onnx.model.predict_proba,
        "onnx runtime (bare session.run)": lambda row: session.run([OUTPUTS[1]], {INPUT: row}),
    }
    ms = latencies(paths, X, args.calls, args.warmup)
    eager, wrapped, bare = ms.values()

    views = getattr(estimator.model, "tta", None)
    if views is not None:
        from digitlab.models.cnn_torch import tta_shifts

        views = 1 + len(tta_shifts(views))
    print(f"model: {card.id} ({card.model} on {card.dataset}, test-time views: {views or 'none'})")
    print(f"export: {export_s:.1f} s, {size:,} bytes; {parity.describe()}")
    print(f"single image, 1 thread, median of {args.calls:,} calls after {args.warmup} warm-up:")
    for name, value in ms.items():
        print(f"  {name:<42} {value:8.4f} ms")
    print(f"ratio eager / OnnxModel: {eager / wrapped:.2f}x; eager / bare session: {eager / bare:.2f}x")


if __name__ == "__main__":
    main()
