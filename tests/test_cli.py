"""The real command line: one command runs the lesson; bad input gets one line and exit code 2.

Most commands run in the test's own process (``conftest.run_cli``); a few start ``python -m digitlab`` itself,
so that the exit codes 0, 1 and 2 are each seen leaving a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli


def test_run_prints_summary_and_writes_report(tmp_path):
    result = run_cli("run", "--out", str(tmp_path / "runs"), process=True)  # the lesson's command, as typed
    assert result.returncode == 0, result.stderr
    assert "96.67%" in result.stdout
    assert "12 of 360" in result.stdout
    assert "Converged" not in result.stdout  # the lesson's model converges: no row for it
    assert "report.html" in result.stdout
    assert "training logreg on 1,437 images…" in result.stdout  # off a terminal a line per step, not a blank spinner
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / "report.html").is_file()


def test_evaluate_reproduces_the_run_exactly(lesson_run):
    result = run_cli("evaluate", "--model", str(lesson_run.folder))
    assert result.returncode == 0, result.stderr
    assert "96.67%" in result.stdout and "Matches the run's metrics.json exactly" in result.stdout
    result = run_cli("evaluate", "--model", str(lesson_run.folder / "model.safetensors"))
    assert result.returncode == 0 and "exactly" in result.stdout


def test_evaluate_reports_a_changed_metrics_file(lesson_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(lesson_run.folder, copy)
    doc = json.loads((copy / "metrics.json").read_text())
    doc["n_errors"] = 3
    (copy / "metrics.json").write_text(json.dumps(doc))
    result = run_cli("evaluate", "--model", str(copy))
    assert result.returncode == 1
    assert "n_errors" in result.stdout
    for damaged in ("", "not json", "[1]"):  # a reviewer: an emptied file read as "the model changed", every value
        (copy / "metrics.json").write_text(damaged)
        result = run_cli("evaluate", "--model", str(copy))
        assert result.returncode == 1 and "metrics.json cannot be read" in result.stdout, result.stdout
        assert "Differs" not in result.stdout
        as_json = run_cli("evaluate", "--model", str(copy), "--json")
        assert as_json.returncode == 1 and json.loads(as_json.stdout)["metrics_json_unreadable"] is True


@pytest.mark.parametrize("edit, said", [
    (lambda m, c: m.pop("ece"), "ece"),  # a calibrated run recorded it: deleted is not "nothing to compare"
    (lambda m, c: m.pop("brier_uncalibrated"), "brier_uncalibrated"),  # deleted from a run that wrote its provenance
    (lambda m, c: [m.pop("brier_uncalibrated"), m.pop("provenance")], None),  # a run from before both: matches
    (lambda m, c: m.update(n_test=1000), "n_test"),
    (lambda m, c: m.update(ece_uncalibrated=0.5), "ece_uncalibrated"),
    (lambda m, c: m["calibration"].update(temperature=9.0), "calibration (model.json says otherwise)"),
    (lambda m, c: m.update(seed=7), "seed (model.json says otherwise)"),
    (lambda m, c: m["params"].update(C=1234), "params (model.json says otherwise)"),
    (lambda m, c: c["metrics"].update(accuracy=0.999), "model.json's accuracy"),
    (lambda m, c: c["not_a_digit"].update(threshold=1.0), "not_a_digit threshold (model.json says otherwise)"),
    (lambda m, c: m["provenance"]["data_sha256"].update(test="0" * 64),
     "test data (its SHA-256 differs from the run's)"),
])
def test_evaluate_checks_every_figure_the_run_recorded(lesson_run, tmp_path, edit, said):
    """A reproducibility audit edited metrics.json's n_test, calibration, seed and parameters, deleted its ECE, and
    set the card's accuracy to 99.9% and its not-a-digit threshold to 1 (nothing turned away): each time `evaluate`
    said "Matches the run's metrics.json exactly"."""
    from digitlab.reproduce import reevaluate

    copy = tmp_path / "run"
    shutil.copytree(lesson_run.folder, copy)
    assert reevaluate(copy).matches
    metrics, card = (json.loads((copy / name).read_text()) for name in ("metrics.json", "model.json"))
    edit(metrics, card)
    (copy / "metrics.json").write_text(json.dumps(metrics))
    (copy / "model.json").write_text(json.dumps(card))
    outcome = reevaluate(copy)
    assert outcome.matches if said is None else not outcome.matches and outcome.differences == [said], outcome


def test_a_model_with_only_its_card_is_checked_against_the_card(lesson_run, tmp_path):
    """A compare's or a sweep's model has no metrics.json: `evaluate` said "nothing to compare with" (exit 0), though
    its card holds its accuracy, errors, interval and ECE."""
    copy = tmp_path / "run"
    shutil.copytree(lesson_run.folder, copy)
    (copy / "metrics.json").unlink()
    result = run_cli("evaluate", "--model", str(copy))
    assert result.returncode == 0 and "Matches the run's model.json exactly" in result.stdout, result.stdout
    assert json.loads(run_cli("evaluate", "--model", str(copy), "--json").stdout)["compared_with"] == "model.json"
    card = json.loads((copy / "model.json").read_text())
    card["metrics"]["n_errors"] += 1
    (copy / "model.json").write_text(json.dumps(card))
    result = run_cli("evaluate", "--model", str(copy))
    assert result.returncode == 1 and "Differs from the run's model.json: n_errors" in result.stdout, result.stdout
    card["metrics"] = {"train_time_s": 0.1}  # no test figure at all: nothing was compared, so nothing "matches"
    (copy / "model.json").write_text(json.dumps(card))
    result = run_cli("evaluate", "--model", str(copy))
    assert result.returncode == 0 and "exactly" not in result.stdout and "compare with" in result.stdout, result.stdout


def test_models_lists_the_zoo():
    result = run_cli("models")
    assert result.returncode == 0
    for name in ("logreg", "svm", "knn", "forest", "mlp"):
        assert name in result.stdout
    result = run_cli("models", "--json")
    listed = json.loads(result.stdout)
    assert [m["name"] for m in listed] == ["logreg", "svm", "knn", "forest", "mlp", "cnn"]
    assert next(m for m in listed if m["name"] == "cnn")["needs"] == "torch"


def test_evaluate_json_gives_the_metrics_and_whether_they_match(lesson_run, tmp_path):
    """An engineer's ask: evaluate, models, compare had no --json for scripts (predict and read had)."""
    result = run_cli("evaluate", "--model", str(lesson_run.folder), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["matches"] is True and doc["differences"] == [] and doc["dataset"] == "digits"
    assert doc["metrics"]["accuracy"] == pytest.approx(0.9667, abs=1e-4) and len(doc["metrics"]["confusion"]) == 10
    copy = tmp_path / "run"
    shutil.copytree(lesson_run.folder, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({**metrics, "n_errors": 3}))
    result = run_cli("evaluate", "--model", str(copy), "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["matches"] is False


@pytest.mark.parametrize("args", [["models"], ["run", "--dataset", "nope"], ["run", "--model", "lgoreg"],
                                  ["compare", "--dataset", "nope"], ["data", "show", "nope"]])
def test_the_zoo_and_a_mistyped_name_answer_without_importing_heavy_libraries(tmp_path, args):
    """Listing the models or refusing a typo is instant: scikit-learn (2-3 s to import), Matplotlib and PyTorch
    are imported only when a model is built or a figure drawn. ``python -X importtime`` names every import."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "digitlab", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == (0 if args == ["models"] else 2), result.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "digitlab" in imported and "typer" in imported  # the listing is read
    assert not imported & {"sklearn", "scipy", "matplotlib", "torch"}, imported & {"sklearn", "scipy", "matplotlib", "torch"}
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["run", "--model", "lgoreg"], "unknown model 'lgoreg'"),
        (["run", "--test-size", "1.5"], "test_size (--test-size) must be between 0 and 1"),
        (["run", "--test-size", "0"], "test_size (--test-size) must be between 0 and 1"),
        (["run", "--param", "C"], "--param expects NAME=VALUE"),
        (["run", "--param", "bogus=1"], "has no parameter bogus"),
        (["run", "--param", "max_iter=-3"], "model 'logreg': The 'max_iter' parameter must be an int"),
        # scikit-learn named the function that checked it, not the model (an engineer)
        (["run", "--model", "svm", "--param", "C=abc"], "model 'svm': The 'C' parameter must be a float"),
        # a chaos tester: 5,000 minus signs raised RecursionError, 10,000 MemoryError (tracebacks)
        (["run", "--param", "C=" + "-" * 5000 + "1"], "--param C=…: a value of 5,001 characters too deeply nested"),
        (["run", "--model", "svm", "--param", "C=-inf"], "model 'svm': The 'C' parameter must be a float in the range "
                                                          "(0.0, inf]. Got -inf"),  # inf: a float, not the word
        (["evaluate", "--model", "/nonexistent/run"], "no such file or folder"),
        # a chaos tester: an unset "$DIR" made `data import SET ''` take in every picture under the current folder
        (["data", "import", "class", ""], "the command line's 4th word is empty (an unset shell variable?), after "
                                          "'class'"),
        (["predict", "--model=", "a.png"], "--model= gives --model an empty value"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "runs"
    result = run_cli(*args, "--out", str(out)) if args[0] == "run" else run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("run", "--out", str(blocker / "runs"))
    assert result.returncode == 2
    assert "cannot write there" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("run", "--out", str(blocker))
    assert result.returncode == 2 and "is not a folder" in result.stderr


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    result = run_cli("evaluate", "--model", str(picture), process=True)  # a real process exits with 2
    assert result.returncode == 2
    assert "no model card" in result.stderr and "Traceback" not in result.stderr


def test_python_dash_m_and_help():
    result = run_cli("--help", process=True)
    assert result.returncode == 0
    for command in ("run", "evaluate", "models"):
        assert command in result.stdout


def _draw_one(path):
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(picture).line([(150, 40), (150, 260)], fill="black", width=25)
    picture.save(path)


def test_predict_goes_on_after_a_bad_file(lesson_run, tmp_path):
    _draw_one(tmp_path / "one.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    prepared = tmp_path / "seen"
    result = run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "broken.png"),
                     str(tmp_path / "one.jpg"), "--json", "--save-prepared", str(prepared), process=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    bad, good = doc["predictions"]
    assert "error" in bad and "broken.png" in bad["error"]
    assert good["digit"] == 1 and len(good["probabilities"]) == 10 and len(good["top"]) == 3
    from PIL import Image

    assert Image.open(good["prepared"]).size == (8, 8)


def test_predict_and_read_take_a_folder_of_pictures(lesson_run, tmp_path):
    """An engineer: 100,000 scans are too many for the shell's command line; `predict scans/` said "is a folder"."""
    scans = tmp_path / "scans"
    (scans / "b").mkdir(parents=True)
    (scans / ".thumbs").mkdir()
    for path in (scans / "one.png", scans / "b" / "two.jpg", scans / ".thumbs" / "one.png"):
        _draw_one(path)
    (scans / "notes.txt").write_text("not a picture")
    (scans / "three.apng").write_bytes((scans / "one.png").read_bytes())  # an APNG, which the server reads too
    (tmp_path / "empty").mkdir()
    for command in ("predict", "read"):
        result = run_cli(command, "--model", str(lesson_run.folder), str(scans), str(tmp_path / "empty"), "--json")
        assert result.returncode == 1, result.stderr  # the empty folder is said; the pictures are answered
        answered = json.loads(result.stdout)["predictions" if command == "predict" else "readings"]
        assert [entry["image"] for entry in answered] == [str(scans / "b" / "two.jpg"), str(scans / "one.png"),
                                                         str(scans / "three.apng"), str(tmp_path / "empty")]
        assert "error" not in answered[0] and "error" not in answered[2]
        assert "is a folder with no pictures in it" in answered[3]["error"]
        note = f"note: left out 1 file that is not a picture (PNG, JPEG, BMP, GIF, WebP or TIFF): {scans / 'notes.txt'}"
        assert note in " ".join(result.stderr.split())


def test_a_folders_heic_photo_is_said_not_passed_over_and_prepared_pictures_never_overwrite_each_other(
        lesson_run, tmp_path):
    """An engineer scoring a folder of scans: its HEIC photo and its .pgm scan were passed over in silence and the
    command ended well (exit 0); and of a/x.png, b/x.png and 001-x.png, the last one's --save-prepared file had
    overwritten the first one's."""
    folder = tmp_path / "scans"
    for path in (folder / "a" / "x.png", folder / "b" / "x.png", folder / "001-x.png"):
        path.parent.mkdir(parents=True, exist_ok=True)
        _draw_one(path)
    (folder / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))  # how a phone's photo begins
    (folder / "scan.pgm").write_bytes(b"P5 2 2 255 " + bytes(4))
    (folder / "moved.png").symlink_to(tmp_path / "gone.png")  # a link to a picture moved away: said too
    os.mkfifo(folder / "fifo.png")  # a pipe and a link to a device, passed over in silence (an audit)
    (folder / "zero.png").symlink_to("/dev/zero")
    result = run_cli("predict", "--model", str(lesson_run.folder), str(folder), "--json",
                     "--save-prepared", str(tmp_path / "seen"), process=True)
    assert result.returncode == 1, result.stderr
    answered = {Path(e["image"]).relative_to(folder).as_posix(): e for e in json.loads(result.stdout)["predictions"]}
    assert set(answered) == {"001-x.png", "IMG_0001.HEIC", "a/x.png", "b/x.png", "moved.png", "fifo.png", "zero.png"}
    assert answered["moved.png"]["error"] == f"no image file at {folder / 'moved.png'}; check the path"
    for name in ("fifo.png", "zero.png"):
        assert answered[name]["error"].startswith(f"{folder / name} is not a file but a pipe or device"), answered
    assert answered["IMG_0001.HEIC"]["error"].endswith(
        "a HEIC photo is not read: export it as a PNG or JPEG and send that")
    assert "left out 1 file that is not a picture" in result.stderr and "scan.pgm" in result.stderr
    prepared = [e["prepared"] for e in answered.values() if "prepared" in e]
    assert len(set(prepared)) == 3 and all(Path(p).is_file() for p in prepared)


def test_predict_in_a_pipe_prints_one_line_a_picture_however_long_its_name(lesson_run, tmp_path):
    folder = tmp_path / ("pictures_of_my_own_handwriting_" * 3)
    folder.mkdir()
    _draw_one(folder / "the_first_one_i_drew_today.png")
    bad = folder / "and_a_file_that_is_not_a_picture_at_all.png"
    bad.write_bytes(b"not a picture")
    result = run_cli("predict", "--model", str(lesson_run.folder), str(folder / "the_first_one_i_drew_today.png"),
                     str(bad), env={"COLUMNS": ""}, process=True)  # Rich's own width out of a terminal: 80
    assert result.returncode == 1, result.stderr
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [str(folder / "the_first_one_i_drew_today.png")]
    note, failed = result.stderr.splitlines()  # the 8×8 model's note, then the bad picture: one line each
    assert note.startswith("note: this is a model of scikit-learn's 8×8 digits") and str(bad) in failed, result.stderr


def test_only_an_8x8_model_is_noted_as_reading_drawings_poorly(lesson_run, tmp_path):
    """The lesson's 8×8 model states 99% on drawings it reads half right (benchmarks/bench_handwriting.py): predict
    says so, pointing to the CNN; a 28×28 model gets no such note."""
    import numpy as np

    from digitlab.data import Dataset, load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    _draw_one(tmp_path / "one.png")
    small = load_dataset("digits")
    grow = lambda images: np.kron(images * 15, np.ones((3, 3), np.uint8))[:, :24, :24]  # noqa: E731
    big = Dataset("mnist-like", np.pad(grow(small.train_images), ((0, 0), (2, 2), (2, 2))), small.train_labels,
                  np.pad(grow(small.test_images), ((0, 0), (2, 2), (2, 2))), small.test_labels, 255, {})
    save_model(train("knn", big), big, tmp_path / "knn")
    for folder, noted in ((lesson_run.folder, True), (tmp_path / "knn", False)):
        result = run_cli("predict", "--model", str(folder), str(tmp_path / "one.png"))
        assert result.returncode == 0, result.stderr
        assert ("8×8 digits" in result.stderr and "--dataset mnist --model cnn" in result.stderr) is noted, result.stderr


def test_an_unsure_answer_says_what_confidence_the_model_needs(lesson_run, tmp_path):
    from digitlab.predict import percent_needed

    _draw_one(tmp_path / "one.png")
    sure = run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "one.png"), "--json")
    probability = json.loads(sure.stdout)["predictions"][0]["probability"]
    bar = probability + (1 - probability) / 2  # above this answer's confidence
    result = run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "one.png"),
                     "--min-confidence", repr(bar))
    assert result.returncode == 0, result.stderr
    second = json.loads(sure.stdout)["predictions"][0]["top"][1]["probability"]  # named from 5% (RUNNER_UP)
    asks = "unsure — is it a 1 or " if second >= 0.05 else "unsure — a 1?  "
    assert asks in result.stdout and f"sure from {percent_needed(bar)})" in result.stdout, result.stdout
    card = json.loads((lesson_run.folder / "model.json").read_text())
    result = run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "one.png"))
    if probability < card["calibration"]["unsure_below"]:  # the card's own threshold, when it makes this unsure
        assert f"sure from {percent_needed(card['calibration']['unsure_below'])})" in result.stdout
    else:
        assert "one.png: 1 " in result.stdout and "sure from" not in result.stdout
    if probability < 0.9999:  # a bar over 99.9% is not shown as the "100.0%" no answer ever shows
        high = run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "one.png"), "--min-confidence", "0.9999")
        assert "sure from 99.99%)" in high.stdout, high.stdout


