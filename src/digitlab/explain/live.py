"""A fast explanation of one picture, for the drawing page: what the model looks at, and what its first layer sees.

The page asks for it with every prediction while its "Show what it looks at" toggle is on, so it must
cost a few milliseconds, not the seconds of :mod:`digitlab.explain.saliency`'s careful maps:

- the CNN: Integrated Gradients (Captum, as ``digitlab explain`` draws it) of the answer's logit in
  :data:`LIVE_STEPS` steps — about 5 ms for one 28×28 picture on one core (gradient × input, one step,
  is about 1 ms but noisier) — plus its first convolution layer's activations (after batch norm and
  ReLU, max-pooled to at most 14×14), a few channels as 0..255 grids;
- linear models: weight × input of the answer (exact, and free);
- any other model: no map (occlusion needs dozens of predictions per picture); ``note`` says so, and where
  its maps are.

Each map is signed and scaled to −1..1 by its largest magnitude: positive pixels speak *for* the answer,
negative ones against it.

Examples
--------
>>> import numpy as np
>>> normalise(np.array([[2.0, -4.0], [0.0, 1.0]])).tolist()
[[0.5, -1.0], [0.0, 0.25]]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from digitlab.explain.embedding import block_activations
from digitlab.explain.model import Explainable

__all__ = ["LIVE_STEPS", "LiveExplanation", "explain_one", "first_layer_activations", "normalise"]

LIVE_STEPS = 16
"""Integrated Gradients' steps for the live map: 16 keep one picture's map near 5 ms on one core."""
ACTIVATION_CHANNELS = 8
"""How many of the first layer's channels the page shows (the most active ones for this picture)."""
ACTIVATION_SIDE = 14
"""Largest side of an activation grid: 28×28 maps are max-pooled 2×2, as the network itself does next."""


@dataclass
class LiveExplanation:
    """What :func:`explain_one` found for one picture.

    Attributes
    ----------
    method : str or None
        How the map was made (``"Integrated Gradients"``, ``"weight × input"``), or None for a model without
        a fast map.
    saliency : ndarray or None
        H×W floats in −1..1, the shape of the picture; None when ``method`` is None.
    activations : list of ndarray
        The CNN's first-layer activations, each a small 2-D uint8 grid; empty for other models.
    filters : int or None
        How many filters the CNN's first layer has (``activations`` shows the most active of them).
    note : str or None
        Why there is no map, for a model without a fast one; None when there is a map.
    """

    method: str | None
    saliency: np.ndarray | None
    activations: list[np.ndarray] = field(default_factory=list)
    filters: int | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready: ``saliency`` (rows of floats, 4 decimals, or None), ``activations`` (rows of ints
        or None for a model without them), ``filters``, ``saliency_method`` and ``saliency_note``."""
        return {
            "saliency": None if self.saliency is None else np.round(self.saliency, 4).tolist(),
            "activations": [a.tolist() for a in self.activations] if self.activations else None,
            "filters": self.filters,
            "saliency_method": self.method,
            "saliency_note": self.note,
        }


NO_FAST_MAP = ("no fast map for this model: only the CNN (Integrated Gradients) and linear models (weight × input) "
               "have one; `digitlab explain --model RUN` draws occlusion maps for any model")


def normalise(saliency: np.ndarray) -> np.ndarray:
    """``saliency`` divided by its largest magnitude, so it lies in −1..1 (all zeros stay zeros).

    Parameters
    ----------
    saliency : ndarray
        Any signed map.

    Returns
    -------
    ndarray
        float64, same shape.
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    top = float(np.max(np.abs(saliency))) if saliency.size else 0.0
    if not np.isfinite(top) or top == 0:
        return np.zeros_like(saliency)
    return np.clip(saliency / top, -1.0, 1.0)


def _cnn_input(model: Explainable, image: np.ndarray):
    import torch

    side = model.model.image_shape_[0]
    features = model.features(image[None])
    x = torch.zeros((1, side * side), dtype=torch.float32)
    x[:, : features.shape[1]] = torch.from_numpy(features)
    return x.reshape(1, 1, side, side)


