"""The REST API (digitlab.serve.app) with FastAPI's TestClient: every endpoint, every bad input."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import header_only_png, seven_png

pytest.importorskip("fastapi")
pytest.importorskip("multipart")  # python-multipart

from fastapi.testclient import TestClient  # noqa: E402

from digitlab.data.dataset import Dataset  # noqa: E402
from digitlab.data.images import MAX_BYTES, MAX_SIDE  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.serve.app import STATIC, create_app  # noqa: E402
from digitlab.store import load_model, save_model  # noqa: E402
from digitlab.train import train  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Fixtures: two small saved models, 8×8 and 28×28


def _mnist_like() -> Dataset:
    """scikit-learn's digits prepared MNIST-style at 28×28, 0..255: a stand-in for MNIST, no download."""
    from digitlab.data import load_dataset
    from digitlab.data.images import prepare_digit

    small = load_dataset("digits")

    def grow(images: np.ndarray) -> np.ndarray:
        return np.stack([prepare_digit((img * 15).astype(np.uint8).repeat(4, 0).repeat(4, 1)) for img in images])

    return Dataset("mnist-like", grow(small.train_images), small.train_labels,
                   grow(small.test_images), small.test_labels, 255, {"kind": "test"})


@pytest.fixture(scope="module")
def mnist_like() -> Dataset:
    return _mnist_like()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_like) -> Path:
    from digitlab.data import load_dataset

    root = tmp_path_factory.mktemp("runs")
    digits = load_dataset("digits")
    save_model(train("logreg", digits), digits, root / "a-digits-logreg", metrics={"accuracy": 0.9667})
    # k-nearest neighbours: fits instantly on 784 features, where logistic regression takes ~10 s here
    save_model(train("knn", mnist_like), mnist_like, root / "b-mnist-like-knn", metrics={"accuracy": 0.95})
    return root


@pytest.fixture(scope="module")
def client(runs) -> TestClient:
    """Serves the 28×28 model (the newest run)."""
    with TestClient(create_app(runs / "b-mnist-like-knn", runs)) as c:
        yield c


