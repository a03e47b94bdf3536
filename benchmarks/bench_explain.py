"""``digitlab explain`` on a saved run: the time of each part, and the saliency deletion check per method.

The deletion check blanks, on correctly classified test images, the 10% of each image's ink that a
saliency map calls most important for the true digit, and as many random ink pixels (the baseline, in
the same process): a faithful map lowers accuracy far more. For the CNN it also scores Grad-CAM on the
last and second convolutions, the alternative to Integrated Gradients that the page does not show.

Examples
--------
    python benchmarks/bench_explain.py runs/<stamp>-digits-logreg
    DIGITLAB_MNIST_SOURCE=/work/shared/data/mnist python benchmarks/bench_explain.py /tmp/explain-runs/<mnist-cnn run>
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from digitlab.explain import robustness, saliency  # noqa: E402
from digitlab.explain.page import explain_run, load_explainable, rebuild_test_split  # noqa: E402


def grad_cam(model, images: np.ndarray, labels: np.ndarray, layer: str) -> np.ndarray:
    """Grad-CAM (Captum) of the CNN's ``layer`` for the true digits, upsampled to the image size."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    from digitlab.explain.embedding import _cnn_input

    net = model.model.module_.eval()
    attr = LayerGradCam(net, getattr(net, layer)).attribute(
        _cnn_input(model, images), target=torch.from_numpy(labels.astype(np.int64)), relu_attributions=True)
    return LayerAttribution.interpolate(attr, images.shape[1:], interpolate_mode="bilinear").detach().numpy()[:, 0]


def main() -> None:
    """Time ``explain_run`` on the run, then print the deletion check of every saliency method."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="A run folder (it is not changed: the page goes to a temporary folder).")
    parser.add_argument("--check-images", type=int, default=100)
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    try:
        start = time.perf_counter()
        result = explain_run(args.run, out=out)
        print(f"explain_run: {time.perf_counter() - start:.1f} s  " +
              ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    finally:
        shutil.rmtree(out, ignore_errors=True)

    model, loaded = load_explainable(args.run)
    data = rebuild_test_split(loaded)
    labels = np.asarray(data.test_labels).astype(int)
    check = robustness.stratified_indices(labels, args.check_images, 0)
    check = check[model.predict(data.test_images[check]) == labels[check]]
    images, y = data.test_images[check], labels[check]
    methods = {"occlusion": lambda: saliency.occlusion(model, images, y)}
    name, _ = saliency.gradient_saliency(model, images[:1], y[:1])
    if name:
        methods[name] = lambda: saliency.gradient_saliency(model, images, y)[1]
    if model.is_cnn:  # each convolution's map at its own resolution: after its BatchNorm where a pool follows that
        def layer(conv: str) -> str:
            return conv if model.model.norm_after_pool or conv.endswith("b") else "bn" + conv[4:]
        convs = [name for name, m in model.model.module_.named_children() if name.startswith("conv")]
        methods[f"Grad-CAM, last convolution ({convs[-1]})"] = lambda: grad_cam(model, images, y, layer(convs[-1]))
        methods["Grad-CAM, conv2"] = lambda: grad_cam(model, images, y, layer("conv2"))
    print(f"deletion check on {len(check)} correctly classified test images (10% of the ink blanked):")
    for method, compute in methods.items():
        t = time.perf_counter()
        salient, random = saliency.deletion_check(model, images, y, compute())
        print(f"  {method:30s} accuracy {salient:6.1%} after the most salient, {random:6.1%} after random ink "
              f"(error ratio {(1 - salient) / max(1 - random, 1e-9):5.1f}×), {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
