"""Time to every accuracy: the CNN's recipes by time budget against the PyTorch MNIST example, on this machine.

Prints, in one run, every MNIST figure as the mean ± standard deviation over ``--seeds`` (default 5):

1. 8x8 digits, the lesson's split (360 test images): errors of the CNN's digits defaults.
2. Time to 99.0% on MNIST's official test set: for each seed, the shortest budget of ``--ladder`` whose
   recipe (:func:`digitlab.models.cnn_recipes.for_budget`) reaches it; the mean of those training times.
3. Test accuracy of the recipe for each of ``--budgets`` seconds, and of the default
   ``digitlab run --dataset mnist --model cnn`` recipe (a fixed number of epochs), with its training time.
4. The PyTorch example recipe (``pytorch/examples/mnist``: Conv32-Conv64-FC128 with dropout, Adadelta
   lr 1.0, StepLR gamma 0.7, batch 64, fp32), re-expressed on our in-memory data, for ``--baseline-seeds``:
   training seconds until its test accuracy first reaches 99.0% (evaluated ``--evals-per-epoch`` times an
   epoch, evaluation not counted), and the ratio to ours.
5. Inference of the default MNIST CNN: images/s in batches, milliseconds for one image.
6. With ``--long``: the recipe for ``--long-budget`` seconds (default 600), and the same networks predicting
   with 1, 5 and 9 test-time views.

Runs unchanged on a CUDA GPU (and prints its name). Timing on a shared CPU is noisy: the load average
is printed before and after; compare ratios from one run, not seconds across runs.

Examples
--------
    python benchmarks/bench_mnist_cpu.py                       # about 26 minutes on 2 CPU cores (Zen 4, bf16)
    python benchmarks/bench_mnist_cpu.py --ladder 6,8,10,12,15,20   # 50 minutes on a 2-core Zen 3 (fp32)
    python benchmarks/bench_mnist_cpu.py --quick               # a smoke run, about a minute
    python benchmarks/bench_mnist_cpu.py --long --skip-baseline --budgets 60 --seeds 0
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.models import make_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import time_model as inference  # noqa: E402  (images/s batched, ms for one image)

TARGET = 0.99


def load_mnist(source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST features (N x 784 floats in [0, 1]) and labels: the digitlab loader, else the .gz files."""
    try:
        from digitlab.data import load_dataset
        from digitlab.preprocess import test_features, train_features

        ds = load_dataset("mnist")
        return (*train_features(ds), *test_features(ds))
    except Exception as exc:  # not fetched yet: read the IDX files directly
        print(f"(digitlab's MNIST loader: {str(exc).splitlines()[0][:90]}; reading {source})")

    def read(name: str, offset: int) -> np.ndarray:
        with gzip.open(source / f"{name}.gz") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    def images(name):
        return read(name, 16).reshape(-1, 784).astype(np.float32) / 255.0

    return (
        images("train-images-idx3-ubyte"),
        read("train-labels-idx1-ubyte", 8).astype(np.int64),
        images("t10k-images-idx3-ubyte"),
        read("t10k-labels-idx1-ubyte", 8).astype(np.int64),
    )


# ------------------------------------------------------------------ the baseline


