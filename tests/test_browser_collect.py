"""Collecting on the page, in a real browser: ``digitlab serve --collect`` on loopback, Playwright + chromium.

A student draws a digit with the mouse and presses the right digit's button: the sample is in the
handwriting set on disk with that label and writer; Undo removes it. In guided mode the page prompts
"Draw a N", the progress counter advances with each save, and the sample is saved as the prompted
digit. A second run offers a model choice: choosing it sends ``?model=ID`` and the answer names it.
Screenshots go to ``test-output/browser/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("playwright.sync_api")

from test_browser import OUTPUT, _free_port, _stroke  # noqa: E402

from digitlab.data.handwriting import HandwritingSet  # noqa: E402


@pytest.fixture(scope="module")
def collecting(tmp_path_factory):
    """``digitlab serve --collect`` (a real process; the set 'mine') over two saved runs."""
    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    runs = tmp_path_factory.mktemp("runs")
    data = tmp_path_factory.mktemp("data")
    digits = load_dataset("digits")
    save_model(train("logreg", digits), digits, runs / "b-digits-logreg", metrics={"accuracy": 0.9667})  # as the page's tests
    save_model(train("knn", digits), digits, runs / "a-digits-knn",  # measured as a fine-tuned run is: on a few
               metrics={"accuracy": 1.0, "n_test": 17, "ci95": [0.8157, 1.0]},
               finetuned_from={"set": "mine", "accuracy_before": 0.8824, "mnist_accuracy": [0.9956, 0.9955]})
    port = _free_port()
    env = {**os.environ, "DIGITLAB_DATA": str(data), "DIGITLAB_SERVE_ONNX": "0", "COLUMNS": "200"}
    log = open(data / "serve.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "digitlab", "serve", "--model", str(runs / "b-digits-logreg"), "--runs", str(runs),
         "--collect", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    previous = os.environ.get("DIGITLAB_DATA")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((data / "serve.log").read_text())
                time.sleep(0.2)
        assert "collecting samples into handwriting set 'mine'" in (data / "serve.log").read_text()
        os.environ["DIGITLAB_DATA"] = str(data)  # where this test reads the set back
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    if previous is None:
        os.environ.pop("DIGITLAB_DATA", None)
    else:
        os.environ["DIGITLAB_DATA"] = previous


@pytest.fixture
def page(browser, collecting):
    """A fresh page (its own storage) on the collecting server."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # the 422s, 409s, 503s and lost requests this module provokes on purpose (a refused writer's name, a picture
    # saved by another writer, a server restarting or away) are logged by chromium; nothing else may be
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not any(
        said in msg.text for said in ("status of 422", "status of 409", "status of 503", "ERR_FAILED")) else None)
    page.goto(collecting)
    page.wait_for_function("!document.getElementById('collect-panel').hidden")
    yield page
    context.close()
    assert not errors, errors


def _four() -> bytes:
    import io

    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (160, 200), "white")
    ImageDraw.Draw(picture).line([(100, 20), (30, 130), (140, 130)], fill="black", width=14)
    ImageDraw.Draw(picture).line([(100, 20), (100, 185)], fill="black", width=14)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


FOUR = _four()


def _samples() -> list:
    return HandwritingSet.open("mine").samples()


def _answered(page) -> None:
    page.wait_for_function("document.getElementById('prediction').textContent !== '?'")
    page.wait_for_timeout(300)  # let a last in-flight answer land


