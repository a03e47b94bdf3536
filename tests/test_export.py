"""ONNX export (issue 14, part 1): every zoo model → ONNX → ONNX Runtime answers as the estimator does.

Each model is trained small on the 8×8 digits (fewer trees, fewer epochs) and saved as a run would
save it; the export's parity check runs on the whole test part (360 images).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.export import export_onnx, to_onnx  # noqa: E402
from digitlab.onnx_model import OnnxModel, load_onnx, onnx_card_path, read_onnx_card  # noqa: E402
from digitlab.preprocess import test_features as features_of_test_part  # noqa: E402  (a library name)

FAST = {  # small versions of the zoo's models: the same kinds of graph, a fraction of the time
    "logreg": None,
    "svm": None,
    "knn": None,
    "forest": {"n_estimators": 20},
    "mlp": {"max_iter": 40},
    "cnn": {"epochs": 3, "width": 8, "batch_size": 32, "augment": 0.0, "distort": 0.0,  # 99% right, in seconds
            "extra_convs": 1},  # and a second convolution in the last block, as MNIST's recipes have
}


def _cnn_exportable() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("torch", "onnxscript"))


def _run(saved, name: str):
    """The saved run of ``name``: (folder, fitted estimator); skips when the CNN cannot be exported here."""
    if name not in saved:
        pytest.skip("the CNN's export needs torch and onnxscript")
    return saved[name]


@contextlib.contextmanager
def _one_torch_thread(active: bool):
    """Train the tiny CNN on one thread: on a shared 2-core machine two threads wait on each other."""
    if not active:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    """The 8×8 digits with the lesson's split."""
    from digitlab.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def saved(digits, tmp_path_factory):
    """Every zoo model, trained small and saved as a run saves it: name → (folder, fitted estimator)."""
    from digitlab.store import save_model
    from digitlab.train import calibrate, train

    runs = {}
    for name, params in FAST.items():
        if name == "cnn" and not _cnn_exportable():
            continue  # the tests that need it skip
        with warnings.catch_warnings(), _one_torch_thread(name == "cnn"):
            warnings.simplefilter("ignore")  # the short MLP does not converge, on purpose
            fitted = train(name, digits, params=params)
        if name == "logreg":  # as `digitlab run` does: a temperature for the metadata to carry
            fitted.calibration = calibrate(fitted, digits)
        folder = tmp_path_factory.mktemp(name)
        save_model(fitted, digits, folder)
        runs[name] = (folder, fitted.model)
    return runs


@pytest.fixture(scope="module")
def exported(saved):
    """Each model exported once, into its run folder (the default ``model.onnx``)."""
    return {name: export_onnx(folder) for name, (folder, _) in saved.items()}


@pytest.fixture(scope="module")
def cnn_export(saved, exported):
    """The CNN's export; skips where the CNN cannot be exported."""
    _run(saved, "cnn")
    return exported["cnn"]


@pytest.fixture()
def logreg_copy(saved, tmp_path) -> Path:
    """A copy of the calibrated logreg run without its ONNX export, to export into."""
    target = tmp_path / "logreg-run"
    shutil.copytree(saved["logreg"][0], target, ignore=shutil.ignore_patterns("model.onnx*"))
    return target


