"""The same pipeline and report on real MNIST (28×28), when the files are present."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from digitlab.pipeline import run_pipeline

pytestmark = pytest.mark.mnist


def test_run_on_a_stratified_mnist_subset(real_mnist, tmp_path):
    result = run_pipeline("mnist", "logreg", limit=2000, params={"max_iter": 200}, out=tmp_path)
    doc = json.loads((result.folder / "metrics.json").read_text())
    assert doc["n_train"] == 2000 and doc["n_test"] == 10_000 and doc["image_shape"] == [28, 28]
    assert doc["split"] == {"kind": "official", "limit": 2000, "limit_seed": 42}
    assert result.metrics.accuracy > 0.85
    html = (result.folder / "report.html").read_text()
    assert "official split" in html and html.count("data:image/png;base64,") == 8


def test_cli_refuses_test_size_on_the_official_split(real_mnist, tmp_path):
    result = run_cli("run", "--dataset", "mnist", "--test-size", "0.3", "--out", str(tmp_path),
                     env={"DIGITLAB_DATA": str(real_mnist)})
    assert result.returncode == 2 and "official train/test split" in result.stderr


def test_cli_without_cached_mnist_names_the_fetch_command(tmp_path):
    result = run_cli("run", "--dataset", "mnist", "--out", str(tmp_path / "runs"),
                     env={"DIGITLAB_DATA": str(tmp_path / "empty-cache")})
    assert result.returncode == 2
    assert "digitlab data fetch mnist" in result.stderr and "Traceback" not in result.stderr
