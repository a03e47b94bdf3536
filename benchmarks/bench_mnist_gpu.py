"""The CNN on a CUDA GPU: accuracy at training-time budgets over seeds, beside the PyTorch example recipe.

For ``benchmarks/gpu_check.sh``; runs on a CPU too (slowly), so it can be smoke-tested anywhere.
Each budget is trained with a few recipes over ``--seeds`` seeds; the table gives the mean ± sd of
the training seconds and the test accuracy, and for each budget the share of seeds that reached
99.0%. The GPU is warmed up (CUDA context, cuDNN) by a throwaway fit before anything is timed.
A GPU-trained model's exported weights are reloaded on the CPU and must predict the same labels.

Examples
--------
    python benchmarks/bench_mnist_gpu.py --mnist-dir ../shared/data/mnist            # about 4 minutes on an H200
    python benchmarks/bench_mnist_gpu.py --budgets 1 --seeds 1 --recipes by-budget --baseline-epochs 0 --limit 5000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from bench_mnist_cpu import example_recipe, load_mnist  # noqa: E402

from digitlab.models import make_model  # noqa: E402
from digitlab.models.cnn import CNNClassifier  # noqa: E402

RECIPES = {  # name -> parameters over the recipe digitlab picks for the budget (digitlab.models.cnn_recipes)
    "by-budget": {},
    "batch512": {"width": 16, "batch_size": 512, "lr": 0.8, "augment": 0.0, "distort": 0.0, "tta": False},
    "batch1024": {"width": 16, "batch_size": 1024, "lr": 1.2, "augment": 0.0, "distort": 0.0, "tta": False},  # fewer launches
    "wide-aug": {"width": 32, "batch_size": 128, "augment": 2.0, "distort": 0.1, "lr": 0.2, "tta": True},
}


def fit(X, y, X_test, y_test, budget: float, seed: int, recipe: dict) -> dict:
    params = {"time_budget": budget, "epochs": 1000, "device": "auto", **recipe}
    model = make_model("cnn", dataset="mnist", seed=seed, params=params)
    tick = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - tick
    return {"model": model, "seconds": seconds, "accuracy": float(model.score(X_test, y_test)), "epochs": model.n_iter_}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def cpu_reload_agrees(model, X_test) -> bool:
    """The exported weights, rebuilt on the CPU, give the GPU model's labels (bf16 may move a few)."""
    cpu = CNNClassifier.from_tensors({**model.get_params(), "device": "cpu"}, model.export_tensors())
    agree = float(np.mean(cpu.predict(X_test) == model.predict(X_test)))
    print(f"GPU-trained model reloaded on the CPU: {agree:.2%} of test labels identical")
    return agree > 0.998


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist-dir", type=Path, default=HERE.parents[1] / "shared/data/mnist")
    parser.add_argument("--budgets", default="0.5,1,2,5,30")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--recipes", default="by-budget,batch512,batch1024,wide-aug")
    parser.add_argument("--long-recipe", default="by-budget", help="the only recipe run at budgets over 10 s")
    parser.add_argument("--baseline-epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke runs)")
    parser.add_argument("--json", type=Path, default=None, help="also write every result here")
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else "CPU (no CUDA)"
    print(f"device: {name}; torch {torch.__version__}; cuDNN {torch.backends.cudnn.version() if cuda else '-'}")
    X, y, X_test, y_test = load_mnist(args.mnist_dir)
    if args.limit:
        X, y = X[: args.limit], y[: args.limit]
    fit(X[:2048], y[:2048], X_test[:256], y_test[:256], 0.5, 0, {})  # warm-up: CUDA context, cuDNN plans

    results, last = [], None
    print(f"\n{'recipe':>9} {'budget s':>9} {'train s (mean ± sd)':>20} {'test accuracy (mean ± sd)':>26} {'≥99.0%':>7}")
    for budget in [float(b) for b in args.budgets.split(",")]:
        for recipe in args.recipes.split(","):
            if budget > 10 and recipe != args.long_recipe:
                continue
            runs = [fit(X, y, X_test, y_test, budget, seed, RECIPES[recipe]) for seed in range(args.seeds)]
            accs, secs = [r["accuracy"] for r in runs], [r["seconds"] for r in runs]
            hits = sum(a >= 0.99 for a in accs)
            print(f"{recipe:>9} {budget:9.1f} {mean_sd(secs):>20} {mean_sd(accs):>26} {hits:>4}/{len(runs)}", flush=True)
            results.append({"recipe": recipe, "budget": budget, "seconds": secs, "accuracy": accs,
                            "epochs": [r["epochs"] for r in runs]})
            last = runs[-1]["model"]
    ok = cpu_reload_agrees(last, X_test)

    if args.baseline_epochs:
        device = torch.device("cuda" if cuda else "cpu")
        print(f"\nPyTorch example recipe, {args.baseline_epochs} epochs, {args.seeds} seeds (seconds to 99.0%):")
        reached = []
        for seed in range(args.seeds):
            points = list(example_recipe(X, y, X_test, y_test, max_epochs=args.baseline_epochs,
                                         evals_per_epoch=2, device=device, seed=seed))
            hit = next((s for _, s, a in points if a >= 0.99), None)
            print(f"  seed {seed}: " + ", ".join(f"{e:.1f} ep {s:.1f} s {a:.4f}" for e, s, a in points))
            reached.append(hit)
        results.append({"recipe": "pytorch-example", "seconds_to_99": reached})
    if args.json:
        args.json.write_text(json.dumps({"device": name, "results": results, "cpu_reload_agrees": ok}, indent=1))


if __name__ == "__main__":
    main()
