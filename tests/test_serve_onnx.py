"""Serving on ONNX Runtime (digitlab.serve.engine): same answers as the estimator, clean fallbacks."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from fastapi.testclient import TestClient  # noqa: E402

from digitlab.onnx_model import OnnxModel  # noqa: E402
from digitlab.serve.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two runs on the 8×8 digits: logistic regression with its not-a-digit detector, and k-NN."""
    from digitlab.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("runs")
    run_pipeline("digits", "logreg", out=root)
    run_pipeline("digits", "knn", out=root)
    return root


def _folders(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir() and (p / "model.json").is_file())


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def pictures() -> list[bytes]:
    """Digits from the test set drawn large, a stroke, a blank page and a scribble (not a digit)."""
    from digitlab.data import load_dataset

    digits = load_dataset("digits")
    out = [png(Image.fromarray(255 - (img * 15).astype(np.uint8)).resize((112, 112), Image.Resampling.NEAREST))
           for img in digits.test_images[:25]]
    one = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(one).line([(200, 60), (200, 340)], fill=0, width=28)
    scribble = Image.new("L", (400, 400), 255)
    rng = np.random.default_rng(0)
    ImageDraw.Draw(scribble).line([tuple(p) for p in rng.integers(0, 400, (40, 2)).tolist()], fill=0, width=6)
    return out + [png(one), png(scribble), png(Image.new("L", (50, 50), 255))]


def answers(client: TestClient, bodies: list[bytes]) -> list[dict]:
    got = []
    for body in bodies:
        response = client.post("/api/predict?input=true", content=body, headers={"content-type": "image/png"})
        assert response.status_code in (200, 422), response.text
        got.append(response.json())
    return got


def test_onnx_answers_as_the_estimator_does(runs):
    bodies = pictures()
    for folder in _folders(runs):
        with TestClient(create_app(folder, runs, onnx=True)) as fast, \
                TestClient(create_app(folder, runs, onnx=False)) as slow:
            assert fast.get("/healthz").json()["engine"] == "onnxruntime"
            assert slow.get("/healthz").json()["engine"] == "estimator"
            assert isinstance(fast.app.state.served.loaded.model, OnnxModel)
            # the card and the not-a-digit detector are the run's own, whichever engine runs the model
            assert fast.app.state.served.loaded.card == slow.app.state.served.loaded.card
            assert (fast.app.state.served.loaded.detector is None) == (slow.app.state.served.loaded.detector is None)
            kinds = set()
            for a, b in zip(answers(fast, bodies), answers(slow, bodies)):
                if "error" in b:
                    assert a == b
                    continue
                kinds.add(b["kind"])
                same = ("kind", "digit", "unsure", "input")
                assert [a[k] for k in same] == [b[k] for k in same]
                assert [t["digit"] for t in a["top"]] == [t["digit"] for t in b["top"]]
                assert np.allclose(a["probabilities"], b["probabilities"], atol=1e-3)
                assert (a["nondigit_score"] is None) == (b["nondigit_score"] is None)
                if b["nondigit_score"] is not None:  # the detector reads the probabilities too: float32 vs float64
                    assert abs(a["nondigit_score"] - b["nondigit_score"]) < 1e-4
            assert {"digit", "not_a_digit"} <= kinds  # the detector's answers too, through the ONNX model
            pixels = np.zeros((28, 28), dtype=int)
            pixels[4:24, 13:16] = 255
            for c in (fast, slow):
                assert c.post("/api/predict", json={"pixels": pixels.tolist()}).json()["digit"] == 1


def test_a_valid_export_is_reused_and_a_changed_one_made_again(runs, caplog):
    folder = _folders(runs)[0]
    create_app(folder, runs, onnx=True)
    onnx = folder / "model.onnx"
    stamp = onnx.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="digitlab.serve"):
        assert create_app(folder, runs, onnx=True).state.served.engine == "onnxruntime"
    assert onnx.stat().st_mtime_ns == stamp and "reusing" in caplog.text
    assert not any(r.getMessage().startswith("exporting") for r in caplog.records)
    onnx.write_bytes(onnx.read_bytes()[:-10])  # truncated: its card's checksum no longer matches
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="digitlab.serve"):
        app = create_app(folder, runs, onnx=True)
    assert app.state.served.engine == "onnxruntime" and "exported" in caplog.text
    said = [r.getMessage() for r in caplog.records]  # a line before the export's silent minute, one after
    steps = [m.split(" ")[0] for m in said if m.startswith("exporting") or "on ONNX Runtime" in m]
    assert steps == ["exporting", "serving"], said
    with TestClient(app) as c:
        answer = c.post("/api/predict", content=pictures()[-3], headers={"content-type": "image/png"}).json()
        assert answer["digit"] == 1


def test_without_onnxruntime_the_estimator_serves_with_one_log_line(runs):
    folder = _folders(runs)[0]
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"  # hidden: `import onnxruntime` raises ImportError
        "from pathlib import Path; from fastapi.testclient import TestClient\n"
        "from digitlab.serve.app import create_app\n"
        f"app = create_app(Path({str(folder)!r}), Path({str(runs)!r}))\n"
        "c = TestClient(app)\n"
        "print(c.get('/healthz').json()['engine'])\n"
        "grid = [[255 if 4 <= y < 24 and 13 <= x < 16 else 0 for x in range(28)] for y in range(28)]\n"
        "print(c.post('/api/predict', json={'pixels': grid}).json()['digit'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["estimator", "1"]
    lines = [line for line in done.stderr.splitlines() if "onnxruntime is not installed" in line]
    assert len(lines) == 1, done.stderr


