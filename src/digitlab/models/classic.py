"""Classic scikit-learn models, with defaults per dataset.

Each factory takes ``(dataset, seed)`` and returns an unfitted estimator.
"""

from __future__ import annotations

from digitlab.models import register


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
    """One hidden layer (128 units on the 8x8 digits, 256 on MNIST), Adam, up to 200 epochs."""
    from sklearn.neural_network import MLPClassifier

    hidden = (256,) if dataset == "mnist" else (128,)
    return MLPClassifier(hidden_layer_sizes=hidden, alpha=1e-4, max_iter=200, early_stopping=False, random_state=seed)
