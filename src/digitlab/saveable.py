"""What :func:`~digitlab.store.save_model` refuses before it writes anything: a model its card could not describe, or
one that could not be loaded again."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError, require_dataset
from digitlab.train import NOT_PLAIN, FittedModel, plain_params, plain_value


def as_it_is_now(fitted: Any, dataset: Dataset) -> FittedModel:
    """``fitted`` with its estimator's parameters as they are now (a CNN refitted wider after train() had been saved
    with train()'s width, never to load), or one line, before anything is written, on what could not be loaded: a
    bare estimator, one of another kind than its name, labels other than 0-9, another image size than ``dataset``'s."""
    from digitlab.models import MODELS, make_model

    if not isinstance(getattr(fitted, "name", None), str) or not hasattr(getattr(fitted, "model", None), "predict"):
        raise DigitlabError(f"save_model takes what train() gave (train(name, dataset)); got the "
                            f"{type(fitted).__name__} {fitted!r:.40}")
    require_dataset(dataset, "save_model")
    model, (height, width) = fitted.model, dataset.image_shape
    if fitted.name not in MODELS:  # loading would refuse it: "unknown model in its card"
        raise DigitlabError(f"cannot save a model named {fitted.name!r}: the name must be one of {', '.join(MODELS)}")
    if type(model) is not (kind := type(make_model(fitted.name, dataset=dataset.name))):
        raise DigitlabError(f"cannot save a {type(model).__name__} as {fitted.name!r}, which is a {kind.__name__}")
    classes = getattr(model, "classes_", range(10))
    if not all(isinstance(c, numbers.Real) and not isinstance(c, bool) and c in range(10) for c in classes):
        raise DigitlabError(f"digitlab saves models that answer the digits 0-9; this one was fitted on the labels "
                            f"{[c.item() if hasattr(c, 'item') else c for c in classes][:12]}")
    if getattr(model, "n_features_in_", height * width) != height * width:
        raise DigitlabError(f"the model takes {model.n_features_in_} pixels a picture, but {dataset.name}'s pictures "
                            f"are {height}×{width}: save it with the dataset it was trained on")
    return dataclasses.replace(fitted, params=plain_params(model))


def check_saveable(model: Any) -> None:
    """Refuse, in one line, a model rebuilt from its card's parameters (the CNN) when the card cannot hold one
    of them as it is (a dict, an object, an infinity): saved, it could never be loaded."""
    if not hasattr(model, "export_tensors"):
        return  # scikit-learn's models keep such parameters in their skops file
    for key, value in model.get_params(deep=False).items():
        if plain_value(value) is NOT_PLAIN and key != "random_state":  # a generator: the card keeps None
            raise DigitlabError(f"parameter {key}={value!r} cannot be saved with the model: its card holds "
                                "finite numbers, strings, lists and None; give one of those")