def test_draw_say_which_digit_save_and_undo(page):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    before = len(_samples())
    page.fill("#writer", "Ada")
    page.press("#writer", "Tab")  # the name is checked and remembered when it changes
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Ada')")
    _stroke(page, [(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)])  # a 7
    _answered(page)
    assert page.locator("#right").is_visible() or page.locator("#digit-buttons").is_visible()
    page.screenshot(path=str(OUTPUT / "collect-answer.png"), full_page=True)
    page.click("#digit-buttons button[data-digit='7']")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 7')")
    samples = _samples()
    assert len(samples) == before + 1
    new = samples[-1]
    assert (new.label, new.writer, new.source) == (7, "Ada", "drawn")
    assert page.locator("#prediction").inner_text() == "?"  # the canvas is cleared for the next digit
    assert page.locator("#digit-counts li").nth(7).locator(".n").inner_text() == "1"
    assert page.evaluate("localStorage.getItem('digitlab-writer')") == "Ada"
    page.screenshot(path=str(OUTPUT / "collect-saved.png"), full_page=True)

    page.click("#undo-save")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Removed')")
    assert [s.id for s in _samples()] == [s.id for s in samples[:-1]]
    assert page.locator("#digit-counts li").nth(7).locator(".n").inner_text() == "0"

    # a picture file sent to the page is saved as it came, as a photo; the key 4 saves it as a 4
    page.set_input_files("#upload", files=[{"name": "four.png", "mimeType": "image/png", "buffer": FOUR}])
    page.wait_for_function("document.getElementById('status').textContent.startsWith('four.png')")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("4")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 4')")
    photo = _samples()[-1]
    assert (photo.label, photo.source, photo.writer) == (4, "photo", "Ada")
    assert HandwritingSet.open("mine").original_bytes(photo) == FOUR

    page.reload()  # the name is remembered by the browser
    page.wait_for_function("!document.getElementById('collect-panel').hidden")
    assert page.input_value("#writer") == "Ada"

    # a name the set refuses: said at once, and a save is refused in one line with the drawing kept
    page.fill("#writer", "Ada/B")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('writer-error').textContent.includes('cannot contain')")
    count = len(_samples())
    _stroke(page, [(0.5, 0.12), (0.5, 0.88)])
    _answered(page)
    page.click("#digit-buttons button[data-digit='1']")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Not saved')")
    page.wait_for_function("document.getElementById('prediction').textContent !== '?'")  # the drawing is back
    assert len(_samples()) == count and page.evaluate("strokes.length") == 1
    assert page.evaluate("localStorage.getItem('digitlab-writer')") == "Ada"  # the refused name is not kept


def test_undo_never_takes_back_another_students_save(page):
    """A teacher, one computer for the class: Ben's save was refused (the very picture Ada had saved), and Undo,
    still shown beside the refusal, removed Ada's sample; pressed again, the one before it."""
    seven = [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]
    page.fill("#writer", "Ada")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Ada')")
    _stroke(page, seven)
    _answered(page)
    page.click("#digit-buttons button[data-digit='7']")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 7')")
    ada = _samples()[-1]
    assert ada.writer == "Ada" and page.locator("#undo-save").is_visible()
    page.fill("#writer", "Ben")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Ben')")
    assert not page.locator("#undo-save").is_visible()  # Ada's save is not Ben's to undo
    _stroke(page, seven)  # the same strokes: the same picture, which the set already holds as Ada's
    _answered(page)
    page.click("#digit-buttons button[data-digit='7']")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Not saved')")
    assert not page.locator("#undo-save").is_visible()
    assert ada.id in [s.id for s in _samples()]

    # a reviewer: Ada's save still on its way when Ben types his name was filed as Ben's, to undo
    page.evaluate("""() => { const send = window.fetch; window.fetch = (url, options) =>
        options && options.method === 'POST' && String(url).startsWith('/api/samples')
          ? new Promise((wait) => setTimeout(wait, 1500)).then(() => send(url, options)) : send(url, options); }""")
    page.fill("#writer", "Ada")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Ada')")
    _stroke(page, [(0.3, 0.2), (0.3, 0.5), (0.7, 0.5), (0.7, 0.2), (0.7, 0.85)])  # a 4
    _answered(page)
    page.click("#digit-buttons button[data-digit='4']")
    page.fill("#writer", "Ben")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 4')")
    assert not page.locator("#undo-save").is_visible() and _samples()[-1].writer == "Ada"


def test_a_saved_drawing_is_the_picture_the_page_had_answered_for(page, collecting):
    """The page judged a 112-px copy and saved the 400-px canvas: a teacher's scribble, "not a digit" on the page,
    was a sure 7 in the report made from the set. The set now holds the very picture the page sent."""
    import io
    import json

    from PIL import Image

    page.evaluate("document.addEventListener('digitlab:answer', (e) => { window.shown = e.detail; })")
    _stroke(page, [(0.3, 0.3), (0.7, 0.35), (0.35, 0.6), (0.72, 0.7), (0.4, 0.85)])  # a scribble
    _answered(page)
    shown = page.evaluate("window.shown")
    page.click("#digit-buttons button[data-digit='8']")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 8')")
    original = HandwritingSet.open("mine").original_bytes(_samples()[-1])
    assert Image.open(io.BytesIO(original)).size == (112, 112)
    request = urllib.request.Request(collecting + "/api/predict", data=original, headers={"content-type": "image/png"})
    again = json.loads(urllib.request.urlopen(request, timeout=10).read())
    assert again["kind"] == shown["kind"] and again.get("digit") == shown["answer"].get("digit"), (again, shown)


