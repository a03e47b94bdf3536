"""Sweep wall time: the same cells serially in this process vs on a 2-worker Dask LocalCluster.

Six models × five seeds on the 8×8 digits (issue 15's target: the cluster's wall time ≤ 0.6× the serial
one). The cluster's time includes starting it. Both runs give identical accuracies, cell for cell, except
the CNN's when the serial process trains with more than one thread.

Usage::

    python benchmarks/bench_sweep.py [--models logreg,svm,knn,forest,mlp,cnn] [--seeds 0,1,2,3,4]
                                     [--workers 2] [--cnn-epochs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from digitlab.sweep import SweepPlan, plan_cells, run_cell, run_sweep


def main() -> None:
    """Run the sweep both ways and print wall times, their ratio and whether the numbers agree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="logreg,svm,knn,forest,mlp,cnn")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cnn-epochs", type=int, default=5, help="Epochs of the CNN (its default, 40, "
                                                                   "would make the CNN most of the sweep).")
    args = parser.parse_args()
    models = args.models.split(",")
    grid = {"cnn": {"epochs": [args.cnn_epochs]}} if "cnn" in models else {}
    cells = plan_cells(models, grid, seeds=[int(s) for s in args.seeds.split(",")])
    print(f"{len(cells)} cells: {', '.join(models)} × seeds {args.seeds} on digits; cpu_count={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for cell in cells:
            run_cell(cell, "digits", f"{tmp}/serial", keep_models=False)
        serial = time.perf_counter() - start
        print(f"serial, in process:          {serial:7.1f} s")

        start = time.perf_counter()
        summary = run_sweep(SweepPlan("digits", cells, Path(tmp) / "dask", save_models=False), scheduler="local", workers=args.workers,
                            say=lambda _: None)
        parallel = time.perf_counter() - start
        print(f"LocalCluster, {args.workers} workers:     {parallel:7.1f} s  ({summary['mode']}, incl. start-up)")

        def numbers(folder: str) -> dict:
            return {p.name: (d["accuracy"], d["error"]) for p in Path(folder, "cells").glob("*.json")
                    for d in [json.loads(p.read_text())]}

        a, b = numbers(f"{tmp}/serial"), numbers(f"{tmp}/dask")
        differ = sorted({json.loads(Path(tmp, "serial", "cells", k).read_text())["model"] for k in a if a[k] != b.get(k)})
    why = " (the serial process trains with two PyTorch threads, each worker with one: their sums differ)" \
        if differ == ["cnn"] else ""
    print(f"ratio cluster / serial: {parallel / serial:.2f} (target ≤ 0.60); "
          f"cells with different accuracy: {', '.join(differ) or 'none'}{why}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
