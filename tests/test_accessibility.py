"""Every page digitlab writes passes axe-core's accessibility rules in a real browser.

axe-core (Deque's engine, as browsers' own audits use it) comes bundled in the ``axe-playwright-python`` wheel;
Playwright drives Debian's chromium as in ``test_browser``. A learner with a screen reader reaches the report's
content by its landmarks, a teacher's projector shows text at a contrast axe accepts, and every control is named.
Each page kind is made small but real: the lesson's report, the explain page, the leaderboard, a sweep's page and
a handwriting set's report; the drawing page before and after a drawing, with a non-digit (its faded bars) and in
number mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from test_browser import _stroke  # noqa: E402


def axe_violations(page) -> list[str]:
    """axe-core's violations on the page as it stands: rule, impact and the first offending element of each."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']}; e.g. {v['nodes'][0]['html'][:160]}" for v in found]


@pytest.fixture(scope="module")
def pages(lesson_run, tmp_path_factory) -> dict[str, Path]:
    """One of each page the lesson's commands write, on the 8×8 digits."""
    from digitlab.compare import compare_models
    from digitlab.explain.page import explain_run
    from digitlab.sweep import SweepPlan, plan_cells, run_sweep
    from digitlab.sweep_report import load_results, summarize, write_report

    out = tmp_path_factory.mktemp("pages")
    explained = explain_run(lesson_run.folder, out=out / "explain", n_robustness=60, n_map=60)
    board = compare_models(["logreg", "knn"], "digits", out=out / "compare")
    plan = SweepPlan("digits", plan_cells(["logreg"], {"logreg": {"C": [0.1, 1.0]}}, seeds=[0]), out / "sweep")
    run_sweep(plan, workers=1, say=lambda _: None)
    write_report(plan.folder, "digits", rows := load_results(plan.folder, plan.cells), summarize(rows))
    return {
        "report": lesson_run.folder / "report.html",
        "explain": explained.html,
        "compare": board.folder / "compare.html",
        "sweep": out / "sweep" / "sweep.html",
    }


@pytest.mark.parametrize("kind", ["report", "explain", "compare", "sweep"])
def test_each_page_the_lesson_writes_has_no_axe_violations(browser, pages, kind):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(pages[kind].resolve().as_uri())
    assert page.locator("main h1").count() == 1  # the content is in a main landmark, its title with it
    assert axe_violations(page) == []
    page.close()


@pytest.mark.mnist
def test_a_handwriting_sets_report_has_no_axe_violations(browser, real_mnist, tmp_path):
    from digitlab.cli_handwriting import evaluate_on_handwriting
    from digitlab.data import load_dataset
    from digitlab.data.handwriting_io import import_pictures
    from digitlab.data.writers import WRITERS, writer_samples
    from digitlab.store import save_model
    from digitlab.train import train

    mnist = load_dataset("mnist", limit=1000)
    save_model(train("logreg", mnist, params={"max_iter": 100}), mnist, tmp_path / "run")
    for w in WRITERS[:2]:
        samples = writer_samples(w, per_digit=2, seed=0)
        for i, (picture, label) in enumerate(zip(samples.pictures, samples.labels)):
            (tmp_path / w.name / str(label)).mkdir(parents=True, exist_ok=True)
            (tmp_path / w.name / str(label) / f"{i}.png").write_bytes(picture)
        import_pictures("a11y", [tmp_path / w.name], writer=w.name)
    report = evaluate_on_handwriting(tmp_path / "run", "a11y", tmp_path / "reports")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(report.resolve().as_uri())
    assert page.locator("main h1").count() == 1
    assert axe_violations(page) == []
    page.close()


def test_the_drawing_page_has_no_axe_violations_as_it_is_used(browser, lesson_run):
    """Empty, after a drawing (the bars, the input view), with a non-digit drawn, and in number mode with a number
    read."""
    from test_browser import _serve

    served = _serve(lesson_run.folder, lesson_run.folder.parent)
    url = next(served)
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(url)
    page.wait_for_function("document.getElementById('model-name').textContent !== '…'")
    seen = {"empty": axe_violations(page)}
    _stroke(page, [(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)])
    page.wait_for_function("document.getElementById('prediction').textContent !== '?'")
    seen["a seven"] = axe_violations(page)
    page.click("#clear")
    for stroke in ([(0.38, 0.1), (0.38, 0.9)], [(0.62, 0.1), (0.62, 0.9)],
                   [(0.1, 0.38), (0.9, 0.38)], [(0.1, 0.62), (0.9, 0.62)]):  # "#": faded bars, still readable
        _stroke(page, stroke)
    page.wait_for_function("document.getElementById('confidence').textContent === \"That doesn't look like a digit\"")
    seen["not a digit"] = axe_violations(page)
    page.check("#mode-number")
    _stroke(page, [(0.2, 0.2), (0.2, 0.8)])
    _stroke(page, [(0.55, 0.2), (0.8, 0.2), (0.65, 0.8)])
    page.wait_for_function("/\\d/.test(document.getElementById('number').textContent)")
    seen["a number"] = axe_violations(page)
    page.close()
    next(served, None)
    assert seen == {"empty": [], "a seven": [], "not a digit": [], "a number": []}
