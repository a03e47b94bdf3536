"""Classic scikit-learn models, with defaults per dataset.

Each factory takes ``(dataset, seed)`` and returns an unfitted estimator; :func:`fit_threads` says how to fit one.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

from digitlab.models import register


def fit_threads(model: Any) -> ContextManager:
    """The threads to fit ``model`` with: one OpenBLAS thread for a logistic regression's L-BFGS, else as they are.

    SciPy's L-BFGS-B and NumPy each bring an OpenBLAS with its own thread pool, and the solver calls one and
    then the other at every iteration. Limiting either pool to one thread removes a large slowdown (reported
    as scipy issue 22438 and OpenBLAS issue 5383): on a 2-core machine the lesson's model fitted the 8x8 digits
    in 0.08 s instead of 0.9 s, and 60,000 MNIST digits in 34 s instead of 38 s (BENCHMARKS.md). Other models
    (an MLP's larger products gained from two threads), PyTorch and ONNX Runtime keep their threads.

    >>> from sklearn.linear_model import LogisticRegression
    >>> from threadpoolctl import threadpool_info
    >>> with fit_threads(LogisticRegression()):  # an empty set where NumPy and SciPy use another BLAS
    ...     {pool["num_threads"] for pool in threadpool_info() if pool["internal_api"] == "openblas"} <= {1}
    True
    """
    from sklearn.linear_model import LogisticRegression

    if not (isinstance(model, LogisticRegression) and model.solver == "lbfgs"):
        return contextlib.nullcontext()
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(internal_api="openblas").limit(limits=1)


@register("logreg", "Logistic regression (the lesson's model)")
def logreg(dataset: str, seed: int):
    """The lesson's exact model: ``LogisticRegression(max_iter=1000, random_state=42)``."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed)


@register("svm", "Support-vector machine, RBF kernel (probabilities by sigmoid calibration)")
def svm(dataset: str, seed: int):
    """An RBF SVC wrapped for probabilities, as scikit-learn recommends (``SVC(probability=True)`` is deprecated).

    Its parameters are nested: ``estimator__C``; ``make_model`` also accepts plain ``C``.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(kernel="rbf", C=10.0, gamma="scale", random_state=seed),
                                  method="sigmoid", ensemble=False, cv=3)


@register("knn", "k-nearest neighbours (distance-weighted)")
def knn(dataset: str, seed: int):
    """Distance-weighted k-NN: k=3 neighbours on the 8x8 digits, k=4 on MNIST."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=4 if dataset == "mnist" else 3, weights="distance")


@register("forest", "Random forest")
def forest(dataset: str, seed: int):
    """300 trees on every core."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=300, n_jobs=-1, random_state=seed)


@register("mlp", "Multi-layer perceptron")
def mlp(dataset: str, seed: int):
    """One hidden layer (128 units on the 8x8 digits, 256 on MNIST), Adam, up to 400 epochs (200 on MNIST).

    On the 8x8 digits 200 epochs stopped short of Adam's tolerance (scikit-learn's ConvergenceWarning); 400 let it
    converge, with the same 98.06% for seed 42, in 2.8-2.9 s instead of 2.2-2.3 s.
    """
    from sklearn.neural_network import MLPClassifier

    hidden, epochs = ((256,), 200) if dataset == "mnist" else ((128,), 400)
    return MLPClassifier(hidden_layer_sizes=hidden, alpha=1e-4, max_iter=epochs, early_stopping=False,
                         random_state=seed)
