"""scikit-learn's own estimator checks, run over every model in the zoo.

The models are built through the registry, as ``digitlab run`` builds them, with settings
small enough for the checks' toy data (a few hundred rows). Each check that cannot pass
is listed with the reason, and the list is strict: a listed check that passes fails the test.
"""

from __future__ import annotations

import importlib.util

import pytest
import sklearn
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.fixes import parse_version

from digitlab.models import make_model

SKLEARN = parse_version(sklearn.__version__)
if SKLEARN < parse_version("1.6"):
    pytest.skip("expected_failed_checks needs scikit-learn 1.6 or later", allow_module_level=True)

FAST = {
    "logreg": {},
    "svm": {},
    "knn": {},
    "forest": {"n_estimators": 10, "n_jobs": 1},
    "mlp": {"max_iter": 20},
    # Five epochs of a width-4 network in batches of 32: enough for the checks' 2-feature blobs.
    "cnn": {"epochs": 5, "width": 4, "batch_size": 32, "tta": False, "device": "cpu"},
}
if importlib.util.find_spec("torch") is None:
    del FAST["cnn"]

SAMPLE_WEIGHTS = "sample_weight is not equivalent to removing/repeating samples (scikit-learn lists it too)"
EXPECTED_FAILURES = {  # by estimator class: svm and forest
    "CalibratedClassifierCV": {
        "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHTS,
        "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHTS,
        "check_supervised_y_2d": "CalibratedClassifierCV(ensemble=False) passes a column y to cross_val_predict, "
                                 "which takes it for a multi-output target",
    },
    "RandomForestClassifier": {
        "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHTS,
        "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHTS,
    },
}
MODELS = [make_model(name, params=params) for name, params in FAST.items()]


def expected_failed_checks(estimator) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


strict = {"xfail_strict": True} if SKLEARN >= parse_version("1.8") else {}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The checks' data are tiny: one thread is faster, and many times faster on a busy machine."""
    if "cnn" not in FAST:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:CNNClassifier was given features up to:UserWarning")  # the checks' random data
@parametrize_with_checks(MODELS, expected_failed_checks=expected_failed_checks, **strict)
def test_sklearn_compatible(estimator, check):
    check(estimator)