def test_predict_into_a_reader_that_stops_early_ends_quietly_with_141(lesson_run, tmp_path):
    """An engineer: `digitlab predict many/ | head -2` exited 1, the code for "a picture failed", with no word."""
    for i in range(300):
        _draw_one(tmp_path / f"{i:03d}.png")
    command = [sys.executable, "-m", "digitlab", "predict", "--model", str(lesson_run.folder), str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout.readline().startswith(str(tmp_path / "000.png"))
        process.stdout.close()  # `head -1` has what it wanted
        stderr = process.stderr.read()
        assert process.wait(timeout=120) == 141, stderr
    assert stderr.startswith("note: this is a model of scikit-learn's 8×8 digits") and len(stderr.splitlines()) == 1


def test_predict_shows_percentages_as_the_page_does(lesson_run, tmp_path):
    """The terminal's top 3 are the JSON's probabilities through shown_percent: ">99.9%" rather than "100.0%"."""
    from digitlab.predict import shown_percent

    _draw_one(tmp_path / "one.png")
    top = json.loads(run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "one.png"),
                             "--json").stdout)["predictions"][0]["top"]
    result = run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "one.png"))
    assert "  ".join(f"{t['digit']}: {shown_percent(t['probability'])}" for t in top) in result.stdout, result.stdout
    from digitlab.cli import _answer_line
    from digitlab.predict import Prediction

    sure = Prediction(digit=7, probability=0.99996, top=[(7, 0.99996), (1, 3e-5), (9, 0.0)],
                      probabilities=[0.0] * 10, unsure=False, model_id="m", calibrated=True)
    assert _answer_line(sure) == "[bold]7[/]  (7: >99.9%  1: <0.1%  9: <0.1%)"
    # unsure: the second digit is named only when it is a real candidate (a learner's "a 1 or an 8?", 8 at 0.3%)
    lone = Prediction(digit=1, probability=0.988, top=[(1, 0.988), (8, 0.003), (7, 0.002)], probabilities=[0.0] * 10,
                      unsure=True, model_id="m", calibrated=True, kind="unsure", sure_from=0.994)
    assert _answer_line(lone).startswith("[bold yellow]unsure[/] — a 1?  (1: 98.8%  8: 0.3%  7: 0.2%; sure from 99.")
    pair = Prediction(digit=4, probability=0.6, top=[(4, 0.6), (9, 0.35), (7, 0.05)], probabilities=[0.0] * 10,
                      unsure=True, model_id="m", calibrated=True, kind="unsure", sure_from=0.9)
    assert _answer_line(pair).startswith("[bold yellow]unsure[/] — is it a 4 or a 9?  (4: 60.0%  9: 35.0%")
    close = Prediction(digit=1, probability=0.5985, top=[(1, 0.5985), (7, 0.387), (9, 0.009)],
                       probabilities=[0.0] * 10, unsure=True, model_id="m", calibrated=True, kind="unsure",
                       sure_from=0.59852)  # a sceptic: "1: 59.9% ...; sure from 59.9%"
    assert _answer_line(close).endswith("(1: 59.85%  7: 38.7%  9: 0.9%; sure from 59.9%)")
    from dataclasses import replace

    from digitlab.predict import UNLIKE_WORDS  # a teacher: a triangle read "0 99.8% sure", the detector doubting it
    assert _answer_line(replace(sure, unlike_a_digit=True)) == (
        f"[bold]7[/]  (7: >99.9%  1: <0.1%  9: <0.1%)  [magenta]{UNLIKE_WORDS}[/]")
    assert _answer_line(replace(close, unlike_a_digit=True)).endswith(f"sure from 59.9%)  [magenta]{UNLIKE_WORDS}[/]")