def test_a_server_that_does_not_answer_is_said_beside_the_answer_and_in_the_save(page):
    """A teacher restarted the server mid-lesson: the page's only sign was a line below the fold, and the save
    that followed said "(the model was not sure)" though no model had answered."""
    _stroke(page, [(0.45, 0.15), (0.55, 0.85)])  # a 1 of its own: the set refuses a picture it holds as another digit
    _answered(page)
    page.route("**/api/predict**", lambda route: route.abort())  # the server is away while the rest is drawn
    _stroke(page, [(0.3, 0.45), (0.7, 0.45)])
    page.wait_for_function("document.getElementById('confidence').textContent.startsWith('No answer')")
    assert "did not answer" in page.locator("#confidence").inner_text()
    assert page.locator("#prediction").inner_text() == "?"  # not the answer for the drawing before the bar
    page.click("#digit-buttons button[data-digit='1']")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 1')")
    assert page.locator("#saved-text").inner_text() == "Saved as 1 ✓ with no name (the model had not answered)"
    page.unroute("**/api/predict**")


def test_while_waiting_for_the_server_the_answer_before_is_not_offered_to_save(page):
    """A reviewer: a 7 answered, then a stroke added while the server stalled; the page said "Waiting for the
    server…" and still offered "Right ✓ it's a 7", which saved the changed drawing as a 7."""
    _stroke(page, [(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)])
    _answered(page)
    held = []
    page.route("**/api/predict**", lambda route: held.append(route))
    _stroke(page, [(0.3, 0.5), (0.7, 0.5)])
    page.wait_for_function("document.getElementById('confidence').textContent === 'Waiting for the server…'")
    assert page.locator("#label-question").inner_text() == "Which digit did you draw?"
    assert "it's a 7" not in page.locator("#right").inner_text()
    page.unroute("**/api/predict**")


def test_the_next_drawing_is_never_wiped_by_the_save_before_it(page):
    """On a slow laptop the canvas's PNG takes a while: the pad is cleared when the button is pressed, not after,
    so a next digit begun at once is kept (Chromium's CPU slowed 6x, as a school laptop)."""
    page.fill("#writer", "Slow")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Slow')")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 6})
    for i, digit in enumerate((7, 1)):  # drawings of their own: an exact copy of a saved one is refused (409)
        _stroke(page, [(0.22 + 0.05 * i, 0.18), (0.7, 0.22), (0.45, 0.8 + 0.04 * i)])
        page.wait_for_function("!document.querySelector('#digit-buttons button').disabled")
        page.click(f"#digit-buttons button[data-digit='{digit}']")
        assert page.evaluate("strokes.length") == 0  # cleared as the button was pressed
        _stroke(page, [(0.48 + 0.06 * i, 0.14), (0.52, 0.86)])  # the next digit, begun while the last one is saved
        page.wait_for_function(f"document.getElementById('saved-text').textContent.startsWith('Saved as {digit}')")
        page.wait_for_timeout(500)
        assert page.evaluate("strokes.length") == 1, f"the stroke drawn after saving a {digit} was wiped"
        assert _samples()[-1].label == digit
        page.keyboard.press("Escape")
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})


def test_keys_save_after_drawing_even_with_the_name_box_last_clicked(page):
    """Drawing takes the keyboard focus from the name box, so the digit key saves instead of typing into it."""
    page.fill("#writer", "Gus")  # the cursor stays in the box
    _stroke(page, [(0.3, 0.25), (0.7, 0.3), (0.35, 0.5), (0.7, 0.75), (0.3, 0.8)])
    page.wait_for_function("!document.querySelector('#digit-buttons button').disabled")  # sure or not: it saves
    page.keyboard.press("3")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 3')")
    assert page.input_value("#writer") == "Gus"
    assert (_samples()[-1].label, _samples()[-1].writer) == (3, "Gus")


def test_guided_mode_prompts_and_counts(page):
    page.fill("#rounds", "2")
    page.check("#guided")
    assert page.locator("#prompt").is_visible()
    assert page.locator("#progress").inner_text().startswith("0 / 20")
    target = int(page.locator("#prompt-digit").inner_text())
    assert page.locator("#digit-buttons").is_hidden() and page.locator("#save-guided").is_disabled()
    _stroke(page, [(0.5, 0.12), (0.5, 0.88)])  # whatever was asked: the label is the prompted digit
    page.wait_for_function("!document.getElementById('save-guided').disabled")
    page.screenshot(path=str(OUTPUT / "collect-guided.png"), full_page=True)
    page.click("#save-guided")
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('1 / 20')")
    last = _samples()[-1]
    assert last.label == target
    page.keyboard.press("Escape")  # nothing drawn: Enter must not save a blank canvas
    _stroke(page, [(0.3, 0.3), (0.7, 0.7)])
    page.keyboard.press("Enter")  # Enter saves too
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 / 20')")
    page.click("#undo-save")  # undo steps the counter back
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('1 / 20')")
    assert _samples()[-1].id == last.id


