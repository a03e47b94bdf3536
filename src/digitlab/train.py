"""Phase 3: fit a model from the registry on a dataset's training part."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError
from digitlab.models import make_model
from digitlab.preprocess import train_features


@dataclass
class FittedModel:
    """A fitted estimator and how it came to be."""

    name: str
    model: Any
    params: dict[str, Any]
    seed: int
    train_seconds: float
    overrides: dict[str, Any] = field(default_factory=dict)


def train(
    name: str, dataset: Dataset, *, seed: int = 42, params: dict[str, Any] | None = None
) -> FittedModel:
    """Build model ``name`` with the defaults for ``dataset`` and fit it on the training part.

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> fitted = train("logreg", load_dataset("digits"))
    >>> fitted.model.classes_.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    from sklearn.utils._param_validation import InvalidParameterError

    model = make_model(name, dataset=dataset.name, seed=seed, params=params)
    features, labels = train_features(dataset)
    start = time.perf_counter()
    try:
        model.fit(features, labels)
    except InvalidParameterError as exc:  # scikit-learn checks parameter values when fitting
        raise DigitlabError(f"model {name!r}: {exc}") from None
    except ValueError as exc:  # a combination of parameters and data the model cannot fit
        raise DigitlabError(f"model {name!r} cannot be trained on this data: {exc}") from None
    except (MemoryError, RuntimeError) as exc:
        # PyTorch reports an impossible allocation (say width=100000) as a RuntimeError
        if not isinstance(exc, MemoryError) and "alloc" not in str(exc).lower() and "memory" not in str(exc).lower():
            raise
        raise DigitlabError(f"model {name!r} needs more memory than this machine has with these parameters; "
                            "choose smaller ones (e.g. a smaller width or batch size)") from None
    seconds = time.perf_counter() - start
    return FittedModel(
        name=name,
        model=model,
        params=_plain_params(model),
        seed=seed,
        train_seconds=seconds,
        overrides=dict(params or {}),
    )


def _plain_params(model: Any) -> dict[str, Any]:
    """``get_params(deep=False)`` with values made JSON-friendly."""
    out: dict[str, Any] = {}
    for key, value in model.get_params(deep=False).items():
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, (list, tuple)):
            out[key] = list(value)
        else:
            out[key] = repr(value)
    return out
