"""The CNN's training step in fixed tensors (digitlab.models.cnn_graph): arithmetic on CPU, graph on CUDA."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from digitlab.models import cnn_graph as cg  # noqa: E402
from digitlab.models import cnn_optim as co  # noqa: E402
from digitlab.models import cnn_torch as ct  # noqa: E402
from digitlab.models.cnn import CNNClassifier  # noqa: E402

CUDA = torch.cuda.is_available()


def _data(n=512, side=12, seed=0):
    """Noise, and in class 1 a bright bar down the middle: a CNN tells them apart within an epoch or two."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    x = 0.5 * torch.rand(n, 1, side, side, generator=gen)
    x[y == 1, 0, :, side // 2 - 1 : side // 2 + 1] += 0.5
    return x, y


def _train(graphed: bool, augment: float, epochs: int = 2, device="cpu"):
    x, y = (t.to(device) for t in _data())
    net = ct.place(ct.build_net(12, 8, 2, seed=3), torch.device(device))
    optimizer = co.make_optimizer(net, 0.4, 5e-4, graphable=graphed)
    args = dict(batch_size=64, peak_lr=0.4, clock=ct.Clock(epochs * 8, None, 0.0), gen=ct.seeded_generator(5),
                augment=augment, distort=0.1 if augment else 0.0, label_smoothing=0.1, bf16=False)
    run = cg.GraphedEpochs(net, optimizer, x, y, **args) if graphed else (
        lambda: ct.train_one_epoch(net, optimizer, x, y, **args))
    losses = [run()[0] for _ in range(epochs)]
    return net, losses, run


@pytest.mark.parametrize("augment", [0.0, 2.0])
def test_the_fixed_tensor_step_trains_as_the_eager_loop_does(augment):
    """Same seed, same batches, same warps, same schedule: the same weights (fused SGD rounds a little differently)."""
    eager, eager_losses, _ = _train(False, augment)
    fixed, fixed_losses, run = _train(True, augment)
    assert run.graph is None and run.steps_run == 16  # nothing is captured on the CPU
    np.testing.assert_allclose(fixed_losses, eager_losses, rtol=1e-4)
    for (name, a), b in zip(eager.state_dict().items(), fixed.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert fixed_losses[1] < fixed_losses[0]  # and it learns


def test_the_learning_rate_lives_in_tensors_the_step_reads():
    net = ct.build_net(12, 8, 2)
    optimizer = co.make_optimizer(net, 0.4, 5e-4, graphable=True)
    assert [float(g["lr"]) for g in optimizer.param_groups] == pytest.approx([0.4, 0.4 * 16 / 32, 0.4])
    assert optimizer.defaults["fused"] is True
    x, y = _data()
    plain = co.make_optimizer(net, 0.4, 5e-4)
    with pytest.raises(ValueError, match="graphable=True"):
        cg.GraphedEpochs(net, plain, x, y, batch_size=64, peak_lr=0.4, clock=ct.Clock(8, None, 0.0),
                         gen=ct.seeded_generator(0))


def test_the_graph_is_for_one_gpu_in_one_process(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert cg.wanted(cuda, (0, 1)) and not cg.wanted(cpu, (0, 1)) and not cg.wanted(cuda, (0, 2))
    monkeypatch.setenv("DIGITLAB_CUDA_GRAPHS", "0")
    assert not cg.wanted(cuda, (0, 1))


def test_a_time_budget_ends_the_fixed_tensor_epochs(monkeypatch):
    x, y = _data(n=4096)
    net = ct.build_net(12, 8, 2)
    optimizer = co.make_optimizer(net, 0.4, 5e-4, graphable=True)
    import types

    # a clock that moves 1 ms each time it is read: on a loaded CI machine a stall after the last step had ended the
    # budget with the rate still at 43% of its peak (the schedule is right; the wall clock is not repeatable)
    ticks = iter(range(1, 10**9))
    monkeypatch.setattr(ct, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks) / 1000))
    clock = ct.Clock(10_000, 0.2, 0.0)
    run = cg.GraphedEpochs(net, optimizer, x, y, batch_size=8, peak_lr=0.4, clock=clock, gen=ct.seeded_generator(0))
    steps = [run()[1] for _ in range(200) if clock.progress() < 1.0]
    assert sum(steps) < 10_000 and clock.progress() == 1.0
    assert float(optimizer.param_groups[0]["lr"]) < 0.4 * 0.05  # annealed by the end


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it there)")
def test_the_graph_reads_the_learning_rate_at_each_replay():
    """A learning rate of 0 from the schedule leaves the weights where they are: the graph has not baked it in."""
    net, _, run = _train(True, 2.0, epochs=1, device="cuda")  # 3 warm-up steps, a capture, 5 replays
    assert run.graph is not None
    before = {k: v.clone() for k, v in net.state_dict().items() if k.endswith("weight")}
    run.peak_lr = 0.0  # the schedule now writes 0 into the tensors the captured step reads
    run.clock.total_steps *= 2  # one more epoch
    assert run()[1] == 8
    for name, weight in before.items():
        torch.testing.assert_close(net.state_dict()[name], weight, rtol=0, atol=0, msg=name)


