"""What the model learned: a map of the test images as it sees them, and the CNN's filters and feature maps.

:func:`model_features` gives the representation the last layer reads — the CNN's penultimate
features (the flattened output of its last convolution block), or the pixels for a classic model.
:func:`tsne_map` lays them out in 2-D with t-SNE, and :func:`svg_map` draws that map as an inline
SVG whose points show their image on hover (plain SVG, CSS and a few lines of JavaScript; no CDN).

Examples
--------
>>> import numpy as np
>>> svg = svg_map(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([3, 5]), np.array([3, 8]), sprite_columns=2, tile=8)
>>> svg.count("<circle"), svg.count(">3</text>"), svg.count(">5</text>")
(2, 1, 1)
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

from digitlab.explain.model import Explainable

__all__ = ["DIGIT_COLOURS", "feature_maps", "first_layer_filters", "model_features", "sprite_png", "sprite_uri", "svg_map",
           "tsne_map"]

DIGIT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
"""Matplotlib's tab10 colours, digit 0 to 9: the same in the SVG map and in the legends."""


def _cnn_input(model: Explainable, images: np.ndarray):
    import torch

    side = model.model.image_shape_[0]
    features = model.features(images)
    x = np.zeros((len(features), side * side), dtype=np.float32)
    x[:, : features.shape[1]] = features
    device = next(model.model.module_.parameters()).device
    return torch.from_numpy(x.reshape(len(x), 1, side, side)).to(device)


def model_features(model: Explainable, images: np.ndarray) -> tuple[str, np.ndarray]:
    """What the model's last layer reads, one row per image, and its name.

    For the CNN, the input of its final linear layer (the flattened last convolution block); for any
    other model, the pixels scaled to [0, 1].
    """
    if not model.is_cnn:
        return "pixels", model.features(images).astype(np.float64)
    import torch

    net = model.model.module_.eval()
    body = net[:-1]  # everything before the final linear layer
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), 1024):
            out.append(body(_cnn_input(model, images[i:i + 1024])).float().cpu().numpy())
    return "the CNN's penultimate features", np.concatenate(out).astype(np.float64)