@pytest.mark.parametrize("name", list(FAST))
def test_onnx_runtime_answers_as_the_estimator(name, saved, exported, digits):
    folder, estimator = _run(saved, name)
    result = exported[name]
    assert result.path == folder / "model.onnx" and result.card_path == folder / "model.onnx.json"
    assert result.parity.n_images == 360 and result.parity.n_disagree == 0
    loaded = load_onnx(folder)
    X, _ = features_of_test_part(digits)
    np.testing.assert_array_equal(loaded.model.predict(X), estimator.predict(X))
    np.testing.assert_allclose(loaded.model.predict_proba(X), estimator.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(loaded.model.classes_, estimator.classes_)
    for batch in (1, 7):  # the batch axis is dynamic
        assert loaded.model.predict_proba(X[:batch]).shape == (batch, 10)


def test_predict_images_takes_the_onnx_model_unchanged(saved, exported, digits):
    from digitlab.predict import predict_images
    from digitlab.store import load_model

    estimator = load_model(saved["svm"][0])
    onnx = load_onnx(exported["svm"].path)
    a = predict_images(estimator.model, estimator.card, digits.test_images[:20])
    b = predict_images(onnx.model, onnx.card, digits.test_images[:20])
    assert [p.digit for p in a] == [p.digit for p in b] and [p.model_id for p in a] == [p.model_id for p in b]
    np.testing.assert_allclose([p.probabilities for p in a], [p.probabilities for p in b], atol=1e-5)


def test_onnx_runtime_writes_and_sends_no_telemetry(saved, exported, tmp_path):
    """ONNX Runtime 1.32 wrote a device id and an event database under ~/.cache/Microsoft on every ONNX-answered
    command, to upload them, and printed a warning where HOME could not be written (a school's audit)."""
    import os
    import subprocess
    import sys

    from PIL import Image

    Image.new("L", (8, 8), 0).save(tmp_path / "blank.png")
    env = {key: value for key, value in os.environ.items() if key != "ORT_DISABLE_TELEMETRY"}
    answered = subprocess.run([sys.executable, "-m", "digitlab", "predict", "--model", str(exported["logreg"].path),
                               str(tmp_path / "blank.png")], env={**env, "HOME": str(tmp_path / "home")},
                              capture_output=True, text=True, timeout=120)
    assert "no ink found" in answered.stderr, answered.stderr  # ONNX Runtime was loaded and ran
    assert not (tmp_path / "home").exists() and "telemetry" not in answered.stderr


def test_cnn_graph_folds_only_a_batchnorm_before_a_pool_and_has_a_dynamic_batch_axis(cnn_export):
    import onnx

    proto = onnx.load(str(cnn_export.path))
    made_by = {out: node.op_type for node in proto.graph.node for out in node.output}
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Conv") == 4 and ops.count("BatchNormalization") == 3  # blocks of conv, pool, BatchNorm; conv3b
    assert {made_by[node.input[0]] for node in proto.graph.node if node.op_type == "BatchNormalization"} == {"MaxPool"}
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["label", "probabilities"]
    for value in (*proto.graph.input, *proto.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in proto.metadata_props}
    assert "test_time_augmentation" in meta  # the digits CNN averages five views, in the graph too


def test_metadata_and_card_carry_the_input_contract(logreg_copy):
    import onnx

    from digitlab.store import read_card

    source, _ = read_card(logreg_copy)
    result = export_onnx(logreg_copy, logreg_copy / "exported.onnx")
    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert json.loads(meta["image_shape"]) == [8, 8] and meta["pixel_max"] == "16"
    assert json.loads(meta["classes"]) == list(range(10)) and meta["model_card_id"] == source.id
    assert float(meta["temperature"]) == source.calibration.temperature and "outside" in meta["temperature_applied"]
    assert "pixel_max" in meta["input"] and meta["preprocessing"] == source.preprocessing
    assert "ink light on dark paper" in meta["picture_preparation"] and "8×8 digits" in meta["picture_preparation"]

    assert result.card_path == logreg_copy / "exported.onnx.json"
    card = read_onnx_card(result.card_path)
    assert card == result.card and card.format == "onnx" and card.file == "exported.onnx"
    assert card.size_bytes == result.path.stat().st_size and card.id == source.id and card.state is None
    assert card.calibration == source.calibration
    extra = json.loads(result.card_path.read_text())["onnx"]
    assert extra["source"]["sha256"] == source.sha256 and extra["parity"]["n_disagree"] == 0
    loaded = load_onnx(result.card_path)  # the card's path works too
    assert loaded.path == result.path and loaded.temperature == source.calibration.temperature
    assert loaded.model.temperature == source.calibration.temperature


def test_the_saved_prepared_png_gives_an_8x8_models_input_back_as_the_metadata_says(logreg_copy, tmp_path):
    """An engineer fed an 8×8 model's ONNX file the PNGs `--save-prepared` writes, as the metadata's "0..16" read:
    10 of 41 answers differed. The PNGs hold 0..255; the metadata and README now say how to get the input back."""
    import onnx
    from PIL import Image, ImageDraw

    from digitlab.cli import _save_prepared
    from digitlab.data.images import prepare_digit

    meta = {p.key: p.value for p in onnx.load(str(export_onnx(logreg_copy, tmp_path / "m.onnx").path)).metadata_props}
    assert "round(png × 16 / 255) gives its input back" in meta["picture_preparation"]
    for n, points in enumerate([[(30, 20), (70, 20), (40, 110)], [(60, 15), (25, 80), (80, 80), (60, 15), (60, 115)]]):
        picture = Image.new("L", (100, 130), 255)
        ImageDraw.Draw(picture).line(points, fill=0, width=9 + 3 * n)
        prepared = prepare_digit(picture, (8, 8), 16)
        png = np.asarray(Image.open(_save_prepared(prepared, 16, tmp_path / f"{n}.png")), dtype=np.float64)
        assert png.max() > 16 and np.array_equal(np.round(png * 16 / 255), prepared), (png, prepared)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_tampered_onnx_file_is_refused_in_one_line(saved, exported, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(saved["logreg"][0], target)
    onnx_path = target / "model.onnx"
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    with pytest.raises(DigitlabError, match="checksum .* does not match its model card") as exc:
        load_onnx(onnx_path)
    assert "model.onnx" in _one_line(exc)


def test_a_truncated_onnx_file_is_refused_in_one_line(saved, exported, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(_run(saved, "cnn")[0], target)
    onnx_path = target / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:1000])
    with pytest.raises(DigitlabError, match="1,000 bytes, but its card says .* truncated") as exc:
        load_onnx(target)
    _one_line(exc)


def test_a_resealed_garbage_file_and_a_missing_card_are_refused(saved, exported, tmp_path):
    """An attacker can rewrite the card's checksum too: the file is then refused in one line as well, before ONNX
    Runtime opens it (digitlab.onnx_safety)."""
    import hashlib

    target = tmp_path / "run"
    shutil.copytree(saved["logreg"][0], target)
    onnx_path, card_path = target / "model.onnx", onnx_card_path(target / "model.onnx")
    garbage = b"\x08\x07" + b"not a graph" * 100
    onnx_path.write_bytes(garbage)
    card = json.loads(card_path.read_text())
    card.update(sha256=hashlib.sha256(garbage).hexdigest(), size_bytes=len(garbage))
    card_path.write_text(json.dumps(card))
    with pytest.raises(DigitlabError, match="not an ONNX file") as exc:
        load_onnx(onnx_path)
    _one_line(exc)
    card_path.unlink()
    with pytest.raises(DigitlabError, match="no model card") as exc:
        load_onnx(onnx_path)
    _one_line(exc)


def test_an_estimator_card_is_not_an_onnx_card(saved):
    with pytest.raises(DigitlabError, match="not the card of an ONNX file"):
        read_onnx_card(saved["logreg"][0] / "model.json")


def _stub_to_onnx(monkeypatch, make_proto):
    """Have export_onnx convert with ``make_proto(real_to_onnx, model, card)`` instead of the real conversion."""
    import digitlab.export as export_module

    real = export_module.to_onnx
    monkeypatch.setattr(export_module, "to_onnx", lambda model, card: make_proto(real, model, card))


def test_a_different_model_in_the_graph_is_refused_and_nothing_is_written(saved, digits, tmp_path, monkeypatch):
    """A real disagreement: the graph holds a model trained on shifted labels (each digit called the next)."""
    from sklearn.linear_model import LogisticRegression

    X, y = features_of_test_part(digits)
    other = LogisticRegression(max_iter=200).fit(X, (y + 1) % 10)
    _stub_to_onnx(monkeypatch, lambda real, model, card: real(other, card))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DigitlabError, match=r"disagrees with the estimator.*refusing to write") as exc:
        export_onnx(saved["logreg"][0], out / "m.onnx")
    assert "0 of 360" not in _one_line(exc)
    assert list(out.iterdir()) == []


