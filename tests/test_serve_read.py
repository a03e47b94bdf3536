"""``POST /api/read`` (digitlab.serve.app): a whole number, the same inputs and errors as ``/api/predict``."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from conftest import header_only_png

pytest.importorskip("fastapi")
pytest.importorskip("multipart")  # python-multipart

from fastapi.testclient import TestClient  # noqa: E402

from digitlab.data.images import MAX_BYTES, MAX_SIDE  # noqa: E402
from digitlab.predict import unsure_threshold  # noqa: E402
from digitlab.segment import MAX_MARKS  # noqa: E402
from digitlab.serve.app import create_app  # noqa: E402

PEN = 10


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    """The lesson's logistic regression on the 8×8 digits, saved as a run would save it, served."""
    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    runs = tmp_path_factory.mktemp("runs")
    digits = load_dataset("digits")
    save_model(train("logreg", digits), digits, runs / "digits-logreg")
    with TestClient(create_app(runs / "digits-logreg", runs)) as c:
        yield c


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def three_digits() -> Image.Image:
    """"1 7 0" drawn dark on white, 360×140, well apart."""
    image = Image.new("L", (360, 140), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(60, 20), (60, 120)], fill=0, width=PEN)
    draw.line([(130, 24), (190, 24), (150, 120)], fill=0, width=PEN, joint="curve")
    draw.ellipse([250, 20, 310, 120], outline=0, width=PEN)
    return image


def _file(data: bytes, name: str = "x.png", kind: str = "image/png") -> dict:
    return {"files": {"image": (name, data, kind)}}


def assert_reading(body: dict, count: int, size: tuple[int, int]) -> None:
    assert set(body) == {"text", "digits", "width", "height", "model_id", "sure_from", "dots", "calibrated",
                         "separators", "milliseconds"}
    assert (body["width"], body["height"]) == size
    assert len(body["digits"]) == count and len(body["text"]) == count
    assert body["text"] == "".join(d["shown"] for d in body["digits"])
    for d in body["digits"]:
        x0, y0, x1, y1 = d["box"]
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
        assert 0 <= d["digit"] <= 9 and 0 <= d["probability"] <= 1
        assert len(d["top"]) == 3 and d["top"][0] == {"digit": d["digit"], "probability": d["probability"]}
        assert d["kind"] in ("digit", "unsure", "not_a_digit")
        assert d["shown"] == (str(d["digit"]) if d["kind"] == "digit" else "?")
        assert d["unlike_a_digit"] in (False, d["kind"] != "not_a_digit")  # said of a digit read, as predict's
    lefts = [d["box"][0] for d in body["digits"]]
    assert lefts == sorted(lefts)  # left to right
    assert body["milliseconds"] >= 0


def test_three_digits_as_a_form_upload(client):
    response = client.post("/api/read", **_file(png(three_digits())))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_reading(body, 3, (360, 140))
    boxes = [d["box"] for d in body["digits"]]
    for (x0, _, x1, _), centre in zip(boxes, (60, 160, 280)):  # each box holds its own digit
        assert x0 < centre < x1
    assert body["digits"][0]["digit"] == 1 and body["model_id"] == client.app.state.served.loaded.id
    assert body["sure_from"] == unsure_threshold(client.app.state.served.loaded.card)
    assert body["calibrated"] is False  # this model was saved without calibration: its percentages are its own


def test_separators_are_in_the_text_and_listed_with_their_boxes(client):
    """"1-7.0": a dash and a point, known by shape and place, in `text` and in `separators`, not among `digits`."""
    image = three_digits()
    draw = ImageDraw.Draw(image)
    draw.line([(85, 70), (110, 70)], fill=0, width=PEN)  # a dash between the 1 and the 7
    draw.ellipse([212, 106, 226, 120], fill=0)  # a point on the line between the 7 and the 0
    big = image.resize((720, 280))  # sent twice as large: the boxes come back in its own pixels
    body = client.post("/api/read", **_file(png(big))).json()
    assert [d["shown"] for d in body["digits"]][0] == "1" and len(body["digits"]) == 3
    assert [s["symbol"] for s in body["separators"]] == ["-", "."] and body["dots"] == 1
    shown = [d["shown"] for d in body["digits"]]
    assert body["text"] == f"{shown[0]}-{shown[1]}.{shown[2]}"
    (dx0, dy0, dx1, dy1), (px0, py0, px1, py1) = (s["box"] for s in body["separators"])
    assert abs(dx0 - 170) <= 14 and abs(dx1 - 220) <= 14 and dy0 < 140 < dy1
    assert abs(px0 - 424) <= 8 and abs(px1 - 452) <= 8 and py0 < 226 < py1
    assert all(s["line"] == 0 for s in body["separators"])


def test_two_pictures_in_one_form_are_refused_not_one_of_them_read(client):
    both = [("image", ("a.png", png(three_digits()), "image/png")), ("image", ("b.png", png(three_digits()), "image/png"))]
    response = client.post("/api/read", files=both)
    assert response.status_code == 400 and "2 files" in response.json()["error"], response.text


