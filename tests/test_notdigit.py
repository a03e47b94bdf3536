"""The not-a-digit detector: trained with each run, stored beside the model, used by every answer."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from digitlab.calibrate import apply_temperature
from digitlab.card import ModelCard
from digitlab.data import load_dataset
from digitlab.data.nondigits import make_nondigits
from digitlab.errors import DigitlabError
from digitlab.notdigit import DETECTOR_FILE, FLAG_RATE, NotDigitDetector
from digitlab.predict import features_of, predict_images
from digitlab.store import load_model
from conftest import run_cli


@pytest.fixture(scope="module")
def loaded(lesson_run):
    return load_model(lesson_run.folder)


def test_the_run_saves_a_detector_and_its_card_entry(lesson_run, loaded):
    check = loaded.card.not_a_digit
    assert (lesson_run.folder / DETECTOR_FILE).is_file() and check.file == DETECTOR_FILE
    assert check.digits_flagged <= FLAG_RATE and check.nondigits_flagged >= 0.8
    assert isinstance(loaded.detector, NotDigitDetector) and loaded.detector.threshold == check.threshold


def test_unseen_nondigits_are_flagged_and_test_digits_are_not(loaded):
    digits = load_dataset("digits")
    others, kinds = make_nondigits(120, seed=3, split="test", image_shape=(8, 8), pixel_max=16)
    def flags(images):
        features = features_of(images, 16)
        proba = apply_temperature(loaded.model.predict_proba(features), loaded.temperature)
        return loaded.detector.flags(features, proba)

    flagged_others, flagged_digits = flags(others), flags(digits.test_images)
    assert flagged_others.mean() >= 0.8, {k: flagged_others[kinds == k].mean() for k in set(kinds)}
    assert flagged_digits.mean() <= 0.02


def test_the_score_it_answers_with_is_the_one_its_threshold_was_set_on(loaded):
    """fit_detector sets the threshold on a scikit-learn LogisticRegression's probabilities over (the MLP's logit,
    the answer's entropy); every answer's score is NotDigitDetector.scores. Dropping the entropy from scores passed
    every test (a test auditor): flags then no longer meant what the card's figures say."""
    from sklearn.linear_model import LogisticRegression

    from digitlab.notdigit import entropy

    images = np.r_[load_dataset("digits").test_images[:60],
                   make_nondigits(60, seed=4, split="test", image_shape=(8, 8), pixel_max=16)[0]]
    features = features_of(images, 16)
    proba = apply_temperature(loaded.model.predict_proba(features), loaded.temperature)
    stacker = LogisticRegression()
    stacker.classes_, stacker.coef_, stacker.intercept_ = np.array([0, 1]), loaded.detector.stack[None, :2], \
        loaded.detector.stack[2:]
    fit_time = stacker.predict_proba(np.c_[loaded.detector.logits(features), entropy(proba)])[:, 1]
    assert np.ptp(entropy(proba)) > 0.1 and abs(loaded.detector.stack[1]) > 0.01  # both inputs weigh
    np.testing.assert_allclose(loaded.detector.scores(features, proba), fit_time, rtol=1e-9)


def test_a_rendered_letter_is_not_a_digit_and_a_digit_is(loaded):
    letters, _ = make_nondigits(60, seed=0, kinds=("letter",), split="test", image_shape=(8, 8), pixel_max=16)
    answers = predict_images(loaded.model, loaded.card, letters, detector=loaded.detector)
    assert sum(a.kind == "not_a_digit" for a in answers) >= 48  # 90% of 300 on the 8×8 digits (BENCHMARKS.md)
    assert all(0.0 <= a.nondigit_score <= 1.0 for a in answers)
    digit = predict_images(loaded.model, loaded.card, load_dataset("digits").test_images[:1], detector=loaded.detector)[0]
    assert digit.kind == "digit" and digit.nondigit_score < loaded.detector.threshold


def test_without_a_detector_no_answer_is_not_a_digit(loaded):
    letters, _ = make_nondigits(6, seed=0, kinds=("letter",), split="test", image_shape=(8, 8), pixel_max=16)
    answers = predict_images(loaded.model, loaded.card, letters)
    assert all(a.kind != "not_a_digit" and a.nondigit_score is None for a in answers)


def _copy(run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run.folder, folder)
    return folder


def test_a_card_from_before_the_detector_loads_without_one(lesson_run, tmp_path):
    folder = _copy(lesson_run, tmp_path)
    doc = json.loads((folder / "model.json").read_text())
    del doc["not_a_digit"]
    (folder / "model.json").write_text(json.dumps(doc))
    (folder / DETECTOR_FILE).unlink()
    assert load_model(folder).detector is None


