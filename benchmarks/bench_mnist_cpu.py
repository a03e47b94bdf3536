"""The CNN against the PyTorch MNIST example, side by side, on this machine.

Prints, in one run:

1. 8x8 digits, the lesson's split (360 test images): errors of the CNN's digits defaults.
2. MNIST, official test set: our CNN (its MNIST defaults, trained under time budgets) and the
   PyTorch example recipe (``pytorch/examples/mnist``: Conv32-Conv64-FC128 with dropout,
   Adadelta lr 1.0, StepLR gamma 0.7, batch 64), re-expressed on our data pipeline, both
   measured as test accuracy against cumulative training seconds, and the ratio of their
   times to reach 99.0%.
3. Inference of the MNIST CNN: images/s in batches, milliseconds for one image.
4. With ``--long``: the 99.5% recipe under a 10-minute budget.

Runs unchanged on a CUDA GPU (and prints its name). Timing on a shared CPU is noisy:
rerun, and compare ratios from one run, not seconds across runs.

Examples
--------
    python benchmarks/bench_mnist_cpu.py              # about 7 minutes on 2 CPU cores
    python benchmarks/bench_mnist_cpu.py --quick      # a smoke run, under a minute
    python benchmarks/bench_mnist_cpu.py --long       # adds the 10-minute 99.5% run
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
LONG_RECIPE = dict(width=32, augment=2.0, distort=0.1, lr=0.2, epochs=100)


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


def ours(X, y, X_test, y_test, budget: float, seed: int, **params):
    model = make_model("cnn", dataset="mnist", seed=seed, params={"time_budget": budget, "epochs": 100, **params})
    tick = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - tick
    acc = model.score(X_test, y_test)
    model.set_params(tta=True)
    acc_tta = model.score(X_test, y_test)
    model.set_params(tta=False)
    return model, seconds, acc, acc_tta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small budgets, 1/6 of the baseline data")
    parser.add_argument("--budgets", default="5,7.5,10,15,20", help="training budgets for our CNN, seconds")
    parser.add_argument("--baseline-epochs", type=int, default=4, help="most epochs of the example recipe")
    parser.add_argument("--evals-per-epoch", type=int, default=2, help="test evaluations per baseline epoch")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--long", action="store_true", help="also train the 99.5%% recipe for --long-budget s")
    parser.add_argument("--long-budget", type=float, default=540.0)
    parser.add_argument("--digits-seeds", default="42,0,1,2,3")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        default=Path(os.environ.get("DIGITLAB_MNIST_SOURCE", Path(__file__).resolve().parents[2] / "shared/data/mnist")),
    )
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {where}; torch {torch.__version__}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    seeds = [int(s) for s in args.digits_seeds.split(",")][: 2 if args.quick else None]
    errors = digits_errors(seeds)
    print(f"\n8x8 digits, lesson split (360 test images): errors per seed {dict(zip(seeds, errors))}; median {statistics.median(errors)}")

    X, y, X_test, y_test = load_mnist(args.mnist_dir)
    budgets = [float(b) for b in args.budgets.split(",")]
    if args.quick:
        budgets = [3.0, 6.0]

    print(f"\nMNIST, official test set ({len(y_test)} images); our CNN, MNIST defaults, fitted to a time budget:")
    print(f"{'budget s':>9} {'train s':>8} {'epochs':>7} {'test acc':>9} {'with TTA':>9}")
    first_ours = None
    model_20 = None
    for budget in budgets:
        model, seconds, acc, acc_tta = ours(X, y, X_test, y_test, budget, args.seed)
        print(f"{budget:9.1f} {seconds:8.1f} {model.n_iter_:7d} {acc:9.4f} {acc_tta:9.4f}", flush=True)
        if acc >= TARGET and first_ours is None:
            first_ours = seconds
        model_20 = model

    first_base = None
    if not args.skip_baseline:
        Xb, yb = (X[:10000], y[:10000]) if args.quick else (X, y)
        print("\nPyTorch example recipe (same net and optimizer, our in-memory batches):")
        print(f"{'epoch':>9} {'train s':>8} {'test acc':>9}")
        last = None
        for epoch, seconds, acc in example_recipe(
            Xb, yb, X_test, y_test, max_epochs=1 if args.quick else args.baseline_epochs,
            evals_per_epoch=args.evals_per_epoch, device=device, seed=args.seed,
        ):
            print(f"{epoch:9.2f} {seconds:8.1f} {acc:9.4f}", flush=True)
            last = seconds
            if acc >= TARGET:
                first_base = seconds
        print("\ntime to 99.0% test accuracy:")
        ours_txt = f"{first_ours:.1f} s" if first_ours else "not reached"
        base_txt = f"{first_base:.1f} s" if first_base else f"not reached in {last:.1f} s"
        print(f"  our CNN {ours_txt}; example recipe {base_txt}")
        if first_ours and first_base:
            print(f"  ratio (example / ours): {first_base / first_ours:.1f}x")
        elif first_ours and last:
            print(f"  ratio (example / ours): > {last / first_ours:.1f}x")

    rate, ms = inference(model_20, X_test, repeats=5)
    print(f"\ninference (CNN of the last budget, no TTA): {rate:,.0f} images/s in batches; {ms:.2f} ms for one image")

    if args.long:
        print(f"\nthe 99.5% recipe {LONG_RECIPE} with time_budget={args.long_budget:.0f}:")
        model, seconds, acc, acc_tta = ours(X, y, X_test, y_test, args.long_budget, args.seed, **LONG_RECIPE)
        print(f"  train {seconds:.0f} s, {model.n_iter_} epochs: test acc {acc:.4f}, with TTA {acc_tta:.4f}")
        rate, ms = inference(model, X_test, repeats=5)
        print(f"  inference: {rate:,.0f} images/s in batches; {ms:.2f} ms for one image")


if __name__ == "__main__":
    main()
