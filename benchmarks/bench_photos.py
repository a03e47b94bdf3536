"""Does ``predict`` read a digit in a phone-like photo: uneven light, ruled paper, a frame, a desk round the sheet?

Real MNIST *test* digits (fixed picks per digit) are blown up into smooth ink and laid on synthetic paper, one
condition at a time, then sent through what ``digitlab predict`` does with a file (``predict_source``: decode,
prepare, model, not-a-digit detector). Each picture's answer is counted as right, wrong (a digit, sure, but
another one), unsure, or "not a digit". Made from a seed, offline; the conditions come from a user's audit
(2026-12-01), which found 156 of 330 such pictures read right and 15 read wrong with confidence.

Usage::

    python benchmarks/bench_photos.py --model runs/<mnist-cnn-run> [--per-digit 3]
"""

from __future__ import annotations

import argparse
import collections
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from digitlab.data import load_dataset  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.predict import predict_source  # noqa: E402
from digitlab.store import load_model  # noqa: E402


def glyph(image: np.ndarray, side: int) -> np.ndarray:
    """An MNIST digit as ink coverage in [0, 1], ``side`` px, with smooth edges."""
    big = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
    return np.clip((big - 0.3) / 0.4, 0, 1)


def paper(rng, w: int, h: int, colour=(245, 243, 238)) -> np.ndarray:
    return np.ones((h, w, 3), np.float32) * np.array(colour, np.float32) + rng.normal(0, 3, (h, w, 3))


def put(page: np.ndarray, ink: np.ndarray, x: int, y: int, colour=(30, 30, 40)) -> np.ndarray:
    h, w = ink.shape
    a = ink[..., None] * 0.95
    page[y:y + h, x:x + w] = page[y:y + h, x:x + w] * (1 - a) + np.array(colour, np.float32) * a
    return page


def light(page: np.ndarray, kind: str, depth: float) -> np.ndarray:
    """Multiply the page by a light field: a left-to-right fall-off, a vignette, or a soft shadow over a corner."""
    h, w, _ = page.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        field = depth + (1 - depth) * xs / w
    elif kind == "vignette":
        field = 1 - (1 - depth) * 2 * (((xs - w / 2) / w) ** 2 + ((ys - h / 2) / h) ** 2)  # depth in the corners
    else:
        hard = Image.fromarray((np.where(xs + 0.8 * ys < 0.55 * w, depth, 1.0) * 255).astype(np.uint8))
        field = np.asarray(hard.filter(ImageFilter.GaussianBlur(15)), np.float32) / 255
    return page * field[..., None]


def ruled(page: np.ndarray, spacing: int, squared: bool = False) -> np.ndarray:
    rule = np.array((150, 180, 220), np.float32)
    page[spacing // 2::spacing] = page[spacing // 2::spacing] * 0.3 + rule * 0.7
    page[spacing // 2 + 1::spacing] = page[spacing // 2 + 1::spacing] * 0.3 + rule * 0.7
    if squared:  # the upright lines as the level ones (until 2026-12-01 afternoon: one pixel, and fainter)
        page[:, spacing // 2::spacing] = page[:, spacing // 2::spacing] * 0.3 + rule * 0.7
        page[:, spacing // 2 + 1::spacing] = page[:, spacing // 2 + 1::spacing] * 0.3 + rule * 0.7
    return page


def picture(condition: str, digit: np.ndarray, rng) -> bytes:
    """One photo-like JPEG (PNG for the drawn frame) of ``digit`` under ``condition``."""
    page = paper(rng, 600, 800)
    if condition.split(",")[0] in ("lined", "squared"):
        squared = condition.startswith("squared")
        page = ruled(page, 40 if squared else 70, squared=squared)
        put(page, glyph(digit, 300), 150, 250, colour=(20, 40, 140))
    elif condition == "desk":
        page = np.ones((800, 600, 3), np.float32) * np.array((90, 60, 40)) + rng.normal(0, 6, (800, 600, 3))
        page[100:700, 80:520] = paper(rng, 440, 600)
        put(page, glyph(digit, 350), 125, 225)
    else:
        put(page, glyph(digit, 400), 100, 200)
    for kind in ("gradient", "vignette", "shadow"):
        if condition.startswith(kind):
            page = light(page, kind, float(condition.split()[-1]))
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    if condition.endswith("askew"):  # the phone held 4 (or as named) degrees off level: the lines slant
        degrees = float(condition.split()[-2].rstrip("°")) if "°" in condition else 4.0
        image = image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(245, 243, 238))
    if condition.startswith("sheet filling"):  # the sheet fills the frame, turned: the desk shows in its corners
        degrees = float(rng.uniform(2, 6)) * (1 if rng.integers(2) else -1)
        image = image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(90, 60, 40))
    if condition in ("framed", "underlined"):
        draw = ImageDraw.Draw(image)
        if condition == "framed":
            draw.rectangle([60, 160, 540, 640], outline=(20, 20, 20), width=6)
        else:
            draw.line([(110, 610), (490, 610)], fill=(30, 30, 40), width=8)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


CONDITIONS = ("plain", "gradient 0.45", "gradient 0.6", "vignette 0.4", "shadow 0.45", "shadow 0.6", "shadow 0.8",
              "lined", "squared", "framed", "underlined", "desk", "lined, askew", "squared, askew",
              "lined, 8° askew", "squared, 8° askew", "lined, 12° askew", "squared, 12° askew",
              "sheet filling the frame turned 2-6°, desk in the corners")  # new conditions last: the others unchanged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder of an MNIST model (28×28)")
    parser.add_argument("--per-digit", type=int, default=3, help="MNIST test digits of each class per condition")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = load_model(args.model)
    mnist = load_dataset("mnist")
    picks = [int(i) for d in range(10) for i in np.flatnonzero(mnist.test_labels == d)[:args.per_digit]]
    print(f"model {loaded.card.id}; {len(picks)} MNIST test digits under each condition")
    print(f"{'condition':15s} {'right':>6s} {'wrong':>6s} {'unsure':>7s} {'not a digit':>12s} {'refused':>8s}")
    total = collections.Counter()
    for condition in CONDITIONS:
        rng = np.random.default_rng([args.seed, CONDITIONS.index(condition)])
        counts = collections.Counter()
        for i in picks:
            try:
                answer, _ = predict_source(loaded.model, loaded.card, picture(condition, mnist.test_images[i], rng),
                                           detector=loaded.detector)
            except DigitlabError:
                counts["refused"] += 1
                continue
            counts[{"not_a_digit": "not a digit", "unsure": "unsure"}.get(answer.kind, "right"
                   if answer.digit == mnist.test_labels[i] else "wrong")] += 1
        total.update(counts)
        print(f"{condition:15s} {counts['right']:6d} {counts['wrong']:6d} {counts['unsure']:7d} "
              f"{counts['not a digit']:12d} {counts['refused']:8d}")
    print(f"{'all':15s} {total['right']:6d} {total['wrong']:6d} {total['unsure']:7d} {total['not a digit']:12d} "
          f"{total['refused']:8d}   (of {len(picks) * len(CONDITIONS)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
