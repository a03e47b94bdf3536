"""The library as an engineer calls it (found by an audit of the Python API): NumPy values for parameters and
options, models rebuilt from their card, a CNN's numeric parameters, macro scores, predict-only models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score, precision_score, recall_score

from digitlab.data import load_dataset
from digitlab.errors import DigitlabError
from digitlab.evaluate import DIGITS, compute_metrics, evaluate_model
from digitlab.preprocess import train_features
from digitlab.store import load_model, save_model
from digitlab.train import train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize(("name", "params", "kept"), [
    ("logreg", {"max_iter": np.int64(500), "C": np.float32(0.5)}, {"max_iter": 500, "C": 0.5}),  # from np grids
    ("logreg", {"class_weight": {0: 2.0}}, {"class_weight": {0: 2.0}}),  # a dict: kept by skops, as it was
    ("logreg", {"C": float("inf")}, {"C": float("inf")}),  # valid in scikit-learn; JSON has no infinity
])
def test_a_saved_model_gives_back_its_parameters_as_they_were_and_refits(name, params, kept, digits, tmp_path):
    fitted = train(name, digits, params=params)
    save_model(fitted, digits, tmp_path)
    loaded = load_model(tmp_path)
    assert {k: loaded.model.get_params()[k] for k in kept} == kept
    assert all(type(loaded.model.get_params()[k]) is type(v) for k, v in kept.items())  # 500, not '500'
    clone(loaded.model).fit(*train_features(digits))  # a fine-tune refits a clone of it


def test_a_cnn_saved_with_numpy_integers_loads(digits, tmp_path):
    pytest.importorskip("torch")
    fitted = train("cnn", digits, params={"epochs": np.int64(1), "width": np.int64(4)})
    save_model(fitted, digits, tmp_path)
    assert load_model(tmp_path).model.get_params()["epochs"] == 1


def test_a_cnn_parameter_its_card_cannot_hold_is_refused_before_anything_is_written(digits, tmp_path):
    """The CNN is rebuilt from its card's parameters; before, the weights were written and the card then failed,
    which left a folder without a card, or a good model's card beside new weights."""
    pytest.importorskip("torch")
    good = train("cnn", digits, params={"epochs": 1, "width": 4})
    save_model(good, digits, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad = train("cnn", digits, params={"epochs": 1, "width": 4})
    bad.model.set_params(tta={1: 2})
    with pytest.raises(DigitlabError, match=r"^parameter tta=\{1: 2\} cannot be saved") as info:
        save_model(bad, digits, tmp_path)
    assert "\n" not in str(info.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert load_model(tmp_path).card.id.startswith("cnn-digits")


@pytest.mark.parametrize(("params", "says"), [
    ({"lr": float("nan")}, "lr must be a positive number, got nan"),
    ({"lr": "0.1"}, "lr must be a positive number, got '0.1'"),
    ({"lr": -1}, "lr must be a positive number"),
    ({"weight_decay": -1e-4}, "weight_decay must be a number of at least 0"),
    ({"label_smoothing": 2}, "label_smoothing must be a number from 0 to 1"),
    ({"augment": -3}, "augment must be a shift in pixels from 0 to 28"),
    ({"distort": 5}, r"distort must be a number in \[0, 1\)"),
    ({"target_accuracy": 1.5, "validation_fraction": 0.2}, r"target_accuracy must be in \(0, 1\]"),
])
def test_the_cnn_refuses_numbers_out_of_range_in_one_line(params, says, digits):
    """Before, lr=nan trained to NaN probabilities and label_smoothing=2 ended in PyTorch's traceback."""
    pytest.importorskip("torch")
    with pytest.raises(DigitlabError, match=says):
        train("cnn", digits, params={"epochs": 1, "width": 2, **params})


@pytest.mark.parametrize(("options", "says"), [
    ({"seed": 1.5}, r"seed \(--seed\) must be a whole number, got 1.5"),
    ({"seed": "1"}, r"seed \(--seed\) must be a whole number, got '1'"),
    ({"limit": 10.5}, r"limit \(--limit\) must be a whole number, got 10.5"),
    ({"test_size": "0.3"}, r"test_size \(--test-size\) must be a number between 0 and 1, got '0.3'"),
])
def test_load_dataset_says_which_option_is_not_a_number(options, says):
    with pytest.raises(DigitlabError, match=f"^{says}$"):
        load_dataset("digits", **options)


def test_load_dataset_takes_numpy_integers_and_the_card_can_hold_them(digits, tmp_path):
    small = load_dataset("digits", seed=np.int64(3), limit=np.int64(500))
    assert small.n_train == 500 and type(small.split["seed"]) is int
    save_model(train("logreg", small), small, tmp_path)
    assert load_model(tmp_path).card.n_train == 500


def test_macro_scores_average_over_the_digits_that_occur_as_scikit_learn_does(digits):
    """A handwriting set often holds a few digits: before, the macro F1 of a perfect model on 0-2 was 0.3."""
    keep = digits.train_labels < 3
    part = digits.__class__(**{**digits.__dict__, "train_images": digits.train_images[keep],
                               "train_labels": digits.train_labels[keep],
                               "test_images": digits.test_images[digits.test_labels < 3],
                               "test_labels": digits.test_labels[digits.test_labels < 3]})
    metrics = evaluate_model(train("logreg", part).model, part)
    assert metrics.accuracy == 1.0 and metrics.macro_f1 == 1.0 and len(metrics.per_class) == 10
    y_true, y_pred = np.array([0, 1, 2, 2, 3]), np.array([0, 1, 1, 2, 5])
    m = compute_metrics(y_true, y_pred, DIGITS)
    for mine, theirs in ((m.macro_f1, f1_score), (m.macro_precision, precision_score), (m.macro_recall, recall_score)):
        assert mine == pytest.approx(theirs(y_true, y_pred, average="macro", zero_division=0))


def test_a_predict_only_model_registered_as_the_docs_show_saves_and_loads(digits, tmp_path, monkeypatch):
    from sklearn.linear_model import RidgeClassifier

    from digitlab.models import MODELS, register
    from digitlab.pipeline import run_pipeline

    monkeypatch.setitem(MODELS, "ridge", None)  # set back after the test
    register("ridge", "Ridge classifier")(lambda dataset, seed: RidgeClassifier())
    result = run_pipeline("digits", "ridge", out=tmp_path)
    loaded = load_model(result.folder)
    assert loaded.card.model == "ridge" and loaded.model.score(*train_features(digits)) > 0.9


@pytest.mark.parametrize(("images", "options", "says"), [
    (lambda ds: ds.test_images[:5] / 16.0, {}, "whole-number pixels from 0 to 16, got float64"),  # scaled: garbage
    (lambda ds: ds.test_images[:5].astype(np.int64) * 16, {}, "whole-number pixels from 0 to 16, got int64 values"),
    (lambda ds: ds.test_images[0].ravel(), {}, "the model takes 8×8 images, got 64"),
    (lambda ds: ds.test_images[:2], {"top_k": 0}, "top_k must be a whole number of at least 1, got 0"),
    (lambda ds: ds.test_images[:2], {"min_confidence": float("nan")}, "min_confidence must be from 0 to 1, got nan"),
    (lambda ds: ds.test_images[:2], {"min_confidence": 2}, "min_confidence must be from 0 to 1, got 2"),
])
def test_predict_images_refuses_pixels_and_options_it_cannot_use_in_one_line(images, options, says, digits, tmp_path):
    """Before, MNIST pictures scaled to [0, 1] gave 13% accuracy, every answer "unsure", and no error."""
    from digitlab.predict import predict_images

    save_model(train("logreg", digits), digits, tmp_path)
    loaded = load_model(tmp_path)
    with pytest.raises(DigitlabError, match=says):
        predict_images(loaded.model, loaded.card, images(digits), **options)
    assert len(predict_images(loaded.model, loaded.card, digits.test_images[:3], top_k=2)) == 3


def test_to_onnx_refuses_a_card_whose_classes_are_not_the_models(digits):
    """A hand-made card with the default classes 0-9 for a model of 7-9: the graph answered 2 for 9."""
    pytest.importorskip("onnx")
    from digitlab.card import ModelCard
    from digitlab.export import to_onnx

    keep = digits.train_labels >= 7
    model = train("logreg", digits.__class__(**{**digits.__dict__, "train_images": digits.train_images[keep],
                                                 "train_labels": digits.train_labels[keep]})).model
    card = ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)
    with pytest.raises(DigitlabError, match=r"answers the classes \[7, 8, 9\] but its card says \[0, 1, 2"):
        to_onnx(model, card)


def test_saving_under_a_file_and_loading_nothing_are_one_line(digits, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(DigitlabError, match="a-file/run: cannot make the model's folder"):
        save_model(train("logreg", digits), digits, tmp_path / "a-file" / "run")
    with pytest.raises(DigitlabError, match="^give a run folder .* got None$"):
        load_model(None)


@pytest.mark.parametrize(("fraction", "advice"), [(0.001, "held out .* use a larger"), (0.999, "kept for .* smaller")])
def test_a_validation_fraction_that_leaves_a_side_too_small_says_which_way_to_move(fraction, advice, digits):
    from digitlab.data import split_validation

    with pytest.raises(DigitlabError, match=f"too few images {advice} fraction"):
        split_validation(digits, fraction)


@pytest.mark.parametrize(("y_true", "y_pred", "says"), [
    ([1, 2, 3], [1, 2], "got 2 answers for 3 labels"),
    ([], [], "got 0 answers for 0 labels"),
    ([10, 11], [10, 11], r"the labels must be among \[0, 1, .*9\]; got \[10, 11\]"),
])
def test_scoring_mismatched_empty_or_foreign_labels_is_one_line(y_true, y_pred, says):
    with pytest.raises(DigitlabError, match=says):
        compute_metrics(np.array(y_true, dtype=int), np.array(y_pred, dtype=int), DIGITS)


def test_a_dataset_of_the_wrong_kind_is_a_digitlab_error(digits):
    with pytest.raises(DigitlabError, match="train_images must be uint8"):
        digits.__class__(**{**digits.__dict__, "train_images": digits.train_images.astype(np.float32)})


def test_compare_models_takes_each_model_once_and_refuses_none(tmp_path):
    from digitlab.compare import compare_models

    with pytest.raises(DigitlabError, match="no models to compare"):
        compare_models([], "digits", out=tmp_path)
    board = compare_models(["logreg", "logreg"], "digits", limit=300, out=tmp_path)
    assert [row.model for row in board.rows] == ["logreg"]


def test_the_cnn_refuses_images_that_are_not_square(digits):
    """Before, 8×12 images were read as 10×10 with their rows wrapped, while the card said 8×12."""
    wide = np.zeros((len(digits.train_images), 8, 12), np.uint8)
    wide[:, :, :8] = digits.train_images
    odd = digits.__class__(**{**digits.__dict__, "name": "wide", "train_images": wide,
                              "test_images": np.zeros((len(digits.test_images), 8, 12), np.uint8)})
    with pytest.raises(DigitlabError, match="^model 'cnn' takes square images; wide's are 8×12$"):
        train("cnn", odd, params={"epochs": 1})
    assert train("logreg", odd).model.n_features_in_ == 96  # the others take any shape


def test_a_digit_with_one_training_image_is_named_instead_of_a_fraction_to_change():
    from digitlab.data import split_validation

    with pytest.raises(DigitlabError, match=r"the digits \[.*\] have one training image each.*a larger --limit"):
        split_validation(load_dataset("digits", limit=15), 0.5)


def test_predict_images_takes_whole_number_floats_as_scikit_learn_s_digits_come(digits, tmp_path):
    from sklearn.datasets import load_digits

    from digitlab.predict import predict_images

    save_model(train("logreg", digits), digits, tmp_path)
    loaded = load_model(tmp_path)
    images = load_digits().images[:5]  # float64, 0-16
    assert [p.digit for p in predict_images(loaded.model, loaded.card, images)] == load_digits().target[:5].tolist()
    with pytest.raises(DigitlabError, match="got <U1; give the images as the dataset holds them"):
        predict_images(loaded.model, loaded.card, np.full((1, 8, 8), "a"))


def test_a_cnn_seeded_with_a_generator_saves_and_loads_without_it(digits, tmp_path):
    pytest.importorskip("torch")
    fitted = train("cnn", digits, params={"epochs": 1, "width": 4, "random_state": np.random.RandomState(0)})
    save_model(fitted, digits, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.card.params["random_state"] is None and loaded.model.random_state is None
    np.testing.assert_allclose(loaded.model.predict_proba(train_features(digits)[0][:5]),
                               fitted.model.predict_proba(train_features(digits)[0][:5]), atol=1e-6)


def test_train_and_load_model_answers_work_where_a_model_is_asked_for(digits, tmp_path):
    """A learner passes on what train() or load_model() gave: evaluate_model(fitted, ds) ended in AttributeError,
    predict_source(loaded, card, picture) too, plot_weights(fitted, ...) in a TypeError."""
    from digitlab import plots
    from digitlab.predict import predict_images, predict_source

    fitted = train("logreg", digits)
    assert evaluate_model(fitted, digits).n_errors == evaluate_model(fitted.model, digits).n_errors
    save_model(fitted, digits, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    picture = tmp_path / "one.png"
    from PIL import Image, ImageDraw

    image = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(image).line([(50, 10), (50, 90)], fill=0, width=10)
    image.save(picture)
    assert predict_source(loaded, loaded.card, picture)[0] == predict_source(loaded.model, loaded.card, picture)[0]
    assert predict_images(fitted, loaded.card, digits.test_images[:3]) == predict_images(
        fitted.model, loaded.card, digits.test_images[:3])
    plots.plot_weights(fitted, (8, 8), tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes().startswith(b"\x89PNG")


def test_a_loaded_model_brings_its_detector_to_predict_images_and_predict_source(lesson_run):
    """An engineer: predict_source(loaded, card, photo) said "unsure" where the CLI said "not a digit"."""
    from digitlab.predict import predict_images

    loaded = load_model(lesson_run.folder)
    pictures = np.zeros((3, 8, 8), np.uint8)
    pictures[0], pictures[1, 2:6, 3:5] = 16, 16  # all ink; a bar, a 1 of sorts
    pictures[2] = np.random.RandomState(0).randint(0, 17, (8, 8))
    with pytest.warns(UserWarning, match="names a not-a-digit detector, but none was given"):
        alone = [p.kind for p in predict_images(loaded.model, loaded.card, pictures)]
    said = predict_images(loaded, loaded.card, pictures)
    assert said == predict_images(loaded.model, loaded.card, pictures, detector=loaded.detector)
    assert [p.kind for p in said] != alone and "not_a_digit" in [p.kind for p in said]
    assert repr(loaded.detector).startswith("NotDigitDetector(mlp=64→256→1, threshold=0.")
    assert len(repr(loaded.detector)) < 150  # not every weight


@pytest.mark.parametrize(("call", "says"), [
    (lambda ds: evaluate_model("runs/latest", ds), "evaluate_model takes a fitted model .* got the str 'runs/latest'"),
    (lambda ds: train("logreg", "digits"), r"train takes a Dataset, e.g. load_dataset\('digits'\); got the str"),
    (lambda ds: train("knn", ds, params="n_neighbors=3"), r"params is a dict .*\{'n_neighbors': 3\}; got the str"),
    (lambda ds: compute_metrics(np.array(["3", "5"]), np.array([3, 5])), "digits as whole numbers; got labels of <U1"),
    (lambda ds: compute_metrics(np.array([3.5, 5]), np.array([3, 5])), "digits as whole numbers; got labels of float"),
    (lambda ds: __import__("digitlab.plots").plots.plot_weights(train("knn", ds), (8, 8), "w.png"),
     "plot_weights takes a linear model or its weights"),
])
def test_a_learners_natural_mistakes_are_one_line(call, says, digits):
    with pytest.raises(DigitlabError, match=says):
        call(digits)


def test_evaluate_model_scores_train_s_or_load_model_s_answer_with_its_calibration(lesson_run):
    """evaluate_model(load_model(run), ds) gave the uncalibrated ECE, NLL and Brier under the calibrated names
    (0.064 against the run's 0.015): the temperature was left behind with the card (a statistician's audit)."""
    from digitlab.data import load_dataset
    from digitlab.store import load_model

    loaded, ds = load_model(lesson_run.folder), load_dataset("digits")
    saved = json.loads((lesson_run.folder / "metrics.json").read_text())
    metrics = evaluate_model(loaded, ds)
    assert loaded.temperature != 1.0 and metrics.ece == pytest.approx(saved["ece"], abs=1e-12)
    assert (metrics.brier, metrics.nll) == pytest.approx((saved["brier"], saved["nll"]), abs=1e-12)
    assert evaluate_model(loaded.model, ds).ece == pytest.approx(saved["ece_uncalibrated"], abs=1e-12)  # bare: as is
    from types import SimpleNamespace  # a holder of one's own, as estimator_of takes: scored as it is (a reviewer)

    assert evaluate_model(SimpleNamespace(model=loaded.model), ds).ece == pytest.approx(saved["ece_uncalibrated"])


def test_save_model_refuses_before_writing_what_could_not_be_loaded(digits, tmp_path):
    """A notebook's audit: string labels left a folder with weights and no card (a ValueError); labels 10/20/30, a
    Pipeline named 'logreg' and a digits model saved as MNIST's were saved, to be refused only when loaded; a bare
    estimator was an AttributeError."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from digitlab.data import Dataset
    from digitlab.models import make_model
    from digitlab.train import FittedModel

    X, y = train_features(digits)
    fitted = lambda model: FittedModel("logreg", model, {}, 42, 0.1)  # noqa: E731 - as a notebook would build one
    small = Dataset("small", np.zeros((10, 5, 5), np.uint8), np.arange(10), np.zeros((1, 5, 5), np.uint8),
                    np.array([1]), 16)
    cases = [
        (lambda: fitted(make_model("logreg").fit(X, np.array(list("zabcdefghi"))[y])), digits, "the digits 0-9"),
        (lambda: fitted(make_model("logreg").fit(X, y * 10)), digits, r"labels \[0, 10, 20"),
        (lambda: make_model("logreg").fit(X, y), digits, "save_model takes what train\\(\\) gave"),
        (lambda: fitted(make_pipeline(StandardScaler(), make_model("logreg")).fit(X, y)), digits, "a Pipeline as"),
        (lambda: train("logreg", digits), small, "takes 64 pixels a picture, but small's pictures are 5×5"),
        (lambda: FittedModel("mine", make_model("logreg").fit(X, y), {}, 42, 0.1), digits, "a model named 'mine'"),
        (lambda: train("logreg", digits), "digits", r"save_model takes a Dataset, e.g. load_dataset\('digits'\)"),
    ]
    for i, (make, dataset, said) in enumerate(cases):
        with pytest.raises(DigitlabError, match=said):
            save_model(make(), dataset, tmp_path / str(i))
        assert not (tmp_path / str(i)).exists()  # nothing written


def test_save_model_keeps_the_parameters_the_model_has_now(digits, tmp_path):
    """Changed and fitted again after train(): the card had kept train()'s width, so the CNN never loaded again,
    and a logistic regression's card said C=1.0 for a model fitted with C=0.001."""
    X, y = train_features(digits)
    cnn = train("cnn", digits, params={"epochs": 1, "width": 4})
    cnn.model.set_params(width=8).fit(X, y)
    save_model(cnn, digits, tmp_path / "cnn")
    assert load_model(tmp_path / "cnn").model.width == 8
    logreg = train("logreg", digits)
    logreg.model.set_params(C=0.001).fit(X, y)
    save_model(logreg, digits, tmp_path / "logreg")
    assert load_model(tmp_path / "logreg").card.params["C"] == 0.001


def test_a_dataset_of_one_s_own_is_checked_and_can_be_compared_and_hashed(digits):
    """pixel_max=0 ended in a NaN error advising another model; pixels over pixel_max and string labels were taken;
    two Datasets could not be compared (==) nor used as a dict key (the run_pipeline of one: unhashable)."""
    from dataclasses import replace

    for change, said in [({"pixel_max": 0}, "pixel_max must be a whole number from 1 to 255, got 0"),
                         ({"pixel_max": 8}, "pixels go up to 16, over pixel_max=8"),
                         ({"train_labels": digits.train_labels.astype(str)}, "train_labels must be the digits 0-9"),
                         ({"test_labels": digits.test_labels + 1}, r"test_labels must be the digits 0-9 .* 10\]")]:
        with pytest.raises(ValueError, match=said):
            replace(digits, **change)
    assert digits == digits and digits != load_dataset("digits") and {digits: 1}[digits] == 1
    read = replace(digits, train_labels=digits.train_labels.astype(float))  # np.loadtxt's floats: whole, so taken
    assert read.train_labels.dtype == np.int64 and (read.train_labels == digits.train_labels).all()  # (a reviewer)


def test_library_slips_get_one_line(digits, tmp_path):
    """evaluate_model(model, "digits") was an AttributeError six frames deep; run_pipeline(ds) a TypeError
    (unhashable); compare_models("logreg,knn") said "unknown model 'l'"."""
    from digitlab.compare import compare_models
    from digitlab.pipeline import run_pipeline

    with pytest.raises(DigitlabError, match=r"evaluate_model takes a Dataset, e.g. load_dataset\('digits'\)"):
        evaluate_model(train("logreg", digits), "digits")
    with pytest.raises(DigitlabError, match="run_pipeline takes a dataset's name, e.g. 'digits'; for a Dataset"):
        run_pipeline(digits, "logreg", out=tmp_path)
    from digitlab.data import split_validation
    from digitlab.evaluate import evaluate_on_test
    from digitlab.train import calibrate

    fitted = train("logreg", digits)
    for slip, what in [(lambda: calibrate(fitted, "digits"), "calibrate takes a Dataset"),  # (a reviewer)
                       (lambda: split_validation("digits", 0.2), "split_validation takes a Dataset"),
                       (lambda: evaluate_on_test(fitted.model, "digits"), "evaluate_on_test takes a Dataset"),
                       (lambda: compare_models(["logreg"], digits, out=tmp_path), "compare_models takes a dataset's")]:
        with pytest.raises(DigitlabError, match=what):
            slip()
    board = compare_models("logreg, knn", limit=300, out=tmp_path)
    assert sorted(row.model for row in board.rows) == ["knn", "logreg"]


def test_predict_images_uses_the_calibration_of_train_s_answer_beside_a_card_made_by_hand(digits, tmp_path):
    """A notebook's card (ModelCard(model=..., dataset=..., ...)) has no calibration: the calibrated answer of
    train() was then scored uncalibrated, 0.68 where the saved and reloaded run said 0.9958."""
    from dataclasses import replace

    from digitlab.card import ModelCard
    from digitlab.predict import predict_images
    from digitlab.train import calibrate

    fitted = train("logreg", digits)
    fitted = replace(fitted, calibration=calibrate(fitted, digits))
    card = ModelCard(model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)
    images = digits.test_images[:20]
    ours = predict_images(fitted, card, images, detector=None)
    calibrated = predict_images(fitted.model, replace(card, calibration=fitted.calibration), images, detector=None)
    assert [a.probabilities for a in ours] == [a.probabilities for a in calibrated]
    assert [a.probabilities for a in ours] != [a.probabilities for a in predict_images(fitted.model, card, images)]
    save_model(fitted, digits, tmp_path / "run")  # load_model's answer too: its calibration is on its card (a reviewer)
    reloaded = predict_images(load_model(tmp_path / "run"), card, images, detector=None)
    # the same up to float32 rounding: the reloaded coefficients are laid out in C order, train()'s in Fortran's,
    # and BLAS adds them up in another order (exactly equal on the AMD machines it was written on, not on an Intel Xeon)
    np.testing.assert_allclose([a.probabilities for a in reloaded], [a.probabilities for a in ours], rtol=1e-4)