@pytest.mark.parametrize("url", ["/api/read", "/api/read/image"])
@pytest.mark.parametrize("kind", ["image/png", "application/octet-stream"])
def test_the_image_file_as_the_body(client, url, kind):
    response = client.post(url, content=png(three_digits()), headers={"content-type": kind})
    assert response.status_code == 200, response.text
    assert_reading(response.json(), 3, (360, 140))


def test_a_jpeg_decoded_at_a_reduced_scale_answers_boxes_in_its_own_pixels(client):
    big = three_digits().resize((3600, 1400))  # JPEG draft decodes it at 1/2
    response = client.post("/api/read", **_file(png(big, "JPEG"), "big.jpg", "image/jpeg"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_reading(body, 3, (3600, 1400))
    assert body["digits"][0]["box"][0] == pytest.approx(550, abs=40)


def test_the_docs_describe_the_route(client):
    schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/api/read"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422"} <= set(responses)
    assert "ReadResponse" in schema["components"]["schemas"]


def _confetti() -> bytes:
    """More separate marks than a number has."""
    image = Image.new("L", (900, 900), 255)
    draw = ImageDraw.Draw(image)
    for k in range(MAX_MARKS + 36):
        x, y = 40 + 80 * (k % 10), 40 + 80 * (k // 10)
        draw.line([(x, y), (x, y + 40)], fill=0, width=8)
    return png(image)


BAD_REQUESTS = {
    "non-image bytes": (_file(b"GIF89a but not really" * 10), 400, "not an image"),
    "text file": (_file(b"hello world", "x.txt", "text/plain"), 400, "not an image"),
    "empty file": (_file(b""), 400, "empty"),
    "over 4096x4096": (_file(header_only_png(MAX_SIDE + 1, 64)), 413, "4096×4096"),
    "blank white": (_file(png(Image.new("L", (400, 200), 255))), 422, "no ink found"),
    "blank transparent": (_file(png(Image.new("RGBA", (400, 200), (0, 0, 0, 0)))), 422, "no ink found"),
    "too many marks": (_file(_confetti()), 422, "separate marks"),
    "raw non-image": ({"content": b"not an image at all", "headers": {"content-type": "image/png"}}, 400,
                      "not an image"),
    "raw blank": ({"content": png(Image.new("L", (300, 100), 255)), "headers": {"content-type": "image/png"}}, 422,
                  "no ink found"),
    "form without a file": ({"content": b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
                                         b"not a file\r\n--xyz--\r\n",
                             "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, 400, "no whole file"),
    "form urlencoded": ({"data": {"image": "not a file"}}, 415, "x-www-form-urlencoded"),
    "json": ({"json": {"pixels": [[0] * 28] * 28}}, 415, "application/json"),
    "empty body": ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty"),
    "no content type": ({"content": b"abc"}, 415, "Content-Type"),
    "unsupported type": ({"content": b"abc", "headers": {"content-type": "text/plain"}}, 415, "text/plain"),
    "garbage multipart": ({"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=x"}},
                          400, "multipart"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_json_error_and_the_service_goes_on(client, case):
    kwargs, status, message = BAD_REQUESTS[case]
    response = client.post("/api/read", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error and "\n" not in error
    good = client.post("/api/read", **_file(png(three_digits())))
    assert good.status_code == 200, good.text


def test_over_5_mib_is_413(client):
    data = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES + 100 * 1024)
    response = client.post("/api/read", **_file(data))
    assert response.status_code == 413 and "5 MiB" in response.json()["error"]


def test_a_raw_body_for_predict_is_not_read_as_a_number(client):
    """The /api/read/image route takes only images; predict's routes are unchanged."""
    response = client.post("/api/read/image", json={"pixels": [[0] * 28] * 28})
    assert response.status_code == 415
    one = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(one).line([(100, 30), (100, 170)], fill=0, width=14)
    response = client.post("/api/predict", content=png(one), headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.json()["digit"] == 1


def test_a_mark_that_is_not_a_digit_shows_as_a_question_mark(tmp_path):
    """With a whole run's not-a-digit detector, a '#' beside a '1' reads '1?'."""
    from digitlab.pipeline import run_pipeline

    run = run_pipeline("digits", "logreg", out=tmp_path)
    image = Image.new("L", (400, 160), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(60, 20), (60, 140)], fill=0, width=PEN)
    for x in (200, 240):
        draw.line([(x, 20), (x, 140)], fill=0, width=PEN)
    for y in (60, 100):
        draw.line([(160, y), (280, y)], fill=0, width=PEN)
    with TestClient(create_app(run.folder, tmp_path)) as client:
        response = client.post("/api/read", **_file(png(image)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "1?"
    assert [d["kind"] for d in body["digits"]] == ["digit", "not_a_digit"]
    assert body["digits"][1]["shown"] == "?" and body["digits"][1]["box"][0] < 200 < body["digits"][1]["box"][2]
