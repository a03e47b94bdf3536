"""Prediction from prepared pictures (digitlab.predict)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.card import ModelCard
from digitlab.data import load_dataset
from digitlab.errors import DigitlabError
from digitlab.predict import (Prediction, features_of, predict_images, predict_source, prepare_for,
                              unsure_threshold)
from digitlab.train import train


DIGITS_CARD = ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def logreg(digits):
    model = train("logreg", digits).model
    card = ModelCard(id="logreg-digits-test", model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)
    return model, card


def test_predictions_match_the_model(digits, logreg):
    model, card = logreg
    predictions = predict_images(model, card, digits.test_images[:50])
    assert [p.digit for p in predictions] == model.predict(features_of(digits.test_images[:50], 16)).tolist()
    for p in predictions:
        assert isinstance(p, Prediction)
        assert len(p.probabilities) == 10 and abs(sum(p.probabilities) - 1) < 1e-6
        assert [d for d, _ in p.top] == list(np.argsort(p.probabilities)[::-1][:3])
        assert p.top[0] == (p.digit, p.probability)
        assert p.probability >= p.top[1][1] >= p.top[2][1]
        assert p.unsure == (p.probability < 0.5)
        assert p.model_id == "logreg-digits-test"


def test_single_image_and_top_k_and_threshold(digits, logreg):
    model, card = logreg
    [p] = predict_images(model, card, digits.test_images[0], top_k=5, min_confidence=1.0)
    assert len(p.top) == 5 and p.unsure


def test_no_images_give_no_predictions(digits, logreg):
    from digitlab.preprocess import to_features

    model, card = logreg
    assert to_features(digits.test_images[:0], digits.pixel_max).shape == (0, 64)
    assert predict_images(model, card, digits.test_images[:0]) == []
    with pytest.raises(DigitlabError, match="takes 8×8 images"):  # an empty batch of the wrong size is still refused
        predict_images(model, card, np.zeros((0, 28, 28), np.uint8))


def test_an_array_with_no_ink_is_not_a_digit(digits, logreg):
    """A learner's np.zeros((8, 8)) came back a sure 4 (96%): prepare_digit refuses a blank picture, predict_images
    took it as it came. Blank among others, it alone is "not_a_digit"; the model's answer is kept beside."""
    model, card = logreg
    batch = np.stack([digits.test_images[0], np.zeros((8, 8), np.uint8), digits.test_images[1]])
    first, blank, last = predict_images(model, card, batch)
    assert blank.kind == "not_a_digit" and len(blank.probabilities) == 10
    assert first.kind != "not_a_digit" and last.kind != "not_a_digit"
    assert [first, last] == predict_images(model, card, batch[[0, 2]])


def test_to_dict_is_json_ready(digits, logreg):
    import json

    model, card = logreg
    [p] = predict_images(model, card, digits.test_images[:1])
    data = json.loads(json.dumps(p.to_dict()))
    assert set(data) == {"digit", "probability", "top", "probabilities", "unsure", "sure_from", "model_id",
                         "calibrated", "kind", "nondigit_score", "unlike_a_digit"}
    assert data["sure_from"] == unsure_threshold(card)
    assert data["kind"] == ("unsure" if p.unsure else "digit")
    assert data["top"][0] == {"digit": p.digit, "probability": p.probability}


def test_models_that_know_only_some_digits_still_give_ten_probabilities(digits):
    from sklearn.linear_model import LogisticRegression

    keep = np.isin(digits.train_labels, [3, 7])
    model = LogisticRegression(max_iter=500).fit(features_of(digits.train_images[keep], 16), digits.train_labels[keep])
    [p] = predict_images(model, DIGITS_CARD, digits.test_images[:1])
    assert p.digit in (3, 7) and len(p.probabilities) == 10
    assert sum(p.probabilities[d] for d in (3, 7)) == pytest.approx(1.0)


def test_models_without_probabilities(digits):
    from sklearn.svm import LinearSVC

    model = LinearSVC().fit(features_of(digits.train_images, 16), digits.train_labels)
    [p] = predict_images(model, DIGITS_CARD, digits.test_images[:1])
    assert p.probability == 1.0 and sum(p.probabilities) == 1.0


