"""Fast checks of the CNN estimator: tiny networks, a few short epochs, CPU only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from digitlab.data import load_dataset  # noqa: E402
from digitlab.errors import DigitlabError, InvalidValueError  # noqa: E402
from digitlab.models import make_model  # noqa: E402
from digitlab.models.cnn import CNNClassifier  # noqa: E402
from digitlab import preprocess  # noqa: E402  (its test_features would look like a test)

SMALL = dict(epochs=6, width=8, batch_size=64, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return (*preprocess.train_features(ds), *preprocess.test_features(ds))


@pytest.fixture(scope="module")
def fitted(digits):
    X, y, _, _ = digits
    return CNNClassifier(**SMALL).fit(X, y)


def test_learns_8x8_digits(fitted, digits):
    _, _, X_test, y_test = digits
    assert fitted.score(X_test, y_test) > 0.8  # chance is 0.1
    assert fitted.classes_.tolist() == list(range(10))
    assert fitted.n_features_in_ == 64 and fitted.image_shape_ == (8, 8)
    proba = fitted.predict_proba(X_test[:5])
    assert proba.shape == (5, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert fitted.n_iter_ == SMALL["epochs"] and fitted.stop_reason_ == "epochs"


def test_learns_28x28_images(digits):
    X, y, _, _ = digits
    # The 8x8 digits blown up 3x and padded to MNIST's 28x28.
    big = np.pad(np.kron(X[:600].reshape(-1, 8, 8), np.ones((3, 3), np.float32)), ((0, 0), (2, 2), (2, 2)))
    big = big.reshape(len(big), -1)
    model = CNNClassifier(epochs=3, width=4, batch_size=32, device="cpu", random_state=0).fit(big, y[:600])
    assert model.image_shape_ == (28, 28)
    assert model.score(big, y[:600]) > 0.5


def test_params_round_trip_through_clone(fitted):
    params = fitted.get_params()
    assert params["width"] == SMALL["width"] and params["epochs"] == SMALL["epochs"]
    copy = clone(fitted)
    assert copy.get_params() == params
    assert not hasattr(copy, "module_")
    copy.set_params(width=16, tta=True)
    assert copy.get_params()["width"] == 16 and fitted.width == SMALL["width"]


def test_export_from_tensors_gives_identical_predictions(fitted, digits):
    _, _, X_test, _ = digits
    tensors = fitted.export_tensors()
    assert {"classes", "image_shape", "conv1.weight", "fc.weight"} <= set(tensors)
    assert all(isinstance(v, np.ndarray) for v in tensors.values())
    loaded = CNNClassifier.from_tensors(fitted.get_params(), tensors)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)


def test_safetensors_file_round_trip(fitted, digits, tmp_path):
    from safetensors.numpy import load_file, save_file

    _, _, X_test, _ = digits
    save_file(fitted.export_tensors(), str(tmp_path / "model.safetensors"))
    params = json.loads(json.dumps(fitted.get_params()))  # as a JSON model card gives them back
    loaded = CNNClassifier.from_tensors(params, load_file(str(tmp_path / "model.safetensors")))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))
    np.testing.assert_array_equal(loaded.predict(X_test), fitted.predict(X_test))


def _one_line_error(params, tensors) -> str:
    with pytest.raises(DigitlabError) as info:
        CNNClassifier.from_tensors(params, tensors)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_wrong_shape_is_refused(fitted):
    tensors = fitted.export_tensors()
    tensors["conv2.weight"] = tensors["conv2.weight"][:, :3]
    assert "conv2.weight" in _one_line_error(fitted.get_params(), tensors)
    # A file for another width does not fit this width's network either.
    assert "shape" in _one_line_error({**fitted.get_params(), "width": 16}, fitted.export_tensors())


def test_foreign_or_missing_tensor_is_refused(fitted):
    tensors = fitted.export_tensors()
    tensors["evil.payload"] = np.zeros(3, dtype=np.float32)
    assert "evil.payload" in _one_line_error(fitted.get_params(), tensors)
    tensors = fitted.export_tensors()
    del tensors["bn2.running_var"]
    assert "bn2.running_var" in _one_line_error(fitted.get_params(), tensors)
    tensors = fitted.export_tensors()
    del tensors["classes"]
    assert "classes" in _one_line_error(fitted.get_params(), tensors)
    assert "unknown parameter" in _one_line_error({**fitted.get_params(), "depth": 3}, fitted.export_tensors())


def test_same_seed_same_model(digits):
    X, y, X_test, _ = digits
    params = dict(SMALL, epochs=2)
    a = CNNClassifier(**params).fit(X, y).predict_proba(X_test)
    b = CNNClassifier(**params).fit(X, y).predict_proba(X_test)
    c = CNNClassifier(**dict(params, random_state=1)).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_damaged_counts_in_a_weights_file_are_one_line(fitted):
    for name, value in [("world_size", np.zeros(0, np.int64)), ("world_size", np.array([0])),
                        ("n_features_in", np.array([64, 64])), ("n_features_in", np.array([np.nan])),
                        ("image_shape", np.array([np.nan, np.nan])), ("image_shape", np.array([8.5, 8.5]))]:
        tensors = {**fitted.export_tensors(), name: value}
        assert "the file is damaged" in _one_line_error(fitted.get_params(), tensors), (name, value)
    tensors = {**fitted.export_tensors(), "world_size": np.array([2])}
    assert CNNClassifier.from_tensors(fitted.get_params(), tensors).world_size_ == 2
    huge = {**fitted.export_tensors(), "image_shape": np.array([80_000, 80_000])}
    assert "does not fit" in _one_line_error(fitted.get_params(), huge)  # refused before asking for 100 GB


def test_a_budget_that_ends_before_the_first_step_is_refused_in_one_line(digits):
    X, y, _, _ = digits
    with pytest.raises(InvalidValueError, match="ended before the first training step"):
        CNNClassifier(epochs=3, width=4, time_budget=1e-9, device="cpu", random_state=0).fit(X, y)


def test_time_budget_stops_training(digits):
    X, y, X_test, y_test = digits
    start = time.perf_counter()
    model = CNNClassifier(epochs=10_000, width=8, time_budget=1.5, device="cpu", random_state=0).fit(X, y)
    seconds = time.perf_counter() - start
    assert model.stop_reason_ == "time_budget"
    assert seconds < 30.0  # 10,000 epochs would take hours: the clock stopped it (generous for a loaded CI)
    assert np.isfinite(model.history_[-1]["loss"])
    assert model.score(X_test, y_test) > 0.3  # a usable model, not one cut off mid-warm-up (chance is 0.1)


def test_target_accuracy_stops_early(digits):
    X, y, _, _ = digits
    model = CNNClassifier(
        epochs=200, width=8, validation_fraction=0.2, target_accuracy=0.8, device="cpu", random_state=0
    ).fit(X, y)
    assert model.stop_reason_ == "target_accuracy"
    assert model.n_iter_ < 200
    assert model.history_[-1]["val_accuracy"] >= 0.8


def test_progress_bar_runs(digits, capsys):
    X, y, _, _ = digits
    CNNClassifier(epochs=1, width=4, validation_fraction=0.2, verbose=True, device="cpu", random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "CNN" in out and "epoch 1/1" in out and "val acc 0." in out


def test_saved_names_are_the_networks_plus_classes_and_image_shape(fitted):
    bn_parts = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    layers = [f"conv{i}.weight" for i in (1, 2, 3)] + [f"bn{i}.{part}" for i in (1, 2, 3) for part in bn_parts]
    assert sorted(fitted.export_tensors()) == sorted([*layers, "fc.weight", "fc.bias", "classes", "image_shape",
                                                      "history"])


def test_the_same_seed_saves_the_same_file(digits, monkeypatch):
    """The epochs' seconds were saved with the weights: a reproducibility audit found identical weights in files with
    two SHA-256s, so two model ids."""
    from safetensors.numpy import save

    X, y, _, _ = digits
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the thread count fixed: the same weights to the bit
    first, again = (CNNClassifier(**{**SMALL, "epochs": 2}).fit(X, y) for _ in range(2))
    assert [row["seconds"] for row in again.history_] != [row["seconds"] for row in first.history_]
    assert save(again.export_tensors()) == save(first.export_tensors())


def test_the_training_history_is_saved_and_loaded_with_the_weights(fitted):
    again = CNNClassifier.from_tensors(fitted.get_params(), fitted.export_tensors())
    assert again.history_ == [{**row, "seconds": None} for row in fitted.history_]  # a clock: not in the file
    assert again.n_iter_ == len(fitted.history_) > 0
    tensors = fitted.export_tensors()
    del tensors["history"]  # a file saved before the history was kept
    assert CNNClassifier.from_tensors(fitted.get_params(), tensors).history_ == []
    tensors["history"] = fitted.export_tensors()["history"][:, :5]  # saved before the epoch's share was kept
    assert [r.get("share") for r in CNNClassifier.from_tensors(fitted.get_params(), tensors).history_] == [None] * 6
    tensors["history"] = np.zeros((2, 3))
    assert "training history" in _one_line_error(fitted.get_params(), tensors)


def test_rows_that_are_not_square_are_zero_padded_images(digits):
    X, y, X_test, _ = digits
    params = dict(SMALL, epochs=1)
    short = CNNClassifier(**params).fit(X[:, :60], y)
    assert short.n_features_in_ == 60 and short.image_shape_ == (8, 8)
    # Exactly the model of 8x8 images whose last four pixels are blank.
    blanked = X.copy()
    blanked[:, 60:] = 0
    full = CNNClassifier(**params).fit(blanked, y)
    blanked_test = X_test.copy()
    blanked_test[:, 60:] = 0
    np.testing.assert_array_equal(short.predict_proba(X_test[:, :60]), full.predict_proba(blanked_test))
    # It saves and loads with its feature count.
    tensors = short.export_tensors()
    assert tensors["n_features_in"].tolist() == [60]
    loaded = CNNClassifier.from_tensors(short.get_params(), tensors)
    assert loaded.n_features_in_ == 60
    np.testing.assert_array_equal(loaded.predict_proba(X_test[:, :60]), short.predict_proba(X_test[:, :60]))
    tensors["n_features_in"] = np.asarray([65])  # more than 8x8 holds
    assert "65 features" in _one_line_error(short.get_params(), tensors)


def test_small_inputs_become_8x8_images(digits):
    X, y, _, _ = digits
    model = CNNClassifier(**dict(SMALL, epochs=1)).fit(X[:, 26:30], y)  # 4 features
    assert model.n_features_in_ == 4 and model.image_shape_ == (8, 8)
    assert model.predict(X[:3, 26:30]).shape == (3,)


def test_bad_inputs_give_one_clear_line(fitted, digits):
    X, y, _, _ = digits
    with pytest.raises(DigitlabError, match="64 features") as info:
        fitted.predict(np.zeros((1, 784), dtype=np.float32))
    assert isinstance(info.value, ValueError)  # what scikit-learn's contract names
    with pytest.raises(DigitlabError, match="validation_fraction") as info:
        CNNClassifier(target_accuracy=0.9).fit(X, y)
    assert isinstance(info.value, ValueError)
    with pytest.raises(DigitlabError, match="epochs"):
        CNNClassifier(epochs=0).fit(X, y)
    with pytest.raises(DigitlabError, match="2 classes"):
        CNNClassifier(**SMALL).fit(X[:5], np.ones(5, dtype=int))
    with pytest.raises(NotFittedError):
        CNNClassifier().predict(X[:1])
    with pytest.raises(DigitlabError, match="tta must be True, False or the number of views, 1, 5 or 9, got 3"):
        CNNClassifier(**{**SMALL, "tta": 3}).fit(X, y)


def test_nine_view_tta_is_the_mean_over_the_image_and_its_eight_neighbours(fitted, digits):
    """tta=9 adds the four diagonal one-pixel shifts to tta=True's four; True and 5 are the same, as are False
    and 1; the estimator's answers change with it, not its weights."""
    import torch

    from digitlab.models import cnn_torch as ct

    _, _, X_test, _ = digits
    images = ct.as_images(X_test[:40], 8)
    net = fitted._inference_net
    with torch.inference_mode():
        x = torch.from_numpy(images)
        views = [x] + [ct.shift(x, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
        expected = torch.stack([torch.softmax(net(v), dim=1) for v in views]).mean(0).numpy()
    nine = ct.predict_proba(net, images, torch.device("cpu"), 9)
    np.testing.assert_allclose(nine, expected, atol=1e-6)
    five = ct.predict_proba(net, images, torch.device("cpu"), True)
    np.testing.assert_array_equal(five, ct.predict_proba(net, images, torch.device("cpu"), 5))
    assert np.abs(nine - five).max() > 1e-3  # the diagonals count
    np.testing.assert_array_equal(ct.predict_proba(net, images, torch.device("cpu"), 1),
                                  ct.predict_proba(net, images, torch.device("cpu"), False))
    before = fitted.tta
    try:
        np.testing.assert_allclose(fitted.set_params(tta=9).predict_proba(X_test[:40]), nine, atol=1e-6)
    finally:
        fitted.set_params(tta=before)


def test_registry_defaults_per_dataset():
    digits_model = make_model("cnn", dataset="digits", seed=7)
    mnist_model = make_model("cnn", dataset="mnist", seed=7)
    assert isinstance(digits_model, CNNClassifier) and digits_model.random_state == 7
    assert mnist_model.get_params() != digits_model.get_params()
    assert make_model("cnn", params={"epochs": 3}).epochs == 3


def test_importing_the_zoo_does_not_import_torch():
    code = "import sys, digitlab.models; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_time_budget_picks_the_recipe_measured_for_it_on_mnist_only():
    from digitlab.models import cnn_recipes

    short = make_model("cnn", dataset="mnist", params={"time_budget": 4, "device": "cpu"})
    assert (short.width, short.lr, short.augment, short.tta, short.time_budget) == (16, 0.8, 0.0, False, 4.0)
    long = make_model("cnn", dataset="mnist", params={"time_budget": 600, "device": "cpu"})
    assert long.width == 32 and long.augment > 0 and long.tta is True and long.epochs >= 100  # the budget ends training
    assert long.norm_after_pool and short.norm_after_pool and make_model("cnn", dataset="mnist").norm_after_pool
    assert (short.extra_convs, long.extra_convs, make_model("cnn", dataset="mnist").extra_convs) == (0, 3, 2)
    assert [(row["norm_after_pool"], row["extra_convs"]) for _, row in cnn_recipes.CUDA] == [  # as the H200 measured
        (True, 0), (True, 0), (True, 0), (True, 2), (True, 3)]
    rows = [row for _, row in cnn_recipes.CPU + cnn_recipes.CUDA]  # each the whole recipe, nothing left to DEFAULT's
    assert all(row.keys() == rows[0].keys() == cnn_recipes.DEFAULT.keys() - {"epochs"} for row in rows)
    assert make_model("cnn", dataset="mnist", params={"time_budget": 4, "width": 8, "device": "cpu"}).width == 8
    assert make_model("cnn", dataset="digits", params={"time_budget": 4}).width == CNNClassifier().width
    assert cnn_recipes.for_budget(1, "cuda")["batch_size"] == 512 != cnn_recipes.for_budget(1, "cpu")["batch_size"]
    assert [cnn_recipes.for_budget(b, "cuda")["width"] for b in (0.5, 2, 5, 30)] == [32, 32, 64, 128]
    assert all(cnn_recipes.for_budget(b, "cpu") == cnn_recipes.for_budget(b, "cpu") for b in (0.5, 30, 1e5))
    assert make_model("cnn", dataset="mnist").epochs == cnn_recipes.DEFAULT["epochs"]  # no budget: fixed epochs
    for bad in (0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive"):
            cnn_recipes.for_budget(bad, "cpu")
    for bad in ("abc", float("inf"), True, [1]):  # no recipe; fit() refuses in one line
        model = make_model("cnn", dataset="mnist", params={"time_budget": bad})
        assert model.epochs == cnn_recipes.DEFAULT["epochs"]
        with pytest.raises(DigitlabError, match="time_budget must be a positive number"):
            model.fit(np.zeros((20, 64)), np.arange(20) % 2)


def test_bf16_training_is_chosen_by_device_and_by_the_cpu(monkeypatch):
    import torch

    from digitlab.models import cnn_torch as ct

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert ct.use_bf16(cuda, "auto") and not ct.use_bf16(cuda, "fp32") and ct.use_bf16(cpu, "bf16")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
        assert ct.use_bf16(cpu, "auto") is native and not ct.use_bf16(cpu, "fp32")


def test_bf16_training_on_the_cpu_learns_and_repeats(digits):
    X, y, X_test, y_test = digits
    first = CNNClassifier(**SMALL, precision="bf16").fit(X, y)  # the autocast branch CUDA takes, run on the CPU
    again = CNNClassifier(**SMALL, precision="bf16").fit(X, y)
    assert first.score(X_test, y_test) > 0.9
    np.testing.assert_array_equal(first.predict_proba(X_test), again.predict_proba(X_test))
    fp32 = CNNClassifier(**SMALL, precision="fp32").fit(X, y)
    assert not np.array_equal(first.predict_proba(X_test), fp32.predict_proba(X_test))  # bf16 did run
    with pytest.raises(DigitlabError, match="precision must be"):
        CNNClassifier(**SMALL, precision="fp16").fit(X, y)


def test_relu_after_the_pool_computes_what_it_did_before_it():
    import torch

    from digitlab.models import cnn_torch as ct

    net = ct.build_net(side=28, width=4, n_classes=10, seed=3, norm_after_pool=False).train()
    x = torch.randn(5, 1, 28, 28)
    h = x
    for i in (1, 2, 3):  # the textbook order: conv, BatchNorm, ReLU, then pool
        h = torch.nn.functional.max_pool2d(torch.relu(getattr(net, f"bn{i}")(getattr(net, f"conv{i}")(h))), 2)
    torch.testing.assert_close(net(x), net.fc(h.flatten(1)))


def test_batchnorm_after_the_pool_is_a_block_order_with_the_same_weights():
    import torch

    from digitlab.models import cnn_torch as ct

    net = ct.build_net(side=28, width=4, n_classes=10, seed=3).train()
    old = ct.build_net(side=28, width=4, n_classes=10, seed=3, norm_after_pool=False)
    for (name, a), (same, b) in zip(net.state_dict().items(), old.state_dict().items()):
        assert name == same and torch.equal(a, b)  # the same tensors, names and starting values
    x = torch.randn(5, 1, 28, 28)
    h = x
    for i in (1, 2, 3):  # conv, pool, BatchNorm, ReLU
        h = torch.relu(getattr(net, f"bn{i}")(torch.nn.functional.max_pool2d(getattr(net, f"conv{i}")(h), 2)))
    torch.testing.assert_close(net(x), net.fc(h.flatten(1)))
    assert not torch.allclose(net(x), old.train()(x))  # a different network


@pytest.mark.parametrize(("norm_after_pool", "extra_convs"), [(True, 0), (False, 0), (True, 2), (True, 3), (False, 3)])
def test_folding_batchnorm_keeps_what_the_network_computes(norm_after_pool, extra_convs):
    import torch

    from digitlab.models import cnn_torch as ct

    net = ct.build_net(side=28, width=4, n_classes=10, seed=1, norm_after_pool=norm_after_pool,
                       extra_convs=extra_convs)
    with torch.no_grad():  # BatchNorm statistics and scales as training leaves them, some scales negative
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.copy_(torch.randn(bn.num_features)), bn.bias.copy_(torch.randn(bn.num_features))
            bn.running_mean.copy_(torch.randn(bn.num_features)), bn.running_var.uniform_(0.5, 2)
    net.eval()
    fused = ct.fuse_bn(net)
    kept = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert kept == (3 if norm_after_pool else 0)  # folded only where it follows a convolution: not after a pool
    x = torch.randn(7, 1, 28, 28)
    torch.testing.assert_close(fused(x), net(x), rtol=1e-4, atol=1e-4)


def test_a_card_saved_before_the_block_order_was_a_parameter_loads_the_old_order(digits):
    X, y, X_test, _ = digits
    old = CNNClassifier(**{**SMALL, "epochs": 2}, norm_after_pool=False).fit(X, y)
    params = old.get_params()
    del params["norm_after_pool"]  # as such a card has it
    again = CNNClassifier.from_tensors(params, old.export_tensors())
    assert again.norm_after_pool is False
    np.testing.assert_array_equal(again.predict_proba(X_test), old.predict_proba(X_test))
    new = CNNClassifier.from_tensors({**params, "norm_after_pool": True}, old.export_tensors())
    assert not np.array_equal(new.predict_proba(X_test), old.predict_proba(X_test))  # the order matters
    with pytest.raises(InvalidValueError, match="norm_after_pool must be True or False"):
        CNNClassifier(**SMALL, norm_after_pool="yes").fit(X, y)


def test_extra_convolutions_end_the_last_blocks_and_travel_with_the_card(digits):
    import torch

    from digitlab.models import cnn_torch as ct

    net = ct.build_net(side=28, width=4, n_classes=10, seed=3, extra_convs=2).train()
    convs = [name for name, m in net.named_children() if isinstance(m, torch.nn.Conv2d)]
    assert convs == ["conv1", "conv2", "conv2b", "conv3", "conv3b"] and net.conv3b.in_channels == 16
    x = torch.randn(5, 1, 28, 28)
    h = x
    for i in (1, 2, 3):  # conv, pool, BatchNorm, ReLU; then conv, BatchNorm, ReLU in blocks 2 and 3
        h = torch.relu(getattr(net, f"bn{i}")(torch.nn.functional.max_pool2d(getattr(net, f"conv{i}")(h), 2)))
        if i > 1:
            h = torch.relu(getattr(net, f"bn{i}b")(getattr(net, f"conv{i}b")(h)))
    torch.testing.assert_close(net(x), net.fc(h.flatten(1)))
    X, y, X_test, _ = digits
    deep = CNNClassifier(**{**SMALL, "epochs": 2}, extra_convs=1).fit(X, y)
    assert "conv3b.weight" in deep.export_tensors() and "conv2b.weight" not in deep.export_tensors()
    again = CNNClassifier.from_tensors(deep.get_params(), deep.export_tensors())
    np.testing.assert_array_equal(again.predict_proba(X_test), deep.predict_proba(X_test))
    params = deep.get_params()
    del params["extra_convs"]  # a card saved before the parameter: no extra convolutions, so these weights are foreign
    assert "foreign tensor(s): bn3b" in _one_line_error(params, deep.export_tensors())
    assert "(the card says extra_convs=0; the weights have 1)" in _one_line_error(params, deep.export_tensors())
    assert "lacks tensor(s): bn2b" in _one_line_error({**params, "extra_convs": 2}, deep.export_tensors())
    assert "extra_convs=2; the weights have 1" in _one_line_error({**params, "extra_convs": 2}, deep.export_tensors())
    tensors = {**deep.export_tensors(), "stray.weight": np.zeros(1)}  # the depth agrees: no hint
    assert _one_line_error({**params, "extra_convs": 1}, tensors).endswith("foreign tensor(s): stray.weight")
    for bad in (4, -1, True, 1.5, "2"):
        with pytest.raises(InvalidValueError, match="extra_convs must be an integer from 0 to 3"):
            CNNClassifier(**SMALL, extra_convs=bad).fit(X, y)


@pytest.mark.parametrize("side", [8, 28])
def test_the_augmentation_grid_is_pytorchs_affine_grid(side):
    import torch

    from digitlab.models import cnn_torch as ct

    theta = torch.randn(9, 2, 3, generator=torch.Generator().manual_seed(side))
    expected = torch.nn.functional.affine_grid(theta, [9, 1, side, side], align_corners=False)
    torch.testing.assert_close(ct.affine_grid(theta, side), expected)


def test_the_optimizer_takes_exactly_torch_sgds_steps():
    """NesterovSGD calls torch.optim.SGD's own update function; the weights after steps with changing learning
    rates, weight decay per group and a parameter without a gradient are the same to the bit."""
    import torch

    from digitlab.models import cnn_optim as co
    from digitlab.models import cnn_torch as ct

    nets = [ct.build_net(8, 4, 10, seed=0) for _ in range(2)]
    ours = co.make_optimizer(nets[0], 0.4, 5e-4)
    groups = co.make_optimizer(nets[1], 0.4, 5e-4).param_groups  # the same groups, of the second network
    theirs = torch.optim.SGD([{k: v for k, v in g.items() if k != "momentum"} for g in groups], lr=0.4,
                             momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    for step in range(8):
        for optimizer in (ours, theirs):
            for group in optimizer.param_groups:
                group["lr"] = 0.05 * (step + 1) * group["lr_scale"]
        for net, optimizer in zip(nets, (ours, theirs)):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            if step == 3:
                net.fc.bias.grad = None  # a step where one parameter has no gradient
            optimizer.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(next(nets[0].parameters()), next(ct.build_net(8, 4, 10, seed=0).parameters()))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="with CUDA, fit readies the CUDA graph's imports")
def test_a_cnn_fits_without_importing_torch_dynamo():
    """torch.optim's classes import torch._dynamo on first use: 2.4-2.6 s of every training process here."""
    code = ("import sys; from digitlab.data import load_dataset; from digitlab.train import train; "
            "train('cnn', load_dataset('digits', limit=200), params={'epochs': 1, 'device': 'cpu'}); "
            "print('torch._dynamo' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "True"]


_FAULTS_SCRIPT = """
import resource, sys, torch
from digitlab import memory
from digitlab.models import cnn_optim as co
from digitlab.models import cnn_torch as ct
if sys.argv[1] == "keep":
    ct.ready_for_training()  # what fit does first
    assert memory.policy() == "training"
gen = torch.Generator().manual_seed(0)
x, y = torch.rand(3072, 1, 28, 28, generator=gen), torch.randint(0, 10, (3072,), generator=gen)
net = ct.place(ct.build_net(28, 16, 10), torch.device("cpu"))
optimizer = co.make_optimizer(net, 0.4, 5e-4)
def steps(n):
    ct.train_one_epoch(net, optimizer, x[: 128 * n], y[: 128 * n], batch_size=128, peak_lr=0.4,
                       clock=ct.Clock(n, None, 0.0), gen=gen, augment=2, distort=0.1)
steps(3)  # the first steps allocate for good
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
steps(20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _glibc_allocator() -> bool:
    from digitlab.memory import glibc

    return glibc() is not None and "malloc" not in os.environ.get("LD_PRELOAD", "")


@pytest.mark.skipif(not _glibc_allocator(), reason="glibc's allocator settings: Linux with glibc's malloc only")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again():
    def page_faults(mode: str, **env: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], check=True, capture_output=True, text=True,
                             env={**os.environ, **env})
        return int(out.stdout)

    # glibc's defaults hand megabytes back to the kernel every step: with its starting mmap threshold (128 KiB,
    # pinned here: glibc raises it as it sees big blocks freed, so unpinned a run faulted 800-77,000 times)
    # 20 steps faulted 222,000 pages in; kept, the steps reuse them (600-3,000)
    kept = page_faults("keep")
    assert kept < 5_000 and 5 * kept < page_faults("default", MALLOC_MMAP_THRESHOLD_="131072")


_POLICY_SCRIPT = """
import numpy as np, torch
from digitlab import memory
from digitlab.models import cnn_torch as ct
net = ct.build_net(28, 4, 10)
def predict(n):
    ct.predict_proba(net, np.zeros((n, 1, 28, 28), np.float32), torch.device("cpu"), tta=False)
    return memory.policy()
seen = [predict(16), predict(32)]  # a few images set nothing; a batch sets training's
memory.tune_allocator("serving")  # a server made in this process
seen += [memory.policy(), predict(32), memory.tune_allocator("training"), memory.policy()]
print(seen)
"""


@pytest.mark.skipif(not _glibc_allocator(), reason="glibc's allocator settings: Linux with glibc's malloc only")
def test_a_server_keeps_its_allocator_policy_when_it_predicts_a_batch():
    out = subprocess.run([sys.executable, "-c", _POLICY_SCRIPT], check=True, capture_output=True, text=True).stdout
    assert out.strip() == str([None, "training", "serving", "serving", False, "serving"])


def test_any_saved_counts_and_labels_give_a_model_or_one_line(fitted):
    """Hypothesis: whatever a weights file holds beside the network (any dtype, shape, NaN, huge), from_tensors
    returns a model that predicts or refuses in one line: never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    dtypes = st.sampled_from([np.int64, np.int32, np.uint8, np.float64, np.float32, np.bool_])
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12)
    arrays = dtypes.flatmap(lambda dt: hnp.arrays(dt, shapes))
    names = st.sampled_from(["classes", "image_shape", "n_features_in", "world_size", "history"])
    good = fitted.export_tensors()

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.dictionaries(names, arrays, min_size=1, max_size=3))
    def check(damage):
        try:
            model = CNNClassifier.from_tensors(fitted.get_params(), {**good, **damage})
        except DigitlabError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        assert model.predict_proba(np.zeros((2, model.n_features_in_), np.float32)).shape == (2, len(model.classes_))

    check()


def test_the_report_says_how_many_epochs_ran_and_what_ended_them(fitted, digits):
    """Under a time budget the recipe's epochs=1000 is only a ceiling; the report says what really ran."""
    from digitlab.report import epochs_words, how_it_stopped

    X, y, _, _ = digits
    assert how_it_stopped(fitted) == f"It trained {fitted.epochs} epochs, as epochs={fitted.epochs} asks."
    budgeted = CNNClassifier(**{**SMALL, "epochs": 1000, "time_budget": 0.5}).fit(X[:300], y[:300])
    said, shares = how_it_stopped(budgeted), [r["share"] for r in budgeted.history_]
    assert said.startswith(f"It trained {epochs_words(budgeted.history_)}") and len(budgeted.history_) < 1000
    assert said.endswith("the time budget of 0.5 s ended it (epochs=1000 is an upper bound).")
    assert set(shares[:-1]) <= {1.0} and 0 < shares[-1] <= 1  # only the last epoch can be cut short
    cut = SimpleNamespace(stop_reason_="time_budget", history_=[{"share": 1.0}, {"share": 0.4}], time_budget=5,
                          epochs=1000)
    assert how_it_stopped(cut).startswith("It trained 1.4 epochs: the time budget of 5 s ended it")
    loaded = CNNClassifier.from_tensors(fitted.get_params(), fitted.export_tensors())
    assert how_it_stopped(loaded) is None  # a loaded model: its history, but not what ended it
    # an engineer: the accuracy it stopped at, and on what, were nowhere; nor that torchrun trained it
    aimed = SimpleNamespace(stop_reason_="target_accuracy", history_=[{"share": 1.0, "val_accuracy": 0.9734}] * 3,
                            target_accuracy=0.97, validation_fraction=0.1, world_size_=2)
    assert how_it_stopped(aimed) == ("It trained 3 epochs in 2 torchrun processes, stopping once its validation "
                                     "accuracy reached 97.00% (97.34% on the 10% of its training images it held out "
                                     "to measure it).")


def test_a_cnn_whose_training_diverged_is_one_line_not_a_traceback(tmp_path):
    """An engineer's --param lr=1000: NaN probabilities reached the 'unsure' threshold and ended in a traceback."""
    from conftest import run_cli

    done = run_cli("run", "--dataset", "digits", "--model", "cnn", "--time-budget", "2", "--param", "lr=1000",
                   "--out", str(tmp_path / "runs"))
    assert done.returncode == 2 and "training diverged" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


def test_pixels_not_scaled_to_0_1_get_a_warning_at_fit(digits):
    # Trained on 0..16 it learns, but predict_images, `digitlab predict` and ONNX give it [0, 1] pixels: 15% right
    X, y, _, _ = digits
    quick = dict(SMALL, epochs=1)
    with pytest.warns(UserWarning, match=r"features up to 16.*scaled to \[0, 1\].*to_features") as said:
        CNNClassifier(**quick).fit(X[:200] * 16, y[:200])
    assert said[0].filename == __file__  # at the caller's fit, not inside digitlab (a reviewer)
    noisy = X[:200] * 255 + np.random.default_rng(0).normal(0, 3, X[:200].shape)  # below 0 here and there
    with pytest.warns(UserWarning, match="features up to"):
        CNNClassifier(**quick).fit(noisy, y[:200])
    import warnings

    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scaled pixels, a little above 1 (augmented or noisy), say nothing
        CNNClassifier(**quick).fit(np.minimum(X[:200] * 1.2, 1.5), y[:200])
        standardised = StandardScaler().fit_transform(X[:200] * 16)  # a pipeline's scaler, up to 14: not pixels
        CNNClassifier(**quick).fit(standardised, y[:200])
