"""The served ONNX graph with the calibration and the not-a-digit detector appended (digitlab.onnx_head)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from digitlab.data import load_dataset  # noqa: E402
from digitlab.data.nondigits import make_nondigits  # noqa: E402
from digitlab.onnx_head import OnnxHeadModel, head_model  # noqa: E402
from digitlab.onnx_model import load_onnx  # noqa: E402
from digitlab.predict import features_of, predict_images  # noqa: E402
from digitlab.serve.engine import serving_model  # noqa: E402
from digitlab.store import load_model  # noqa: E402


@pytest.fixture(scope="module")
def run(lesson_run, tmp_path_factory) -> Path:
    """A copy of the lesson's run (logistic regression on the 8×8 digits, calibrated, with its detector), exported."""
    folder = tmp_path_factory.mktemp("head") / lesson_run.folder.name
    shutil.copytree(lesson_run.folder, folder)
    served, engine = serving_model(load_model(folder), onnx=True)
    assert engine == "onnxruntime" and (folder / "model.onnx").is_file()
    return folder


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """The 8×8 test digits and as many pictures that are not digits, in the same form."""
    digits = load_dataset("digits")
    others, _ = make_nondigits(len(digits.test_images), seed=3, split="test", image_shape=(8, 8), pixel_max=16)
    return np.concatenate([digits.test_images, others])


def test_the_served_model_carries_the_head(run, caplog):
    with caplog.at_level(logging.INFO, logger="digitlab.serve"):
        served, _ = serving_model(load_model(run), onnx=True)
    assert isinstance(served.model, OnnxHeadModel)
    assert "its calibration and not-a-digit detector in the graph" in caplog.text


@pytest.mark.parametrize("calibrated", [True, False])
def test_the_head_answers_what_numpy_computes(run, images, calibrated):
    loaded = load_model(run)
    card = loaded.card if calibrated else dataclasses.replace(loaded.card, calibration=None)
    assert (card.calibration is not None) == calibrated
    temperature = card.calibration.temperature if calibrated else 1.0
    plain = load_onnx(run / "model.onnx").model
    headed = head_model(load_onnx(run / "model.onnx"), temperature, loaded.detector)
    assert isinstance(headed, OnnxHeadModel)
    assert headed.scored(features_of(images, card.pixel_max), temperature, loaded.detector) is not None
    fast = predict_images(headed, card, images, detector=loaded.detector)
    slow = predict_images(plain, card, images, detector=loaded.detector)
    for a, b in zip(fast, slow):
        assert (a.kind, a.digit, a.unsure, [d for d, _ in a.top]) == (b.kind, b.digit, b.unsure, [d for d, _ in b.top])
        assert np.allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-12)
        assert abs(a.nondigit_score - b.nondigit_score) < 1e-6
    kinds = {p.kind for p in fast}
    assert {"digit", "not_a_digit"} <= kinds  # both sides of the detector's threshold were compared
    single = predict_images(headed, card, images[:1], detector=loaded.detector)[0]  # the page's one picture
    assert single.kind == fast[0].kind and np.allclose(single.probabilities, fast[0].probabilities, atol=1e-12)


def test_another_temperature_or_detector_is_computed_in_numpy(run, images):
    loaded = load_model(run)
    temperature = loaded.card.calibration.temperature
    headed = head_model(load_onnx(run / "model.onnx"), temperature, loaded.detector)
    features = features_of(images[:5], loaded.card.pixel_max)
    other = dataclasses.replace(loaded.detector)  # equal weights, but not the detector in the graph
    assert headed.scored(features, temperature * 2, loaded.detector) is None
    assert headed.scored(features, temperature, other) is None
    assert headed.scored(features, temperature, None) is None
    assert headed.scored(features[:0], temperature, loaded.detector) is None
    warmer = dataclasses.replace(loaded.card, calibration=dataclasses.replace(loaded.card.calibration,
                                                                                temperature=temperature * 2))
    got = predict_images(headed, warmer, images[:5], detector=loaded.detector)
    want = predict_images(load_onnx(run / "model.onnx").model, warmer, images[:5], detector=loaded.detector)
    assert [p.probabilities for p in got] == [p.probabilities for p in want]  # NumPy's own answer, exactly


def test_no_head_where_it_cannot_have_one(run, monkeypatch):
    loaded = load_model(run)
    onnx = load_onnx(run / "model.onnx")
    assert head_model(onnx, 1.0, None) is None  # no detector
    changed = dataclasses.replace(onnx, card=dataclasses.replace(onnx.card, sha256="0" * 64))
    assert head_model(changed, 1.0, loaded.detector) is None  # the file is not the one its card describes
    import digitlab.onnx_head as onnx_head

    monkeypatch.setattr(onnx_head, "MAX_BYTES", onnx.path.stat().st_size - 1)  # a graph too large to copy
    assert head_model(onnx, 1.0, loaded.detector) is None
    monkeypatch.setattr(onnx_head, "MIN_OPSET", 99)  # a graph older than the head's operators
    assert head_model(onnx, 1.0, loaded.detector) is None
    monkeypatch.undo()
    nine = load_onnx(run / "model.onnx")
    nine.model.classes_ = nine.model.classes_[:9]  # a model that does not know every digit
    assert head_model(nine, 1.0, loaded.detector) is None
    assert isinstance(head_model(onnx, 1.0, loaded.detector), OnnxHeadModel)
    monkeypatch.setitem(sys.modules, "onnx", None)  # the package that writes the graph is missing
    assert head_model(onnx, 1.0, loaded.detector) is None


def test_a_head_that_fails_leaves_the_plain_graph_serving(run, monkeypatch, caplog):
    import digitlab.onnx_head as onnx_head

    def broken(proto, temperature, detector):
        from onnx import helper

        proto.graph.node.append(helper.make_node("NoSuchOp", ["features"], ["head/x"]))

    monkeypatch.setattr(onnx_head, "_append_head", broken)
    with caplog.at_level(logging.INFO, logger="digitlab.serve"):
        served, engine = serving_model(load_model(run), onnx=True)
    assert engine == "onnxruntime" and not isinstance(served.model, OnnxHeadModel)
    assert "without the calibration and detector in its graph" in caplog.text
    assert predict_images(served.model, served.card, np.full((1, 8, 8), 16, np.uint8), detector=served.detector)


def test_a_head_that_answers_otherwise_than_numpy_is_not_used(run, monkeypatch, caplog):
    """The head is checked once at start-up against NumPy's answer; here it applies twice the temperature."""
    import digitlab.onnx_head as onnx_head
    from digitlab.errors import DigitlabError

    real = onnx_head._append_head
    monkeypatch.setattr(onnx_head, "_append_head", lambda proto, t, detector: real(proto, t * 2, detector))
    loaded = load_model(run)
    with pytest.raises(DigitlabError, match="do not answer as NumPy does"):
        head_model(load_onnx(run / "model.onnx"), loaded.card.calibration.temperature, loaded.detector)
    with caplog.at_level(logging.INFO, logger="digitlab.serve"):
        served, engine = serving_model(loaded, onnx=True)
    assert engine == "onnxruntime" and not isinstance(served.model, OnnxHeadModel)
    assert "do not answer as NumPy does" in caplog.text