def first_layer_activations(model: Explainable, image: np.ndarray, *, channels: int = ACTIVATION_CHANNELS,
                            max_side: int = ACTIVATION_SIDE) -> list[np.ndarray]:
    """The CNN's first convolution layer (after batch norm and ReLU) for one picture, as small 0..255 grids.

    Parameters
    ----------
    model : Explainable
        The CNN (``model.is_cnn``); any other model gives an empty list.
    image : ndarray
        One H×W picture, 0..pixel_max, as the model takes it.
    channels : int
        How many channels: the most active ones for this picture, the most active first.
    max_side : int
        Maps larger than this are max-pooled 2×2 (28×28 → 14×14) until they fit.

    Returns
    -------
    list of ndarray
        ``channels`` uint8 grids, each scaled by the largest activation of all shown channels (so
        their brightness compares).
    """
    if not model.is_cnn:
        return []
    import torch

    net = model.model.module_.eval()
    with torch.no_grad():
        x = _cnn_input(model, np.asarray(image)).to(next(net.parameters()).device)
        _, maps = next(block_activations(net, x))  # the first convolution, as soon as BatchNorm has normalised it
        while maps.shape[-1] > max_side:
            maps = torch.nn.functional.max_pool2d(maps, 2)
        maps = maps[0].cpu().numpy()
    return _as_grids(maps, channels)


def _as_grids(maps: np.ndarray, channels: int) -> list[np.ndarray]:
    """The ``channels`` strongest of C×h×w maps, the strongest first, as uint8 scaled by their joint maximum."""
    strength = maps.reshape(len(maps), -1).mean(axis=1)
    keep = np.argsort(-strength, kind="stable")[:channels]
    chosen = maps[keep]
    top = float(chosen.max()) if chosen.size else 0.0
    scaled = chosen / top * 255 if top > 0 else np.zeros_like(chosen)
    return [np.clip(np.rint(m), 0, 255).astype(np.uint8) for m in scaled]


def _cnn_saliency(model: Explainable, image: np.ndarray, targets: list[int]) -> np.ndarray:
    """Integrated Gradients of each of ``targets``' logits for one picture, from a blank one: one map a target.

    Captum takes gradients with ``torch.autograd.grad`` (nothing lands in the shared network's ``.grad``),
    so requests may explain side by side in threads.
    """
    from digitlab.explain.saliency import integrated_gradients

    return integrated_gradients(model, np.repeat(image[None], len(targets), axis=0), np.array(targets),
                                steps=LIVE_STEPS)


def _weighed(maps: np.ndarray) -> np.ndarray:
    """The first map, less the second when there is one (the answer's: "why this digit rather than the answer")."""
    return maps[0] - maps[1] if len(maps) > 1 else maps[0]


def explain_one(model: Explainable, image: np.ndarray, target: int, against: int | None = None) -> LiveExplanation:
    """The live explanation of one prepared picture: a saliency map and, for the CNN, its first layer.

    With ``against`` (the answer, when a person asks "why not ``target``?"), the map is ``target``'s less
    ``against``'s: red where a pixel speaks for ``target`` rather than the answer, blue for the answer rather than
    it. (Both methods add up, so this is the map of the difference of the two scores.) Alone, a weak digit's map,
    scaled to its own strongest pixel, looked as strong as the answer's: a learner saw bright red "for 9" on a clear
    7 whose 9 stood at 0.002%.

    Parameters
    ----------
    model : Explainable
        The fitted estimator (not its ONNX export: the map needs its weights or gradients).
    image : ndarray
        One H×W picture prepared for the model (0..pixel_max), as :func:`digitlab.predict.prepare_for`
        returns it.
    target : int
        The digit to explain: the model's answer, or another.
    against : int, optional
        The answer, to explain ``target`` against (see above); None or ``target`` itself: ``target`` alone.

    Returns
    -------
    LiveExplanation
        The map scaled to −1..1 (positive: for ``target``), or no map for a model without a fast one.

    Examples
    --------
    >>> from digitlab.data import load_dataset
    >>> from digitlab.train import train
    >>> ds = load_dataset("digits")
    >>> ex = Explainable(train("logreg", ds).model, ds.pixel_max, ds.image_shape, "logreg")
    >>> live = explain_one(ex, ds.test_images[0], int(ds.test_labels[0]))
    >>> live.method, live.saliency.shape, bool(abs(live.saliency).max() == 1)
    ('weight × input', (8, 8), True)
    """
    image = np.asarray(image)
    targets = [int(target)] + ([] if against is None or int(against) == int(target) else [int(against)])
    if model.is_cnn:
        from digitlab.explain.saliency import NO_CAPTUM, captum_available

        activations, width = first_layer_activations(model, image), model.model.width  # its first layer's channels
        if not captum_available():  # installed without the explain extra: the answer stands, without a map
            return LiveExplanation(None, None, activations, width, note=NO_CAPTUM)
        return LiveExplanation("Integrated Gradients", normalise(_weighed(_cnn_saliency(model, image, targets))),
                               activations, width)
    if model.linear_weights is not None:
        from digitlab.explain.saliency import weight_times_input

        saliency = _weighed(weight_times_input(model, np.repeat(image[None], len(targets), axis=0), np.array(targets)))
        return LiveExplanation("weight × input", normalise(saliency))
    return LiveExplanation(None, None, note=NO_FAST_MAP)
