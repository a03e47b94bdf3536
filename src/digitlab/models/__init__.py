"""The model zoo: a registry from name to a factory of scikit-learn-compatible estimators.

Every model takes the features of :mod:`digitlab.preprocess` (N×D floats in [0, 1]) and
follows scikit-learn's estimator contract, so evaluation, reports, saving and serving never
ask which kind of model they hold.

Adding a model is a few lines in :mod:`digitlab.models.classic` (or a module of its own)::

    @register("ridge", "Ridge classifier")
    def _ridge(dataset: str, seed: int):
        return RidgeClassifier()

Examples
--------
>>> from digitlab.models import make_model
>>> make_model("logreg", params={"C": 0.5}).get_params()["C"]
0.5
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable

from digitlab.errors import DigitlabError, require_extra

__all__ = ["MODELS", "ModelSpec", "register", "make_model", "parse_params"]

Factory = Callable[[str, int], Any]
Recipe = Callable[[str, dict], dict]  # (dataset, the parameters asked for) -> defaults that depend on them


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, a one-line summary, and the factory ``(dataset, seed) -> estimator``.

    ``recipe``, when given, turns some asked-for parameters into better defaults for the others
    (the CNN's time budget picks its width, batch size, learning rate and augmentation).
    """

    name: str
    summary: str
    factory: Factory
    needs: str | None = None  # an optional extra the model needs, e.g. "torch"
    recipe: Recipe | None = None


MODELS: dict[str, ModelSpec] = {}


def register(name: str, summary: str, needs: str | None = None,
             recipe: Recipe | None = None) -> Callable[[Factory], Factory]:
    """Decorator that adds a factory to :data:`MODELS` under ``name``."""

    def decorate(factory: Factory) -> Factory:
        MODELS[name] = ModelSpec(name, summary, factory, needs, recipe)
        return factory

    return decorate


def make_model(
    name: str, *, dataset: str = "digits", seed: int = 42, params: dict[str, Any] | None = None
) -> Any:
    """Build an unfitted estimator by registry name, with the defaults for ``dataset``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    dataset : str
        Dataset name; some defaults differ between the 8x8 digits and MNIST.
    seed : int
        Seed for any randomness in the model.
    params : dict, optional
        Hyper-parameters that override the defaults (``set_params`` names); for a model with a
        recipe, they may also change other defaults (the CNN on MNIST: ``time_budget``).
    """
    if name not in MODELS:
        raise DigitlabError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    if params is not None and not isinstance(params, dict):  # a learner wrote the command line's n_neighbors=3
        raise DigitlabError(f"params is a dict of hyper-parameters, e.g. {{'n_neighbors': 3}}; got the "
                            f"{type(params).__name__} {params!r:.60}")
    spec = MODELS[name]
    if spec.needs:
        require_extra("cnn", (spec.needs,), f"model {name!r}")
    model = spec.factory(dataset, seed)
    if params:
        valid = model.get_params()
        # a wrapped estimator's own parameters may be given plainly: C for estimator__C
        params = {key if key in valid or f"estimator__{key}" not in valid else f"estimator__{key}": value
                  for key, value in params.items()}
        unknown = sorted(set(params) - set(valid))
        if unknown:
            inner = sorted(k.split("__", 1)[1] for k in valid if k.startswith("estimator__") and k.count("__") == 1)
            raise DigitlabError(  # a wrapped estimator: its own parameters, the ones a person means
                f"model {name!r} has no parameter {', '.join(unknown)}; "
                f"valid ones: {', '.join(inner or sorted(k for k in valid if '__' not in k))}"
            )
        tuned = spec.recipe(dataset, params) if spec.recipe else {}
        model.set_params(**{**tuned, **params})  # what was asked for wins over the recipe
    return model


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Parse ``["C=10", "kernel=rbf", "hidden_layer_sizes=(128, 64)"]`` into a dict.

    Values are Python literals when they parse as one, ``inf`` and ``-inf`` floats (``C=inf`` was refused as
    "must be a float in the range (0.0, inf]"), else plain strings; a value too deeply nested or too long to parse
    as a literal is refused in one line (it raised RecursionError or MemoryError, a traceback).

    Examples
    --------
    >>> parse_params(["C=10", "kernel=rbf", "layers=(128, 64)", "flag=None", "tol=-inf"])
    {'C': 10, 'kernel': 'rbf', 'layers': (128, 64), 'flag': None, 'tol': -inf}
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise DigitlabError(f"--param expects NAME=VALUE, got {pair!r}")
        text = raw.strip()
        try:
            value = float(text) if text.lower() in ("inf", "+inf", "-inf") else ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        except (RecursionError, MemoryError):
            raise DigitlabError(f"--param {key.strip()}=…: a value of {len(text):,} characters too deeply nested "
                                "to read; give a number, a word or a short tuple") from None
        params[key.strip()] = value
    return params


# Registering happens on import of the modules that name the models. They import scikit-learn and PyTorch
# only when a model is built, so listing the zoo or refusing a mistyped name is instant.
from digitlab.models import classic  # noqa: E402,F401
from digitlab.models import cnn_recipes  # noqa: E402,F401