def test_a_cnn_without_tta_exports_and_one_whose_probabilities_drift_is_refused(saved, digits, tmp_path, monkeypatch):
    """The same CNN without test-time augmentation (the MNIST recipe) converts to one forward pass that
    matches it; its bound is |Δp| ≤ 1e-4: that graph with its last layer's bias nudged by up to 2e-3, which
    moves probabilities by a few 1e-4 and hardly any answer, is refused."""
    from onnx import numpy_helper

    from digitlab.export import check_parity
    from digitlab.store import load_model

    run = tmp_path / "run"
    shutil.copytree(_run(saved, "cnn")[0], run, ignore=shutil.ignore_patterns("model.onnx*"))
    card = json.loads((run / "model.json").read_text())
    card["params"]["tta"] = False
    (run / "model.json").write_text(json.dumps(card))
    converted = []

    def nudged(real, model, card):
        proto = real(model, card)
        converted.append(proto.SerializeToString())
        for tensor in proto.graph.initializer:
            array = numpy_helper.to_array(tensor)
            if array.shape == (10,) and array.dtype == np.float32:  # the linear layer's bias
                array = array + np.linspace(0.0, 2e-3, 10, dtype=np.float32)
                tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
                return proto
        raise AssertionError("no bias of 10 classes in the CNN graph")

    _stub_to_onnx(monkeypatch, nudged)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DigitlabError, match=r"max \|Δp\| .* \(at most 1e-04\)") as exc:
        export_onnx(run, out / "cnn.onnx")
    _one_line(exc)
    assert list(out.iterdir()) == []

    import onnx

    [untouched] = converted  # the graph as converted, before the nudge: one pass, and it matches
    assert sum(node.op_type == "Conv" for node in onnx.load_from_string(untouched).graph.node) == 4  # one pass of 3 blocks and conv3b
    assert "test_time_augmentation" not in {p.key for p in onnx.load_from_string(untouched).metadata_props}
    estimator = load_model(run).model
    X, _ = features_of_test_part(digits)
    parity = check_parity(estimator, OnnxModel(untouched), X)
    assert parity.n_disagree == 0 and parity.max_abs_diff <= 1e-4


