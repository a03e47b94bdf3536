"""The lesson's pipeline end to end: exact numbers, run folder, report, reproducibility."""

from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pytest

from digitlab.data import load_dataset
from digitlab.errors import DigitlabError
from digitlab.evaluate import compute_metrics, wilson_interval
from digitlab.pipeline import run_pipeline

VOLATILE = {"run", "created", "train_seconds", "predict_seconds", "versions"}


def test_lesson_result_is_exact(lesson_run):
    m = lesson_run.metrics
    assert m.n_test == 360
    assert m.n_errors == 12
    assert f"{m.accuracy:.2%}" == "96.67%"


def test_dataset_matches_lesson_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, x_test, _, y_test = train_test_split(digits.data, digits.target, test_size=0.2, random_state=42)
    ds = load_dataset("digits")
    assert ds.train_images.dtype == np.uint8 and ds.image_shape == (8, 8) and ds.pixel_max == 16
    np.testing.assert_array_equal(ds.test_images.reshape(360, -1), x_test)
    np.testing.assert_array_equal(ds.test_labels, y_test)


def test_run_folder_holds_everything(lesson_run):
    folder = lesson_run.folder
    assert re.fullmatch(r"\d{8}T\d{6}Z-digits-logreg", folder.name)
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("metrics.json", "predictions.csv", "model.json", "model.safetensors", "notdigit.safetensors",
                 "report.html"):
        assert (folder / name).is_file(), name
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~umask, name  # not safetensors' owner-only 0600
    figures = {p.name for p in (folder / "figures").iterdir()}
    assert figures == {"samples.png", "class_distribution.png", "confusion_matrix.png",
                       "per_class_errors.png", "misclassified.png", "weights.png",
                       "reliability.png", "risk_coverage.png", "not_a_digit.png"}
    for png in (folder / "figures").iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp")]


def test_metrics_json_has_the_numbers(lesson_run):
    doc = json.loads((lesson_run.folder / "metrics.json").read_text())
    assert doc["dataset"] == "digits" and doc["model"] == "logreg" and doc["seed"] == 42
    assert doc["n_errors"] == 12 and doc["accuracy"] == pytest.approx(348 / 360)
    assert doc["params"]["max_iter"] == 1000 and doc["params"]["random_state"] == 42
    assert doc["ci95"][0] < doc["accuracy"] < doc["ci95"][1]
    assert len(doc["per_class"]) == 10 and sum(c["support"] for c in doc["per_class"]) == 360
    assert np.trace(np.array(doc["confusion"])) == 348
    assert doc["train_seconds"] > 0 and doc["predict_seconds"] > 0
    assert {"numpy", "scikit-learn", "python"} <= set(doc["versions"])
    data = load_dataset("digits")  # what a paper citing the run needs: the data's digests, the command, the cores
    assert doc["provenance"]["data_sha256"] == {"train": data.sha256("train"), "test": data.sha256("test")}
    assert doc["provenance"]["usable_cores"] >= 1
    assert doc["provenance"]["command"] is None  # from the library: sys.argv is not the run's (a notebook's kernel)