def test_a_guided_run_goes_on_after_a_reload(page):
    """A teacher: a student's page reloaded mid-run began again at 0 of 20, and the class's counts came out uneven.
    Now the browser keeps an unfinished run for its set and writer: the same prompts, from where it was."""
    page.fill("#writer", "Cleo")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Cleo')")
    page.fill("#rounds", "2")
    page.check("#guided")
    asked = []
    for i, stroke in enumerate(([(0.5, 0.15), (0.45, 0.85)], [(0.3, 0.2), (0.7, 0.3), (0.35, 0.8)])):
        asked.append(int(page.locator("#prompt-digit").inner_text()))
        _stroke(page, stroke)
        page.wait_for_function("!document.getElementById('save-guided').disabled")
        page.click("#save-guided")
        page.wait_for_function(f"document.getElementById('progress').textContent.startsWith('{i + 1} / 20')")
    following = int(page.locator("#prompt-digit").inner_text())
    assert [s.label for s in _samples() if s.writer == "Cleo"][-2:] == asked
    page.reload()
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 / 20')")
    assert page.is_checked("#guided") and int(page.locator("#prompt-digit").inner_text()) == following
    assert page.locator("#saved-text").inner_text() == ("Guided: going on where Cleo left off · Your last save here "
                                                        f"was {'an' if asked[-1] == 8 else 'a'} {asked[-1]}: Undo "
                                                        "takes it back")
    # a reviewer: a save refused (the server restarting) put its prompt back, but the browser kept it as saved
    page.route("**/api/samples?*", lambda route: route.fulfill(status=503, content_type="application/json",
                                                                body='{"error": "the server is restarting"}')
               if route.request.method == "POST" else route.continue_())
    _stroke(page, [(0.3, 0.3), (0.7, 0.3), (0.5, 0.8)])
    page.wait_for_function("!document.getElementById('save-guided').disabled")
    page.click("#save-guided")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Not saved')")
    page.unroute("**/api/samples?*")
    page.reload()
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 / 20')")
    assert int(page.locator("#prompt-digit").inner_text()) == following
    page.uncheck("#guided")  # paused: a reload does not bring it back...
    page.reload()
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Cleo')")
    page.wait_for_timeout(300)
    assert not page.is_checked("#guided") and page.locator("#prompt").is_hidden()
    page.check("#guided")  # ...ticking it again does (a teacher: a new shuffle at 0 / 20)
    assert page.locator("#progress").inner_text().startswith("2 / 20")
    assert int(page.locator("#prompt-digit").inner_text()) == following
    page.fill("#writer", "Dora")  # another student at this computer: a run of her own, not the rest of Cleo's
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('0 / 20')")
    assert page.locator("#saved-text").inner_text() == "Guided: a new run for Dora"
    page.fill("#writer", "cleo")  # Cleo back, as she types it: hers again
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('2 / 20')")
    page.uncheck("#guided")
    page.fill("#writer", "Zoe")  # a new student ticks Guided straight after typing her name (the name's change comes
    page.click("#guided")  # first): a learner read "going on where Zoe left off" over "Zoe's samples per digit (0)"
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Zoe')")
    page.wait_for_timeout(500)
    assert page.locator("#progress").inner_text().startswith("0 / 20")
    assert "going on" not in page.locator("#saved-text").inner_text()


def test_a_save_with_no_name_is_said_so(page):
    """A teacher: drawings saved with the name box left empty went into the class's set with no writer, unsaid."""
    assert page.input_value("#writer") == "" and page.locator("#no-name").is_visible()
    _stroke(page, [(0.35, 0.2), (0.65, 0.2), (0.65, 0.8), (0.35, 0.8), (0.35, 0.2)])
    _answered(page)
    page.click("#digit-buttons button[data-digit='0']")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 0')")
    assert page.locator("#saved-text").inner_text().startswith("Saved as 0 ✓ with no name")
    assert _samples()[-1].writer is None
    page.fill("#writer", "Dora")  # typing is enough to hide it
    assert page.locator("#no-name").is_hidden()


def test_the_collecting_page_has_no_axe_violations(page):
    """The name box, the guided prompt, the save buttons and the counts pass axe-core as the drawing page does
    (test_accessibility): free mode with a drawing, then guided."""
    pytest.importorskip("axe_playwright_python")
    from test_accessibility import axe_violations

    _stroke(page, [(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)])
    _answered(page)
    free = axe_violations(page)
    page.check("#guided")
    assert (free, axe_violations(page)) == ([], [])