def test_a_cnn_with_nine_view_tta_exports_all_nine_views(saved, digits, tmp_path):
    """tta=9 (the 30-s GPU recipe's): the graph averages the image and its eight one-pixel shifts, and matches."""
    import onnx

    from digitlab.export import check_parity
    from digitlab.store import load_model

    run = tmp_path / "run"
    shutil.copytree(_run(saved, "cnn")[0], run, ignore=shutil.ignore_patterns("model.onnx*"))
    card = json.loads((run / "model.json").read_text())
    card["params"]["tta"] = 9
    (run / "model.json").write_text(json.dumps(card))
    exported = export_onnx(run, tmp_path / "cnn9.onnx")  # refuses a graph that disagrees with the estimator
    props = {p.key: p.value for p in onnx.load(str(exported.path)).metadata_props}
    assert "its 8 one-pixel shifts" in props["test_time_augmentation"]
    estimator = load_model(run).model
    X, _ = features_of_test_part(digits)
    graph = OnnxModel(exported.path)
    parity = check_parity(estimator, graph, X)
    assert parity.n_disagree == 0 and parity.max_abs_diff <= 1e-4
    assert np.abs(graph.predict_proba(X) - estimator.set_params(tta=5).predict_proba(X)).max() > 1e-4  # not 5 views


def test_a_model_that_cannot_be_converted_says_which_and_why(digits):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelPropagation

    from digitlab.card import ModelCard

    X, y = features_of_test_part(digits)
    card = ModelCard(model="knn", dataset="digits", image_shape=(8, 8), pixel_max=16, sha256="0" * 64)
    with pytest.raises(DigitlabError, match="knn: only euclidean k-NN") as exc:
        to_onnx(KNeighborsClassifier(metric="manhattan").fit(X, y), card)
    _one_line(exc)
    with pytest.raises(DigitlabError, match="skl2onnx cannot convert a LabelPropagation") as exc:
        to_onnx(LabelPropagation(max_iter=5).fit(X[:100], y[:100]), card)
    _one_line(exc)


def test_onnx_model_checks_its_input(exported):
    model = load_onnx(exported["logreg"].path).model
    with pytest.raises(DigitlabError, match="takes 64 features"):
        model.predict_proba(np.zeros((2, 63)))
    with pytest.raises(DigitlabError, match="NaN"):
        model.predict_proba(np.full((1, 64), np.nan))
    assert model.predict_proba(np.zeros((0, 64))).shape == (0, 10)
    with pytest.raises(DigitlabError, match="threads"):
        OnnxModel(exported["logreg"].path.read_bytes(), threads=-1)


