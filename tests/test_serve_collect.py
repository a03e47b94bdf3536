"""Collecting samples through the API (``digitlab serve --collect``), and choosing a model per request.

FastAPI's TestClient against the real app, a handwriting set in a temporary ``$DIGITLAB_DATA``; two
real server processes on loopback for the saves that arrive at once; the real ``digitlab`` command
for the ``--collect`` option.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient  # noqa: E402

from conftest import run_cli  # noqa: E402
from digitlab.data.handwriting import HandwritingSet  # noqa: E402
from digitlab.serve.app import create_app  # noqa: E402
from digitlab.serve.collect import OFF  # noqa: E402
from digitlab.serve.limits import MAX_BODY  # noqa: E402

PNG = {"content-type": "image/png"}


def _png(seed: int = 0, size: int = 112) -> bytes:
    """A drawn "1", slightly different for each seed (the set keeps one copy of identical bytes)."""
    picture = Image.new("L", (size, size), 255)
    x = size // 2 + seed % 7 - 3
    ImageDraw.Draw(picture).line([(x, size // 8), (x + seed % 5, size - size // 8)], fill=0, width=size // 12 + seed % 3)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def _huge() -> bytes:
    """A small file of more pixels than any picture may have (4097 px wide)."""
    buffer = io.BytesIO()
    Image.new("L", (4097, 8), 255).save(buffer, "PNG")
    return buffer.getvalue()


def _row() -> bytes:
    """A row of five 1s: several digits, not one."""
    picture = Image.new("L", (400, 100), 255)
    for x in range(40, 400, 80):
        ImageDraw.Draw(picture).line([(x, 15), (x, 85)], fill=0, width=8)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def _blank() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (60, 60), 255).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A private ``$DIGITLAB_DATA`` for the module (the handwriting sets live under it)."""
    folder = tmp_path_factory.mktemp("digitlab-data")
    with pytest.MonkeyPatch.context() as patch:  # set for the module, put back after it
        patch.setenv("DIGITLAB_DATA", str(folder))
        patch.setenv("DIGITLAB_ALLOW_HOSTS", "testserver")  # TestClient's Host, as `--allow-host testserver` sets
        yield folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two runs on the 8×8 digits: k-nearest neighbours with k = 3 (served) and k = 1 (to choose); knn fits at once."""
    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    root = tmp_path_factory.mktemp("runs")
    digits = load_dataset("digits")
    save_model(train("knn", digits, params={"n_neighbors": 3}), digits, root / "b-digits-knn3", metrics={"accuracy": 0.98})
    save_model(train("knn", digits, params={"n_neighbors": 1}), digits, root / "a-digits-knn1", metrics={"accuracy": 0.98})
    return root


@pytest.fixture(scope="module")
def client(runs, data_dir):
    """Collecting into the set ``class-7b``."""
    with TestClient(create_app(runs / "b-digits-knn3", runs, onnx=False, collect="class-7b")) as c:
        yield c


@pytest.fixture(scope="module")
def off(runs, data_dir):
    """Not collecting."""
    with TestClient(create_app(runs / "b-digits-knn3", runs, onnx=False)) as c:
        yield c


def _one_line(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], body
    return body["error"]


def _files(store: HandwritingSet) -> set[str]:
    return {p.name for sub in ("originals", "prepared") for p in (store.folder / sub).iterdir()}


# ---------------------------------------------------------------------------------------------
# Collecting


def test_a_wrong_method_on_the_samples_names_every_method_it_takes(client):
    """A chaos tester (Schemathesis): PUT /api/samples answered 405 with Allow: GET, though POST saves a sample."""
    wrong = client.put("/api/samples")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, POST"
    assert wrong.json()["error"] == "PUT is not allowed on /api/samples; it takes GET, HEAD, POST; see /docs"


def test_without_collect_every_samples_route_answers_403(off):
    for response in (off.get("/api/samples"), off.post("/api/samples?label=3", content=_png(), headers=PNG),
                     off.post("/api/samples?label=x", content=b"junk", headers={"content-type": "text/plain"}),
                     off.post("/api/samples/image?label=3", content=_png(), headers=PNG),
                     off.delete("/api/samples/20260101T000000Z-00000000")):
        assert _one_line(response, 403) == OFF
    assert not any(path.startswith("/api/samples") for path in off.get("/openapi.json").json()["paths"])
    assert "data-collect" not in off.get("/").text  # the page shows no collecting controls, asks nothing


def test_the_page_names_the_set_it_collects_into(client):
    assert '<body data-collect="class-7b">' in client.get("/").text


def test_save_undo_and_counts(client):
    picture = _png(1)
    saved = client.post("/api/samples?label=1&writer=%20Ada%20", content=picture, headers=PNG)
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert body["added"] is True and body["name"] == "class-7b"
    assert (body["sample"]["label"], body["sample"]["writer"], body["sample"]["source"]) == (1, "Ada", "drawn")
    assert body["writer"] == "Ada" and body["writer_counts"][1] >= 1 and body["counts"][1] >= 1
    store = HandwritingSet.open("class-7b")
    [sample] = [s for s in store.samples() if s.id == body["sample"]["id"]]
    assert (sample.label, sample.writer, sample.source) == (1, "Ada", "drawn")
    assert store.original_bytes(sample) == picture  # the page's own picture, as it was sent
    assert store.images([sample])[0].shape == (1, 28, 28)

    again = client.post("/api/samples?label=1&writer=Ada", content=picture, headers=PNG)
    assert again.status_code == 200 and again.json()["added"] is False
    assert again.json()["sample"]["id"] == sample.id
    for query, says in (("label=7&writer=Ada", "already as a 1"), ("label=1&writer=Bob", "already by another writer"),
                        ("label=7&writer=Bob", "already by another writer")):  # another's label is theirs to know
        other = _one_line(client.post(f"/api/samples?{query}", content=picture, headers=PNG), 409)
        assert says in other and "nothing was saved" in other and sample.id not in other and "Ada" not in other
        assert "Bob" not in query or "as a 1" not in other

    photo = client.post("/api/samples?label=7&source=photo", files={"image": ("seven.png", _png(2), "image/png")})
    assert photo.status_code == 201 and photo.json()["sample"]["source"] == "photo"
    assert photo.json()["writer"] is None and photo.json()["writer_counts"] is None

    counts = client.get("/api/samples", params={"writer": "Ada"}).json()
    assert counts["total"] == sum(counts["counts"]) == len(store.samples())
    assert counts["writer"] == "Ada" and counts["named_writers"] >= 1 and "writers" not in counts  # not who (an audit)

    removed = client.delete(f"/api/samples/{sample.id}")
    assert removed.status_code == 200 and removed.json()["sample"]["id"] == sample.id
    assert removed.json()["total"] == counts["total"] - 1 and removed.json()["writer"] == "Ada"
    assert sample.id not in [s.id for s in store.samples()]
    assert not any(name.startswith(sample.id) for name in _files(store))
    assert "no sample" in _one_line(client.delete(f"/api/samples/{sample.id}"), 404)
    assert "no sample" in _one_line(client.delete("/api/samples/not-an-id"), 404)


def test_a_sample_cut_from_a_sheet_is_listed_and_removed_like_any_other(client):
    """``data import --sheet`` saves samples of source "sheet" into the set the server collects into."""
    from digitlab.data.handwriting_io import import_pictures

    page = Image.new("L", (300, 140), 255)
    for k, x in enumerate((50, 140, 230)):  # three 1s, each its own (identical crops would be one sample)
        ImageDraw.Draw(page).line([(x, 20), (x + 4 * k, 110)], fill=0, width=10 + k)
    folder = Path(os.environ["DIGITLAB_DATA"]) / "sheets"
    folder.mkdir(exist_ok=True)
    page.save(folder / "ones.png")
    summary = import_pictures("class-7b", [folder / "ones.png"], writer="Cy", sheet="1")
    assert summary.added == 3 and summary.sheets == 1
    sample = next(s for s in HandwritingSet.open("class-7b").samples() if s.source == "sheet")
    removed = client.delete(f"/api/samples/{sample.id}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["sample"]["source"] == "sheet" and removed.json()["writer"] == "Cy"


def test_two_pictures_in_one_form_save_neither(client):
    store = HandwritingSet.open("class-7b")
    before, files = store.samples(), _files(store)
    both = [("image", ("a.png", _png(60), "image/png")), ("image", ("b.png", _png(61), "image/png"))]
    assert "2 files" in _one_line(client.post("/api/samples?label=1", files=both), 400)
    assert store.samples() == before and _files(store) == files


@pytest.mark.parametrize("headers", [
    {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    {"origin": "http://evil.example"},  # an older browser: no Sec-Fetch-Site, the Origin differs from the Host
    {"origin": "http://localhost:9999", "sec-fetch-site": "same-site"},  # another port of the same machine
    {"origin": "null"},  # a sandboxed frame or a file:// page
], ids=["cross-site", "origin-only", "same-site", "null-origin"])
def test_another_sites_page_cannot_change_the_set(client, headers):
    store = HandwritingSet.open("class-7b")
    kept = client.post("/api/samples?label=4", content=_png(40), headers=PNG)
    assert kept.status_code == 201, kept.text
    before, files = store.samples(), _files(store)
    posted = client.post("/api/samples?label=1", files={"image": ("x.png", _png(41), "image/png")}, headers=headers)
    assert "only from the drawing page" in _one_line(posted, 403)
    assert "refused" in _one_line(client.post("/api/samples/image?label=1", content=_png(41), headers={**PNG, **headers}),
                                  403)
    assert "refused" in _one_line(client.delete(f"/api/samples/{kept.json()['sample']['id']}", headers=headers), 403)
    assert store.samples() == before and _files(store) == files
    assert client.get("/api/samples", headers=headers).status_code == 200  # reading the counts is harmless
    same = {"origin": "http://testserver", "sec-fetch-site": "same-origin"}  # what the page itself sends
    assert client.delete(f"/api/samples/{kept.json()['sample']['id']}", headers=same).status_code == 200


def test_a_page_whose_name_was_pointed_at_this_server_cannot_change_the_set(client, monkeypatch):
    """DNS rebinding: another site points its own name at this server, and its page then looks same-origin to
    the browser. The Host header still carries that name: a change of the set is taken only when the request
    is addressed to an IP address, localhost, this machine's name, or a name allowed with --allow-host."""
    store = HandwritingSet.open("class-7b")
    before = store.samples()
    rebound = {**PNG, "host": "attacker.example:8000", "origin": "http://attacker.example:8000",
               "sec-fetch-site": "same-origin"}
    says = _one_line(client.post("/api/samples?label=3&writer=mallory", content=_png(70), headers=rebound), 403)
    assert "'attacker.example' was refused" in says and "--allow-host attacker.example" in says
    assert store.samples() == before
    for lookalike in ("evillocalhost", "localhost.attacker.example"):  # only localhost and *.localhost are own
        said = _one_line(client.post("/api/samples?label=3&writer=mallory", content=_png(70),
                                     headers={**rebound, "host": f"{lookalike}:8000"}), 403)
        assert f"{lookalike!r} was refused" in said
    listed = client.get("/api/samples", headers=rebound)  # had listed the writers' names to the rebound page
    assert "'attacker.example' was refused" in _one_line(listed, 403)
    for i, host in enumerate(("127.0.0.1:8000", "[::1]:8000", "localhost:8000", "192.168.1.20:8000", "a.localhost")):
        own = {**PNG, "host": host, "origin": f"http://{host}", "sec-fetch-site": "same-origin"}
        saved = client.post(f"/api/samples?label=3&writer=own-host{i}", content=_png(72 + i), headers=own)
        assert saved.status_code == 201, (host, saved.text)
    before = store.samples()
    for empty in ("", " ", ":8000", ".", "[]"):  # no browser sends a Host that names nothing; a script sends none
        posted = client.post("/api/samples?label=3&writer=m", content=_png(70), headers={**PNG, "host": empty})
        says = _one_line(posted, 403)
        assert "names nothing and was refused" in says and "--allow-host" not in says, (empty, says)
    posted = client.post("/api/samples?label=3&writer=m", content=_png(70),
                         headers={**PNG, "origin": "http://", "sec-fetch-site": "same-origin"})
    assert "'' names nothing and was refused" in _one_line(posted, 403)
    assert store.samples() == before
    proxied = {**rebound, "host": "127.0.0.1:8000"}  # a proxy that rewrote Host: the page's Origin still tells
    assert "'attacker.example' was refused" in _one_line(
        client.post("/api/samples?label=3&writer=mallory", content=_png(70), headers=proxied), 403)
    monkeypatch.setenv("DIGITLAB_ALLOW_HOSTS", "testserver, Attacker.Example.")  # `--allow-host attacker.example`
    assert client.post("/api/samples?label=3&writer=m", content=_png(70), headers=rebound).status_code == 201