def test_predict_uses_the_newest_run_and_says_so(lesson_run, tmp_path):
    _draw_one(tmp_path / "one.png")
    result = run_cli("predict", "--runs", str(lesson_run.folder.parent), str(tmp_path / "one.png"))
    assert result.returncode == 0, result.stderr
    assert "using the newest model" in result.stderr and lesson_run.folder.name in result.stderr
    assert "one.png: 1" in result.stdout


def test_the_newest_run_is_the_one_its_card_says_was_saved_last(lesson_run, tmp_path):
    """A learner: runs copied with `cp -r` all took the copy's time, and an older run came up as the newest."""
    import json
    import os
    import shutil

    from digitlab.runs import find_latest_model

    for name, created, mtime in (("b-older", "2026-11-01T10:00:00+00:00", 2_000_000_000),
                                 ("a-newer", "2026-12-01T10:00:00+00:00", 1_000_000_000)):
        shutil.copytree(lesson_run.folder, tmp_path / name)
        card = tmp_path / name / "model.json"
        card.write_text(json.dumps({**json.loads(card.read_text()), "created": created}))
        os.utime(card, (mtime, mtime))  # the older run's card copied last
    assert find_latest_model(tmp_path) == tmp_path / "a-newer"
    (tmp_path / "a-newer" / "model.json").write_text("{damaged")  # no time of its own, none in its name either:
    assert find_latest_model(tmp_path) == tmp_path / "b-older"  # a card that says one wins
    # a newer run whose card cannot be read (a teacher's umask 077; damaged here, as root reads any file) is still the
    # newest by its folder's name, and says why it cannot be used: a student was given the lesson's 8x8 model instead
    shutil.copytree(tmp_path / "a-newer", tmp_path / "20261202T090000Z-mnist-logreg")
    assert find_latest_model(tmp_path) == tmp_path / "20261202T090000Z-mnist-logreg"
    said = run_cli("predict", "--runs", str(tmp_path), "x.png")
    assert said.returncode == 2 and "20261202T090000Z-mnist-logreg" in said.stderr.splitlines()[-1], said.stderr


