"""The calibration figures against independent computations: scikit-learn's temperature scaling, and hand sums."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from digitlab import preprocess
from digitlab.calibrate import brier_score, expected_calibration_error, fit_temperature, log_loss
from digitlab.data import load_dataset


def test_the_temperature_is_scikit_learns():
    """fit_temperature's docstring said the tests check it against CalibratedClassifierCV(method="temperature");
    none did (a test auditor)."""
    import sklearn
    from packaging.version import Version

    if Version(sklearn.__version__) < Version("1.8"):
        pytest.skip(f"method='temperature' came with scikit-learn 1.8; this is {sklearn.__version__}")
    ds = load_dataset("digits")
    X, y = preprocess.train_features(ds)
    X_held, y_held = preprocess.test_features(ds)
    model = LogisticRegression(max_iter=1000, C=100.0).fit(X, y)  # weakly regularised: over-confident, T < 1
    ours = fit_temperature(model.predict_proba(X_held), y_held)
    theirs = CalibratedClassifierCV(FrozenEstimator(model), method="temperature").fit(X_held, y_held)
    (scaler,) = theirs.calibrated_classifiers_[0].calibrators
    assert ours == pytest.approx(1.0 / scaler.beta_, rel=1e-4)
    assert not 0.9 < ours < 1.1  # a fit that moved, not the identity


def test_ece_is_the_count_weighted_gap_over_confidence_bins():
    # two answers 95% sure, one right (bin 0.9-1.0: a gap of 0.45), two 55% sure, both right (bin 0.5-0.6: 0.45)
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    y_index = np.array([0, 1, 0, 1])
    assert expected_calibration_error(proba, y_index) == pytest.approx(0.45)
    # one bin of three answers 0.8 sure, all right (gap 0.2), one of one 0.6 sure and wrong (0.6): (3*0.2 + 0.6)/4
    proba = np.array([[0.8, 0.2], [0.8, 0.2], [0.2, 0.8], [0.6, 0.4]])
    assert expected_calibration_error(proba, np.array([0, 0, 1, 1])) == pytest.approx(0.3)


def test_nll_and_brier_by_hand():
    proba = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    y_index = np.array([0, 2])
    assert log_loss(proba, y_index) == pytest.approx(-(np.log(0.5) + np.log(0.1)) / 2, rel=1e-9)
    assert brier_score(proba, y_index) == pytest.approx(((0.25 + 0.0625 + 0.0625) + (0.01 + 0.64 + 0.81)) / 2)
