"""Why a model decides: what it looks at, how it fails, what it learned.

Each module computes one kind of explanation from a fitted model and images; :mod:`.page`
draws the figures and writes ``explain.html``.

- :mod:`digitlab.explain.model` — one way to ask any zoo model for probabilities of images.
- :mod:`digitlab.explain.saliency` — saliency maps: Integrated Gradients (CNN, Captum),
  weight × input (linear models), occlusion (any model).
- :mod:`digitlab.explain.robustness` — accuracy as images are rotated, shifted, scaled, thinned
  or thickened, blurred, made noisy or distorted.
- :mod:`digitlab.explain.embedding` — a t-SNE map of the test images as the model sees them, the
  CNN's first-layer filters and its feature maps.
- :mod:`digitlab.explain.learning` — the CNN's loss per epoch and a learning curve ("would more data help?").
- :mod:`digitlab.explain.live` — one picture's saliency and first-layer activations, fast enough for the page.
- :mod:`digitlab.explain.page` — the figures and the self-contained ``explain.html``.
"""

from __future__ import annotations

__all__ = ["embedding", "learning", "live", "model", "page", "robustness", "saliency"]