def test_cli_export_writes_the_file_and_prints_parity(logreg_copy):
    from conftest import run_cli

    result = run_cli("export", "--model", str(logreg_copy))
    assert result.returncode == 0, result.stderr
    assert "parity on 360 test images: identical argmax on 100.00% (0 differ), max |Δp|" in result.stdout
    assert f"wrote {logreg_copy / 'model.onnx'}" in result.stdout
    assert load_onnx(logreg_copy).card.format == "onnx"
    elsewhere = run_cli("export", "--model", str(logreg_copy), "--out", str(logreg_copy.parent / "lr.onnx"))
    assert elsewhere.returncode == 0 and (logreg_copy.parent / "lr.onnx.json").is_file(), elsewhere.stderr
    from conftest import seven_png

    (picture := logreg_copy.parent / "seven.png").write_bytes(seven_png())
    for export in ("lr.onnx", "lr.onnx.json"):  # digitlab's commands take the run: one line that says so
        said = run_cli("predict", "--model", str(logreg_copy.parent / export), str(picture))
        assert said.returncode == 2 and "is an ONNX export" in said.stderr and "give the run folder" in said.stderr
    inside = run_cli("predict", "--model", str(logreg_copy / "model.onnx"), str(picture))
    assert inside.returncode == 0, inside.stderr  # the export inside a run folder: that run's model


@pytest.mark.parametrize("args, says", [
    (["--format", "tflite"], "--format 'tflite': digitlab exports to onnx"),
    (["--out", "model.txt"], "an ONNX file's name ends in .onnx"),
    (["--out", "."], "--out .: is a folder; give a file name ending in .onnx, e.g. model.onnx"),
    (["--out", "exp/.onnx"], "choose e.g. model.onnx"),
    (["--runs", "no-such-folder"], "no trained model in no-such-folder/"),
    (["--model", "no-such-run"], "no-such-run: no such file or folder"),
])
def test_cli_export_errors_are_one_line(logreg_copy, tmp_path, args, says):
    from conftest import run_cli

    full = args if "--model" in args or "--runs" in args else ["--model", str(logreg_copy), *args]
    result = run_cli("export", *full, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 1 and lines[0].startswith("error:")
    assert says in lines[0]
    assert not (logreg_copy / "model.onnx").exists()


def test_one_onnx_model_serves_many_threads_at_once(cnn_export, digits):
    from concurrent.futures import ThreadPoolExecutor

    model = load_onnx(cnn_export.path).model
    X, _ = features_of_test_part(digits)
    expected = [model.predict_proba(X[i : i + 1]) for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: model.predict_proba(X[i : i + 1]), range(64)))
    for got, want in zip(answers, expected):
        np.testing.assert_array_equal(got, want)


def test_without_onnxruntime_each_entry_point_says_what_to_install(monkeypatch, exported, saved):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(DigitlabError, match=r"need onnxruntime.*pip install .digitlab\[serve\]."):
        load_onnx(exported["logreg"].path)
    with pytest.raises(DigitlabError, match=r"needs onnxruntime.*pip install 'digitlab\[onnx\]'"):
        export_onnx(saved["logreg"][0], saved["logreg"][0] / "again.onnx")
    assert not (saved["logreg"][0] / "again.onnx").exists()