def tsne_map(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE coordinates of ``features`` (PCA to 50 dimensions first, as the t-SNE authors advise)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if n < 3:
        return np.zeros((n, 2))
    if features.shape[1] > 50 and n > 50:
        features = PCA(n_components=50, random_state=seed).fit_transform(features)
    perplexity = float(min(30.0, (n - 1) / 3))
    # speed: after PyTorch has run, its OpenMP threads still spin and fight scikit-learn's own OpenMP
    # runtime for the cores, which made t-SNE 5x slower on 2 cores; one thread avoids the fight.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="openmp"):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def sprite_png(images: np.ndarray, pixel_max: int, columns: int = 40) -> bytes:
    """All ``images`` tiled row by row into one PNG (ink dark on white), for the map's hover pictures."""
    from PIL import Image

    n, height, width = images.shape
    rows = max(1, int(np.ceil(n / columns)))
    canvas = np.zeros((rows * height, columns * width), dtype=np.float64)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
    grey = (255 - np.clip(canvas / pixel_max, 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def svg_map(points: np.ndarray, labels: np.ndarray, predicted: np.ndarray, *, sprite_columns: int,
            tile: int, size: int = 640) -> str:
    """The map as an inline SVG: one ``<circle>`` per image, coloured by its true digit, errors ringed in black,
    and each digit's name written large above where its points gather.

    Each circle carries ``data-i`` (its index in the hover sprite), ``data-t`` (true digit) and ``data-p``
    (prediction); the page's script shows the image when the pointer is over it. ``sprite_columns`` and
    ``tile`` (the side of an image in the sprite) are written on the ``<svg>`` for that script.
    """
    points = np.asarray(points, dtype=np.float64)
    pad = 12.0
    if len(points):
        low, high = points.min(axis=0), points.max(axis=0)
        span = np.where(high - low > 0, high - low, 1.0)
        xy = pad + (points - low) / span * (size - 2 * pad)
    else:
        xy = points
    parts = [f'<svg class="map" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" '
             f'aria-label="t-SNE map of the pictures explained" data-columns="{int(sprite_columns)}" '
             f'data-tile="{int(tile)}">',
             f'<rect width="{size}" height="{size}" fill="#fff"/>']
    order = np.argsort(np.asarray(labels) != np.asarray(predicted), kind="stable")  # errors drawn last, on top
    for i in order:
        t, p = int(labels[i]), int(predicted[i])
        wrong = t != p
        style = f'fill="{DIGIT_COLOURS[t % 10]}"' + (' stroke="#000" stroke-width="1.6" r="5"' if wrong else ' r="3"')
        title = f"true {t}" + (f", read as {p}" if wrong else "")
        parts.append(f'<circle cx="{xy[i, 0]:.1f}" cy="{xy[i, 1]:.1f}" {style} data-i="{int(i)}" data-t="{t}" '
                     f'data-p="{p}"><title>{escape(title)}</title></circle>')
    for digit in sorted(set(np.asarray(labels).tolist())):  # each digit's name by its points: colour alone
        x, y = _label_spot(xy[np.asarray(labels) == digit], xy, size)  # does not tell them apart
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="26" font-weight="bold" text-anchor="middle" '
                     f'dominant-baseline="central" fill="{DIGIT_COLOURS[int(digit) % 10]}" stroke="#fff" '
                     f'stroke-width="4" paint-order="stroke" pointer-events="none">{int(digit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _label_spot(mine: np.ndarray, every: np.ndarray, size: int) -> tuple[float, float]:
    """Where to write a digit's name: just above, below, left or right of its points, whichever place
    covers the fewest points of any digit (above on a tie), inside the map.

    >>> cluster = np.array([[100.0, 100.0], [110.0, 105.0], [105.0, 110.0]])
    >>> crowd = np.r_[cluster, [[105.0, 84.0], [106.0, 86.0]]]   # another digit's points just above it
    >>> _label_spot(cluster, crowd, 640)
    (105.0, 125.5)
    """
    (x_low, y_low), (x_mid, y_mid), (x_high, y_high) = np.percentile(mine, [5, 50, 95], axis=0)
    spots = np.clip([(x_mid, y_low - 16), (x_mid, y_high + 16), (x_low - 18, y_mid), (x_high + 18, y_mid)], 16, size - 16)
    covered = [int((np.hypot(*(every - spot).T) < 15).sum()) for spot in spots]
    x, y = spots[int(np.argmin(covered))]
    return float(x), float(y)


def sprite_uri(images: np.ndarray, pixel_max: int, columns: int = 40) -> str:
    """:func:`sprite_png` as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(sprite_png(images, pixel_max, columns)).decode("ascii")


def first_layer_filters(model: Explainable) -> np.ndarray:
    """The CNN's first convolution kernels, ``width``×3×3 (one grey input channel)."""
    weight = model.model.module_.conv1.weight.detach().cpu().numpy()
    return weight[:, 0].astype(np.float64)


def feature_maps(model: Explainable, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The activations after each convolution's BatchNorm and ReLU for one image: ``[(title, C×H×W), ...]``; a
    title names what the block does, in order."""
    import torch

    net = model.model.module_.eval()
    x = _cnn_input(model, np.asarray(image)[None])
    before = dict(zip(list(net._modules)[1:], net.children()))  # each layer's name → the layer before it
    with torch.inference_mode():  # bn2 → "block 2: conv2 → pool → BatchNorm → ReLU"; bn2b: no pool
        return [(f"block {name[2]}: conv{name[2:]}{' → pool' * isinstance(before[name], torch.nn.MaxPool2d)} → "
                 f"BatchNorm → ReLU", maps[0].float().cpu().numpy().astype(np.float64))
                for name, maps in block_activations(net, x)]


def block_activations(net, x):
    """``(name, activations)`` for each BatchNorm of the network, its output's ReLU, for the batch ``x``.

    With BatchNorm before the pool (models saved before ``norm_after_pool``) a block's first is before the
    pool, at the convolution's resolution (the network's ReLU comes after the pool, which gives the same
    values pooled); with BatchNorm after the pool, and for a block's second convolution
    (``extra_convs``), it is what the network's next ReLU outputs.
    """
    import torch

    for name, layer in net.named_children():
        if isinstance(layer, torch.nn.Linear):
            return
        x = layer(x)
        if isinstance(layer, torch.nn.BatchNorm2d):
            yield name, torch.relu(x)