HOLD_SAVES = """() => {  // each POST /api/samples waits until the test lets it through, or answers 503 for it
  const send = window.fetch;
  window.held = [];
  window.fetch = (url, options) => String(url).includes("/api/samples?") ? new Promise((resolve) => window.held.push({
    pass: () => resolve(send(url, options)),
    fail: () => resolve(new Response('{"error": "busy"}',
                                     {status: 503, headers: {"Content-Type": "application/json"}})),
  })) : send(url, options);
}"""


def _prompt(page) -> int:
    return int(page.locator("#prompt-digit").inner_text())


def _save_guided(page, stroke) -> None:
    _stroke(page, stroke)
    page.wait_for_function("!document.getElementById('save-guided').disabled")
    page.click("#save-guided")
    page.wait_for_function("window.held.length === 1")


def test_a_guided_drawing_begun_while_the_last_one_is_saved_is_saved_as_the_digit_it_was_asked_for(page):
    """A teacher's class on a busy laptop: Save cleared the pad at once, but "Draw a 1" moved on only when the save
    came back, so a student who drew the 1 still asked for had it saved as the next prompt's digit."""
    page.fill("#writer", "Slow")
    page.fill("#rounds", "1")
    page.check("#guided")
    page.evaluate(HOLD_SAVES)
    first = _prompt(page)
    _save_guided(page, [(0.35, 0.15), (0.6, 0.2), (0.45, 0.9)])  # drawings of their own: a copy is refused (409)
    second = _prompt(page)  # the prompt moved on with the cleared pad, before the save came back
    assert second != first and page.locator("#progress").inner_text().startswith("0 / 10")  # counted once saved
    _stroke(page, [(0.25, 0.3), (0.75, 0.3), (0.5, 0.8)])  # the digit now asked for, drawn while the last is saved
    page.evaluate("window.held.shift().pass()")
    page.wait_for_function(f"document.getElementById('saved-text').textContent.startsWith('Saved as {first}')")
    assert _prompt(page) == second and page.evaluate("strokes.length") == 1
    assert page.locator("#progress").inner_text().startswith("1 / 10")
    page.wait_for_function("!document.getElementById('save-guided').disabled")
    page.click("#save-guided")
    page.wait_for_function("window.held.length === 1")
    page.evaluate("window.held.shift().pass()")
    page.wait_for_function(f"document.getElementById('saved-text').textContent.startsWith('Saved as {second}')")
    assert [s.label for s in _samples()[-2:]] == [first, second]


def test_a_guided_save_that_fails_asks_for_its_digit_again(page):
    """Not saved with the pad still blank: the drawing and its prompt come back. Not saved after the next digit was
    begun: that prompt stays (its drawing is of it), and the failed digit is asked for again at the end."""
    page.fill("#writer", "Busy")
    page.fill("#rounds", "1")
    page.check("#guided")
    page.evaluate(HOLD_SAVES)
    first = _prompt(page)
    _save_guided(page, [(0.4, 0.1), (0.55, 0.9)])
    page.evaluate("window.held.shift().fail()")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Not saved')")
    assert _prompt(page) == first and page.evaluate("strokes.length") == 1  # back as it was
    assert page.locator("#progress").inner_text().startswith("0 / 10")
    page.click("#save-guided")
    page.wait_for_function("window.held.length === 1")
    second = _prompt(page)
    assert second != first
    _stroke(page, [(0.2, 0.5), (0.8, 0.55)])  # the next digit begun before the save failed
    page.evaluate("window.held.shift().fail()")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Not saved')")
    assert _prompt(page) == second and page.evaluate("strokes.length") == 1
    assert page.locator("#progress").inner_text().startswith("0 / 10")  # the first digit not skipped: still to ask
    page.click("#save-guided")  # guided mode begun again while a save is on its way (a reviewer): when it fails,
    page.wait_for_function("window.held.length === 1")  # its drawing must not come back under the new run's prompt
    page.uncheck("#guided")
    page.check("#guided")
    page.evaluate("window.held.shift().fail()")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Not saved')")
    assert page.evaluate("strokes.length") == 0 and page.locator("#save-guided").is_disabled()


