"""A real browser draws on the page: Playwright (Python) driving Debian's chromium package.

The test starts the real app on uvicorn on a free loopback port, draws a digit with the mouse,
and checks the prediction and the ten bars. Screenshots go to ``test-output/browser/``.
Chromium is installed with apt when it is missing (the machine runs as root); Playwright's
own browser download is not used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("playwright.sync_api")

OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "browser"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium() -> str:
    """Path of Debian's chromium, installing it with apt when missing."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and apt-get (as root) is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"could not install chromium with apt: {done.stderr.strip().splitlines()[-1:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt installed chromium but it is not on PATH")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app, logistic regression on the 8×8 digits, on uvicorn in a background thread."""
    import uvicorn

    from digitlab.data import load_dataset
    from digitlab.serve.app import create_app
    from digitlab.store import save_model
    from digitlab.train import train

    runs = tmp_path_factory.mktemp("runs")
    digits = load_dataset("digits")
    save_model(train("logreg", digits), digits, runs / "digits-logreg", metrics={"accuracy": 0.9667})
    port = _free_port()
    config = uvicorn.Config(create_app(runs / "digits-logreg", runs), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(server)
    page.wait_for_function("document.getElementById('model-name').textContent !== '…'")
    yield page
    context.close()
    assert not errors, f"the page logged errors: {errors}"


def _stroke(page, points: list[tuple[float, float]], steps: int = 8) -> None:
    """Draw one stroke with the mouse through ``points`` given as fractions of the canvas."""
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def _bars(page) -> list[float]:
    """Each bar's drawn length, in percent of its track (as rendered, not just as styled)."""
    return page.eval_on_selector_all(
        "#bars .bar",
        "bars => bars.map(b => 100 * b.getBoundingClientRect().width / b.parentElement.getBoundingClientRect().width)",
    )


def test_drawing_a_one_shows_the_prediction_and_the_bars(page):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    assert page.locator("#model-name").inner_text() == "logreg on digits"
    assert page.locator("#model-accuracy").inner_text() == "96.67%"
    assert page.locator("#prediction").inner_text() == "?"

    sent = []
    page.on("request", lambda r: sent.append((r.url, r.headers.get("content-type")))
            if "/api/predict" in r.url else None)
    _stroke(page, [(0.5, 0.12), (0.5, 0.88)])
    page.wait_for_function("document.getElementById('prediction').textContent !== '?'")
    page.wait_for_function("!document.getElementById('status').textContent.startsWith('Reading')")
    page.wait_for_timeout(300)  # let a last in-flight answer land

    assert page.locator("#prediction").inner_text() == "1"
    widths = _bars(page)
    assert len(widths) == 10
    assert abs(sum(widths) - 100) < 1.5  # ten probabilities, in percent
    assert max(widths) == widths[1] and page.locator("#bars li.top").get_attribute("data-digit") == "1"
    assert page.locator("#status").inner_text().endswith(page.locator("#model-id").inner_text())
    seen = page.evaluate("""() => {
        const c = document.getElementById('input-view');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let bright = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) bright++;
        return bright;
    }""")
    assert seen > 0  # the 8×8 input the model saw is drawn
    # the page sends its drawing shrunk to 112 px, as the PNG body itself, and asks for the input echo
    assert sent
    url, content_type = sent[-1]
    assert url.endswith("/api/predict?input=true") and content_type == "image/png"
    kind, width, height = page.evaluate("""async () => {
        const b = await shrunk(); const m = await createImageBitmap(b); return [b.type, m.width, m.height]; }""")
    assert (kind, width, height) == ("image/png", 112, 112)
    page.screenshot(path=str(OUTPUT / "page-one.png"), full_page=True)


def test_a_seven_then_undo_and_clear(page):
    _stroke(page, [(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)])
    page.wait_for_function("document.getElementById('prediction').textContent !== '?'")
    page.wait_for_timeout(400)
    assert page.locator("#prediction").inner_text() == "7"
    page.screenshot(path=str(OUTPUT / "page-seven.png"), full_page=True)

    _stroke(page, [(0.3, 0.55), (0.7, 0.55)])  # a bar across: still a 7 or not, the bars move
    page.wait_for_timeout(400)
    page.click("#undo")
    page.wait_for_timeout(400)
    assert page.locator("#prediction").inner_text() == "7"

    page.click("#clear")
    page.wait_for_timeout(300)  # the bars shrink with a short transition
    assert page.locator("#prediction").inner_text() == "?"
    assert max(_bars(page)) < 0.5


def test_touch_like_pointer_and_blank_canvas_never_errors(page):
    # a click without movement is a dot: the server may be unsure, but the page shows an answer
    box = page.locator("#pad").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("document.getElementById('prediction').textContent !== '?'")
    assert "error" not in (page.locator("#status").get_attribute("class") or "")