def test_allow_host_takes_bare_host_names_only(tmp_path):
    done = run_cli("serve", "--collect", "c", "--allow-host", "https://school.example:8000", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "--allow-host 'https://school.example:8000': give a bare host name" in done.stderr


def test_the_pages_own_saves_pass_with_or_without_sec_fetch_site(client):
    """An older browser sends only Origin: the page's own origin (default port left out) is this server."""
    for i, headers in enumerate(({"origin": "http://testserver", "sec-fetch-site": "same-origin"},
                                 {"origin": "http://testserver"}, {"origin": "http://TestServer:80"}, {})):
        saved = client.post(f"/api/samples?label=5&writer=own{i}", content=_png(50 + i), headers={**PNG, **headers})
        assert saved.status_code == 201, (headers, saved.text)


def test_a_seven_drawn_in_taps_is_saved(client):
    """A reviewer's 7 drawn as ten taps on the page is ten marks: a drawing is not counted as a photo is (a photo of
    several marks is refused as a row of digits)."""
    picture = Image.new("L", (112, 112), 255)
    for x, y in [(20, 15), (35, 15), (50, 15), (65, 15), (80, 15), (75, 35), (68, 52), (60, 70), (52, 88), (45, 102)]:
        ImageDraw.Draw(picture).ellipse([x - 5, y - 5, x + 5, y + 5], fill=0)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    response = client.post("/api/samples?label=7&writer=taps", content=buffer.getvalue(), headers=PNG)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("query", "body", "headers", "status", "says"), [
    ("label=10", _png(3), PNG, 422, "label must be"),
    ("label=x", _png(3), PNG, 422, "label must be"),
    ("", _png(3), PNG, 422, "label must be"),
    ("label=3&writer=a%2Fb", _png(3), PNG, 422, "writer's name"),
    ("label=3&writer=" + "w" * 10_000, _png(3), PNG, 422, "at most 64"),
    ("label=3&writer=%ff%fe", _png(3), PNG, 422, "could not be read"),  # not UTF-8: it was saved as "��"
    ("label=3&source=import", _png(3), PNG, 422, "source"),
    ("label=3", _blank(), PNG, 422, "no ink"),
    ("label=1&source=photo", _row(), PNG, 422, "holds 5 separate marks, not one digit"),  # as data import refuses it
    ("label=3", b"\x89PNG\r\n\x1a\nnot really", PNG, 422, ""),
    ("label=3", b'{"pixels": []}', {"content-type": "application/json"}, 415, "image"),
    ("label=3", b"", PNG, 400, "empty"),
    ("label=3", b"x" * (MAX_BODY + 1), PNG, 413, "limit"),
    ("label=3", _huge(), PNG, 413, "4097"),
], ids=["label-10", "label-x", "no-label", "writer-slash", "writer-10kB", "writer-not-utf8", "source", "no-ink",
        "a-row-of-digits", "not-an-image", "json", "empty", "too-large", "too-many-pixels"])