def test_a_drawing_the_model_calls_no_digit_is_not_asked_for_as_one(page):
    """A newcomer: a zig-zag the page called "not a digit" was met with "The model is not sure. Which digit is it?",
    inviting a class to save scribbles as digits."""
    _stroke(page, [(0.2, 0.3), (0.4, 0.7), (0.6, 0.3), (0.8, 0.7)])
    _answered(page)
    # the detector's answer, the question it brings and the press of "4" in one turn of the page's script, so that
    # a late answer from the server (this model has no detector) cannot land in between
    question = page.evaluate("""() => {
        document.dispatchEvent(new CustomEvent('digitlab:answer',
            {detail: {kind: 'not_a_digit', answer: {digit: 4, probability: 0.93}}}));
        const asked = [document.getElementById('label-question').textContent,
                       document.getElementById('keys').textContent];
        [...document.querySelectorAll('#digit-buttons button')].find((b) => b.textContent.trim() === '4').click();
        return asked;
    }""")
    question, keys = question
    assert question.startswith("To the model that is no digit at all. If it is one, which?") and "not sure" not in question
    # no "Enter: Right" without a Right button, and a key must be pressed twice for what the model calls no digit
    assert keys == "Keys: 0–9 pressed twice save as that digit · Esc clears"  # (a teacher)
    page.wait_for_function("document.getElementById('saved').textContent.startsWith('Saved')")
    assert page.locator("#saved").inner_text().startswith("Saved as 4 ✓ with no name (the model did not take it for a digit)")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "collect-not-a-digit.png"), full_page=True)

def test_a_key_saves_what_the_model_calls_no_digit_only_pressed_twice(page):
    """A teacher: one stray key press saved a scribble the model had turned away into the class's set."""
    before = len(_samples())
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/api/samples" in r.url else None)
    _stroke(page, [(0.2, 0.7), (0.35, 0.25), (0.5, 0.7), (0.65, 0.25), (0.8, 0.7)])  # another scribble than above
    _answered(page)
    # the detector's answer and the presses in one turn of the page's script: no late answer lands in between
    first = page.evaluate("""() => {
        document.dispatchEvent(new CustomEvent('digitlab:answer',
            {detail: {kind: 'not_a_digit', answer: {digit: 4, probability: 0.93}}}));
        document.dispatchEvent(new KeyboardEvent('keydown', {key: '4'}));
        const said = document.getElementById('saved-text').textContent;
        document.dispatchEvent(new KeyboardEvent('keydown', {key: '7'}));  // another digit: asked again, for it
        const again = document.getElementById('saved-text').textContent;
        document.dispatchEvent(new KeyboardEvent('keydown', {key: '7'}));
        return [said, again];
    }""")
    assert first == ["Press 4 again to save this as a 4: the model did not take it for a digit",
                     "Press 7 again to save this as a 7: the model did not take it for a digit"]
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 7')")
    assert len(posts) == 1 and len(_samples()) == before + 1 and _samples()[-1].label == 7


def test_undo_after_a_reload_in_guided_mode_asks_its_digit_again(page):
    """A reviewer: Undo kept through a reload was hidden again by the guided run coming back, the classroom's case."""
    page.fill("#writer", "Dora")
    page.press("#writer", "Tab")
    page.wait_for_function("document.getElementById('counts-title').textContent.startsWith('Dora')")
    page.fill("#rounds", "1")
    page.check("#guided")
    asked = int(page.locator("#prompt-digit").inner_text())
    _stroke(page, [(0.45, 0.15), (0.55, 0.85)])
    page.wait_for_function("!document.getElementById('save-guided').disabled")
    page.click("#save-guided")
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('1 / 10')")
    page.reload()
    page.wait_for_function("!document.getElementById('undo-save').hidden")
    assert "Guided: going on where Dora left off · Your last save here was" in page.locator("#saved-text").inner_text()
    page.click("#undo-save")
    page.wait_for_function("document.getElementById('progress').textContent.startsWith('0 / 10')")
    assert int(page.locator("#prompt-digit").inner_text()) == asked  # its digit is asked again
    assert not any(s.writer == "Dora" for s in _samples())


def test_undo_survives_a_reload_of_the_tab(page):
    """A teacher: a student reloaded the page, and the wrong save they had just made could no longer be undone."""
    before = [s.id for s in _samples()]
    _stroke(page, [(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)])
    _answered(page)
    page.click("#digit-buttons button[data-digit='1']")  # pressed wrong: it is a 7
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 1')")
    page.reload()
    page.wait_for_function("!document.getElementById('undo-save').hidden")
    assert page.locator("#saved-text").inner_text() == "Your last save here was a 1: Undo takes it back"
    page.click("#undo-save")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Removed the 1')")
    assert [s.id for s in _samples()] == before
    page.reload()  # taken back: nothing left to undo
    page.wait_for_function("document.getElementById('set-info').textContent.startsWith('Saving into')")
    page.wait_for_timeout(300)
    assert page.locator("#undo-save").is_hidden()