def test_with_head_the_file_alone_gives_the_answers_predict_gives(lesson_run, tmp_path):
    """An engineer: the detector could not be used without digitlab, and the calibration's 1e-12 and the unsure
    bar's 1e-9 tolerance were written nowhere. `export --with-head` puts both in the graph and says how to answer."""
    import onnxruntime as ort

    from digitlab.data import load_dataset
    from digitlab.predict import predict_images
    from digitlab.store import load_model, save_model
    from digitlab.train import train

    run = tmp_path / "run"
    shutil.copytree(lesson_run.folder, run, ignore=shutil.ignore_patterns("model.onnx*"))
    with pytest.raises(DigitlabError, match="model.onnx is the plain graph `digitlab serve` reads"):
        export_onnx(run, run / "model.onnx", head=True)
    result = export_onnx(run, head=True)
    assert result.path == run / "model-head.onnx" and not (run / "model.onnx").exists()
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["temperature_applied"].startswith("in the graph: head/probabilities")
    assert "unsure_below - 1e-09" in meta["answer"] and "every input is 0" in meta["answer"]
    described = json.loads(result.card_path.read_text())["onnx"]  # the card says what the file holds (a reviewer)
    assert described["outputs"] == ["label", "probabilities", "head/probabilities", "head/nondigit"]
    loaded, digits = load_model(run), load_dataset("digits")
    images = np.concatenate([digits.test_images[:60], np.full((1, 8, 8), 16, np.uint8),  # all ink: no digit
                             np.random.default_rng(0).integers(0, 17, (3, 8, 8)).astype(np.uint8)])
    probabilities, scores = session.run(["head/probabilities", "head/nondigit"],
                                        {"features": images.reshape(len(images), -1).astype(np.float32) / 16})
    threshold, unsure = float(meta["not_a_digit_threshold"]), float(meta["unsure_below"])
    kinds = ["not_a_digit" if s > threshold else "unsure" if p.max() < unsure - 1e-9 else "digit"
             for p, s in zip(probabilities, scores)]
    said = predict_images(loaded, loaded.card, images)
    assert kinds == [p.kind for p in said] and {"digit", "not_a_digit"} <= set(kinds)
    unlike = float(meta["might_not_be_a_digit_from"])  # "might not be a digit", as predict marks it
    marked = [k != "not_a_digit" and s >= unlike for k, s in zip(kinds, scores)]
    assert marked == [p.unlike_a_digit for p in said] and any(marked) and not all(marked)  # (a reviewer: or vacuous)
    assert "might_not_be_a_digit_from might not be one" in meta["answer"]
    np.testing.assert_allclose(probabilities, [p.probabilities for p in said], atol=1e-6)
    np.testing.assert_allclose(scores, [p.nondigit_score for p in said], atol=1e-6)
    # an input no prepared picture gives (one NaN, pixels at -1..1 or 0..16): "not a digit", never a sure digit (a
    # NaN was answered "digit 0"; -1..1 a sure digit 81% of the time, its score near 0) and the other rows as they were
    good = images[:4].reshape(4, -1).astype(np.float32) / 16
    nan, scaled, raw = good[0].copy(), good[1] * 2 - 1, good[2] * 16
    nan[10] = np.nan
    _, odd_scores = session.run(["head/probabilities", "head/nondigit"], {"features": np.stack([nan, scaled, raw,
                                                                                                 good[3]])})
    assert odd_scores[:3].tolist() == [1.0, 1.0, 1.0] and odd_scores[3] == pytest.approx(scores[3], abs=1e-12)
    assert "outside 0..1" in meta["answer"] and "each finite and in 0..1" in meta["input"]
    bare = tmp_path / "bare"
    save_model(train("logreg", digits), digits, bare)  # saved by hand: no calibration, no detector
    with pytest.raises(DigitlabError, match="has no calibration or no not-a-digit detector"):
        export_onnx(bare, head=True)
    assert not (bare / "model-head.onnx").exists()


def test_the_plain_export_states_the_calibrations_arithmetic(logreg_copy):
    """An engineer matched predict's k-NN figures only with the 1e-12 and the 1e-9 that nothing stated."""
    import onnxruntime as ort

    result = export_onnx(logreg_copy)
    meta = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).get_modelmeta()
    said = meta.custom_metadata_map["temperature_applied"]
    assert "softmax(log(probabilities + 1e-12) / temperature)" in said and "unsure_below - 1e-9" in said


def test_predict_answers_through_the_runs_own_onnx_export(lesson_run, tmp_path, monkeypatch):
    """An engineer: predict imported PyTorch for one picture (2.2 s, 364 MB) though the run held a model.onnx.
    It now answers through the export when it was made from this very model, the same answers to 1e-6."""
    from conftest import run_cli, seven_png
    from digitlab.data import load_dataset
    from digitlab.onnx_model import load_for_prediction
    from digitlab.predict import predict_images
    from digitlab.store import load_model

    run = tmp_path / "run"
    shutil.copytree(lesson_run.folder, run, ignore=shutil.ignore_patterns("model.onnx*"))
    assert not isinstance(load_for_prediction(run).model, OnnxModel)  # none exported: the estimator
    export_onnx(run)
    lean, estimator = load_for_prediction(run), load_model(run)
    assert isinstance(lean.model, OnnxModel) and lean.detector is not None and lean.card == estimator.card
    picture = tmp_path / "seven.png"
    picture.write_bytes(seven_png())
    for command in ("predict", "read"):  # an engineer could tell which answered only by a note's absence
        said = run_cli(command, "--model", str(run), str(picture), "--json")
        assert said.returncode == 0 and json.loads(said.stdout)["engine"] == "onnxruntime", said.stderr
    images = load_dataset("digits").test_images[:50]
    for a, b in zip(predict_images(lean, lean.card, images), predict_images(estimator, estimator.card, images)):
        assert (a.kind, a.digit) == (b.kind, b.digit)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    monkeypatch.setenv("DIGITLAB_PREDICT_ONNX", "off")
    assert not isinstance(load_for_prediction(run).model, OnnxModel)
    monkeypatch.delenv("DIGITLAB_PREDICT_ONNX")
    weights = run / estimator.card.file
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 1
    saved, _ = weights.read_bytes(), weights.write_bytes(bytes(damaged))  # a reviewer: predict answered on regardless
    with pytest.raises(DigitlabError, match="does not match its model card"):
        load_for_prediction(run)
    weights.write_bytes(saved)
    card = json.loads((run / "model.onnx.json").read_text())
    other = dict(card, id="logreg-digits-000000000000",  # an export of another model, left in the folder, its card
                 not_a_digit=dict(card["not_a_digit"], sha256="0" * 64))  # naming that run's detector file
    (run / "model.onnx.json").write_text(json.dumps(other))
    said = []
    assert not isinstance(load_for_prediction(run, said.append).model, OnnxModel)
    [line] = said  # the faster path was lost in silence (an engineer)
    assert line == (f"{run / 'model.onnx'} is not used, so the estimator answers (slower, more memory): "
                    f"`digitlab export --model {run}` writes it again from this run's model (it was exported from "
                    "another model)")  # not "notdigit.safetensors: checksum does not match" of a file untouched


