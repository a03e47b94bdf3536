"""A server whose run holds a reusable ``model.onnx`` answers on ONNX Runtime without loading its estimator:
PyTorch is imported only when a request asks what the CNN looks at (``?explain=true``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("captum")

from fastapi.testclient import TestClient  # noqa: E402

from digitlab.data import load_dataset  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.serve.app import create_app  # noqa: E402
from digitlab.store import save_model  # noqa: E402
from digitlab.train import train  # noqa: E402

from conftest import seven_png as drawn_seven  # noqa: E402

SCRIPT = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from digitlab.serve.app import create_app

folder, runs, chosen = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
seven = Path(sys.argv[4]).read_bytes()
steps = {}
with TestClient(create_app(folder, runs)) as client:
    post = lambda query: client.post("/api/predict" + query, content=seven, headers={"Content-Type": "image/png"})
    steps["engine"] = client.get("/healthz").json()["engine"]
    steps["started"] = "torch" in sys.modules
    steps["plain"] = post("?input=true").json()
    steps["chosen"] = post("?model=" + chosen).status_code
    steps["answered"] = "torch" in sys.modules
    steps["explained"] = post("?explain=true").json()
    steps["after_explain"] = "torch" in sys.modules
print(json.dumps(steps))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two small CNN runs on the 8×8 digits, each with its ``model.onnx`` exported by a first start."""
    digits = load_dataset("digits")
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        save_model(train("cnn", digits, params={"epochs": 2, "width": 8, "tta": False}, seed=seed), digits,
                   root / f"digits-cnn-{seed}", metrics={"accuracy": 0.9})
        create_app(root / f"digits-cnn-{seed}", root)  # exports model.onnx, as a first `digitlab serve` does
    return root


def _card_id(folder: Path) -> str:
    return json.loads((folder / "model.json").read_text())["id"]


def test_onnx_serving_loads_the_estimator_only_to_explain(runs, tmp_path):
    seven = tmp_path / "seven.png"
    seven.write_bytes(drawn_seven())
    folder, other = runs / "digits-cnn-0", runs / "digits-cnn-1"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(runs), _card_id(other), str(seven)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    steps = json.loads(out.stdout.splitlines()[-1])
    assert steps["engine"] == "onnxruntime"
    assert steps["started"] is False and steps["answered"] is False  # served and chosen on ONNX Runtime alone
    assert steps["chosen"] == 200
    explained = steps["explained"]
    assert explained["saliency_method"] == "Integrated Gradients" and steps["after_explain"] is True
    assert explained["digit"] == steps["plain"]["digit"]
    with TestClient(create_app(folder, runs, onnx=False)) as estimator:  # the same answer as the estimator's
        again = estimator.post("/api/predict?input=true", content=drawn_seven(),
                               headers={"Content-Type": "image/png"}).json()
    assert again["input"] == steps["plain"]["input"] and again["digit"] == steps["plain"]["digit"]
    assert abs(again["probabilities"][again["digit"]] - steps["plain"]["probabilities"][again["digit"]]) < 1e-4


def test_a_model_file_gone_since_the_start_cannot_explain_in_one_line(runs, tmp_path):
    import shutil

    folder = tmp_path / "digits-cnn"
    shutil.copytree(runs / "digits-cnn-0", folder)
    with TestClient(create_app(folder, tmp_path)) as client:
        assert client.app.state.served.estimator is None  # not loaded at the start
        (folder / "model.safetensors").unlink()
        post = lambda query="": client.post(f"/api/predict{query}", content=drawn_seven(),  # noqa: E731
                                            headers={"Content-Type": "image/png"})
        assert post().status_code == 200  # the ONNX graph still answers
        refused = post("?explain=true")
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error.startswith("cannot explain:") and "\n" not in error


def test_a_folder_shipped_with_the_onnx_export_alone_is_served_and_predicted_on_it(runs, tmp_path):
    """An engineer shipped model.onnx with the run's cards and detector, not model.safetensors: "model file is
    missing", though ONNX Runtime needs nothing else. Now it answers, and only explaining says what it lacks."""
    import shutil

    from digitlab.onnx_model import OnnxModel, load_for_prediction

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("model.json", "model.onnx", "model.onnx.json"):  # (these runs have no detector to ship)
        shutil.copy(runs / "digits-cnn-0" / name, shipped / name)
    assert isinstance(load_for_prediction(shipped).model, OnnxModel)
    with TestClient(create_app(shipped, tmp_path)) as client:
        post = lambda query="": client.post(f"/api/predict{query}", content=drawn_seven(),  # noqa: E731
                                            headers={"Content-Type": "image/png"})
        assert client.get("/healthz").json()["engine"] == "onnxruntime" and post().status_code == 200
        refused = post("?explain=true")
        assert refused.status_code == 503 and refused.json()["error"] == (
            f"cannot explain: {shipped} holds the model's ONNX export without its model file (model.safetensors), "
            "which explaining needs")
    damaged = bytearray((shipped / "model.onnx").read_bytes())  # a robustness hunt: the advice was `digitlab
    damaged[-1] ^= 1  # export`, which has no model to export from, then "model.safetensors: model file is missing"
    (shipped / "model.onnx").write_bytes(bytes(damaged))
    with pytest.raises(DigitlabError, match=r"model.onnx cannot be used \(.*\) and model.safetensors is not in "
                                            "the run to answer instead; copy the run's model.onnx and model.onnx.json"):
        load_for_prediction(shipped)
    # another run's export copied in beside no model file: said so, in one line too (a reviewer)
    (shipped / "model.onnx").write_bytes((runs / "digits-cnn-0" / "model.onnx").read_bytes())
    card = json.loads((shipped / "model.onnx.json").read_text())
    (shipped / "model.onnx.json").write_text(json.dumps({**card, "id": "logreg-digits-000000000000"}))
    with pytest.raises(DigitlabError, match=r"model.onnx cannot be used \(it was exported from another model\)"):
        load_for_prediction(shipped)


def test_a_run_replaced_since_the_start_is_not_explained_with_another_model(runs, tmp_path):
    """A reviewer: another run copied over the served one, the map came from that model under the served one's id."""
    import shutil

    folder = tmp_path / "digits-cnn"
    shutil.copytree(runs / "digits-cnn-0", folder)
    with TestClient(create_app(folder, tmp_path)) as client:
        for name in ("model.safetensors", "model.json"):
            shutil.copy(runs / "digits-cnn-1" / name, folder / name)
        refused = client.post("/api/predict?explain=true", content=drawn_seven(), headers={"Content-Type": "image/png"})
        assert refused.status_code == 503 and "not the one being served any more" in refused.json()["error"]


def test_predict_on_a_run_with_its_onnx_export_imports_neither_scikit_learn_nor_torch(runs, tmp_path):
    """The lean path: train's import of the CNN had brought scikit-learn into digitlab.store, so every ONNX-answered
    `predict` and serve worker paid for it (one picture 1.39 s and 194 MB, 0.48 s and 105 MB without; an audit)."""
    (tmp_path / "seven.png").write_bytes(drawn_seven())
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "digitlab", "predict", "--model",
                             str(runs / "digits-cnn-0"), "seven.png"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("seven.png: "), result.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    heavy = imported & {"sklearn", "torch", "matplotlib", "pandas"}
    assert "onnxruntime" in imported and not heavy, heavy