def test_bad_saves_are_one_line_and_change_nothing(client, query, body, headers, status, says):
    store = HandwritingSet.open("class-7b")
    before, files = store.samples(), _files(store)
    message = _one_line(client.post(f"/api/samples?{query}", content=body, headers=headers), status)
    assert says in message
    assert store.samples() == before and _files(store) == files


def test_a_set_deleted_while_collecting_is_409_with_what_to_do(runs, data_dir):
    with TestClient(create_app(runs / "b-digits-knn3", runs, onnx=False, collect="short-lived")) as c:
        assert c.post("/api/samples?label=1", content=_png(1), headers=PNG).status_code == 201
        HandwritingSet.open("short-lived").delete()  # `digitlab data remove short-lived --all` meanwhile
        for response in (c.post("/api/samples?label=2", content=_png(2), headers=PNG), c.get("/api/samples"),
                         c.delete("/api/samples/20260101T000000Z-00000000")):
            says = _one_line(response, 409)
            assert "was deleted while in use" in says and "restart `digitlab serve --collect short-lived`" in says
        assert not (data_dir / "handwriting" / "short-lived").exists()  # nothing was made anew
        identity = c.app.state.collect.identity
        HandwritingSet.open("short-lived", create=True).add(_png(3), 3, writer="teacher")  # made anew by an import
        says = _one_line(c.post("/api/samples?label=4&writer=kid", content=_png(4), headers=PNG), 409)
        assert "was deleted while in use" in says  # not saved into the new set
    # a worker process started now (DIGITLAB_COLLECT_ID: the set its parent opened) does not take the new set either
    app = create_app(runs / "b-digits-knn3", runs, onnx=False, collect="short-lived", collect_identity=identity)
    with TestClient(app) as c:
        assert "was deleted while in use" in _one_line(c.post("/api/samples?label=5", content=_png(5), headers=PNG), 409)
    assert [s.writer for s in HandwritingSet.open("short-lived").samples()] == ["teacher"]