def test_choosing_another_model_sends_its_id(page):
    assert page.locator("#model-choice").is_visible()
    options = page.eval_on_selector_all("#model-select option", "os => os.map(o => o.value)")
    assert len(options) == 2
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/api/predict" in r.url else None)
    page.select_option("#model-select", options[1])
    assert page.locator("#model-name").inner_text() == "knn on digits"
    # 100% of 17 is not better than 96.67% of 360: the page says how few, and the interval (a teacher); and a
    # fine-tuned run's base model on those samples, and MNIST (78% of 59 beside 99.56% read as worse: a teacher)
    assert page.locator("#model-accuracy").inner_text() == (
        "100% of 17 held-out mine samples (95% interval 81.6–100%; before fine-tuning 88.2%) · 99.55% on MNIST")
    labels = page.eval_on_selector_all("#model-select option", "os => os.map(o => o.textContent)")
    assert labels[1].startswith(  # with its base model's figure on the same samples: two runs' are on different ones
        "knn on digits · 100% on 17 held-out mine samples (88.2% before), 99.55% on MNIST · a-digits-knn")
    _stroke(page, [(0.5, 0.12), (0.5, 0.88)])
    page.wait_for_function("document.getElementById('status').textContent.includes('answered')")
    assert sent and sent[-1].endswith(f"model={options[1]}")
    assert page.locator("#status").inner_text().endswith(options[1])
    page.select_option("#model-select", options[0])  # back to the served model: no ?model= at all
    sent.clear()
    _stroke(page, [(0.3, 0.5), (0.7, 0.5)])
    page.wait_for_timeout(500)
    assert sent and "model=" not in sent[-1]


def test_a_page_opened_after_its_set_was_deleted_says_so(browser, collecting):
    """A teacher deleted the set (data remove --all) while the server ran: a reloaded page showed nothing at all,
    though the server's 409 said what to do. The answer is fed by a route: deleting would end this module's set."""
    import json

    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    said = ("handwriting set 'mine' was deleted while in use (digitlab data remove); restart "
            "`digitlab serve --collect mine` to collect into a new one")
    page.route("**/api/samples*", lambda route: route.fulfill(
        status=409, content_type="application/json", body=json.dumps({"error": said})))
    page.goto(collecting)
    page.wait_for_function("document.getElementById('writer-error').textContent !== ''")
    assert page.locator("#writer-error").text_content() == said
    assert page.locator("#collect-bar").is_visible() and not page.locator("#collect-panel").is_visible()
    _stroke(page, [(0.5, 0.12), (0.5, 0.88)])  # a drawing answered: the line stays (a reviewer: it went)
    page.wait_for_function("document.getElementById('prediction').textContent !== '?'")
    page.wait_for_timeout(300)
    assert page.locator("#collect-bar").is_visible() and page.locator("#writer-error").text_content() == said
    context.close()


def test_a_page_from_another_site_cannot_post_into_the_set(browser, collecting, tmp_path):
    """The attack a collecting server invites: another site, open in a student's browser, posts a picture
    (a form-style multipart request, which needs no permission from the server; it saved a sample before
    the server checked where saves come from). The set on disk is unchanged. (A cross-site DELETE never
    leaves the browser without the server's CORS consent; the API tests check its refusal all the same.)"""
    import base64
    import functools
    import http.server
    import threading

    saved = [s.id for s in _samples()]
    (tmp_path / "evil.html").write_text(f"""<!doctype html><script>
    async function attack(target) {{
      const png = Uint8Array.from(atob("{base64.b64encode(FOUR).decode()}"), c => c.charCodeAt(0));
      const form = new FormData();
      form.append("image", new Blob([png], {{type: "image/png"}}), "x.png");
      await fetch(target + "/api/samples?label=4&writer=Mallory", {{method: "POST", mode: "no-cors", body: form}});
      return "sent";
    }}</script>""")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://localhost:{evil.server_address[1]}/evil.html")  # another origin than the server's
        assert page.evaluate(f"attack({collecting!r})") == "sent"
        page.wait_for_timeout(300)
    finally:
        context.close()
        evil.shutdown()
    assert [s.id for s in _samples()] == saved
    assert "Mallory" not in {s.writer for s in _samples()}


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080)])
def test_the_collecting_page_fits_a_projector(browser, collecting, width, height):
    """A teacher: at 1280×720 the guided pad's foot and its Undo / Clear buttons fell below the screen; at 1920×1080
    the page stayed its laptop size, its number labels 11 px. Now the pad shrinks to fit, and a full-HD screen gets
    everything a quarter larger."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(collecting)
        page.wait_for_function("!document.getElementById('collect-panel').hidden")
        page.check("#guided")
        clear = page.locator("#clear").bounding_box()
        assert clear["y"] + clear["height"] <= height, clear
        pad = page.locator("#pad").bounding_box()
        assert pad["width"] >= (256 if height < 800 else 500), pad  # 322 at 720; the full 25rem of 20 px at 1080
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"collect-guided-{width}x{height}.png"))
    finally:
        context.close()


@pytest.mark.parametrize("guided", [False, True])
def test_on_a_phone_the_save_buttons_are_on_screen_with_the_whole_pad(browser, collecting, guided):
    """A class on phones (360×740): the buttons to save each drawing lay 300 px under the screen's foot, below the
    answer, so each of fifty drawings meant scrolling down to save and back up to draw."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True)
    page = context.new_page()
    try:
        page.goto(collecting)
        page.wait_for_function("!document.getElementById('collect-panel').hidden")
        if guided:
            page.check("#guided")
        page.evaluate("window.scrollTo(0, document.getElementById('pad').getBoundingClientRect().top + scrollY - 8)")
        _stroke(page, [(0.25, 0.2 + 0.05 * guided), (0.75, 0.2), (0.4, 0.85)])  # a 7 each: the set takes a picture once
        _answered(page)
        pad = page.locator("#pad").bounding_box()
        button = page.locator("#save-guided" if guided else "#right").bounding_box()
        assert pad["y"] >= 0 and pad["y"] + pad["height"] <= button["y"], (pad, button)
        assert button["y"] + button["height"] <= 740, button
        page.screenshot(path=str(OUTPUT / f"collect-phone{'-guided' if guided else ''}.png"))
        page.click("#save-guided" if guided else "#right")  # guided: saved as the digit asked for
        page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as')")
    finally:
        context.close()