def test_a_changed_or_missing_detector_is_refused_in_one_line(lesson_run, tmp_path):
    folder = _copy(lesson_run, tmp_path)
    data = bytearray((folder / DETECTOR_FILE).read_bytes())
    data[-5] ^= 0xFF
    (folder / DETECTOR_FILE).write_bytes(bytes(data))
    with pytest.raises(DigitlabError, match="checksum does not match"):
        load_model(folder)
    (folder / DETECTOR_FILE).unlink()
    with pytest.raises(DigitlabError, match="detector its card lists is missing"):
        load_model(folder)


def test_a_digit_the_detector_finds_as_unusual_as_3_in_100_digits_is_marked_might_not_be_one(loaded, lesson_run,
                                                                                              tmp_path):
    """A teacher: a triangle read "0 · 99.8% sure" while the detector's score was 0.73 against its threshold 0.77."""
    from digitlab.notdigit import UNLIKE_RATE
    from digitlab.predict import _one

    detector = loaded.detector
    assert 0 < detector.unlike_from < detector.threshold and loaded.card.not_a_digit.unlike_from == detector.unlike_from
    digits = load_dataset("digits")  # test digits the detector never saw: about 3% are marked, none flagged
    marked = np.mean([a.unlike_a_digit for a in predict_images(loaded.model, loaded.card, digits.test_images,
                                                                detector=detector)])
    assert 0 < marked <= 3 * UNLIKE_RATE, marked
    row = np.array([0.0] * 9 + [1.0])
    between = (detector.unlike_from + detector.threshold) / 2
    assert _one(row, 3, 0.5, "m", True, between, detector.threshold, detector.unlike_from).unlike_a_digit
    assert not _one(row, 3, 0.5, "m", True, detector.unlike_from / 2, detector.threshold, detector.unlike_from
                    ).unlike_a_digit
    flagged = _one(row, 3, 0.5, "m", True, 0.999, detector.threshold, detector.unlike_from)
    assert flagged.kind == "not_a_digit" and not flagged.unlike_a_digit  # "not a digit" is said already
    doubting = dataclasses.replace(detector, unlike_from=0.0)  # a reviewer: a blank page was both
    [blank] = predict_images(loaded.model, loaded.card, np.zeros((1, 8, 8), np.uint8), detector=doubting)
    assert blank.kind == "not_a_digit" and not blank.unlike_a_digit
    folder = tmp_path / "run"  # a card written before the mark: it loads, and no answer is marked
    shutil.copytree(lesson_run.folder, folder)
    doc = json.loads((folder / "model.json").read_text())
    del doc["not_a_digit"]["unlike_from"]
    (folder / "model.json").write_text(json.dumps(doc))
    old = load_model(folder)
    assert old.detector.unlike_from is None
    assert not any(a.unlike_a_digit for a in predict_images(old.model, old.card, digits.test_images,
                                                            detector=old.detector))


@pytest.mark.parametrize("field, value, message", [
    ("unlike_from", 1.5, "a number from 0 to 1"),
    ("unlike_from", "low", "a number from 0 to 1"),
    ("threshold", -0.1, "a number from 0 to 1"),
    ("threshold", "high", "a number from 0 to 1"),
    ("sha256", "abc", "64 lowercase hex"),
    ("file", "../model.safetensors", "notdigit.safetensors"),
    ("n_digits", -1, "non-negative integer"),
])
def test_a_damaged_card_entry_is_refused_in_one_line(loaded, field, value, message):
    doc = json.loads(loaded.card.to_json())
    doc["not_a_digit"][field] = value
    with pytest.raises(DigitlabError, match=message) as info:
        ModelCard.from_dict(doc)
    assert "\n" not in str(info.value)


def test_weights_of_the_wrong_shape_are_refused(loaded):
    tensors = loaded.detector.to_tensors()
    tensors["weight0"] = tensors["weight0"][:10]
    with pytest.raises(DigitlabError, match="do not fit 64 input features"):
        NotDigitDetector.from_tensors(tensors, 0.5, 64)


def _hash_sign(path):
    from PIL import Image, ImageDraw

    image = Image.new("L", (200, 200), 255)
    draw = ImageDraw.Draw(image)
    for at in (60, 120):
        draw.line([(at, 20), (at, 180)], fill=0, width=14)
        draw.line([(20, at), (180, at)], fill=0, width=14)
    image.save(path)
    return path


