"""``?explain=true`` on the predict routes (issue 13, part 2): the saliency map and the CNN's first layer."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi")
pytest.importorskip("multipart")  # python-multipart

from fastapi.testclient import TestClient  # noqa: E402

from digitlab.data import load_dataset  # noqa: E402
from digitlab.explain.model import Explainable  # noqa: E402
from digitlab.explain.saliency import weight_times_input  # noqa: E402
from digitlab.serve.app import create_app  # noqa: E402
from digitlab.store import save_model  # noqa: E402
from digitlab.train import train  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def logreg_client(tmp_path_factory, digits):
    folder = tmp_path_factory.mktemp("runs") / "digits-logreg"
    save_model(train("logreg", digits), digits, folder, metrics={"accuracy": 0.96})
    with TestClient(create_app(folder, folder.parent)) as c:
        yield c


@pytest.fixture(scope="module")
def cnn_client(tmp_path_factory, digits):
    pytest.importorskip("torch")
    pytest.importorskip("captum")
    folder = tmp_path_factory.mktemp("cnn-runs") / "digits-cnn"
    save_model(train("cnn", digits, params={"time_budget": 2}), digits, folder, metrics={"accuracy": 0.9})
    with TestClient(create_app(folder, folder.parent)) as c:
        yield c


def drawn_seven(size: int = 200) -> bytes:
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(size * 0.25, size * 0.2), (size * 0.75, size * 0.2), (size * 0.4, size * 0.85)], fill=0,
              width=size // 12)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _post(client, query: str = "", **kwargs):
    return client.post(f"/api/predict{query}", content=drawn_seven(), headers={"Content-Type": "image/png"}, **kwargs)


def test_logreg_saliency_has_the_input_shape_lies_in_minus_one_one_and_is_on_the_ink(logreg_client):
    response = _post(logreg_client, "?explain=true&input=true")
    assert response.status_code == 200, response.text
    body = response.json()
    saliency, seen = np.asarray(body["saliency"]), np.asarray(body["input"])
    assert saliency.shape == seen.shape == (8, 8)
    assert saliency.min() >= -1 and saliency.max() <= 1 and np.abs(saliency).max() == pytest.approx(1)
    assert body["saliency_method"] == "weight × input" and body["saliency_note"] is None
    assert body["activations"] is None and body["filters"] is None  # not a CNN
    ink = seen > 0
    assert np.abs(saliency[~ink]).sum() == pytest.approx(0)  # weight × input: blank paper says nothing
    assert np.abs(saliency[ink]).sum() > 0
    # the answer itself is the one given without explain
    plain = _post(logreg_client).json()
    assert plain["digit"] == body["digit"] and plain["probabilities"] == body["probabilities"]


def test_without_explain_the_answer_has_no_explanation_keys(logreg_client):
    body = _post(logreg_client, "?input=true").json()
    assert not {"saliency", "saliency_method", "saliency_note", "activations", "filters"} & set(body)
    assert not {"saliency", "activations"} & set(_post(logreg_client, "?explain=false").json())


def test_explain_on_the_pixels_and_image_routes_too(logreg_client):
    grid = np.zeros((28, 28), dtype=int)
    grid[4:24, 13:16] = 255
    pixels = logreg_client.post("/api/predict/pixels?explain=true", json={"pixels": grid.tolist()})
    assert pixels.status_code == 200 and np.asarray(pixels.json()["saliency"]).shape == (8, 8)
    image = logreg_client.post("/api/predict/image?explain=true", content=drawn_seven(),
                               headers={"Content-Type": "image/png"})
    assert image.status_code == 200 and np.asarray(image.json()["saliency"]).shape == (8, 8)
    form = logreg_client.post("/api/predict?explain=true", files={"image": ("7.png", drawn_seven(), "image/png")})
    assert form.status_code == 200 and np.asarray(form.json()["saliency"]).shape == (8, 8)


def test_the_map_explains_a_digit_asked_for_why_not_that_one(logreg_client):
    """A teacher: the map only ever explained the answer; a class asks "why 7 and not 1?"."""
    answer = _post(logreg_client, "?explain=true").json()
    other = (answer["digit"] + 1) % 10
    asked = _post(logreg_client, f"?explain=true&explain_digit={other}").json()
    assert answer["saliency_digit"] == answer["digit"] and asked["saliency_digit"] == other
    assert asked["digit"] == answer["digit"] and asked["probabilities"] == answer["probabilities"]  # the same answer
    assert not np.allclose(asked["saliency"], answer["saliency"])  # another digit's weights: another map
    # weighed against the answer: (w_other - w_answer) · x, scaled to its strongest pixel (alone, a learner saw a 9's
    # map, rescaled, as bright on a clear 7 as the 7's own)
    assert asked["saliency_against"] == answer["digit"] and answer["saliency_against"] is None
    loaded = logreg_client.app.state.served
    model = Explainable(loaded.explainable(), 16, (8, 8), "logreg")
    seen = np.asarray(_post(logreg_client, "?input=true").json()["input"])
    contrast = weight_times_input(model, np.stack([seen, seen]), np.array([other, answer["digit"]]))
    expected = contrast[0] - contrast[1]
    np.testing.assert_allclose(asked["saliency"], np.round(expected / np.abs(expected).max(), 4), atol=2e-4)
    implied = _post(logreg_client, f"?explain_digit={other}").json()  # the digit alone asks for the map
    assert implied["saliency_digit"] == other and implied["saliency"] == asked["saliency"]
    for bad in ("10", "-1", "one"):
        response = _post(logreg_client, f"?explain=true&explain_digit={bad}")
        assert response.status_code == 422 and "explain_digit" in response.json()["error"], bad
        assert "\n" not in response.json()["error"]


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_a_bad_explain_value_is_one_line_of_json(logreg_client, value):
    response = _post(logreg_client, f"?explain={value}")
    assert response.status_code in (400, 422)
    error = response.json()["error"]
    assert "explain" in error and "\n" not in error
    assert _post(logreg_client).status_code == 200  # the next request is served


def test_a_model_without_a_fast_map_says_so(tmp_path, digits):
    folder = tmp_path / "digits-knn"
    save_model(train("knn", digits), digits, folder)
    with TestClient(create_app(folder, tmp_path)) as client:
        body = _post(client, "?explain=true").json()
    assert body["saliency"] is None and body["saliency_method"] is None and body["activations"] is None
    with TestClient(create_app(folder, tmp_path)) as client:  # "why not a 1?" has no map to weigh against the answer
        asked = _post(client, "?explain_digit=1").json()
    # and no digit is said to be explained: the page marked the chosen bar "the digit you chose" (an audit)
    assert asked["saliency"] is None and asked["saliency_against"] is None and asked["saliency_digit"] is None
    # an engineer read `saliency: null` and nothing said why, or where a kNN's maps are
    note = body["saliency_note"]
    assert note.startswith("no fast map for this model") and "digitlab explain" in note


def test_the_cnn_explains_with_a_map_and_its_first_layer(cnn_client):
    body = _post(cnn_client, "?explain=true&input=true").json()
    assert body["saliency_method"] == "Integrated Gradients"
    saliency, seen = np.asarray(body["saliency"]), np.asarray(body["input"])
    assert saliency.shape == seen.shape == (8, 8)
    assert saliency.min() >= -1 and saliency.max() <= 1
    ink = seen > 0
    # Integrated Gradients from a blank picture: a pixel with no ink has no attribution
    assert np.abs(saliency[~ink]).sum() == pytest.approx(0, abs=1e-6)
    activations = body["activations"]
    assert 1 <= len(activations) <= 8
    grids = [np.asarray(a) for a in activations]
    assert all(g.ndim == 2 and g.shape == grids[0].shape and g.min() >= 0 and g.max() <= 255 for g in grids)
    assert max(g.max() for g in grids) == 255
    assert len(grids) == min(8, body["filters"])  # the strongest of the first layer's filters, and how many it has
    means = [g.mean() for g in grids]  # the strongest first: the page's tooltips name each square by its rank (they
    assert all(a >= b - 0.5 for a, b in zip(means, means[1:])), means  # had numbered the squares as the filters)
    plain = _post(cnn_client).json()
    assert not {"saliency", "activations"} & set(plain) and plain["digit"] == body["digit"]


def test_a_cnn_served_without_captum_answers_without_a_map_and_says_why(cnn_client, monkeypatch):
    """Installed with digitlab[cnn,serve] but not [explain], ticking the page's "Show what it looks at" made every
    drawing a 500, its answer lost with the map (a packaging audit)."""
    import sys

    plain = _post(cnn_client).json()
    monkeypatch.setitem(sys.modules, "captum", None)  # as if not installed: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    response = _post(cnn_client, "?explain=true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["digit"] == plain["digit"] and body["probabilities"] == plain["probabilities"]
    assert body["saliency"] is None and body["saliency_method"] is None
    assert body["saliency_note"].startswith("Captum is not installed (pip install 'digitlab[explain]'")
    assert body["filters"] > 0 and len(body["activations"]) > 0  # the first layer needs only torch