def test_without_the_exporters_the_estimator_serves_with_one_line_that_says_what_to_install(runs, tmp_path, caplog,
                                                                                             monkeypatch):
    """`make install` once brought ONNX Runtime but not the converters: the log said "exporting ... (once; a
    minute or so)" and at once that it could not. Now the one line says what to install."""
    import shutil

    (folder,) = [f for f in _folders(runs) if json.loads((f / "model.json").read_text())["model"] == "logreg"]
    fresh = tmp_path / folder.name
    shutil.copytree(folder, fresh, ignore=shutil.ignore_patterns("model.onnx*"))
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if not installed
    with caplog.at_level(logging.INFO, logger="digitlab.serve"):
        assert create_app(fresh, runs, onnx=True).state.served.engine == "estimator"
    said = [r.getMessage() for r in caplog.records if "onnx" in r.getMessage().lower()]
    assert not any(m.startswith("exporting") for m in said), said
    assert [m for m in said if "needs skl2onnx, which is not installed" in m and "make install" in m], said


def test_a_model_that_cannot_be_exported_falls_back(tmp_path, caplog):
    """A run whose test set cannot be rebuilt (its dataset is not a registered one) cannot pass the parity check."""
    from digitlab.data import load_dataset
    from digitlab.data.dataset import Dataset
    from digitlab.store import save_model
    from digitlab.train import train

    d = load_dataset("digits")
    odd = Dataset("my-own-digits", d.train_images, d.train_labels, d.test_images, d.test_labels, 16, {"kind": "test"})
    save_model(train("logreg", odd), odd, tmp_path / "run", metrics={"accuracy": 0.9})
    with caplog.at_level(logging.INFO, logger="digitlab.serve"):
        app = create_app(tmp_path / "run", tmp_path, onnx=True)
    assert app.state.served.engine == "estimator"
    assert "on the estimator: no ONNX export" in caplog.text
    assert not (tmp_path / "run" / "model.onnx").exists()
    with TestClient(app) as c:
        assert c.get("/healthz").json()["engine"] == "estimator"


def test_the_environment_can_turn_onnx_off(runs, monkeypatch):
    monkeypatch.setenv("DIGITLAB_SERVE_ONNX", "0")
    assert create_app(_folders(runs)[0], runs).state.served.engine == "estimator"


def test_input_only_when_asked(runs):
    with TestClient(create_app(_folders(runs)[0], runs)) as c:
        body = pictures()[-3]
        for url, shape in (("/api/predict", None), ("/api/predict?input=false", None),
                           ("/api/predict?input=true", (8, 8)), ("/api/predict/image?input=true", (8, 8))):
            answer = c.post(url, content=body, headers={"content-type": "image/png"}).json()
            assert answer["digit"] == 1
            assert (np.asarray(answer["input"]).shape if "input" in answer else None) == shape
        form = c.post("/api/predict", files={"image": ("one.png", body, "image/png")}).json()
        assert "input" not in form and form["digit"] == 1
        bad = c.post("/api/predict?input=maybe", content=body, headers={"content-type": "image/png"})
        assert bad.status_code == 422 and "error" in bad.json()


def test_load_onnx_brings_the_runs_not_a_digit_detector(runs, tmp_path):
    """An engineer's audit: `load_onnx(run)` gave detector=None, so ONNX answers never said "not a digit"."""
    import shutil

    from digitlab.export import export_onnx
    from digitlab.onnx_model import load_onnx
    from digitlab.predict import predict_images
    from digitlab.store import load_model

    run = next(f for f in _folders(runs) if "logreg" in f.name)
    folder = tmp_path / "run"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("model.onnx*"))
    export_onnx(folder)
    estimator, onnx = load_model(folder), load_onnx(folder)
    assert estimator.detector is not None and onnx.detector is not None
    images = np.random.default_rng(0).integers(0, 17, (40, 8, 8)).astype(np.uint8)  # noise: some not digits
    a = predict_images(estimator.model, estimator.card, images, detector=estimator.detector)
    b = predict_images(onnx.model, onnx.card, images, detector=onnx.detector)
    assert [p.kind for p in a] == [p.kind for p in b] and "not_a_digit" in {p.kind for p in a}
    alone = tmp_path / "alone"  # the ONNX file and its card without the run around them: no detector to read
    alone.mkdir()
    for name in ("model.onnx", "model.onnx.json"):
        shutil.copy(folder / name, alone / name)
    assert load_onnx(alone / "model.onnx").detector is None


def test_a_run_on_a_read_only_share_is_served_on_its_estimator_with_a_line_that_fits_serve(runs, tmp_path):
    """A school's audit: a run on a read-only share, with no model.onnx yet, was served on its estimator with a log
    line telling `serve` to choose another `--out`, an option it does not have."""
    import shutil

    (folder,) = [f for f in _folders(runs) if json.loads((f / "model.json").read_text())["model"] == "logreg"]
    fresh = tmp_path / folder.name
    shutil.copytree(folder, fresh, ignore=shutil.ignore_patterns("model.onnx*"))
    code = ("import logging, sys; from pathlib import Path; logging.basicConfig(level=logging.INFO)\n"
            "from digitlab.serve.app import create_app\n"
            "print(create_app(Path(sys.argv[1]), Path(sys.argv[1]).parent).state.served.engine)\n")
    from conftest import run_read_only

    done = run_read_only(fresh, str(fresh), code=code)
    assert done.returncode == 0 and done.stdout.split() == ["estimator"], done.stderr
    said = [line for line in done.stderr.splitlines() if "on the estimator" in line]
    assert len(said) == 1 and f"its run folder {fresh} cannot be written; `digitlab export" in said[0], done.stderr
    assert "--out" not in said[0]