@pytest.fixture(scope="module")
def client8(runs) -> TestClient:
    with TestClient(create_app(runs / "a-digits-logreg", runs)) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# Pictures


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def drawn_one(size: int = 400) -> Image.Image:
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).line([(size / 2, size * 0.15), (size / 2, size * 0.85)], fill=0, width=size // 14)
    return image


def one_pixels() -> list[list[int]]:
    grid = np.zeros((28, 28), dtype=int)
    grid[4:24, 13:16] = 255
    return grid.tolist()


def assert_prediction(body: dict, shape: tuple[int, int] | None) -> None:
    """``shape``: the ``input`` echo's, asked for with ``?input=true``; None: not asked for, so absent."""
    assert set(body) >= {"digit", "probability", "top", "probabilities", "unsure", "model_id"}
    assert 0 <= body["digit"] <= 9
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-6
    assert body["top"][0] == {"digit": body["digit"], "probability": body["probability"]}
    assert len(body["top"]) == 3
    assert body["unsure"] == (body["probability"] < 0.5) and body["sure_from"] == 0.5  # a model saved uncalibrated
    assert body["sure_right"] is None  # no figure of its own for how often its answers from there are right
    if shape is None:
        assert "input" not in body
    else:
        assert np.asarray(body["input"]).shape == shape


def assert_healthy(client: TestClient) -> None:
    """The next request after a bad one is served normally."""
    good = client.post("/api/predict", files={"image": ("one.png", png(drawn_one()), "image/png")})
    assert good.status_code == 200, good.text


# ---------------------------------------------------------------------------------------------
# Endpoints


def test_healthz(client):
    served = client.app.state.served
    assert client.get("/healthz").json() == {"status": "ok", "model_id": served.loaded.id, "engine": served.engine}


def test_models_lists_the_active_one_and_the_others(client):
    body = client.get("/api/models").json()
    assert set(body) == {"active", "models"}
    active = [m for m in body["models"] if m["active"]]
    assert len(active) == 1 and active[0]["id"] == body["active"]
    assert active[0]["image_shape"] == [28, 28] and active[0]["accuracy"] == 0.95
    assert active[0]["n_test"] is None and active[0]["ci95"] is None  # not recorded on this card
    assert {m["dataset"] for m in body["models"]} == {"digits", "mnist-like"}
    assert {m["model"] for m in body["models"]} == {"logreg", "knn"}


def test_models_gives_every_path_in_one_form(runs, monkeypatch):
    """``digitlab serve``'s workers get the model's absolute path and ``--runs`` as typed: the served run is
    listed as runs/NAME like the others (it was listed absolute)."""
    monkeypatch.chdir(runs.parent)
    with TestClient(create_app(runs / "b-mnist-like-knn", Path(runs.name))) as served:
        paths = {m["path"]: m["active"] for m in served.get("/api/models").json()["models"]}
    assert paths == {str(Path(runs.name) / "b-mnist-like-knn"): True, str(Path(runs.name) / "a-digits-logreg"): False}


def test_models_lists_two_identical_runs_once(runs, tmp_path):
    """Two runs of one recipe and seed have one card id (the weights' checksum): the page's menu showed two
    entries that could not be told apart. The newest is listed; the served one is never listed twice."""
    copy = tmp_path / "runs"
    for name in ("a-digits-logreg", "b-mnist-like-knn"):
        shutil.copytree(runs / name, copy / name)
    shutil.copytree(runs / "a-digits-logreg", copy / "c-digits-logreg")
    shutil.copytree(runs / "b-mnist-like-knn", copy / "d-mnist-like-knn")
    with TestClient(create_app(copy / "b-mnist-like-knn", copy)) as served:
        models = served.get("/api/models").json()["models"]
    assert [(Path(m["path"]).name, m["active"]) for m in models] == [("b-mnist-like-knn", True),
                                                                    ("c-digits-logreg", False)]


def test_models_leaves_out_a_run_whose_model_file_is_missing_or_damaged(runs, tmp_path):
    """A teacher chose a run the menu listed and was told "model file is missing"; now only runs that load are
    listed, and a damaged copy of a run leaves its good copy listed."""
    copy = tmp_path / "runs"
    for name in ("a-digits-logreg", "b-mnist-like-knn"):
        shutil.copytree(runs / name, copy / name)
    shutil.copytree(runs / "a-digits-logreg", copy / "c-digits-logreg")  # the newest copy: damaged
    shutil.copytree(runs / "a-digits-logreg", copy / "d-half-copied")  # its model file never arrived
    weights = copy / "c-digits-logreg" / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 1
    weights.write_bytes(bytes(damaged))
    (copy / "d-half-copied" / "model.safetensors").unlink()
    with TestClient(create_app(copy / "b-mnist-like-knn", copy)) as served:
        models = served.get("/api/models").json()["models"]
        assert [Path(m["path"]).name for m in models] == ["b-mnist-like-knn", "a-digits-logreg"]
        chosen = served.post(f"/api/predict?model={models[1]['id']}", json={"pixels": one_pixels()})
        assert chosen.status_code == 200 and chosen.json()["model_id"] == models[1]["id"]
        weights.write_bytes((copy / "a-digits-logreg" / "model.safetensors").read_bytes())  # mended: listed again
        assert [Path(m["path"]).name for m in served.get("/api/models").json()["models"]][1] == "c-digits-logreg"


def test_models_lists_a_run_shipped_with_its_export_only_when_onnx_runs_it_and_its_detector_must_be_whole(
        tmp_path, lesson_run):
    """A reviewer: a folder holding model.onnx alone was listed by a server not on ONNX Runtime, and a run whose
    detector file was missing was listed; both answered 422 when chosen."""
    from digitlab.data import load_dataset
    from digitlab.export import export_onnx

    copy, digits = tmp_path / "runs", load_dataset("digits")
    shutil.copytree(lesson_run.folder, copy / "a-lesson")  # served, on ONNX Runtime when it may
    save_model(train("logreg", digits, params={"C": 0.5}), digits, copy / "b-shipped")
    export_onnx(copy / "b-shipped")
    (copy / "b-shipped" / "model.safetensors").unlink()  # shipped with its export alone
    save_model(train("logreg", digits, params={"C": 0.25}), digits, copy / "c-no-detector")
    card = json.loads((copy / "a-lesson" / "model.json").read_text())  # a card listing a detector whose file is gone
    other = json.loads((copy / "c-no-detector" / "model.json").read_text())
    (copy / "c-no-detector" / "model.json").write_text(json.dumps({**other, "not_a_digit": card["not_a_digit"]}))
    names = lambda client: [Path(m["path"]).name for m in client.get("/api/models").json()["models"]]  # noqa: E731
    with TestClient(create_app(copy / "a-lesson", copy, onnx=False)) as served:
        assert names(served) == ["a-lesson"]
    with TestClient(create_app(copy / "a-lesson", copy)) as served:
        assert served.app.state.served.engine == "onnxruntime" and names(served) == ["a-lesson", "b-shipped"]
        shipped = served.get("/api/models").json()["models"][1]["id"]
        assert served.post(f"/api/predict?model={shipped}", json={"pixels": one_pixels()}).status_code == 200
    shutil.copy(copy / "a-lesson" / card["not_a_digit"]["file"], copy / "c-no-detector")  # its detector back
    with TestClient(create_app(copy / "a-lesson", copy, onnx=False)) as served:
        assert names(served) == ["a-lesson", "c-no-detector"]


def picture_of(image: np.ndarray) -> bytes:
    """A 28×28 light-on-dark digit as a 280×280 dark-on-light PNG, as a person might draw it."""
    big = Image.fromarray(255 - image).resize((280, 280), Image.Resampling.BILINEAR)
    return png(big)


def test_predict_multipart_image(client, mnist_like):
    model = client.app.state.served.loaded.model
    for i in range(5):
        image = mnist_like.test_images[i]
        expected = int(model.predict(image.reshape(1, -1) / 255.0)[0])
        response = client.post("/api/predict?input=true",
                               files={"image": ("digit.png", picture_of(image), "image/png")})
        assert response.status_code == 200
        body = response.json()
        assert_prediction(body, (28, 28))
        assert body["digit"] == expected and body["pixel_max"] == 255
        assert body["model_id"] == client.app.state.served.loaded.id


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"])
def test_predict_every_format(client, fmt):
    data = png(drawn_one().convert("RGB"), fmt)
    response = client.post("/api/predict", files={"image": (f"one.{fmt.lower()}", data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    assert_prediction(response.json(), None)


def test_predict_raw_image_body(client):
    response = client.post("/api/predict", content=png(drawn_one()), headers={"content-type": "image/png"})
    assert response.status_code == 200
    assert_prediction(response.json(), None)
    response = client.post("/api/predict?input=true", content=png(drawn_one()), headers={"content-type": "image/png"})
    assert_prediction(response.json(), (28, 28))


@pytest.mark.parametrize(("query", "lane"), [
    ("", True), ("input=true", True), ("top_k=5&input=false", True), ("input=1", False), ("top_k=05", False),
    ("explain=false", False), ("input=true&input=true", False),
])
def test_the_page_lane_takes_only_the_pages_queries_and_answers_as_fastapi_does(client, query, lane, monkeypatch):
    """digitlab.serve.lane: the plain queries go to the lane, every other to the FastAPI route; same answers."""
    from digitlab.serve.lane import plain_query

    image_routes = [r for r in client.app.router.routes if getattr(r, "path", None) == "/api/predict/image"]
    assert [type(r).__name__ for r in image_routes] == ["_Lane", "APIRoute"]  # the lane is tried first
    assert (plain_query(query.encode()) is not None) is lane
    taken = []
    through = image_routes[0].app

    async def counted(scope, receive, send):
        taken.append(scope["path"])
        await through(scope, receive, send)

    monkeypatch.setattr(image_routes[0], "app", counted)
    body = png(drawn_one())
    answer = client.post(f"/api/predict?{query}", content=body, headers={"content-type": "image/png"}).json()
    answer.pop("milliseconds")
    assert taken == (["/api/predict/image"] if lane else [])  # the page's URL, its body sent on to the lane
    served = client.get("/healthz").json()["model_id"]  # naming it with ?model= always takes the FastAPI route
    fastapi_answer = client.post(f"/api/predict?{query.replace('input=true', 'input=1')}&model={served}",
                                 content=body, headers={"content-type": "image/png"}).json()
    fastapi_answer.pop("milliseconds")
    assert answer == fastapi_answer and len(taken) == int(lane)


def test_the_page_lane_answers_an_empty_chunked_body_as_fastapi_does(client):
    def nothing():
        yield b""

    proxied = TestClient(client.app, root_path="/digits")  # behind a proxy that mounts the app at /digits
    for query in ("input=true", "input=1"):  # the lane, then the FastAPI route
        for http, prefix in ((client, ""), (proxied, "/digits")):
            response = http.post(f"{prefix}/api/predict/image?{query}", content=nothing(),
                                 headers={"content-type": "image/png"})
            assert response.status_code == 400
            assert response.json()["error"] == "the request body is empty; send " \
                "the image file itself, with a Content-Type such as image/png"


def test_predict_json_pixels(client, mnist_like):
    model = client.app.state.served.loaded.model
    image = mnist_like.test_images[7]
    response = client.post("/api/predict?top_k=5&input=true", json={"pixels": image.tolist()})
    assert response.status_code == 200
    body = response.json()
    assert body["digit"] == int(model.predict(image.reshape(1, -1) / 255.0)[0]) and len(body["top"]) == 5
    assert np.abs(np.asarray(body["input"]) - image).mean() < 10  # already prepared: nearly unchanged


def test_the_models_own_input_sent_back_as_prepared_is_answered_as_it_was(client, client8, mnist_like):
    """An engineer sent `input` back to /api/predict/pixels and it was prepared a second time: a letter A, "not a
    digit" at first, came back a 4 at 99.8%. With "prepared": true the model sees the grid as it is."""
    first = client.post("/api/predict?input=true", files={"image": ("1.png", png(drawn_one()), "image/png")}).json()
    again = client.post("/api/predict/pixels?input=true", json={"pixels": first["input"], "prepared": True}).json()
    assert again["input"] == first["input"]
    assert (again["digit"], again["kind"], again["probabilities"]) == (first["digit"], first["kind"],
                                                                       first["probabilities"])
    image = mnist_like.test_images[7]  # a test digit, already in MNIST's form: the model's own answer to it
    model = client.app.state.served.loaded.model
    sent = client.post("/api/predict/pixels?input=true", json={"pixels": image.tolist(), "prepared": True}).json()
    assert sent["input"] == image.tolist() and sent["digit"] == int(model.predict(image.reshape(1, -1) / 255.0)[0])
    for bad, extra, says in ((client8, {"prepared": True}, "this model takes 8×8 images"),
                             (client, {"prepared": "maybe"}, '"prepared" is true or false'),
                             (client, {"prepared": "yes"}, '"prepared" is true or false'),  # not taken for true (an
                             (client, {"prepared": 1}, '"prepared" is true or false'),  # audit), nor a misspelt key
                             (client, {"Prepared": True}, "unknown key 'Prepared': the JSON body holds \"pixels\"")):
        response = bad.post("/api/predict/pixels", json={"pixels": image.tolist(), **extra})
        assert response.status_code == 422 and says in response.json()["error"], response.text
        assert "\n" not in response.json()["error"]


def test_predict_with_an_8x8_model(client8):
    response = client8.post("/api/predict?input=1", files={"image": ("one.png", png(drawn_one()), "image/png")})
    body = response.json()
    assert_prediction(body, (8, 8))
    assert body["digit"] == 1 and body["pixel_max"] == 16
    assert client8.post("/api/predict", json={"pixels": one_pixels()}).json()["digit"] == 1


def test_page_and_static_files_are_served_and_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="pad"' in page.text and "/static/app.js" in page.text
    for name in ("app.js", "seen.js", "graypng.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():  # nothing from a CDN: the page must work offline
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), path.name


def test_openapi_documents_every_request_body(client):
    schema = client.get("/openapi.json").json()

    def body_of(path: str) -> dict:
        return schema["paths"][path]["post"]["requestBody"]["content"]

    def resolve(node: dict) -> dict:
        return schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node

    form = resolve(body_of("/api/predict")["multipart/form-data"]["schema"])
    assert form["required"] == ["image"] and form["properties"]["image"]["type"] == "string"
    assert form["properties"]["image"].get("format") == "binary" or form["properties"]["image"].get(
        "contentMediaType") == "application/octet-stream"
    pixels = resolve(body_of("/api/predict/pixels")["application/json"]["schema"])
    assert pixels["required"] == ["pixels"]
    assert pixels["properties"]["pixels"]["minItems"] == pixels["properties"]["pixels"]["maxItems"] == 28
    assert body_of("/api/predict/image")["image/*"]["schema"]["type"] == "string"
    # what the form's URL takes besides (an engineer's generated client saw only multipart)
    assert set(body_of("/api/predict")) == {"multipart/form-data", "image/*", "application/json"}
    assert body_of("/api/predict")["application/json"]["schema"]["$ref"].endswith("/PixelsBody")
    assert set(body_of("/api/read")) == {"multipart/form-data", "image/*"}
    for path in ("/api/predict", "/api/predict/pixels", "/api/predict/image"):
        responses = schema["paths"][path]["post"]["responses"]
        assert {"200", "400", "408", "413", "415", "422", "503"} <= set(responses)
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert {"/api/models", "/healthz"} <= set(schema["paths"])
    assert "notice" not in schema["components"]["schemas"]["ModelsResponse"]["properties"]
    answer = schema["components"]["schemas"]["PredictResponse"]["required"]  # always sent: required (an engineer)
    assert {"kind", "sure_from", "sure_right", "unlike_a_digit", "nondigit_score"} <= set(answer)
    assert "unlike_a_digit" in schema["components"]["schemas"]["ReadDigit"]["required"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("path", ["/api/predict", "/api/predict/pixels", "/api/predict/image"])
def test_every_body_works_on_its_documented_route_and_on_api_predict(client8, path):
    sent = {"/api/predict": {"files": {"image": ("one.png", png(drawn_one()), "image/png")}},
            "/api/predict/pixels": {"json": {"pixels": one_pixels()}},
            "/api/predict/image": {"content": png(drawn_one()), "headers": {"content-type": "image/png"}}}[path]
    for url in {path, "/api/predict"}:
        response = client8.post(url + "?top_k=3", **sent)
        assert response.status_code == 200, response.text
        assert response.json()["digit"] == 1


@pytest.mark.parametrize(("path", "kwargs", "expected"), [
    ("/api/predict/pixels", {"files": {"image": ("one.png", b"x", "image/png")}}, "multipart/form-data"),
    ("/api/predict/image", {"json": {"pixels": []}}, "application/json"),
])
def test_a_route_refuses_another_routes_body(client, path, kwargs, expected):
    response = client.post(path, **kwargs)
    assert response.status_code == 415 and expected in response.json()["error"]


# ---------------------------------------------------------------------------------------------
# Bad input: 4xx with {"error": ...}, never a 500, and the next request is fine


def _truncated_png() -> bytes:
    rng = np.random.default_rng(0)
    data = png(Image.fromarray(rng.integers(0, 255, (300, 300), dtype=np.uint8)))
    return data[: len(data) // 2]


def _file(data: bytes, name: str = "x.png", kind: str = "image/png") -> dict:
    return {"files": {"image": (name, data, kind)}}


BAD_REQUESTS = {
    "non-image bytes": (_file(b"GIF89a but not really" * 10), 400, "not an image"),
    "text file": (_file(b"hello world", "x.txt", "text/plain"), 400, "not an image"),
    "empty file": (_file(b""), 400, "empty"),
    "truncated png": (_file(_truncated_png()), 400, "truncated"),
    "over 4096x4096": (_file(header_only_png(MAX_SIDE + 1, 64)), 413, "4096×4096"),
    "decompression bomb": (_file(header_only_png(60_000, 60_000)), 413, "4096×4096"),
    "blank canvas": (_file(png(Image.new("RGBA", (400, 400), (0, 0, 0, 0)))), 422, "no ink found"),
    "blank white": (_file(png(Image.new("L", (400, 400), 255))), 422, "no ink found"),
    "form without a file": ({"content": b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
                                         b"not a file\r\n--xyz--\r\n",
                             "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, 400, "no whole file"),
    "two image files": ({"files": [("image", ("a.png", png(drawn_one()), "image/png")),
                                   ("image", ("b.png", png(drawn_one()), "image/png"))]}, 400, "2 files"),
    "form urlencoded": ({"data": {"image": "not a file"}}, 415, "x-www-form-urlencoded"),
    "empty multipart body": ({"content": b"", "headers": {"content-type": "multipart/form-data; boundary=x"}},
                             400, "empty"),
    "garbage multipart": ({"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=x"}},
                          400, "malformed multipart"),
    "empty body": ({"content": b""}, 400, "empty"),
    "no content type": ({"content": b"abc"}, 415, "Content-Type"),
    "unsupported type": ({"content": b"abc", "headers": {"content-type": "text/plain"}}, 415, "text/plain"),
    "empty raw image": ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty"),
    "empty json": ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
    "invalid json": ({"content": b"{pixels:", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    "a picture as json": ({"content": seven_png(), "headers": {"content-type": "application/json"}}, 400,
                          "not even UTF-8 text: a picture?"),
    "multipart cut off": ({"content": b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                                     b"Content-Type: image/png\r\n\r\n" + seven_png()[:100],
                          "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400, "upload was cut off"),
    "json not an object": ({"json": [1, 2, 3]}, 422, '"pixels"'),
    "json without pixels": ({"json": {"image": []}}, 422, '"pixels"'),
    "pixels wrong shape": ({"json": {"pixels": [[0] * 28] * 27}}, 422, "27×28"),
    "pixels flat": ({"json": {"pixels": [0] * 784}}, 422, "got shape 784"),
    "pixels ragged": ({"json": {"pixels": [[0] * 28] * 27 + [[0] * 3]}}, 422, "rows differ"),
    "pixels strings": ({"json": {"pixels": [["0"] * 28] * 28}}, 422, "28 rows of 28 numbers"),
    "pixels null": ({"json": {"pixels": None}}, 422, "28 rows of 28 numbers from 0 to 255; got null"),  # not "ragged"
    "pixels NaN": ({"content": json.dumps({"pixels": [[float("nan")] * 28] * 28}).encode(),
                    "headers": {"content-type": "application/json"}}, 422, "finite"),
    "pixels Infinity": ({"content": b'{"pixels": [' + b",".join([b"[" + b",".join([b"Infinity"] * 28) + b"]"] * 28) + b"]}",
                         "headers": {"content-type": "application/json"}}, 422, "finite"),
    "pixels over 255": ({"json": {"pixels": [[0] * 28] * 27 + [[0] * 27 + [256]]}}, 422, "between 0 and 255"),
    "pixels negative": ({"json": {"pixels": [[-5] * 28] * 28}}, 422, "between 0 and 255"),
    "pixels blank": ({"json": {"pixels": [[0] * 28] * 28}}, 422, "no ink found"),
    "pixels scaled to 0-1": ({"json": {"pixels": [[0.0] * 28] * 10 + [[0.0] * 12 + [0.9] * 4 + [0.0] * 12] * 8
                                       + [[0.0] * 28] * 10}}, 422, "as if scaled to 0-1: multiply them by 255"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_json_error_and_the_service_goes_on(client, case):
    kwargs, status, message = BAD_REQUESTS[case]
    response = client.post("/api/predict", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert_healthy(client)


@pytest.mark.parametrize("path", ["/api/predict", "/api/predict/pixels", "/api/predict/image", "/api/read"])
def test_a_compressed_body_is_415_saying_send_it_uncompressed(client, path):
    """A gzipped picture was told "not an image: send a PNG, ...", gzipped JSON "not JSON (a picture?)": a 400 that
    blamed the file, not the Content-Encoding the server does not read."""
    import gzip

    body, kind = ((json.dumps({"pixels": one_pixels()}).encode(), "application/json") if path.endswith("pixels")
                  else (png(drawn_one()), "image/png"))
    response = client.post(path, content=gzip.compress(body), headers={"content-type": kind, "content-encoding": "gzip"})
    assert response.status_code == 415 and response.headers["accept-encoding"] == "identity"
    assert response.json()["error"].startswith("cannot read a body sent with Content-Encoding: gzip; send it uncompressed")
    plain = client.post(path, content=body, headers={"content-type": kind, "content-encoding": "identity"})
    assert plain.status_code == 200, plain.text
    assert_healthy(client)


def test_over_5_mib_declared(client):
    data = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES + 100 * 1024)
    response = client.post("/api/predict", **_file(data))
    assert response.status_code == 413 and "5 MiB" in response.json()["error"]
    assert_healthy(client)


def test_over_5_mib_of_json_is_not_called_an_image(client):
    """An engineer's 67 MiB of JSON to /api/predict/pixels was told "the limit is 5 MiB for an image"."""
    body = b'{"pixels": [' + b"0, " * (3 * 2**20) + b"0]}"
    response = client.post("/api/predict/pixels", content=body, headers={"content-type": "application/json"})
    error = response.json()["error"]
    assert response.status_code == 413 and "limit is 5 MiB" in error and "image" not in error, error
    assert "28×28 numbers" in error
    streamed = client.post("/api/predict/pixels", content=(body[i:i + 2**20] for i in range(0, len(body), 2**20)),
                           headers={"content-type": "application/json"})  # chunked, no length declared (a reviewer)
    assert streamed.status_code == 413 and "image" not in streamed.json()["error"], streamed.text
    assert_healthy(client)


def test_over_5_mib_file_inside_a_small_envelope(client):
    data = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES + 6)  # body under MAX_BODY, file 14 bytes over 5 MiB
    response = client.post("/api/predict", **_file(data))
    error = response.json()["error"]
    assert response.status_code == 413 and "5 MiB" in error
    assert f"{MAX_BYTES + 14:,} bytes" in error and "5.0 MiB" not in error  # not "5.0 MiB; the limit is 5 MiB"


def test_over_5_mib_streamed_without_a_length_is_cut_off(client):
    sent = []

    def chunks():
        for _ in range(64):  # 8 MiB in 128 KiB pieces
            sent.append(1)
            yield bytes(128 * 1024)

    response = client.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
    assert response.status_code == 413 and "5 MiB" in response.json()["error"]
    assert_healthy(client)


@pytest.mark.parametrize(("content_type", "start"), [
    (b"multipart/form-data; boundary=x",
     b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG\r\n'),
    (b"application/json", b'{"pixels": [[0, 0, '),
    (b"image/png", b"\x89PNG\r\n\x1a\n"),
], ids=["multipart", "json", "raw"])
def test_a_client_hanging_up_mid_body_is_no_error(client, caplog, content_type, start):
    import anyio

    parts = iter([{"type": "http.request", "body": start, "more_body": True}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(parts, {"type": "http.disconnect"})

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/predict", "raw_path": b"/api/predict", "root_path": "",
             "query_string": b"", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
             "headers": [(b"content-type", content_type), (b"content-length", b"4000")]}
    with caplog.at_level("DEBUG"), caplog.at_level("DEBUG", logger="digitlab.serve"):
        anyio.run(client.app, scope, receive, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"][0] < 500
    noisy = [r for r in caplog.records if r.levelname != "DEBUG" or r.exc_info]
    assert not noisy, [r.getMessage() for r in noisy]
    said = [r.getMessage() for r in caplog.records if r.name == "digitlab.serve"]
    assert len(said) == 1 and "closed the connection" in said[0]
    assert_healthy(client)


@pytest.mark.parametrize("query", ["top_k=0", "top_k=11", "top_k=three"])
def test_bad_query_parameters(client, query):
    response = client.post(f"/api/predict?{query}", json={"pixels": one_pixels()})
    assert response.status_code == 422 and response.json()["error"].startswith("top_k")


def test_unknown_path_and_wrong_method_are_json(client):
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and "no such page" in missing.json()["error"]
    wrong = client.get("/api/predict")
    assert wrong.status_code == 405 and wrong.json()["error"].startswith("GET is not allowed on /api/predict")
    head = client.head("/api/predict")  # answered as its GET: the same status and headers, no body
    assert head.status_code == 405 and head.headers["allow"] == "POST" and head.content == b""
    assert "it takes POST" in wrong.json()["error"]
    models = client.post("/api/models")  # a GET route: HEAD is answered too, so the Allow header says so
    assert models.status_code == 405 and models.headers["allow"] == "GET, HEAD"
    for path in ("/", "/favicon.ico", "/openapi.json"):  # routes outside the API's schema: the same, in one order
        wrong = client.put(path)
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD", (path, wrong.headers)
        assert wrong.json()["error"] == f"PUT is not allowed on {path}; it takes GET, HEAD; see /docs"


def test_the_log_names_the_method_the_client_sent(runs, caplog):
    """A HEAD is answered as its GET, but a bug met on the way is logged as the HEAD it was."""
    app = create_app(runs / "a-digits-logreg", runs)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level(logging.ERROR, "digitlab.serve"):
        answers = [c.request(method, "/boom").status_code for method in ("GET", "HEAD")]
    assert answers == [500, 500]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unexpected")]
    assert said == ["unexpected error on GET /boom", "unexpected error on HEAD /boom"]


def test_many_bad_requests_in_a_row_never_give_500(client):
    rng = np.random.default_rng(0)
    for i in range(50):
        junk = rng.integers(0, 256, int(rng.integers(0, 4000)), dtype=np.uint8).tobytes()
        if i % 2:
            junk = b"\x89PNG\r\n\x1a\n" + junk
        response = client.post("/api/predict", **_file(junk))
        assert 400 <= response.status_code < 500
    assert_healthy(client)


# ---------------------------------------------------------------------------------------------
# Start-up


def test_no_model_yet_is_one_clear_error_naming_the_command(tmp_path):
    with pytest.raises(DigitlabError) as caught:
        create_app(None, tmp_path / "runs")
    message = str(caught.value)
    assert "no trained model" in message and "\n" not in message
    assert f"`digitlab run --out {tmp_path / 'runs'}`" in message
    assert f"`digitlab run --dataset mnist --model cnn --out {tmp_path / 'runs'}`" in message
    assert not (tmp_path / "runs").exists()  # serving never trains


def test_a_model_trained_first_is_then_served(tmp_path):
    from digitlab.pipeline import run_pipeline

    result = run_pipeline("digits", "logreg", out=tmp_path / "runs")
    with TestClient(create_app(None, tmp_path / "runs")) as c:
        assert c.get("/healthz").json()["model_id"] == load_model(result.folder).id
        assert c.post("/api/predict", json={"pixels": one_pixels()}).json()["digit"] == 1


def test_serving_logistic_regression_imports_neither_training_nor_torch(runs):
    code = ("import sys; from pathlib import Path; from digitlab.serve.app import create_app; "
            f"create_app(Path({str(runs / 'a-digits-logreg')!r}), Path({str(runs)!r})); "
            "print(sorted(m for m in ('torch', 'digitlab.pipeline') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_newest_run_is_served_by_default(runs):
    app = create_app(None, runs)
    assert app.state.served.loaded.path.parent.name in ("a-digits-logreg", "b-mnist-like-knn")


def test_a_bad_model_path_is_one_clear_error(tmp_path):
    with pytest.raises(DigitlabError, match="no such file"):
        create_app(tmp_path / "missing", tmp_path)


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "https://" not in page.text  # Swagger UI from the app itself, no CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert asset in page.text
        path = page.text.split(asset)[0].rsplit('"', 1)[-1] + asset
        assert client.get(path).status_code == 200


def test_deeply_nested_json_is_a_400(client):
    body = b'{"pixels":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]
    assert_healthy(client)


@pytest.mark.parametrize("asked", ["bytes=0-9", "bytes=99999999-", "bytes=abc", "bytes=0-1,3-4"])
def test_the_pages_files_come_whole_whatever_range_is_asked(client, asked):
    """A Range header on /static is ignored, as HTTP allows: never Starlette's plain-text 400 or 416."""
    whole = client.get("/static/app.js")
    ranged = client.get("/static/app.js", headers={"Range": asked})
    assert whole.status_code == ranged.status_code == 200 and ranged.content == whole.content
    assert ranged.headers["content-type"].startswith("text/javascript")


def test_a_malformed_form_is_400_and_leaves_the_log_quiet(client, caplog):
    """python-multipart logs a bad boundary as a warning of its own; the client's 400 is all there is to say."""
    body = b'--XX\r\nContent-Disposition: form-data; name="image"\r\n\r\n\x89abc'
    with caplog.at_level(logging.DEBUG):
        answer = client.post("/api/predict", content=body, headers={"content-type": "multipart/form-data; boundary=ZZ"})
    assert answer.status_code == 400 and "malformed multipart body" in answer.json()["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]


def test_a_run_folder_named_in_another_encoding_is_listed_not_a_500(runs, tmp_path):
    """A run folder whose name is not UTF-8 (Latin-1, from an old USB stick) made GET /api/models a 500 for every
    client, and the page's menu lost every run. It is listed, its name's odd byte shown as �."""
    copy = tmp_path / "runs"
    shutil.copytree(runs / "b-mnist-like-knn", copy / "b-mnist-like-knn")
    shutil.copytree(runs / "a-digits-logreg", os.fsdecode(bytes(copy) + b"/caf\xe9-digits-logreg"))
    with TestClient(create_app(copy / "b-mnist-like-knn", copy)) as served:
        listed = served.get("/api/models")
    assert listed.status_code == 200, listed.text
    assert [Path(m["path"]).name for m in listed.json()["models"]] == ["b-mnist-like-knn", "caf\ufffd-digits-logreg"]