def test_a_folder_shipped_with_the_export_says_what_it_lacks(lesson_run, tmp_path):
    """An engineer shipped model.onnx without the detector's file: "exported from this model before it had its
    not-a-digit detector", which it was not; and `evaluate` said only "model.safetensors: model file is missing"."""
    from conftest import run_cli, seven_png

    run, shipped = tmp_path / "run", tmp_path / "shipped"
    shutil.copytree(lesson_run.folder, run, ignore=shutil.ignore_patterns("model.onnx*"))
    export_onnx(run)
    shipped.mkdir()
    for name in ("model.json", "model.onnx", "model.onnx.json", "metrics.json"):
        shutil.copy(run / name, shipped / name)
    picture = tmp_path / "seven.png"
    picture.write_bytes(seven_png())
    said = run_cli("predict", "--model", str(shipped), str(picture))
    assert said.returncode == 2 and said.stderr.strip() == (
        f"error: {shipped / 'notdigit.safetensors'}: the not-a-digit detector its card lists is missing; copy it "
        "from the run beside model.onnx"), said.stderr
    shutil.copy(run / "notdigit.safetensors", shipped)
    assert run_cli("predict", "--model", str(shipped), str(picture)).returncode == 0
    said = run_cli("evaluate", "--model", str(shipped))
    assert said.returncode == 2 and "this folder holds only the ONNX export, which `predict`, `read` and `serve` " \
        "answer through (with onnxruntime installed, and DIGITLAB_PREDICT_ONNX or DIGITLAB_SERVE_ONNX not 0): copy " \
        "model.safetensors from the run it came from" in " ".join(said.stderr.split()), said.stderr


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # a small MLP, stopped early
def test_an_mlp_gets_its_head_too(tmp_path):
    """`export --with-head` refused every MLP run: skl2onnx writes its graph at opset 16, the lowest its operators
    need, and the head needs 18. The graph is converted, and the head answers as predict does."""
    import onnxruntime as ort

    from digitlab.data import load_dataset
    from digitlab.pipeline import run_pipeline
    from digitlab.predict import predict_images
    from digitlab.store import load_model

    run = run_pipeline("digits", "mlp", params={"hidden_layer_sizes": [32], "max_iter": 200}, out=tmp_path).folder
    result = export_onnx(run, head=True)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    images = load_dataset("digits").test_images[:80]
    probabilities, _ = session.run(["head/probabilities", "head/nondigit"],
                                   {"features": images.reshape(len(images), -1).astype(np.float32) / 16})
    loaded = load_model(run)
    said = predict_images(loaded, loaded.card, images)
    assert np.abs(probabilities.max(axis=1) - [p.probability for p in said]).max() < 1e-5
    assert probabilities.argmax(axis=1).tolist() == [p.top[0][0] for p in said]


def test_a_folder_where_the_card_goes_is_refused_before_anything_is_written(lesson_run, tmp_path):
    """An engineer: a folder named like the card (a.onnx.json) left a.onnx written without its card, and the error
    named a temporary file that no longer existed."""
    (tmp_path / "a.onnx.json").mkdir()
    with pytest.raises(DigitlabError, match=r"a.onnx.json, is a folder"):
        export_onnx(lesson_run.folder, tmp_path / "a.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx.json"]