def test_predict_without_any_model_says_what_to_do(tmp_path):
    result = run_cli("predict", "--runs", str(tmp_path / "empty"), "x.png")
    assert result.returncode == 2 and "run `digitlab run` first" in result.stderr


def test_validation_split_is_reported(tmp_path):
    result = run_cli("run", "--validation", "0.2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Validation accuracy" in result.stdout
    (folder,) = tmp_path.iterdir()
    doc = json.loads((folder / "metrics.json").read_text())
    assert doc["n_train"] == 1149 and doc["split"]["validation"] == 0.2 and 0.9 < doc["validation_accuracy"] <= 1
    assert ("20% of the training images were held out, never trained on, to validate the model, calibrate its "
            "confidence and judge its not-a-digit detector") in " ".join((folder / "report.html").read_text().split())


def test_cnn_options_are_refused_for_other_models(tmp_path):
    result = run_cli("run", "--model", "knn", "--time-budget", "5", "--out", str(tmp_path))
    assert result.returncode == 2 and "--time-budget applies to the cnn model only" in result.stderr


FAST_PARAMS = {"mlp": ["--param", "max_iter=50"], "cnn": ["--param", "epochs=15"], "forest": ["--param", "n_estimators=30"]}


@pytest.mark.parametrize("model", ["logreg", "svm", "knn", "forest", "mlp", "cnn"])
def test_every_registry_name_works_through_run(model, tmp_path):
    result = run_cli("run", "--model", model, "--limit", "500", *FAST_PARAMS.get(model, []), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (folder,) = tmp_path.iterdir()
    doc = json.loads((folder / "metrics.json").read_text())
    assert doc["model"] == model and doc["accuracy"] > 0.8
    assert doc["provenance"]["command"] == f"digitlab run --model {model} --limit 500 " + " ".join(
        [*FAST_PARAMS.get(model, []), "--out", str(tmp_path)])
    assert doc["epochs"] is None if model != "cnn" else [row["epoch"] for row in doc["epochs"]] == list(range(1, 16))
    assert model != "cnn" or all(row["seconds"] > 0 for row in doc["epochs"])  # each epoch's time: not in its file
    assert run_cli("evaluate", "--model", str(folder)).returncode == 0
    assert "--limit" not in result.stderr  # 500 of the 1,437: it was used
    if model == "knn":  # a limit the data cannot meet is said, not passed over
        over = run_cli("run", "--model", model, "--limit", "5000", "--out", str(tmp_path / "over"))
        assert over.returncode == 0 and "note: --limit 5,000 is not fewer than the training images" in over.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-1"], "seed (--seed) must be from 0"),
        (["--test-size", "0.999"], "(--test-size) 0.999 leaves 1 training image, and not every digit is among them"),
        (["--test-size", "0.9999"], "(--test-size) 0.9999 leaves no images on one side"),
        (["--limit", "10"], "needs at least 3 training images of every digit, and one digit has"),
        (["--validation", "0.001"], "too few images held out"),
        # the bound said is the one that calibrating on 3 folds takes: "at most 1,437" led to a second refusal
        (["--model", "knn", "--param", "n_neighbors=1438"], "n_neighbors=1438 is more than the 958 images each of its 3 "
                                                            "folds trains on; choose at most 958"),
        (["--model", "knn", "--param", "n_neighbors=1000"], "n_neighbors=1000 is more than the 958 images each of its 3"),
        (["--model", "knn", "--param", "n_neighbors=5000", "--validation", "0.2"],  # no folds: the training bound
         "n_neighbors=5000 is more than the 1,149 images it trains on; choose at most 1,149"),
        (["--param", "dual=True"], "cannot be trained on this data"),
    ],
)
def test_values_the_model_rejects_are_one_line(tmp_path, args, message):
    result = run_cli("run", *args, "--out", str(tmp_path / "runs" / "mine"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and list(tmp_path.iterdir()) == []  # not even the --out it had made


def test_a_refused_comparison_or_fine_tuning_leaves_no_folder(lesson_run, tmp_path):
    refused = [(["compare", "--models", "logreg,nosuch"], "unknown model 'nosuch'"),
               (["compare", "--models", "logreg", "--limit", "5"], "--limit must be at least 10"),
               (["finetune", "--model", str(lesson_run.folder), "--dataset", "mine"], "needs a model of 28×28 digits")]
    for args, message in refused:  # each had left an empty --out
        result = run_cli(*args, "--out", str(tmp_path / "runs" / "mine"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert list(tmp_path.iterdir()) == []


def test_serve_refuses_an_address_it_cannot_use():
    result = run_cli("serve", "--host", "999.1.1.1")
    assert result.returncode == 2 and "cannot listen on 999.1.1.1:8000" in result.stderr
    assert "--allow-host" not in result.stderr


def test_serve_says_allow_host_changes_nothing_without_collect():
    """A teacher's --allow-host without --collect was taken in silence, as if it let the class reach the page."""
    alone = run_cli("serve", "--host", "999.1.1.1", "--allow-host", "school.example")
    assert alone.returncode == 2 and "note: --allow-host admits saves of drawings" in alone.stderr
    assert "without it, --allow-host changes nothing" in alone.stderr
    collecting = run_cli("serve", "--host", "999.1.1.1", "--allow-host", "school.example", "--collect")
    assert collecting.returncode == 2 and "note:" not in collecting.stderr


def test_serve_without_a_trained_model_names_the_command_that_trains_one(tmp_path):
    import socket

    with socket.socket() as s:  # a free port, so the message is about the model, not the address
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("serve", "--port", str(port), "--runs", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no trained model" in result.stderr and "digitlab run --dataset mnist --model cnn" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_solver_stopped_at_its_limit_is_one_line_of_advice_not_four_warnings(tmp_path):
    """scikit-learn warns once per fit (the model and its three calibration folds), each with a path into
    scikit-learn; the command says it once, with the option that trains longer, and so does the report."""
    result = run_cli("run", "--model", "mlp", "--limit", "300", "--param", "max_iter=5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "ConvergenceWarning" not in result.stderr and "warnings.warn" not in result.stderr, result.stderr
    assert "no: stopped at max_iter=5 before it converged; --param max_iter=10 trains longer" in result.stdout
    (folder,) = tmp_path.iterdir()
    assert "Its solver stopped at max_iter=5 before it converged" in (folder / "report.html").read_text()
    compared = run_cli("compare", "--models", "logreg,mlp", "--limit", "300", "--param", "mlp.max_iter=5",
                       "--out", str(tmp_path / "compare"))
    assert compared.returncode == 0 and "ConvergenceWarning" not in compared.stderr, compared.stderr
    assert "mlp: stopped at max_iter=5 before it converged; --param mlp.max_iter=10 trains longer" in compared.stdout
    assert "logreg: stopped" not in compared.stdout
    (board,) = (tmp_path / "compare").iterdir()
    assert "its solver stopped at max_iter=5 before it converged" in (board / "compare.html").read_text()