def test_what_the_model_saw_is_on_a_small_laptops_screen_while_collecting(page):
    """At 1000×800 the map of what the model saw lay under the class's buttons and the bars, its top at y = 831 with
    a CNN: below the screen. It now sits under the drawing: with a CNN at y = 651, 150 of its 170 px on screen; here,
    under the 8×8 model's warning and the model menu, its top (it was at y = 920)."""
    page.set_viewport_size({"width": 1000, "height": 800})
    _stroke(page, [(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)])
    _answered(page)
    page.evaluate("window.scrollTo(0, 0)")
    seen, pad = page.locator("#input-view").bounding_box(), page.locator("#pad").bounding_box()
    page.screenshot(path=str(OUTPUT / "collect-1000x800.png"))
    assert seen["y"] > pad["y"] + pad["height"] and seen["y"] < 800, (seen, pad)


def test_a_page_reached_by_a_name_the_server_does_not_take_says_what_to_do(collecting):
    """A reviewer: with `GET /api/samples` refused for a name not the server's (DNS rebinding), a class reaching the
    server by the school's DNS name saw the collecting controls vanish without a word; they now say why and how."""
    from playwright.sync_api import sync_playwright

    from test_browser import CHROMIUM_ARGS, _chromium

    import threading

    port = collecting.rstrip("/").rsplit(":", 1)[1]
    seen = {}

    def look() -> None:  # in a thread of its own: this module's browser holds this thread's Playwright
        with sync_playwright() as p:  # a browser whose DNS sends school.example to this machine
            browser = p.chromium.launch(executable_path=_chromium(), headless=True,
                                        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP school.example 127.0.0.1"])
            try:
                page = browser.new_page()
                page.goto(f"http://school.example:{port}/")
                page.wait_for_function("document.getElementById('writer-error').textContent.length > 0")
                seen.update(bar=page.locator("#collect-bar").is_visible(), said=page.locator("#writer-error").inner_text())
            finally:
                browser.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(60)
    assert seen.get("bar") is True, seen
    assert "the name 'school.example' was refused (start the server with --allow-host school.example" in seen["said"]


def test_a_digit_key_still_saves_after_a_bars_digit_was_clicked_for_its_map(page):
    """A reviewer: the bars' digits became buttons (for the keyboard), and a mouse click left the focus on one: the
    0-9 keys then no longer saved, and Enter asked for the map again instead of "Right"."""
    page.check("#explain")
    _stroke(page, [(0.3, 0.15), (0.3, 0.5), (0.7, 0.5)])
    _stroke(page, [(0.65, 0.15), (0.65, 0.9)])
    _answered(page)
    page.click("#bars li[data-digit='9'] .label")
    page.wait_for_function("document.querySelector(\"#bars li[data-digit='9']\").classList.contains('mapped')"
                           " || document.querySelector(\"#bars li[data-digit='9']\").classList.contains('top')")
    assert page.evaluate("document.activeElement === document.body")
    page.keyboard.press("4")
    page.wait_for_function("document.getElementById('saved-text').textContent.startsWith('Saved as 4')")
    assert _samples()[-1].label == 4