def example_recipe(X, y, X_test, y_test, *, max_epochs: int, evals_per_epoch: int, device, seed: int):
    """The PyTorch example, on in-memory tensors; yields (training seconds, test accuracy) points.

    Evaluation time is not counted. Stops at the first evaluation that reaches ``TARGET``.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):  # pytorch/examples mnist/main.py, unchanged
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = torch.flatten(self.dropout1(x), 1)
            x = self.dropout2(F.relu(self.fc1(x)))
            return F.log_softmax(self.fc2(x), dim=1)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    norm = lambda a: ((torch.from_numpy(a).reshape(-1, 1, 28, 28) - 0.1307) / 0.3081)  # noqa: E731
    xt, yt = norm(X).to(device), torch.from_numpy(y).to(device)
    xv = norm(X_test).to(device)
    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    batch, n = 64, len(xt)
    steps = (n + batch - 1) // batch
    eval_at = {round(steps * k / evals_per_epoch) for k in range(1, evals_per_epoch + 1)}
    seconds = 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        tick = time.perf_counter()
        for b in range(steps):
            idx = order[b * batch : (b + 1) * batch]
            optimizer.zero_grad()
            loss = F.nll_loss(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            if b + 1 in eval_at:
                _sync(device)
                seconds += time.perf_counter() - tick
                model.eval()
                with torch.inference_mode():
                    pred = torch.cat([model(xv[i : i + 2000]).argmax(1).cpu() for i in range(0, len(xv), 2000)])
                acc = float((pred.numpy() == y_test).mean())
                model.train()
                yield epoch - 1 + (b + 1) / steps, seconds, acc
                if acc >= TARGET:
                    return
                tick = time.perf_counter()
        scheduler.step()


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------ measurements


def digits_errors(seeds: list[int]) -> list[int]:
    from digitlab.data import load_dataset
    from digitlab.preprocess import test_features, train_features

    ds = load_dataset("digits")
    X, y = train_features(ds)
    X_test, y_test = test_features(ds)
    errors = []
    for seed in seeds:
        model = make_model("cnn", dataset="digits", seed=seed).fit(X, y)
        errors.append(int((model.predict(X_test) != y_test).sum()))
    return errors


def ours(X, y, X_test, y_test, seed: int, **params):
    """Train the CNN with ``params`` (a recipe); return (model, training seconds, test accuracy as it predicts)."""
    model = make_model("cnn", dataset="mnist", seed=seed, params=params)
    tick = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - tick
    return model, seconds, model.score(X_test, y_test)


def clone_views(model, views: int):
    """``model`` predicting with ``views`` test-time views (its weights shared, its own ``tta`` untouched)."""
    import copy

    return copy.copy(model).set_params(tta=views)


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """``mean ± sd`` (sd over the seeds; 0 for one)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values) * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def time_to_target(data, seeds: list[int], ladder: list[float]) -> list[float | None]:
    """Per seed, the training seconds of the shortest ladder budget whose recipe reaches ``TARGET``."""
    times = []
    for seed in seeds:
        reached = None
        for budget in ladder:
            _, seconds, acc = ours(*data, seed, time_budget=budget)
            print(f"    seed {seed}, budget {budget:5.1f} s: {acc:.4f} after {seconds:.2f} s", flush=True)
            if acc >= TARGET:
                reached = seconds
                break
        times.append(reached)
    return times


def by_budget(data, seeds: list[int], budgets: list[float]):
    """The recipe of each budget, and the default recipe, over the seeds: accuracy mean ± sd; returns the last model."""
    from digitlab.models import cnn_recipes

    print(f"\n{'recipe':>16} {'train s':>14} {'test accuracy %':>16} {'≥ 99.0%':>8} {'≥ 99.5%':>8}  parameters")
    rows = [(f"{b:g}-s budget", {"time_budget": b}) for b in budgets] + [("default (run)", {})]
    for name, params in rows:
        accs, secs = [], []
        for seed in seeds:
            model, seconds, acc = ours(*data, seed, **params)
            accs.append(acc)
            secs.append(seconds)
        shown = cnn_recipes.for_budget(params["time_budget"], "auto") if params else cnn_recipes.DEFAULT
        shown = {k: v for k, v in shown.items() if k not in ("epochs", "time_budget")} | (
            {} if params else {"epochs": cnn_recipes.DEFAULT["epochs"]})
        print(f"{name:>16} {mean_sd(secs, digits=1):>14} {mean_sd(accs, 100):>16} "
              f"{sum(a >= 0.99 for a in accs):>6}/{len(accs)} {sum(a >= 0.995 for a in accs):>6}/{len(accs)}  {shown}",
              flush=True)
    return model


