"""The CNN under ``torchrun``: DistributedDataParallel on 2 CPU processes, and nothing changed without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import class_set  # noqa: E402
from digitlab.data import load_dataset, split_validation  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.models import ddp  # noqa: E402
from digitlab.models import cnn_torch as ct  # noqa: E402
from digitlab.models.cnn import CNNClassifier  # noqa: E402
from digitlab import preprocess  # noqa: E402  (its test_features would look like a test)
from digitlab.train import train  # noqa: E402

SEED = 3
VALIDATION = 0.2
PARAMS = dict(epochs=5, width=8, batch_size=64)  # the digits' defaults otherwise: shifts and distortion on
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
TOLERANCE = 0.02
"""Test accuracy of the 2-process run against the 1-process run, same seed, total batch and epochs.

The 8x8 digits' test part has 360 images (0.28 points each). Over 5 seeds of this recipe
(``benchmarks/bench_torchrun.py --dataset digits --seeds 0 1 2 3 4 --param epochs=5 --param width=8
--param batch_size=64``, all 1,437 training images) the single-process accuracy spreads by 0.5 points
(sd), and the 2-process run differs from it at the same seed by -0.8 to +1.1 points (each rank normalises its half-batch with its own BatchNorm
statistics, so the two runs part ways after the first step as two seeds would): 2 points, 7 images,
leaves room for that noise and still fails a run that trains on the wrong data or diverges.
On all 60,000 MNIST images the two agree within 0.2 points (benchmarks/bench_torchrun.py).
"""


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def torchrun(*args: str, out, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m digitlab run ...`` (via ``python -m torch.distributed.run``)."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "digitlab", "run", *args, "--out", str(out)]
    return subprocess.run(command, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_processes_train_one_cnn_and_rank_0_writes_the_run(tmp_path, no_torchrun):
    params = [x for name, value in PARAMS.items() for x in ("--param", f"{name}={value}")]
    done = torchrun("--dataset", "digits", "--model", "cnn", "--seed", str(SEED), "--validation", str(VALIDATION),
                    *params, out=tmp_path)  # --validation: rank 0 calibrates on it, no out-of-fold refits
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Accuracy") == 1  # rank 0 alone prints
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and folders[0].is_dir()  # rank 0 alone writes
    doc = json.loads((folders[0] / "metrics.json").read_text())
    accuracy = doc["accuracy"]
    assert 0.5 < doc["validation_accuracy"] <= 1.0

    from safetensors.numpy import load_file

    tensors = load_file(folders[0] / "model.safetensors")
    assert tensors["world_size"].tolist() == [2]  # the model says how it was trained
    assert len(tensors["history"]) == PARAMS["epochs"]

    data, _ = split_validation(load_dataset("digits", seed=SEED), VALIDATION, seed=SEED)  # what the run trained on
    single = train("cnn", data, seed=SEED, params=PARAMS).model
    assert single.world_size_ == 1 and "world_size" not in single.export_tensors()
    reference = single.score(*preprocess.test_features(data))
    assert abs(accuracy - reference) <= TOLERANCE, (accuracy, reference)


def test_without_torchrun_no_distributed_code_runs(monkeypatch, no_torchrun):
    def forbidden(*args, **kwargs):
        raise AssertionError("a distributed helper ran without torchrun")

    ds = load_dataset("digits")
    X, y = preprocess.train_features(ds)
    X, y = X[:400], y[:400]
    small = dict(epochs=2, width=4, batch_size=32, validation_fraction=0.2, device="cpu", random_state=0)
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node=1: one process, as without torchrun
    assert ddp.world() is None
    with ddp.session(ddp.world()):
        expected = CNNClassifier(**small).fit(X, y).export_tensors()
    monkeypatch.delenv("WORLD_SIZE")
    for name in ("wrap", "shared_clock", "mean", "from_rank0"):
        monkeypatch.setattr(ddp, name, forbidden)
    monkeypatch.setattr(torch.distributed, "init_process_group", forbidden)
    model = CNNClassifier(**small).fit(X, y)
    assert ddp.active() is None and model.world_size_ == 1
    tensors = model.export_tensors()
    assert sorted(tensors) == sorted(expected) and "world_size" not in tensors
    for name, array in tensors.items():
        np.testing.assert_array_equal(array, expected[name], err_msg=name)


def test_ranks_share_each_batch_and_its_augmentation():
    x = torch.rand(10, 1, 8, 8)
    whole = ct.warp(x, 1.0, 0.1, ct.seeded_generator(7))
    for rank in (0, 1):
        share = ct.warp(x[ddp.shard(range(10), rank, 2)], 1.0, 0.1, ct.seeded_generator(7), shard=(rank, 2), batch=10)
        torch.testing.assert_close(share, whole[rank::2], rtol=0, atol=0)


def test_other_models_are_refused_under_torchrun(tmp_path, monkeypatch):
    from digitlab.pipeline import run_pipeline

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DigitlabError, match="only the cnn model trains under torchrun"):
        run_pipeline("digits", "logreg", out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_batch_too_small_to_share_is_refused_under_torchrun_before_training(tmp_path, monkeypatch):
    """A scale-out audit: a total batch of 4 on 2 processes learnt nothing (14-28% against 85-90% in one process),
    BatchNorm normalising each process's 2 images by themselves, and nothing said so."""
    from digitlab.pipeline import run_pipeline

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DigitlabError, match=r"batch_size 16 gives each of the 2 processes 8 images a step, .* "
                                            r"--param batch_size=32 or more"):
        run_pipeline("digits", "cnn", params={"batch_size": 16}, out=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's")
def test_a_rank_dies_with_its_killed_launcher(tmp_path):
    """A scale-out audit killed torchrun's launcher (SIGKILL): its ranks stayed 3-4 minutes as orphans waiting for
    its store, then blamed the user for not using torchrun. Here a stand-in launcher starts a rank and is killed."""
    import signal
    import time

    rank = ("import os, sys, time; from digitlab.models import ddp; ddp.die_with_launcher(); "
            "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)")
    launcher = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {rank!r}, sys.argv[1]]); "
                "time.sleep(120)")
    mark = tmp_path / "rank.pid"
    env = {**os.environ, "TORCHELASTIC_RUN_ID": "test"}  # as torchrun sets it for its ranks
    parent = subprocess.Popen([sys.executable, "-c", launcher, str(mark)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (mark.exists() and mark.read_text()) and time.monotonic() < deadline:
            assert parent.poll() is None
            time.sleep(0.1)
        child = int(mark.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and "zombie" not in _state(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{child}").exists() or "zombie" in _state(child), "the rank outlived its launcher"
    finally:
        parent.kill()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "gone"


def test_a_refusal_under_torchrun_is_one_line_and_makes_no_folder(tmp_path):
    """Every process is refused alike; the first on the machine says so, once (torchrun then reports the failed
    processes its own way)."""
    done = torchrun("--dataset", "digits", "--model", "logreg", out=tmp_path / "runs", timeout=120)
    assert done.returncode != 0
    assert done.stderr.count("error:") == 1 and "only the cnn model trains under torchrun" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_half_set_torchrun_environment_is_one_line(tmp_path, no_torchrun):
    from conftest import run_cli

    result = run_cli("run", "--dataset", "digits", "--model", "cnn", "--out", str(tmp_path),
                     env={"WORLD_SIZE": "2"}, process=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "WORLD_SIZE=2 is set but RANK is not" in result.stderr
    result = run_cli("run", "--dataset", "digits", "--model", "cnn", "--out", str(tmp_path),
                     env={"WORLD_SIZE": "2", "RANK": "0"}, process=True)  # no MASTER_ADDR: no group to join
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot join the other torchrun processes" in result.stderr, result.stderr


@pytest.mark.parametrize(("set_to", "after"), [("1", None), ("2", "2")])
def test_rank_0_alone_after_training_watches_the_busy_cores_unless_a_person_fixed_its_threads(monkeypatch, set_to,
                                                                                               after):
    """An engineer: torchrun's own OMP_NUM_THREADS=1 for its ranks stayed set after training, which turned off the
    watching of busy cores (digitlab.cores.fixed_threads), and rank 0's two threads evaluated 6-7 times slower."""
    from digitlab.cores import fixed_threads

    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kwargs: None)
    monkeypatch.setattr(torch.distributed, "destroy_process_group", lambda: None)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setenv("OMP_NUM_THREADS", set_to)
    with ddp.session(ddp.World(rank=0, size=2, local_rank=0, local_size=2)):
        assert fixed_threads()
    assert os.environ.get("OMP_NUM_THREADS") == after and fixed_threads() == (after is not None)


def test_a_process_group_error_during_training_is_one_line(monkeypatch):
    """What rank 0 sees when another rank is killed mid-training (a real one: gloo's words, as PyTorch raises them)."""
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kwargs: None)
    monkeypatch.setattr(torch.distributed, "destroy_process_group", lambda: None)
    lost = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
                        "[127.0.0.1]:2432: Connection reset by peer. This is typically caused by a remote worker "
                        "hanging or bugs in the application. GLHF!")
    with pytest.raises(DigitlabError, match=r"another torchrun process stopped during training \(Read error "
                                            r"\[127.0.0.1\]:2432: Connection reset by peer\); nothing was written"):
        with ddp.session(ddp.World(rank=0, size=2, local_rank=0, local_size=2)):
            raise lost
    with pytest.raises(RuntimeError, match="a bug"):  # any other error is not dressed up as a lost process
        with ddp.session(ddp.World(rank=0, size=2, local_rank=0, local_size=2)):
            raise RuntimeError("a bug")



@pytest.mark.slow
def test_a_rank_killed_mid_training_stops_the_other_machine_with_one_line_and_nothing_is_written(tmp_path,
                                                                                                  no_torchrun):
    """README's promise, kept by real processes: one machine's rank killed (SIGKILL) while two machines train; the
    other machine's says one line and nothing is written (a test auditor: only a stub of gloo's error had been
    tested). On one machine torchrun itself stops the other ranks first, most times, and says so in its words."""
    import signal
    import time

    def kill_node_1s_rank(nodes, logs):
        deadline = time.monotonic() + 120
        while "training cnn on" not in logs[0][0].read_text():  # rank 0's words: training begins
            assert time.monotonic() < deadline and nodes[0].poll() is None, logs[0][1].read_text()
            time.sleep(0.1)
        time.sleep(2)
        os.kill(_rank_pid(nodes[1].pid, local_rank=0), signal.SIGKILL)

    args = ("--dataset", "digits", "--model", "cnn", "--param", "epochs=500", "--param", "width=8")
    done = _two_machines(tmp_path, [tmp_path / "data-0", tmp_path / "data-1"], *args, meanwhile=kill_node_1s_rank)
    said = [line for line in done[0].stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and said[0].startswith("error: another torchrun process stopped during training ("), \
        done[0].stderr[-3000:]
    assert said[0].endswith("; nothing was written") and all(d.returncode != 0 for d in done)
    assert not (tmp_path / "node-0").exists() and not (tmp_path / "node-1").exists()


def _rank_pid(launcher: int, local_rank: int) -> int:
    """The process id of ``launcher``'s child with ``LOCAL_RANK=local_rank`` in its environment (Linux's /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher \
                    and f"LOCAL_RANK={local_rank}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:  # gone, or not ours to read
            continue
    raise AssertionError(f"no rank {local_rank} under torchrun's pid {launcher}")


def _two_machines(tmp_path, data: list, *args: str, timeout: float = 240, second: tuple = (),
                  wait: int | None = None, meanwhile=None) -> list[subprocess.CompletedProcess]:
    """README's two-machine command on loopback: one ``torchrun --nnodes=2 --node_rank=R --master_addr=...`` per
    "machine", each with its own data cache (``data[R]``) and ``--out`` (``tmp_path/node-R``); ``second``: more
    arguments for node 1 alone; ``wait``: $DIGITLAB_TORCHRUN_WAIT; ``meanwhile(nodes, logs)``: called once both
    have started."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    logs = [(tmp_path / f"node-{rank}.stdout", tmp_path / f"node-{rank}.stderr") for rank in (0, 1)]
    nodes = []
    for rank, (out, err) in enumerate(logs):  # to files, not pipes: a node writing 64 KiB would block unread
        with open(out, "w") as stdout, open(err, "w") as stderr:
            nodes.append(subprocess.Popen(
                [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}",
                 "--master_addr=127.0.0.1", f"--master_port={port}", "--nproc_per_node=1", "-m", "digitlab", "run",
                 *args, *(second * rank), "--out", str(tmp_path / f"node-{rank}")],
                env={**env, "COLUMNS": "200", "DIGITLAB_DATA": str(data[rank]),
                     **({} if wait is None else {"DIGITLAB_TORCHRUN_WAIT": str(wait)})},
                stdout=stdout, stderr=stderr, text=True))
    try:
        if meanwhile is not None:
            meanwhile(nodes, logs)
        codes = [node.wait(timeout) for node in nodes]
        return [subprocess.CompletedProcess(node.args, code, out.read_text(), err.read_text())
                for node, code, (out, err) in zip(nodes, codes, logs)]
    finally:
        for node in nodes:
            node.kill()


@pytest.mark.slow
def test_machines_with_different_data_are_refused_in_one_line_instead_of_waiting_forever(tmp_path, no_torchrun):
    """Two machines whose handwriting sets differed shared out batches of different lengths and hung."""
    class_set(tmp_path / "a", 2, per_digit=4)
    class_set(tmp_path / "b", 3, per_digit=4)
    args = ("--dataset", "class", "--model", "cnn", "--param", "epochs=2", "--param", "width=8")
    done = _two_machines(tmp_path, [tmp_path / "a", tmp_path / "b"], *args, timeout=180)
    said = done[0].stderr + done[1].stderr
    assert all(d.returncode != 0 for d in done), said[-3000:]
    assert "error: the torchrun processes hold different training sets" in said, said[-3000:]
    assert "site-packages/digitlab" not in said and "src/digitlab" not in said, said[-3000:]  # torchrun's report only
    assert not (tmp_path / "node-0").exists() or not any((tmp_path / "node-0").iterdir())


@pytest.mark.slow
def test_the_readmes_two_machine_command_puts_the_run_on_node_rank_0(tmp_path, no_torchrun):
    class_set(tmp_path / "a", 2, per_digit=4)
    class_set(tmp_path / "b", 2, per_digit=4)
    args = ("--dataset", "class", "--model", "cnn", "--param", "epochs=2", "--param", "width=8")
    done = _two_machines(tmp_path, [tmp_path / "a", tmp_path / "b"], *args)
    assert [d.returncode for d in done] == [0, 0], (done[0].stderr + done[1].stderr)[-3000:]
    assert len(list((tmp_path / "node-0").iterdir())) == 1 and not (tmp_path / "node-1").exists()


@pytest.mark.slow
def test_machines_given_different_settings_are_refused_before_training(tmp_path, no_torchrun):
    """An engineer: another --param on one machine trained silently on rank 0's recipe (or, a learning rate that
    diverged there, crashed the other side with a traceback); --time-budget on one side only deadlocked both."""
    class_set(tmp_path / "a", 2, per_digit=4)
    args = ("--dataset", "class", "--model", "cnn", "--param", "epochs=2", "--param", "width=8")
    for second in (("--param", "lr=0.5"), ("--time-budget", "5")):
        done = _two_machines(tmp_path, [tmp_path / "a", tmp_path / "a"], *args, second=second, timeout=180)
        said = done[0].stderr + done[1].stderr
        assert all(d.returncode != 0 for d in done), said[-3000:]
        assert "error: the torchrun processes were given different settings" in said, said[-3000:]
        assert not (tmp_path / "node-0").exists() or not any((tmp_path / "node-0").iterdir())


@pytest.mark.slow
def test_a_machine_whose_command_is_refused_before_it_joins_does_not_leave_the_other_waiting(tmp_path, no_torchrun):
    """An engineer: node 1 refused its command (no MNIST there, another model) before joining, and node 0 waited,
    silent, for PyTorch's 30 minutes. It waits a set time (2 minutes; 15 s here) and says why it stops."""
    class_set(tmp_path / "a", 2, per_digit=4)
    args = ("--dataset", "class", "--model", "cnn", "--param", "epochs=2", "--param", "width=8")
    done = _two_machines(tmp_path, [tmp_path / "a", tmp_path / "empty"], *args, wait=15, timeout=120)
    assert [d.returncode != 0 for d in done] == [True, True]
    assert "cannot join the other torchrun processes" in done[0].stderr, done[0].stderr[-3000:]
    assert "unknown dataset 'class'" in done[1].stderr, done[1].stderr[-3000:]