def test_the_api_answers_kind_and_score(lesson_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from digitlab.serve.app import create_app

    picture = _hash_sign(tmp_path / "hash.png").read_bytes()
    with TestClient(create_app(lesson_run.folder, lesson_run.folder.parent)) as client:
        answer = client.post("/api/predict/image", content=picture, headers={"content-type": "image/png"}).json()
        assert answer["kind"] == "not_a_digit" and answer["nondigit_score"] > 0.5
        pixels = load_dataset("digits").test_images[0].repeat(3, 0).repeat(3, 1) * 15  # 24×24, 0..240
        padded = np.pad(pixels, 2).tolist()
        answer = client.post("/api/predict/pixels", json={"pixels": padded}).json()
        assert answer["kind"] in ("digit", "unsure") and answer["nondigit_score"] is not None
        card = json.loads((lesson_run.folder / "model.json").read_text())  # how often it is right from sure_from on
        assert answer["sure_right"] == card["calibration"]["kept_accuracy"] > 0.9
    loaded = load_model(lesson_run.folder)  # fine-tuned, a model keeps its base's threshold: no figure of its own
    tuned = dataclasses.replace(loaded, card=dataclasses.replace(loaded.card, finetuned_from={"id": "base"}))
    assert loaded.sure_right == card["calibration"]["kept_accuracy"] and tuned.sure_right is None
    # sure of 3 held-out images of 5,000 (an SVM's flat probabilities): "right 100% of the time" was no figure
    few = dataclasses.replace(loaded.card.calibration, coverage=3 / 5000, kept_accuracy=1.0, n_held_out=5000)
    assert dataclasses.replace(loaded, card=dataclasses.replace(loaded.card, calibration=few)).sure_right is None
    enough = dataclasses.replace(few, coverage=100 / 5000)
    assert dataclasses.replace(loaded, card=dataclasses.replace(loaded.card, calibration=enough)).sure_right == 1.0


def test_predict_json_carries_kind_and_score(lesson_run, tmp_path):
    picture = _hash_sign(tmp_path / "hash.png")
    result = run_cli("predict", str(picture), "--model", str(lesson_run.folder), "--json")
    assert result.returncode == 0, result.stderr
    [answer] = json.loads(result.stdout)["predictions"]
    assert answer["kind"] == "not_a_digit" and answer["nondigit_score"] > 0.5
    result = run_cli("predict", str(picture), "--model", str(lesson_run.folder))
    assert "not a digit" in result.stdout


def test_a_detector_with_nan_biases_is_refused(loaded):
    tensors = loaded.detector.to_tensors()
    tensors["bias0"] = np.full_like(tensors["bias0"], np.nan)
    with pytest.raises(DigitlabError, match="do not fit"):
        NotDigitDetector.from_tensors(tensors, 0.5, 64)


def test_too_few_training_digits_make_no_detector_and_the_report_says_so(tmp_path):
    from digitlab.pipeline import run_pipeline

    result = run_pipeline("digits", "logreg", limit=300, out=tmp_path)  # 60 held out: fewer than MIN_HELD_DIGITS
    assert not (result.folder / DETECTOR_FILE).exists() and load_model(result.folder).detector is None
    assert json.loads((result.folder / "metrics.json").read_text())["not_a_digit"] is None
    assert "This run has no" in (result.folder / "report.html").read_text()


@pytest.fixture
def detector_inputs(tmp_path, monkeypatch):
    """A cache of its own, and a classifier of the bundled digits for the detector to sit beside."""
    from digitlab.train import train

    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "cache"))
    digits = load_dataset("digits")
    return digits, train("logreg", digits).model, tmp_path / "cache" / "detectors"


def _weights(detector):
    return [w.tobytes() for w in detector.weights + detector.biases]


def test_the_detector_network_is_kept_in_the_cache_and_read_back(detector_inputs):
    from digitlab.notdigit import fit_detector

    digits, model, folder = detector_inputs
    first = fit_detector(digits, model, seed=0, n_nondigits=600)
    (cached,) = folder.glob("mlp-*.safetensors")
    again = fit_detector(digits, model, seed=0, n_nondigits=600)
    assert _weights(again) == _weights(first) and again.threshold == first.threshold
    # it is read, not fitted again: a different (valid) network in its place comes back as the run's
    other = NotDigitDetector(tuple(w + 1 for w in first.weights), first.biases, first.stack, 1.0)
    from safetensors.numpy import save_file
    save_file(other.to_tensors(), str(cached))
    assert _weights(fit_detector(digits, model, seed=0, n_nondigits=600)) == _weights(other)
    fit_detector(digits, model, seed=1, n_nondigits=600)  # another seed, another network, another file
    assert len(list(folder.glob("mlp-*.safetensors"))) == 2