def test_the_clock_times_steps_after_the_warm_up_and_the_capture():
    x, y = _data()
    net = ct.build_net(12, 8, 2)
    clock = ct.Clock(8, 10.0, 0.0)
    cg.GraphedEpochs(net, co.make_optimizer(net, 0.4, 5e-4, graphable=True), x, y, batch_size=64, peak_lr=0.4,
                     clock=clock, gen=ct.seeded_generator(0))
    assert clock.warm_steps == cg.WARM_STEPS + 1 and clock.queued_steps == 0  # the CPU runs each step as it comes


def test_a_budget_counts_the_steps_still_queued_as_spent():
    import time

    clock = ct.Clock(10_000, 100.0, time.perf_counter() - 50)  # half the budget gone (a stall of 49 s is no matter)
    clock.warm_steps, clock._per_step = 0, 0.1
    clock.step = 5
    assert clock.progress() < 1.0
    clock.queued_steps = 600  # 60 s of steps still on the GPU: the budget is spent
    assert clock.progress() == 1.0


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it there)")
@pytest.mark.parametrize("augment", [0.0, 2.0])
def test_cuda_graph_training_matches_eager_cuda_training(augment, monkeypatch):
    """On a GPU the step is captured once and replayed, and computes what the eager loop computes (fp32, no TF32)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    eager, eager_losses, _ = _train(False, augment, epochs=1, device="cuda")
    graphed, losses, run = _train(True, augment, epochs=1, device="cuda")
    assert run.graph is not None and run.steps_run == 8
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-3)
    for (name, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
        torch.testing.assert_close(b.float(), a.float(), rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it there)")
def test_cuda_fit_with_graphs_learns_and_reloads_on_the_cpu():
    x, y = _data(n=2048, side=12)
    X, labels = x.reshape(len(x), -1).numpy(), y.numpy()
    model = CNNClassifier(epochs=4, width=8, batch_size=128, lr=0.4, device="cuda", random_state=0).fit(X, labels)
    assert model.score(X, labels) > 0.95
    cpu = CNNClassifier.from_tensors({**model.get_params(), "device": "cpu"}, model.export_tensors())
    assert np.mean(cpu.predict(X) == model.predict(X)) > 0.99


def test_the_gpu_benchmark_names_only_recipes_it_has(monkeypatch):
    """A typo in benchmarks/bench_mnist_gpu.py's plan would cost minutes of a lent GPU before failing."""
    import argparse
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import bench_mnist_gpu as bench

    parser = argparse.ArgumentParser()
    parser.error = lambda message: pytest.fail(message)  # what the script would print before touching the GPU
    for plan in (None, "first"):
        args = argparse.Namespace(plan=plan, budgets=",".join(map(str, bench.PLAN)), recipes=None,
                                  step_configs=",".join(bench.STEP_CONFIGS))
        chosen, budgets = bench.checked_plan(parser, args)
        assert budgets and all(chosen[b] for b in budgets)