def test_bad_writer_for_counts_is_422(client):
    assert "writer's name" in _one_line(client.get("/api/samples", params={"writer": "x\ny"}), 422)
    for no_name in ("(no name)", " (No name)"):  # how the unnamed samples are listed: nobody may take it
        assert "leave the name empty" in _one_line(client.get("/api/samples", params={"writer": no_name}), 422)
        says = _one_line(client.post("/api/samples", params={"label": 1, "writer": no_name}, content=_png(401), headers=PNG), 422)
        assert "leave the name empty" in says


def test_a_writer_is_counted_whatever_the_case_of_the_name(client):
    saved = client.post("/api/samples?label=4&writer=Zoe", content=_png(404), headers=PNG)
    again = client.post("/api/samples?label=5&writer=zoe", content=_png(405), headers=PNG)
    assert saved.status_code == again.status_code == 201
    assert again.json()["sample"]["writer"] == "Zoe" and again.json()["writer"] == "Zoe"
    assert again.json()["writer_counts"][4:6] == [1, 1]
    assert client.get("/api/samples", params={"writer": "zOE"}).json()["writer"] == "Zoe"  # as the set spells it
    same = client.post("/api/samples?label=5&writer=ZOE", content=_png(405), headers=PNG)  # her own picture again
    assert same.status_code == 200 and same.json()["sample"]["id"] == again.json()["sample"]["id"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_server_processes_save_at_once_and_lose_nothing(runs, data_dir, tmp_path):
    port = _free_port()
    env = {**os.environ, "DIGITLAB_SERVE_ONNX": "0"}
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(runs / "b-digits-knn3"),
                               "--runs", str(runs), "--port", str(port), "--workers", "2", "--collect", "class-9"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while "startup complete" not in (tmp_path / "serve.log").read_text():
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        said = (tmp_path / "serve.log").read_text()  # once, not also as a plain line (a teacher saw it twice)
        assert said.count("collecting samples into handwriting set 'class-9'") == 1, said

        def save(i: int) -> dict:
            request = urllib.request.Request(f"{url}/api/samples?label={i % 10}&writer=w{i % 3}", data=_png(100 + i),
                                             headers=PNG)
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 201
                return json.loads(answer.read())

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(save, range(24)))
        store = HandwritingSet.open("class-9")
        samples = store.samples()
        assert sorted(s.id for s in samples) == sorted(a["sample"]["id"] for a in answers)
        assert not store.problems and len(samples) == 24
        assert sorted(s.label for s in samples) == sorted(i % 10 for i in range(24))

        store.delete()  # deleted and made anew by an import: neither process may save into the new set
        HandwritingSet.open("class-9", create=True).add(_png(99), 9, writer="teacher")
        refused = []
        for i in range(16):  # new connections, spread over both processes
            request = urllib.request.Request(f"{url}/api/samples?label=1", data=_png(200 + i), headers=PNG)
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(request, timeout=30)
            refused.append(answer.value.code)
        assert refused == [409] * 16
        assert [s.writer for s in HandwritingSet.open("class-9").samples()] == ["teacher"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_collect_option_on_the_command_line(data_dir):
    bad = run_cli("serve", "--collect", "../etc", env={"DIGITLAB_DATA": str(data_dir)})
    assert bad.returncode == 2 and "cannot name a handwriting set" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    with socket.socket() as busy:  # a bare --collect (default set 'mine') parses: the busy port is what fails
        busy.bind(("127.0.0.1", 0))  # (test_browser_collect.py starts a server with `--collect --port P`)
        busy.listen(1)
        bare = run_cli("serve", "--port", str(busy.getsockname()[1]), "--collect", env={"DIGITLAB_DATA": str(data_dir)})
        assert bare.returncode == 2 and "cannot listen" in bare.stderr, bare.stderr


def test_the_collecting_routes_are_in_the_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/samples"]) == {"get", "post"} and "delete" in paths["/api/samples/{sample_id}"]
    label = next(p for p in paths["/api/samples"]["post"]["parameters"] if p["name"] == "label")
    assert label["required"] and label["schema"]["maximum"] == 9


# ---------------------------------------------------------------------------------------------
# Choosing a model per request


def test_model_query_chooses_a_saved_run(client):
    listed = client.get("/api/models").json()
    served, other = listed["active"], next(m["id"] for m in listed["models"] if not m["active"])
    assert client.post("/api/predict", content=_png(), headers=PNG).json()["model_id"] == served
    for path in ("/api/predict", "/api/predict/image", "/api/read"):
        answer = client.post(f"{path}?model={other}", content=_png(), headers=PNG)
        assert answer.status_code == 200 and answer.json()["model_id"] == other, (path, answer.text)
    grid = [[255 if 4 <= y < 24 and 13 <= x < 16 else 0 for x in range(28)] for y in range(28)]
    assert client.post(f"/api/predict/pixels?model={other}", json={"pixels": grid}).json()["model_id"] == other
    explained = client.post(f"/api/predict?model={other}&explain=true", content=_png(), headers=PNG)
    assert explained.status_code == 200 and explained.json()["model_id"] == other
    assert client.post(f"/api/predict?model={served}", content=_png(), headers=PNG).json()["model_id"] == served
    assert "GET /api/models" in _one_line(client.post("/api/predict?model=nope", content=_png(), headers=PNG), 404)
    assert _one_line(client.post("/api/read?model=../../etc", content=_png(), headers=PNG), 404)


def test_a_chosen_run_that_does_not_load_is_422(runs, data_dir, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs / "b-digits-knn3", copy / "b-digits-knn3")
    shutil.copytree(runs / "a-digits-knn1", copy / "a-digits-knn1")
    weights = next((copy / "a-digits-knn1").glob("model.*[!n]"))  # the weights file, not model.json
    with TestClient(create_app(copy / "b-digits-knn3", copy, onnx=False)) as c:
        other = next(m["id"] for m in c.get("/api/models").json()["models"] if not m["active"])
        weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")  # damaged after the page listed it
        assert "cannot be loaded" in _one_line(c.post(f"/api/predict?model={other}", content=_png(), headers=PNG), 422)
        assert len(c.get("/api/models").json()["models"]) == 1  # and no longer listed


def test_a_damaged_copy_of_a_run_hides_no_intact_one(runs, data_dir, tmp_path):
    """A reviewer: /api/models lists one id once, the newest name first; a damaged copy that sorts first
    ("zz-copy", "backup-...") made the id answer 422 though the intact run was there."""
    copy = tmp_path / "runs"
    shutil.copytree(runs / "b-digits-knn3", copy / "b-digits-knn3")
    shutil.copytree(runs / "a-digits-knn1", copy / "a-digits-knn1")
    shutil.copytree(runs / "a-digits-knn1", copy / "zz-copy")
    weights = next((copy / "zz-copy").glob("model.*[!n]"))
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with TestClient(create_app(copy / "b-digits-knn3", copy, onnx=False)) as c:
        [other] = [m for m in c.get("/api/models").json()["models"] if not m["active"]]
        answer = c.post(f"/api/predict?model={other['id']}", content=_png(), headers=PNG)
        assert answer.status_code == 200 and answer.json()["model_id"] == other["id"], answer.text


# ---------------------------------------------------------------------------------------------
# Schemathesis on the collecting routes (tests/test_api_fuzz.py fuzzes a server that does not collect)

COLLECT_OPERATIONS = [("GET", "/api/samples"), ("POST", "/api/samples"), ("POST", "/api/samples/image"),
                      ("DELETE", "/api/samples/{sample_id}")]


@pytest.mark.parametrize(("method", "path"), COLLECT_OPERATIONS, ids=[f"{m} {p}" for m, p in COLLECT_OPERATIONS])
def test_collecting_routes_answer_every_generated_request_within_their_contract(client, method, path):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operation = schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @seed(0)
    @given(case=cases)
    @settings(max_examples=int(os.environ.get("DIGITLAB_COLLECT_FUZZ_CASES", "25")), deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def one_request(case) -> None:
        response = case.call()
        assert response.status_code < 500, response.text[:300]
        if response.status_code >= 400:
            _one_line(response, response.status_code)
        elif method != "DELETE":  # a generated id never names a sample
            case.validate_response(response, checks=[schemathesis.checks.response_schema_conformance])

    one_request()


def test_a_drawing_is_saved_while_large_photos_hold_every_decode_turn(client):
    """A reviewer: the page's save took a turn of the decode gate, so with photos holding them all it was 503."""
    gate = client.app.state.gate
    taken = 0
    while gate.turns.value:  # every turn, and every pixel
        client.portal.call(gate.turns.acquire)
        taken += 1
    assert gate.pixels.take(gate.pixels.total)
    try:
        saved = client.post("/api/samples?label=1&writer=busy", content=_png(977, size=100), headers=PNG)
    finally:
        gate.pixels.give(gate.pixels.total)
        for _ in range(taken):
            client.portal.call(gate.turns.release)
    assert saved.status_code == 201, saved.text


def test_a_chosen_run_deleted_while_serving_answers_no_more(runs, data_dir, tmp_path):
    """An engineer: a run moved out of runs/ (a model fine-tuned on a student's writing, removed) still answered
    ?model= from memory until the server restarted."""
    copy = tmp_path / "runs"
    shutil.copytree(runs / "b-digits-knn3", copy / "b-digits-knn3")
    shutil.copytree(runs / "a-digits-knn1", copy / "a-digits-knn1")
    with TestClient(create_app(copy / "b-digits-knn3", copy, onnx=False)) as c:
        other = next(m["id"] for m in c.get("/api/models").json()["models"] if not m["active"])
        assert c.post(f"/api/predict?model={other}", content=_png(), headers=PNG).status_code == 200
        shutil.move(copy / "a-digits-knn1", tmp_path / "kept-elsewhere")
        assert "GET /api/models" in _one_line(c.post(f"/api/predict?model={other}", content=_png(), headers=PNG), 404)
        assert other not in c.app.state.models.cached


def test_a_forest_saved_with_every_core_serves_each_request_on_one(tmp_path, data_dir):
    """An engineer: a random forest stored with n_jobs=-1 started a pool of threads for each drawing, 43.5 ms a
    prediction against 12.5 ms with one."""
    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    digits = load_dataset("digits")
    fitted = train("forest", digits, params={"n_estimators": 10})
    assert fitted.model.n_jobs == -1
    save_model(fitted, digits, tmp_path / "forest", metrics={"accuracy": 0.9})
    with TestClient(create_app(tmp_path / "forest", tmp_path, onnx=False)) as c:
        assert c.app.state.served.estimator.n_jobs == 1
        assert c.post("/api/predict", content=_png(), headers=PNG).status_code == 200


def test_at_most_a_few_chosen_models_stay_loaded(runs, data_dir, tmp_path):
    from digitlab.data import load_dataset
    from digitlab.serve.choice import CACHED
    from digitlab.store import save_model
    from digitlab.train import train

    digits = load_dataset("digits")
    folder = tmp_path / "runs"
    shutil.copytree(runs / "b-digits-knn3", folder / "b-digits-knn3")
    for k in range(5, 5 + CACHED + 1):  # one more than the cache holds
        save_model(train("knn", digits, params={"n_neighbors": k}), digits, folder / f"knn{k}", metrics={"accuracy": 0.9})
    with TestClient(create_app(folder / "b-digits-knn3", folder, onnx=False)) as c:
        others = [m["id"] for m in c.get("/api/models").json()["models"] if not m["active"]]
        assert len(others) == CACHED + 1
        for model_id in others + others[-1:]:
            assert c.post(f"/api/predict?model={model_id}", content=_png(), headers=PNG).json()["model_id"] == model_id
        assert c.app.state.models.cached == others[1:]  # the least recently used went


def test_behind_a_root_path_the_limits_and_the_collecting_checks_still_hold(runs, data_dir):
    """``uvicorn --root-path /digits`` (an app mounted under a proxy's prefix) puts the prefix in the path the
    middlewares see; they check the route's own path, as the router does."""
    huge = {"content-type": "image/png", "content-length": str(MAX_BODY + 1)}
    with TestClient(create_app(runs / "b-digits-knn3", runs, onnx=False), root_path="/digits") as off:
        assert "limit" in _one_line(off.post("/digits/api/predict", content=b"x" * (MAX_BODY + 1), headers=huge), 413)
        assert off.post("/digits/api/predict", content=_png(60), headers=PNG).status_code == 200  # on to /image
        assert _one_line(off.post("/digits/api/samples?label=3", content=_png(61), headers=PNG), 403) == OFF
    with TestClient(create_app(runs / "b-digits-knn3", runs, onnx=False, collect="rooted"),
                    root_path="/digits") as on:
        evil = {**PNG, "origin": "http://evil.example", "sec-fetch-site": "cross-site"}
        assert "refused" in _one_line(on.post("/digits/api/samples?label=3", content=_png(62), headers=evil), 403)
        assert on.post("/digits/api/samples?label=3", content=_png(62), headers=PNG).status_code == 201
    assert len(HandwritingSet.open("rooted").samples()) == 1


def test_a_set_that_cannot_be_written_is_refused_at_start(runs, data_dir):
    """A teacher's `serve --collect emma` with the set on a read-only share started in silence; each student's
    drawing was then refused (HTTP 507), the teacher's terminal silent (a school's audit). A new set was refused."""
    from conftest import run_read_only

    store = HandwritingSet.open("on-a-share", create=True)
    store.add(_png(1), 1, writer="emma")
    said = run_read_only(store.folder, "serve", "--model", str(runs / "b-digits-knn3"), "--port", str(_free_port()),
                         "--collect", "on-a-share", env={"DIGITLAB_DATA": str(data_dir)})
    assert said.returncode == 2 and said.stderr.strip().splitlines()[-1].startswith("error: handwriting set "
                                                                                    "'on-a-share': no sample could "
                                                                                    "be saved in"), said.stderr
    assert "Read-only file system" in said.stderr or "Permission denied" in said.stderr
    assert len(HandwritingSet.open("on-a-share").samples()) == 1


def test_a_sample_the_server_may_not_read_does_not_turn_saves_into_errors(runs, data_dir, monkeypatch):
    """A reviewer: with one sample the server could not read (a teacher's import under umask 077), every save landed
    and was then answered 400 "... nothing was changed" (the counts after it read every sample), an undo too. As
    root no mode refuses a read, so open() gives the OS's answer for that one file."""
    from digitlab.data import handwriting

    store = HandwritingSet.open("umask-077", create=True)
    theirs, _ = store.add(_png(1), 1, writer="teacher")
    refused, real_open = store.folder / "prepared" / f"{theirs.id}.png", handwriting.Image.open

    def open_as_the_server(path, *args, **kwargs):
        if isinstance(path, (str, Path)) and Path(path) == refused:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(handwriting.Image, "open", open_as_the_server)
    with TestClient(create_app(runs / "b-digits-knn3", runs, onnx=False, collect="umask-077")) as c:
        saved = c.post("/api/samples?label=2&writer=kid", content=_png(2), headers=PNG)
        assert saved.status_code == 201 and saved.json()["total"] == 2, saved.text
        assert c.get("/api/samples").status_code == 200
        assert c.delete(f"/api/samples/{saved.json()['sample']['id']}").status_code == 200
    assert [s.writer for s in HandwritingSet.open("umask-077").records()] == ["teacher"]


def test_the_log_of_a_save_names_no_student(client, caplog):
    """A privacy audit: without --access-log, each save was logged with the writer's name, a service manager keeping
    every student's in its journal (the README says a line per request needs --access-log)."""
    import logging

    with caplog.at_level(logging.INFO, logger="digitlab"):
        saved = client.post("/api/samples?label=4&writer=Zoe%20Quenby", content=_png(44), headers=PNG)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("digitlab")]  # not the test client's own
    assert saved.status_code == 201 and f"saved sample {saved.json()['sample']['id']} (4) into 'class-7b'" in said
    assert not [line for line in said if "Zoe" in line], said


def test_bytes_after_a_drawing_s_end_are_not_kept_and_a_nearly_full_disk_takes_no_more(client, monkeypatch):
    """A security audit: a 600-byte drawing padded with 5 MiB was kept "as it arrived", 5 MiB a save every 35 ms,
    until the class's disk was full. Now only the picture is kept, and below MIN_FREE nothing is saved."""
    import collections

    from digitlab.serve import collect

    picture = _png(77)
    saved = client.post("/api/samples?label=7&writer=Mallory", content=picture + os.urandom(1 << 20), headers=PNG)
    assert saved.status_code == 201, saved.text
    store = HandwritingSet.open("class-7b")
    [sample] = [s for s in store.samples() if s.id == saved.json()["sample"]["id"]]
    assert store.original_bytes(sample) == picture
    import struct
    import zlib

    padding = os.urandom(1 << 20)  # in a private chunk before IEND, which Pillow skips (a reviewer)
    chunk = struct.pack(">I", len(padding)) + b"prVt" + padding + struct.pack(">I", zlib.crc32(b"prVt" + padding))
    padded = picture[:-12] + chunk + picture[-12:]
    said = _one_line(client.post("/api/samples?label=7&writer=Mallory", content=padded, headers=PNG), 413)
    assert "far more than its 12,544 pixels need" in said

    def padded_to(total):  # the bound is 8 bytes a pixel and 64 KiB: 165,888 bytes for 112x112 (a test auditor)
        fill = total - len(picture) - 12
        return picture[:-12] + struct.pack(">I", fill) + b"prVt" + bytes(fill) + struct.pack(
            ">I", zlib.crc32(b"prVt" + bytes(fill))) + picture[-12:]

    bound = 8 * 12_544 + (64 << 10)
    assert client.post("/api/samples?label=7&writer=Mallory", content=padded_to(bound + 1), headers=PNG
                       ).status_code == 413
    assert client.post("/api/samples?label=7&writer=Mallory", content=padded_to(bound), headers=PNG
                       ).status_code == 201
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(collect.shutil, "disk_usage", lambda folder: usage(1 << 40, 1 << 40, collect.MIN_FREE - 1))
    said = _one_line(client.post("/api/samples?label=3&writer=Ada", content=_png(78), headers=PNG), 507)
    assert "under 256 MiB free; nothing was saved" in said
    assert not [s for s in HandwritingSet.open("class-7b").samples() if s.label == 3 and s.writer == "Ada"
                and store.original_bytes(s) == _png(78)]


def test_a_damaged_sample_is_logged_once_not_at_every_count(client, data_dir, caplog):
    """A soak test: every GET of the counts (two as the page loads, one with each save) warned of every broken
    sample again, 200 lines for 10 GETs with 20 pictures gone: about 60,000 a lesson for a class."""
    import logging

    saved = [client.post(f"/api/samples?label=5&writer=Soak{i}", content=_png(i, size=93 + i), headers=PNG).json()
             for i in range(2)]
    for answer in saved:
        (original,) = (data_dir / "handwriting" / "class-7b" / "originals").glob(f"{answer['sample']['id']}.*")
        original.unlink()
    with caplog.at_level(logging.WARNING, logger="digitlab.serve"):
        for _ in range(5):
            assert client.get("/api/samples").status_code == 200
    said = [r.getMessage() for r in caplog.records if "original picture is missing" in r.getMessage()]
    assert len(said) == 2 and {a["sample"]["id"] for a in saved} == {m.split()[4] for m in said}, said