def test_a_network_fitted_with_another_number_of_blas_threads_is_another_file(detector_inputs):
    """The fit's sums differ by a few ulps between one BLAS thread and two, so each thread count keeps its own
    network: a run reads what it would have fitted itself, whichever process filled the cache first."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from digitlab.notdigit import fit_detector

    if not any(pool["user_api"] == "blas" for pool in threadpool_info()):
        pytest.skip("no BLAS library that threadpoolctl can see")
    digits, model, folder = detector_inputs
    with threadpool_limits(1, user_api="blas"):
        one = fit_detector(digits, model, seed=0, n_nondigits=600)
    with threadpool_limits(2, user_api="blas"):
        two = fit_detector(digits, model, seed=0, n_nondigits=600)
    assert len(list(folder.glob("mlp-*.safetensors"))) == 2
    with threadpool_limits(1, user_api="blas"):
        assert _weights(fit_detector(digits, model, seed=0, n_nondigits=600)) == _weights(one)
    with threadpool_limits(2, user_api="blas"):
        assert _weights(fit_detector(digits, model, seed=0, n_nondigits=600)) == _weights(two)


def test_a_damaged_cached_network_is_fitted_again_and_a_cache_that_cannot_be_written_costs_nothing(detector_inputs):
    from digitlab.notdigit import fit_detector

    digits, model, folder = detector_inputs
    first = fit_detector(digits, model, seed=0, n_nondigits=600)
    (cached,) = folder.glob("mlp-*.safetensors")
    whole = cached.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole.replace(b"weight1", b"weight7")):  # cut short; not a detector
        cached.write_bytes(damaged)
        assert _weights(fit_detector(digits, model, seed=0, n_nondigits=600)) == _weights(first)
        assert cached.read_bytes() == whole  # written again, whole
    shutil.rmtree(folder)
    folder.write_text("not a folder")  # nowhere to keep it: the run goes on
    assert _weights(fit_detector(digits, model, seed=0, n_nondigits=600)) == _weights(first)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["detectors", "nondigits"]


def test_the_cache_keeps_its_most_recently_used_files_and_data_info_lists_them(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from digitlab.cli_data import data_app
    from digitlab.data import cache

    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path))
    monkeypatch.setattr(cache, "CACHE_FILES", 2)
    folder = tmp_path / "detectors"
    for age, name in enumerate(["a", "b"]):
        cache.keep_in_cache(folder / f"{name}.safetensors", b"x" * 1000)
        os.utime(folder / f"{name}.safetensors", (1e9 + age, 1e9 + age))  # a is older than b
    (folder / ".c.safetensors.123.part").write_bytes(b"a write under way")
    (folder / "notes.txt").write_text("not of this kind")
    cache.mark_used(folder / "a.safetensors")  # a run reads a: now b is the least recently used
    cache.keep_in_cache(folder / "c.safetensors", b"x" * 1000)
    assert sorted(p.name for p in folder.iterdir()) == [".c.safetensors.123.part", "a.safetensors", "c.safetensors",
                                                        "notes.txt"]
    out = CliRunner().invoke(data_app, ["info", "--no-verify"], env={"COLUMNS": "200"}).output
    assert "keeps the 2 most recently used files it makes" in out
    assert f"not-a-digit detectors' networks: 3 files, 2.0 kB in {folder}" in out  # notes.txt counts: 3 files
    assert "non-digit pictures" not in out  # no such folder yet


def test_a_full_disk_while_keeping_the_network_costs_nothing_and_leaves_no_part_file(tmp_path):
    """A real limit on file size (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write past it is an OSError)."""
    import resource
    import subprocess
    import sys

    code = ("from digitlab.data import load_dataset; from digitlab.train import train; "
            "from digitlab.notdigit import fit_detector; d = load_dataset('digits'); "
            "print(fit_detector(d, train('logreg', d).model, seed=0, n_nondigits=600).threshold)")
    limit = 20_000  # bytes: the network's file is about 70 kB

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DIGITLAB_DATA": str(tmp_path)},
                          capture_output=True, text=True, timeout=120, preexec_fn=small_files)
    assert done.returncode == 0 and 0.0 < float(done.stdout) < 1.0, done.stderr[-2000:]
    assert list((tmp_path / "detectors").iterdir()) == []  # neither the file nor a piece of it
