"""One CNN recipe on MNIST at one time budget, over seeds: the harness behind the recipe table.

Trains ``CNNClassifier`` with the recipe for the budget (``digitlab.models.cnn_recipes``) overridden by
the ``NAME=VALUE`` pairs given, once per seed, and prints each seed's test accuracy (and with test-time
augmentation when ``--tta``), then mean ± sd. A throwaway fit first takes PyTorch's imports out of the
timing. This is how each row of ``cnn_recipes.CPU`` was chosen (BENCHMARKS.md, "Faster to every accuracy").

Examples
--------
    python benchmarks/bench_recipe.py 4 --seeds 0,1,2,3,4 lr=0.8
    python benchmarks/bench_recipe.py 28 --seeds 0,1,2 --tta augment=2.0 distort=0.1 lr=0.4
    python benchmarks/bench_recipe.py 1000 --seeds 0,1,2 epochs=6       # a fixed number of epochs
    python benchmarks/bench_recipe.py 60 --seeds 0,1,2,3,4 --views 5,9    # each network scored with 5 and 9 views
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.data import load_dataset  # noqa: E402
from digitlab.models import cnn_torch as ct, make_model, parse_params  # noqa: E402
from digitlab.preprocess import test_features, train_features  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mnist_cpu import mean_sd  # noqa: E402  (mean ± sd over the seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("budget", type=float, help="seconds of training")
    parser.add_argument("params", nargs="*", help="NAME=VALUE over the budget's recipe")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tta", action="store_true", help="also score with test-time augmentation (5 views)")
    parser.add_argument("--views", default="", help="also score with each of these numbers of views, e.g. 5,9")
    args = parser.parse_intermixed_args()  # NAME=VALUE pairs before or after --seeds
    views = sorted({int(v) for v in args.views.split(",") if v} | ({5} if args.tta else set()))
    for v in views:  # refused before any training, not after the first seed's
        try:
            ct.tta_shifts(v)
        except ValueError as exc:
            parser.error(str(exc))
    ds = load_dataset("mnist")
    (X, y), (X_test, y_test) = train_features(ds), test_features(ds)
    params = {"time_budget": args.budget, **parse_params(args.params)}
    make_model("cnn", dataset="mnist", params={"time_budget": 1.0}).fit(X[:2000], y[:2000])  # imports, first calls
    plain, seconds, tta = [], [], {v: [] for v in views}
    for seed in [int(s) for s in args.seeds.split(",")]:
        model = make_model("cnn", dataset="mnist", seed=seed, params=params)
        tick = time.perf_counter()
        model.fit(X, y)
        seconds.append(time.perf_counter() - tick)
        plain.append(model.set_params(tta=False).score(X_test, y_test))
        line = f"  seed {seed}: {plain[-1]:.2%} after {seconds[-1]:.1f} s, {model.n_iter_} epochs"
        for v in views:
            tta[v].append(model.set_params(tta=v).score(X_test, y_test))
            line += f"; {v} views {tta[v][-1]:.2%}"
        print(line, flush=True)
    recipe = {k: v for k, v in model.get_params().items() if k in ("width", "extra_convs", "norm_after_pool", "batch_size",
                                                                   "lr", "augment", "distort", "epochs", "precision")}
    print(f"{args.budget:g} s {recipe}: {mean_sd(plain, 100)}%"
          + "".join(f"; {v} views {mean_sd(scores, 100)}%" for v, scores in tta.items())
          + f"; training {statistics.mean(seconds):.1f} s")


if __name__ == "__main__":
    main()
