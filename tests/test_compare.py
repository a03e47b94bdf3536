"""`digitlab compare` and the zoo: every classic model learns and ranks on one split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from conftest import run_cli, seven_png
from digitlab.compare import compare_models, mcnemar_exact
from digitlab.data import load_dataset
from digitlab.evaluate import evaluate_model
from digitlab.models import MODELS, make_model
from digitlab.train import train

CLASSIC = ["logreg", "svm", "knn", "forest", "mlp"]


@pytest.fixture(scope="module")
def small_digits():
    return load_dataset("digits", limit=400)


@pytest.mark.parametrize("name", CLASSIC)
def test_each_classic_model_learns(name, small_digits):
    params = {"max_iter": 60} if name == "mlp" else None
    fitted = train(name, small_digits, params=params)
    assert evaluate_model(fitted.model, small_digits).accuracy > 0.85  # chance is 0.10


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameters_round_trip_through_clone(name):
    model = make_model(name)
    twin = clone(model)
    assert twin.get_params().keys() == model.get_params().keys()
    assert repr(twin.get_params(deep=False)) == repr(model.get_params(deep=False))


def test_plain_parameter_reaches_a_wrapped_estimator():
    assert make_model("svm", params={"C": 3.0}).get_params()["estimator__C"] == 3.0


def test_mcnemar_exact_matches_binomial_test():
    from scipy.stats import binomtest

    rng = np.random.default_rng(1)
    a, b = rng.random(300) < 0.9, rng.random(300) < 0.8
    only_a, only_b, p = mcnemar_exact(a, b)
    assert p == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def test_compare_writes_a_ranked_leaderboard(tmp_path):
    board = compare_models(["logreg", "knn"], "digits", out=tmp_path)
    assert [r.model for r in board.rows] == ["knn", "logreg"]  # 6 vs 12 errors on the lesson split
    assert board.rows[1].n_errors == 12
    doc = json.loads((board.folder / "leaderboard.json").read_text())
    assert doc["mcnemar"]["first"] == "knn" and 0 < doc["mcnemar"]["p_value"] <= 1
    html = (board.folder / "compare.html").read_text()
    assert "McNemar" in html and "data:image/png;base64," in html
    assert (board.folder / "knn" / "model.json").is_file()


def test_compare_cli_and_its_errors(tmp_path):
    result = run_cli("compare", "--models", "logreg,knn,logreg", "--out", str(tmp_path))  # a name twice: once
    assert result.returncode == 0, result.stderr
    assert "knn" in result.stdout and "McNemar" in result.stdout
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rows = json.loads((folder / "leaderboard.json").read_text())["rows"]
    assert len(rows) == 2
    for row in rows:  # each saved model's card holds the accuracy the leaderboard measured (the page's menu shows it)
        assert json.loads((folder / row["model"] / "model.json").read_text())["metrics"]["accuracy"] == row["accuracy"]
    seven = tmp_path / "seven.png"
    seven.write_bytes(seven_png())
    said = run_cli("predict", "--model", str(folder / "knn"), str(seven))
    assert said.returncode == 0 and "note: this model was not calibrated (its percentages are its own" in said.stderr
    assert "nor given a not-a-digit detector (any picture gets a digit): `compare` and `sweep` save" in said.stderr
    assert "`digitlab run --dataset digits --model knn` trains one that is" in said.stderr
    said = run_cli("predict", "--model", str(folder), str(seven))  # the compare folder itself: which run in it?
    assert said.returncode == 2 and said.stderr.strip().endswith(
        f"it holds runs in its folders: give one, e.g. {folder / 'knn'}"), said.stderr
    as_json = run_cli("compare", "--models", "logreg,knn", "--limit", "300", "--out", str(tmp_path / "j"), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [row["model"] for row in json.loads(as_json.stdout)["rows"]] in (["logreg", "knn"], ["knn", "logreg"])
    bad = run_cli("compare", "--models", "logreg,nope", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "unknown model 'nope'" in bad.stderr
    bad = run_cli("compare", "--models", "logreg", "--param", "C=2", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "MODEL.NAME=VALUE" in bad.stderr
