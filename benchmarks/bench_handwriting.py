"""How well does a model read digits drawn by a person, through the app's own preparation?

No person is at hand, so two synthetic sets stand in, both drawn large with a thick pen and sent
through exactly what the app does with an upload (``read_image`` → ``prepare_digit`` → model):

- ``strokes``: digits drawn from hand-written stroke templates (two or three shapes per digit),
  randomly slanted, rotated, squeezed and wobbled, with a round pen 6-13% of the digit's height,
  on canvases of 300-1600 px, anywhere on the canvas;
- ``redrawn``: real MNIST test digits (the last 5,000, which the model never trained on) blown
  up 12-40x into smooth thick strokes — real handwriting shapes at a size no MNIST image has.

Each is drawn dark-on-light and light-on-dark, and saved as PNG or as a JPEG "photo" (grey paper,
uneven light, blur, sensor noise, quality 55-90). The baseline, in the same run, is the model's
accuracy on the same MNIST test digits as they come (28×28): the ratio says what drawing, scaling,
polarity and JPEG cost. A model of scikit-learn's 8×8 digits (the lesson's) is measured too, each picture
prepared into its 8×8 form; its baseline is its own dataset's test part.

Beside accuracy, how far its confidence holds on drawings: the share of answers given as sure (neither "unsure" nor
"not a digit", as the page shows them, with the run's detector), how many of those are right, and the mean
probability they state.

Usage::

    python benchmarks/bench_handwriting.py --model runs/<mnist-cnn-run> [--n 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from digitlab.data.images import prepare_digit, read_image  # noqa: E402
from digitlab.predict import predict_images  # noqa: E402

# Stroke templates in a unit box (x right, y down); each digit has a few shapes, each shape a
# list of strokes, each stroke a list of points joined by a smooth curve.
TEMPLATES: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [[[(0.5, 0.04), (0.2, 0.2), (0.14, 0.55), (0.3, 0.9), (0.55, 0.96), (0.8, 0.75), (0.85, 0.4),
          (0.7, 0.1), (0.48, 0.05)]],
        [[(0.55, 0.05), (0.3, 0.15), (0.22, 0.5), (0.35, 0.9), (0.6, 0.93), (0.75, 0.6), (0.72, 0.2),
          (0.5, 0.06)]]],
    1: [[[(0.5, 0.04), (0.5, 0.96)]],
        [[(0.32, 0.22), (0.55, 0.04), (0.52, 0.96)]],
        [[(0.6, 0.04), (0.42, 0.96)]]],
    2: [[[(0.2, 0.25), (0.35, 0.08), (0.6, 0.05), (0.78, 0.2), (0.74, 0.42), (0.5, 0.66), (0.18, 0.93),
          (0.84, 0.92)]],
        [[(0.22, 0.2), (0.5, 0.04), (0.78, 0.22), (0.6, 0.55), (0.2, 0.94), (0.55, 0.86), (0.86, 0.94)]]],
    3: [[[(0.2, 0.15), (0.45, 0.04), (0.72, 0.12), (0.74, 0.3), (0.48, 0.47), (0.78, 0.6), (0.8, 0.82),
          (0.5, 0.96), (0.18, 0.86)]],
        [[(0.18, 0.08), (0.78, 0.08), (0.45, 0.42), (0.75, 0.55), (0.78, 0.82), (0.5, 0.96), (0.2, 0.86)]]],
    4: [[[(0.62, 0.04), (0.18, 0.64), (0.86, 0.64)], [(0.66, 0.3), (0.66, 0.97)]],
        [[(0.28, 0.04), (0.22, 0.55), (0.8, 0.55)], [(0.7, 0.04), (0.68, 0.97)]]],
    5: [[[(0.3, 0.07), (0.25, 0.45), (0.5, 0.38), (0.76, 0.5), (0.78, 0.76), (0.55, 0.95), (0.2, 0.88)],
         [(0.3, 0.07), (0.8, 0.06)]],
        [[(0.8, 0.06), (0.32, 0.06), (0.27, 0.44), (0.6, 0.42), (0.8, 0.65), (0.65, 0.92), (0.22, 0.9)]]],
    6: [[[(0.72, 0.04), (0.42, 0.28), (0.24, 0.6), (0.3, 0.88), (0.55, 0.96), (0.76, 0.8), (0.7, 0.58),
          (0.45, 0.52), (0.26, 0.66)]],
        [[(0.62, 0.04), (0.3, 0.45), (0.25, 0.8), (0.5, 0.96), (0.75, 0.78), (0.55, 0.55), (0.28, 0.68)]]],
    7: [[[(0.18, 0.08), (0.82, 0.08), (0.45, 0.96)]],
        [[(0.18, 0.1), (0.82, 0.08), (0.52, 0.55), (0.42, 0.96)], [(0.32, 0.52), (0.72, 0.52)]],
        [[(0.2, 0.2), (0.3, 0.08), (0.82, 0.08), (0.5, 0.96)]]],
    8: [[[(0.5, 0.48), (0.26, 0.3), (0.3, 0.1), (0.5, 0.04), (0.7, 0.1), (0.74, 0.3), (0.5, 0.48),
          (0.22, 0.7), (0.3, 0.92), (0.5, 0.96), (0.72, 0.9), (0.78, 0.7), (0.5, 0.48)]],
        [[(0.7, 0.12), (0.5, 0.04), (0.28, 0.15), (0.35, 0.38), (0.72, 0.62), (0.72, 0.88), (0.5, 0.96),
          (0.26, 0.86), (0.3, 0.62), (0.66, 0.36), (0.7, 0.12)]]],
    9: [[[(0.74, 0.32), (0.55, 0.06), (0.3, 0.1), (0.24, 0.34), (0.45, 0.48), (0.72, 0.36), (0.74, 0.3),
          (0.7, 0.62), (0.64, 0.96)]],
        [[(0.75, 0.15), (0.5, 0.04), (0.26, 0.2), (0.35, 0.45), (0.72, 0.3), (0.74, 0.1), (0.72, 0.96)]]],
}


def _smooth(points: list[tuple[float, float]], per_segment: int = 12) -> list[tuple[float, float]]:
    """A Catmull-Rom curve through ``points``."""
    if len(points) < 3:
        return points
    p = [points[0]] + points + [points[-1]]
    out = []
    for i in range(1, len(p) - 2):
        for t in np.linspace(0, 1, per_segment, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(tuple(
                0.5 * (2 * p[i][k] + (-p[i - 1][k] + p[i + 1][k]) * t
                       + (2 * p[i - 1][k] - 5 * p[i][k] + 4 * p[i + 1][k] - p[i + 2][k]) * t2
                       + (-p[i - 1][k] + 3 * p[i][k] - 3 * p[i + 1][k] + p[i + 2][k]) * t3)
                for k in (0, 1)))
    out.append(points[-1])
    return out


def draw_template(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One randomly varied drawing of ``digit`` as a float ink map (1 = ink) on a large canvas."""
    shape = TEMPLATES[digit][rng.integers(len(TEMPLATES[digit]))]
    side = int(rng.integers(300, 1600))
    height = side * rng.uniform(0.45, 0.8)
    width = height * rng.uniform(0.55, 0.85)
    slant, angle = rng.uniform(-0.3, 0.3), rng.uniform(-0.18, 0.18)
    cx = side / 2 + rng.uniform(-0.5, 0.5) * (side - width * 1.2) / 2
    cy = side / 2 + rng.uniform(-0.5, 0.5) * (side - height * 1.1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    pen = max(2, int(height * rng.uniform(0.06, 0.13)))
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    for stroke in shape:
        wobbly = [(x + rng.normal(0, 0.025), y + rng.normal(0, 0.02)) for x, y in stroke]
        points = []
        for x, y in _smooth(wobbly):
            u, v = (x - 0.5) * width + slant * (0.5 - y) * height, (y - 0.5) * height
            points.append((cx + cos * u - sin * v, cy + sin * u + cos * v))
        draw.line(points, fill=255, width=pen, joint="curve")
        for x, y in (points[0], points[-1]):  # round pen ends
            draw.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=255)
    return np.asarray(image, dtype=np.float32) / 255