def test_wrong_input_size_is_a_clear_error(logreg):
    model, card = logreg
    with pytest.raises(DigitlabError, match="takes 8×8 images, got 28×28"):
        predict_images(model, card, np.zeros((1, 28, 28), dtype=np.uint8))


def test_prepare_for_uses_the_card():
    stroke = np.zeros((100, 100), dtype=np.uint8)
    stroke[10:90, 40:60] = 255
    assert prepare_for(ModelCard(model="cnn", dataset="mnist", image_shape=(28, 28), pixel_max=255),
                       stroke).shape == (28, 28)
    small = prepare_for(ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16), stroke)
    assert small.shape == (8, 8) and small.max() <= 16


def test_predict_source_reads_prepares_and_predicts(logreg, tmp_path):
    model, card = logreg
    picture = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(picture).line([(150, 30), (150, 270)], fill="black", width=40)
    path = tmp_path / "one.jpg"
    picture.save(path, "JPEG")
    prediction, seen = predict_source(model, card, path)
    assert prediction.digit == 1 and seen.shape == (8, 8)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    assert predict_source(model, card, buffer.getvalue())[0].digit == 1


def test_predict_source_on_a_blank_picture(logreg):
    model, card = logreg
    buffer = io.BytesIO()
    Image.new("L", (50, 50), 255).save(buffer, "PNG")
    with pytest.raises(DigitlabError, match="no ink found"):
        predict_source(model, card, buffer.getvalue())


def test_a_calibrated_card_applies_its_temperature_and_threshold(digits, logreg):
    from dataclasses import replace

    from digitlab.calibrate import Calibration, apply_temperature
    from digitlab.preprocess import to_features

    model, card = logreg
    calibration = Calibration(temperature=0.5, unsure_below=0.97, kept_accuracy=0.996, coverage=0.9,
                              ece_before=0.08, ece_after=0.01, held_out="test", n_held_out=100)
    calibrated = replace(card, calibration=calibration)
    images = digits.test_images[:40]
    raw = model.predict_proba(to_features(images, 16))
    expected = apply_temperature(raw, 0.5)
    predictions = predict_images(model, calibrated, images)
    np.testing.assert_allclose([p.probabilities for p in predictions], expected)
    assert [p.digit for p in predictions] == raw.argmax(axis=1).tolist()  # the temperature never changes the answer
    assert all(p.calibrated for p in predictions) and not any(p.calibrated for p in predict_images(model, card, images))
    assert [p.unsure for p in predictions] == (expected.max(axis=1) < 0.97).tolist()


def test_a_confidence_at_the_threshold_up_to_rounding_is_sure(digits, logreg):
    """The threshold is one of the held-out confidences; the same confidence recomputed in another batch can come
    out a few units of the last digit lower (a k-NN's unanimous vote: ...452 against the threshold's ...454)."""
    model, card = logreg
    [prediction] = predict_images(model, card, digits.test_images[:1])
    top = prediction.probability
    for threshold, unsure in [(top, False), (top + 2e-16, False), (top + 1e-6, True), (top - 1e-6, False)]:
        [p] = predict_images(model, card, digits.test_images[:1], min_confidence=threshold)
        assert (p.unsure, p.kind) == (unsure, "unsure" if unsure else "digit"), threshold


def test_a_bare_estimator_whose_card_names_a_detector_gets_a_warning(lesson_run):
    """An engineer passed ``loaded.model``: a checkerboard was a sure 8, no word that the run's detector went unused."""
    import warnings

    from digitlab.store import load_model

    loaded = load_model(lesson_run.folder)
    checkerboard = (np.indices((8, 8)).sum(axis=0) % 2 * 16).astype(np.uint8)[None]
    with pytest.warns(UserWarning, match="names a not-a-digit detector, but none was given"):
        predict_images(loaded.model, loaded.card, checkerboard)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        said = predict_images(loaded, loaded.card, checkerboard)  # its detector used: no warning
        predict_images(loaded.model, loaded.card, checkerboard, detector=None)  # none, on purpose
        predict_images(loaded.model, loaded.card, checkerboard, detector=loaded.detector)
    assert said[0].kind == "not_a_digit"