def baseline(data, seeds: list[int], max_epochs: int, evals_per_epoch: int, device) -> list[float | None]:
    """Per seed, the example recipe's training seconds until it first reaches ``TARGET`` (None: not reached)."""
    times = []
    for seed in seeds:
        reached, last = None, None
        for epoch, seconds, acc in example_recipe(*data, max_epochs=max_epochs, evals_per_epoch=evals_per_epoch,
                                                  device=device, seed=seed):
            print(f"    seed {seed}, epoch {epoch:4.2f}: {acc:.4f} after {seconds:.1f} s", flush=True)
            last = seconds
            if acc >= TARGET:
                reached = seconds
        times.append(reached)
        if reached is None:
            print(f"    seed {seed}: not reached in {last:.1f} s")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, short budgets, 1/6 of the baseline data")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--ladder", default="2.5,3,3.5,4,5,6,8,10", help="budgets tried for the time to 99.0%%")
    parser.add_argument("--budgets", default="4,60", help="budgets whose recipes are measured, seconds")
    parser.add_argument("--skip-budgets", action="store_true", help="neither the budgets nor the default recipe")
    parser.add_argument("--baseline-seeds", default=None, help="seeds of the example recipe (default: --seeds)")
    parser.add_argument("--baseline-epochs", type=int, default=4, help="most epochs of the example recipe")
    parser.add_argument("--evals-per-epoch", type=int, default=4, help="test evaluations per baseline epoch")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-ladder", action="store_true")
    parser.add_argument("--long", action="store_true", help="also train the recipe for --long-budget s")
    parser.add_argument("--long-budget", type=float, default=600.0)
    parser.add_argument("--digits-seeds", default="42,0,1,2,3")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's)")
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        default=Path(os.environ.get("DIGITLAB_MNIST_SOURCE", Path(__file__).resolve().parents[2] / "shared/data/mnist")),
    )
    args = parser.parse_args()

    import torch

    from digitlab.models import cnn_torch as ct

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {where}; torch {torch.__version__}; bf16 training: {ct.use_bf16(device, 'auto')}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    seeds = [int(s) for s in args.seeds.split(",")][: 2 if args.quick else None]
    digits_seeds = [int(s) for s in args.digits_seeds.split(",")][: 2 if args.quick else None]
    errors = digits_errors(digits_seeds)
    print(f"\n8x8 digits, lesson split (360 test images): errors per seed {dict(zip(digits_seeds, errors))}; "
          f"median {statistics.median(errors)}")

    data = load_mnist(args.mnist_dir)
    ours(*(a[:2000] for a in data), 0, time_budget=0.5)  # imports and first-call set-up, outside every figure
    ladder = [3.0] if args.quick else [float(b) for b in args.ladder.split(",")]
    budgets = [2.0] if args.quick else [float(b) for b in args.budgets.split(",")]

    ours_times = []
    if not args.skip_ladder:
        print(f"\ntime to {TARGET:.1%} (test set, {len(data[3]):,} images), the recipe of each budget in {ladder}:")
        ours_times = time_to_target(data, seeds, ladder)
        got = [t for t in ours_times if t is not None]
        print(f"  ours: {mean_sd(got, digits=2) if got else '-'} s over {len(got)}/{len(seeds)} seeds that reached it")
    model = None if args.skip_budgets else by_budget(data, seeds, budgets)

    if not args.skip_baseline:
        X, y, X_test, y_test = data
        base_data = (X[:10000], y[:10000], X_test, y_test) if args.quick else data
        base_seeds = [int(s) for s in (args.baseline_seeds or args.seeds).split(",")][: 1 if args.quick else None]
        print("\nPyTorch example recipe (its net and optimizer, fp32, on our in-memory batches):")
        base = baseline(base_data, base_seeds, 1 if args.quick else args.baseline_epochs, args.evals_per_epoch, device)
        got_base = [t for t in base if t is not None]
        got_ours = [t for t in ours_times if t is not None]
        print(f"  example: {mean_sd(got_base, digits=1) if got_base else '-'} s to {TARGET:.1%} over "
              f"{len(got_base)}/{len(base)} seeds")
        if got_base and got_ours:
            print(f"  ratio of the means (example / ours): {statistics.mean(got_base) / statistics.mean(got_ours):.1f}x")

    if model is not None:
        rate, ms = inference(model, data[2], repeats=5)
        print(f"\ninference (the default MNIST CNN, as it predicts): {rate:,.0f} images/s in batches; {ms:.2f} ms for one image")

    if args.long:
        print(f"\nthe recipe for {args.long_budget:.0f} s:")
        accs, by_views = [], {1: [], 5: [], 9: []}  # the same networks, predicting with 1, 5 and 9 TTA views
        for seed in seeds:
            model, seconds, acc = ours(*data, seed, time_budget=args.long_budget)
            accs.append(acc)
            for views, scores in by_views.items():
                scores.append(clone_views(model, views).score(*data[2:]))
            print(f"  seed {seed}: {acc:.4f} after {seconds:.0f} s, {model.n_iter_} epochs; with 1 / 5 / 9 views "
                  + " / ".join(f"{scores[-1]:.4f}" for scores in by_views.values()), flush=True)
        print(f"  test accuracy {mean_sd(accs, 100)}% over {len(accs)} seeds; with 1 / 5 / 9 views "
              + " / ".join(f"{mean_sd(scores, 100)}%" for scores in by_views.values()))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