def test_predictions_csv_agrees_with_metrics(lesson_run):
    with open(lesson_run.folder / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 360
    wrong = sum(row["true"] != row["predicted"] for row in rows)
    assert wrong == 12
    probabilities = np.array([[float(row[f"p{d}"]) for d in range(10)] for row in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_report_is_self_contained_and_walks_the_phases(lesson_run):
    html = (lesson_run.folder / "report.html").read_text()
    for phase in range(1, 6):
        assert f"Phase {phase}" in html
    assert "96.67%" in html
    assert html.count("data:image/png;base64,") == 9
    assert not re.search(r"""(src|href)=["']https?://""", html), "report must open with no network"
    start = html.index("<th>Parameter</th>")
    table = html[start:html.index("</table>", start)]
    assert "<code>max_iter</code>" in table and "deprecated" not in table  # scikit-learn's mark for a parameter leaving
    assert "Its solver stopped" not in html  # the lesson's model converges


def test_same_seed_gives_identical_numbers(tmp_path, lesson_run):
    from conftest import run_cli

    run_cli("models")  # a command line run in this process before: its command is not the library run's (CI)
    again = run_pipeline("digits", "logreg", out=tmp_path)
    first = json.loads((lesson_run.folder / "metrics.json").read_text())
    second = json.loads((again.folder / "metrics.json").read_text())
    assert {k: v for k, v in first.items() if k not in VOLATILE} == {k: v for k, v in second.items() if k not in VOLATILE}
    assert (lesson_run.folder / "predictions.csv").read_text() == (again.folder / "predictions.csv").read_text()


def test_another_seed_changes_the_split(tmp_path):
    other = run_pipeline("digits", "logreg", seed=7, out=tmp_path)
    assert other.metrics.n_test == 360
    assert json.loads((other.folder / "metrics.json").read_text())["split"]["seed"] == 7


def test_failed_run_leaves_no_folder(tmp_path, monkeypatch):
    from digitlab import plots

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "plot_confusion", broken)
    with pytest.raises(RuntimeError):
        run_pipeline("digits", "logreg", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_wilson_interval_known_value():
    # 348/360 at 95%: textbook Wilson bounds
    low, high = wilson_interval(348, 360)
    assert low == pytest.approx(0.94265, abs=1e-4)
    assert high == pytest.approx(0.98083, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0)


def test_per_class_scores_match_sklearn():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.8, y_true, rng.integers(0, 10, 500))
    m = compute_metrics(y_true, y_pred, labels=list(range(10)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(range(10)), zero_division=0)
    np.testing.assert_allclose([c.precision for c in m.per_class], p)
    np.testing.assert_allclose([c.recall for c in m.per_class], r)
    np.testing.assert_allclose([c.f1 for c in m.per_class], f)
    assert m.macro_f1 == pytest.approx(f.mean())
    assert m.n_errors == int((y_true != y_pred).sum())


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.2, 1.5])
def test_invalid_test_size_is_refused(test_size):
    with pytest.raises(DigitlabError, match="test-size"):
        load_dataset("digits", test_size=test_size)


def test_stratified_limit_keeps_class_balance():
    ds = load_dataset("digits", limit=500)
    assert ds.n_train == 500 and ds.n_test == 360
    counts = np.bincount(ds.train_labels, minlength=10)
    assert counts.min() >= 45 and counts.max() <= 56


def test_the_risk_coverage_curve_holds_only_the_answers_a_person_gets(lesson_run):
    """The detector's turned-away images are never answered: the curve (and its red point) leaves them out."""
    from dataclasses import replace

    from digitlab.report import answers_curve, unsure_on_test

    record = lesson_run.record
    n = len(record.predictions.labels)
    coverage, accuracy, point, away = answers_curve(record)
    assert away == int(record.not_a_digit.test_flagged.sum()) and len(coverage) == n - away
    flagged = np.zeros(n, dtype=bool)
    flagged[np.argsort(-record.predictions.confidence, kind="stable")[:36]] = True  # the 36 surest turned away
    turned = replace(record, not_a_digit=replace(record.not_a_digit, test_flagged=flagged))
    coverage, accuracy, point, away = answers_curve(turned)
    assert away == 36 and len(coverage) == n - 36 and coverage[-1] == pytest.approx((n - 36) / n)
    digit = unsure_on_test(turned)["digit"]
    assert point == (digit["threshold"], digit["coverage"], digit["accuracy"])
    kept = digit["n_kept"]  # the surest first: the point lies on the curve
    assert coverage[kept - 1] == pytest.approx(digit["coverage"]) and accuracy[kept - 1] == pytest.approx(digit["accuracy"])


def test_report_shows_calibration(lesson_run):
    folder = lesson_run.folder
    doc = json.loads((folder / "metrics.json").read_text())
    calibration = doc["calibration"]
    assert calibration is not None and calibration["temperature"] > 0
    assert doc["ece"] < doc["ece_uncalibrated"] or max(doc["ece"], doc["ece_uncalibrated"]) < 0.02
    for name in ("reliability.png", "risk_coverage.png"):
        assert (folder / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (folder / "report.html").read_text()
    assert "How sure is it, really?" in html
    assert f"<td>{doc['brier_uncalibrated']:.4f}</td><td>{doc['brier']:.4f}</td>" in html  # before, as ECE and NLL
    assert f"T = {calibration['temperature']:.3f}" in html
    assert calibration["held_out"] in html
    # the sentence's numbers come from the test images at the held-out threshold
    rows = list(csv.DictReader(open(folder / "predictions.csv", newline="")))
    confidence = np.array([float(r["confidence"]) for r in rows])
    right = np.array([r["true"] == r["predicted"] for r in rows])
    kept = confidence >= calibration["unsure_below"] - 1e-6  # the CSV rounds to six decimals
    sentence = (f"At the 'unsure' threshold of {calibration['unsure_below']:.1%} (the lowest at which the held-out "
                f"answers were at least 99.5% right),\nthe model answers {kept.mean():.1%} of the test images and "
                f"is right on {right[kept].mean():.1%} of them")
    assert sentence in html
    assert turned_away_sentence(lesson_run, kept, right) in html
    assert html.count("data:image/png;base64,") == len(list((folder / "figures").iterdir()))
    assert ("made the calibration error larger" in html) == (round(doc["ece"], 4) > round(doc["ece_uncalibrated"], 4))


def turned_away_sentence(result, kept: np.ndarray, right: np.ndarray) -> str:
    """What the report says of the sure answers on the test images its detector turns away as "not a digit"."""
    flagged = result.record.not_a_digit.test_flagged
    assert flagged.shape == kept.shape and flagged.dtype == bool
    given = kept & ~flagged
    if not (kept & flagged).any():
        return 'turns away none of those sure answers as "not a digit".'
    return (f"turns away {(kept & flagged).sum()} of those sure answers as \"not a digit\", so a person is answered a "
            f"digit for {given.mean():.1%} of the test images, {right[given].mean():.1%} of them right.")


def test_a_temperature_that_raised_the_test_ece_is_said_so():
    """MNIST's logistic regression: T fitted on held-out images lowered the NLL, but the test ECE went 0.50% -> 1.70%."""
    from types import SimpleNamespace

    from digitlab.report import calibration_caveat

    worse = SimpleNamespace(ece=0.0170, ece_uncalibrated=0.0050, nll=0.2748, nll_uncalibrated=0.2774)
    assert calibration_caveat(worse).startswith(
        "On these test images the temperature made the calibration error larger, not smaller (0.50% → 1.70%), "
        "though it lowered the negative log-likelihood")
    assert "log-likelihood larger too" in calibration_caveat(SimpleNamespace(ece=0.02, ece_uncalibrated=0.01, nll=0.3,
                                                              nll_uncalibrated=0.2))
    assert calibration_caveat(SimpleNamespace(ece=0.004, ece_uncalibrated=0.02, nll=0.2, nll_uncalibrated=0.3)) is None
    assert calibration_caveat(SimpleNamespace(ece=None, ece_uncalibrated=None, nll=None, nll_uncalibrated=None)) is None
    assert calibration_caveat(SimpleNamespace(ece=0.00502, ece_uncalibrated=0.00499, nll=0.2, nll_uncalibrated=0.3)) is None


def test_report_without_probabilities_says_so_in_one_line(tmp_path, lesson_run):
    from dataclasses import replace

    from digitlab.report import draw_figures, metrics_document, render_report

    shared = lesson_run.record
    record = replace(shared, fitted=replace(shared.fitted, calibration=None),
                     predictions=replace(shared.predictions, probabilities=None, uncalibrated=None))
    figures = draw_figures(record, tmp_path / "figures")
    assert "reliability" not in figures and "risk_coverage" not in figures
    html = render_report(record, metrics_document(record, "x"), figures, tmp_path)
    assert "How sure is it, really?" in html and "no <code>predict_proba</code>" in html
    assert "rescaled by one number" not in html
    assert html.count("data:image/png;base64,") == len(figures)


def test_every_public_function_and_class_has_a_docstring():
    """The report's "documented code" criterion is computed from the source; keep it a real ✓."""
    from digitlab.pages import docstring_coverage

    documented, total = docstring_coverage()
    assert total > 150 and documented == total


def test_report_shows_the_not_a_digit_check(lesson_run):
    doc = json.loads((lesson_run.folder / "metrics.json").read_text())
    check = doc["not_a_digit"]
    assert check["n_unseen_nondigits"] == 600 and set(check["per_kind"]) == {
        "letter", "symbol", "scribble", "shape", "noise", "pair", "shade", "written"}
    assert check["unseen_nondigits_flagged"] >= 0.8 and check["test_digits_flagged"] <= 0.03
    html = (lesson_run.folder / "report.html").read_text()
    assert "Is it a digit at all?" in html
    assert f"<td>{check['unseen_nondigits_flagged'] * 100:.1f}%</td>" in html
    assert f"<td>{check['test_digits_flagged'] * 100:.2f}%</td>" in html


def test_report_points_to_explain(lesson_run):
    html = (lesson_run.folder / "report.html").read_text()
    assert f"digitlab explain --model {lesson_run.folder}" in html and 'href="explain.html"' in html


def test_the_lbfgs_fits_run_on_one_openblas_thread_and_others_as_they_were(monkeypatch):
    """scipy's L-BFGS-B beside NumPy's OpenBLAS, both threaded, fitted the lesson's model 18x slower on 2 cores:
    its fits (the model and its out-of-fold calibration) take one OpenBLAS thread, other models the threads set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_info, threadpool_limits

    from digitlab.train import calibrate, train

    if not any(pool["internal_api"] == "openblas" for pool in threadpool_info()):
        pytest.skip("NumPy and SciPy use another BLAS here: nothing to limit")
    seen: dict[str, list[set[int]]] = {"logreg": [], "knn": []}

    def spy(cls, name):
        real = cls.fit

        def fit(self, *args, **kwargs):
            seen[name].append({pool["num_threads"] for pool in threadpool_info() if pool["internal_api"] == "openblas"})
            return real(self, *args, **kwargs)
        monkeypatch.setattr(cls, "fit", fit)

    spy(LogisticRegression, "logreg")
    spy(KNeighborsClassifier, "knn")
    digits = load_dataset("digits")
    with threadpool_limits(2, user_api="blas"):
        calibrate(train("logreg", digits), digits)
        train("knn", digits)
        after = {pool["num_threads"] for pool in threadpool_info() if pool["internal_api"] == "openblas"}
    assert len(seen["logreg"]) >= 4 and all(threads == {1} for threads in seen["logreg"]), seen  # the fit and 3 folds
    assert seen["knn"] == [{2}] and after == {2}, (seen, after)


def _unsure_paragraph(folder) -> str:
    page = (folder / "report.html").read_text()
    start = page.index("At the 'unsure' threshold")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page[start:page.index("</p>", start)]))


def test_the_report_states_the_unsure_bar_as_predict_does_and_for_which_digits(lesson_run):
    from digitlab.predict import percent_needed

    card = json.loads((lesson_run.folder / "model.json").read_text())
    said = _unsure_paragraph(lesson_run.folder)
    assert f"threshold of {percent_needed(card['calibration']['unsure_below'])} (the lowest at which" in said, said
    assert "on other writing" in said and "digitlab evaluate --model RUN --dataset SET" in said


def test_a_model_that_cannot_reach_the_target_says_so_in_its_report(tmp_path):
    weak = run_pipeline("digits", "forest", params={"max_depth": 1, "n_estimators": 5}, out=tmp_path)
    card = json.loads((weak.folder / "model.json").read_text())
    assert card["calibration"]["kept_accuracy"] < 0.995
    said = _unsure_paragraph(weak.folder)
    assert "no threshold made the held-out answers 99.5% right" in said and "the lowest at which" not in said, said
    assert "(0 of 0)" not in said


def test_knn_sure_answers_read_at_or_over_its_bar_and_its_report_says_what_it_reached(tmp_path):
    """k-NN's few confidences sat on its bar (0.99535): its sure answers read "99.5%" beside "sure from 99.6%",
    and its report said the most confident were "99.5% right" of 99.49% that missed 99.5%."""
    from digitlab.predict import percent_needed, shown_percent

    run = run_pipeline("digits", "knn", out=tmp_path)
    card = json.loads((run.folder / "model.json").read_text())["calibration"]
    bar = float(percent_needed(card["unsure_below"]).rstrip("%"))
    kept = [float(p) for p in run.record.predictions.confidence if p >= card["unsure_below"] - 1e-9]
    assert kept and all(float(shown_percent(p).lstrip(">").rstrip("%")) >= bar for p in kept), (bar, kept[:3])
    said = _unsure_paragraph(run.folder)
    if card["kept_accuracy"] < 0.995:
        reached = re.search(r"most confident were ([\d.]+)% right", said)
        assert reached and float(reached.group(1)) < 99.5, said


def test_the_risk_caption_says_the_curve_ends_short_only_when_the_detector_turned_images_away(lesson_run):
    page = re.sub(r"\s+", " ", (lesson_run.folder / "report.html").read_text())
    caption = page[page.index("Keep only the most confident answers"):][:600]
    away = int(lesson_run.record.not_a_digit.test_flagged.sum())
    assert ("ends short of 100%" in caption) == (away > 0), (away, caption)
    assert away == 0 or f"The {away:,} test image" in caption, caption


def test_a_run_into_a_folder_named_in_another_encoding_writes_its_report(tmp_path):
    """--out a folder whose name is not UTF-8 (Latin-1, from an old USB stick) ended in a UnicodeEncodeError
    traceback as the report, which names the folder, was written."""
    out = os.fsdecode(bytes(tmp_path) + b"/caf\xe9")
    run = run_pipeline("digits", "logreg", out=out)
    assert "caf\\udce9" in run.report.read_text()  # the name's escape, as Python spells it
    assert json.loads((run.folder / "metrics.json").read_text())["accuracy"] > 0.9