def redraw_mnist(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28×28 MNIST digit blown up into smooth thick strokes on a large canvas (float, 1 = ink)."""
    scale = rng.uniform(12, 40)
    size = int(28 * scale)
    big = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC)
    big = big.filter(ImageFilter.GaussianBlur(scale * 0.6))
    ink = np.asarray(big, dtype=np.float32) / 255
    ink = np.clip((ink - 0.3) / 0.2, 0, 1)  # a pen's edge: smooth but firm
    pad = int(size * rng.uniform(0.05, 0.5))
    return np.pad(ink, ((pad, int(pad * rng.uniform(0.5, 1.5))), (int(pad * rng.uniform(0.5, 1.5)), pad)))


def render(ink: np.ndarray, dark_on_light: bool, photo: bool, rng: np.random.Generator) -> bytes:
    """Encode an ink map as the file a person would upload: clean PNG, or JPEG 'photo'."""
    if photo:
        paper = rng.uniform(150, 235) if dark_on_light else rng.uniform(10, 70)
        pen = rng.uniform(10, 60) if dark_on_light else rng.uniform(180, 250)
        h, w = ink.shape
        light = 1 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, w)[None, :] \
            + rng.uniform(-0.1, 0.1) * np.linspace(-1, 1, h)[:, None]
        gray = (paper + (pen - paper) * ink) * light
        gray = np.asarray(Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))), dtype=np.float32)
        gray += rng.normal(0, rng.uniform(1, 5), gray.shape)
        rgb = np.clip(gray, 0, 255).astype(np.uint8)[..., None] * np.array([1.0, 0.97, 0.92])  # warm paper
        buffer = io.BytesIO()
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB").save(buffer, "JPEG", quality=int(rng.integers(55, 91)))
    else:
        gray = 255 * (1 - ink) if dark_on_light else 255 * ink
        buffer = io.BytesIO()
        Image.fromarray(gray.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder of an MNIST or 8×8 digits model")
    parser.add_argument("--n", type=int, default=2000, help="pictures per set (strokes, redrawn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output")
    parser.add_argument("--save-examples", type=int, default=40, help="pictures of each set kept for a look")
    args = parser.parse_args()

    from digitlab.data import load_dataset
    from digitlab.store import load_model

    loaded = load_model(args.model)
    card = loaded.card
    if card.image_shape not in ((28, 28), (8, 8)):
        sys.exit("bench_handwriting: give an MNIST (28×28) or 8×8 digits model")
    rng = np.random.default_rng(args.seed)
    mnist = load_dataset("mnist")
    held_out = slice(5000, 10000)
    test_images, test_labels = mnist.test_images[held_out], mnist.test_labels[held_out]
    examples = args.out / "handwriting-examples"
    examples.mkdir(parents=True, exist_ok=True)

    baseline_pick = rng.choice(len(test_labels), size=min(args.n, len(test_labels)), replace=False)
    own = load_dataset("digits") if card.image_shape == (8, 8) else None  # its own test part is its baseline
    base_images, base_labels = (own.test_images, own.test_labels) if own else (test_images[baseline_pick],
                                                                               test_labels[baseline_pick])
    base = predict_images(loaded.model, card, base_images, detector=None)
    baseline = float(np.mean([p.digit for p in base] == base_labels))

    rows = []
    start = time.perf_counter()
    for set_name in ("strokes", "redrawn"):
        for i in range(args.n):
            if set_name == "strokes":
                label = int(i % 10)
                ink = draw_template(label, rng)
            else:
                j = int(rng.integers(len(test_labels)))
                label, ink = int(test_labels[j]), redraw_mnist(test_images[j], rng)
            dark_on_light, photo = bool(rng.integers(2)), bool(rng.integers(2))
            data = render(ink, dark_on_light, photo, rng)
            if i < args.save_examples:
                (examples / f"{set_name}-{i:03d}-{label}.{'jpg' if photo else 'png'}").write_bytes(data)
            prepared = prepare_digit(read_image(data), card.image_shape, card.pixel_max)
            rows.append((set_name, label, dark_on_light, photo, prepared))
    prepared = np.stack([r[4] for r in rows])
    predictions = predict_images(loaded.model, card, prepared, detector=loaded.detector)
    seconds = time.perf_counter() - start
    correct = np.array([p.digit == r[1] for p, r in zip(predictions, rows)])
    sure = np.array([p.kind == "digit" for p in predictions])
    stated = np.array([p.probability for p in predictions])

    def accuracy(keep) -> tuple[float, int]:
        mask = np.array([keep(r) for r in rows])
        return float(correct[mask].mean()), int(mask.sum())

    def confidence(keep) -> dict:
        group = np.array([keep(r) for r in rows])
        mask = group & sure
        return {"sure": float(mask.sum() / group.sum()), "sure_right": float(correct[mask].mean()) if mask.any() else None,
                "sure_stated": float(stated[mask].mean()) if mask.any() else None}

    baseline_name = "its 8×8 test part" if own else "MNIST test"
    report = {"model_id": card.id, f"baseline_{'digits' if own else 'mnist'}_test": baseline, "groups": {}}
    print(f"model {card.id}: {len(rows):,} drawn pictures in {seconds:.1f} s "
          f"({1000 * seconds / len(rows):.1f} ms each to draw, encode, read and prepare)")
    print(f"{'group':34s} {'accuracy':>9s} {'n':>6s}  ratio to {baseline_name} ({baseline:.2%}); "
          "answered sure: share, right, stated")
    groups = {
        "all drawn": lambda r: True,
        "strokes (templates)": lambda r: r[0] == "strokes",
        "redrawn MNIST digits": lambda r: r[0] == "redrawn",
        "dark ink on light paper": lambda r: r[2],
        "light ink on dark": lambda r: not r[2],
        "JPEG photos": lambda r: r[3],
        "clean PNG": lambda r: not r[3],
    }
    for name, keep in groups.items():
        acc, n = accuracy(keep)
        c = confidence(keep)
        report["groups"][name] = {"accuracy": acc, "n": n, **c}
        held = f"{c['sure_right']:7.2%} {c['sure_stated']:7.2%}" if c["sure_right"] is not None else ""
        print(f"{name:34s} {acc:9.2%} {n:6d}  x{acc / baseline:.3f} {c['sure']:6.1%} {held}")
    per_digit = {d: accuracy(lambda r, d=d: r[1] == d)[0] for d in range(10)}
    report["per_digit"] = per_digit
    print("per digit: " + "  ".join(f"{d}:{a:.0%}" for d, a in per_digit.items()))
    report["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    (args.out / "bench_handwriting.json").write_text(json.dumps(report, indent=2) + "\n")
    overall = report["groups"]["all drawn"]["accuracy"]
    print(f"{'PASS' if overall >= 0.95 else 'FAIL'}: {overall:.2%} of drawn digits recognised (target 95%)")
    return 0 if overall >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
