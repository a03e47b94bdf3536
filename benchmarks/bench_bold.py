"""Digits written with a bold pen: what a run answers with their strokes narrowed to MNIST's width, and without.

MNIST test digits (2,000 drawn at random, a seed), each drawn again as a photo of dark ink on white paper at 112 px
with its strokes widened by a pen ``--grow`` pixels wider on each side (at 112 px; 0: as MNIST wrote them),
prepared as ``digitlab predict`` prepares a picture and answered with the run's calibration and not-a-digit
detector. Each row gives, for the preparation of today's code and for the same with the narrowing of wide strokes
turned off (the baseline, in the same process): the accuracy of the top digit, the share turned away as "not a
digit", and the share answered as a sure digit and how often those are right. ``--set NAME`` adds a handwriting
set's samples, prepared again from the pictures as they arrived, by writer.

    python benchmarks/bench_bold.py --model runs/<mnist cnn run> [--n 2000] [--grow 0,2,4,6,8] [--set class-7b]
"""

from __future__ import annotations

import argparse
import io
import math

import numpy as np
from PIL import Image, ImageFilter

from digitlab.data import images as preparation
from digitlab.data import load_dataset
from digitlab.data.images import prepare_digit
from digitlab.predict import predict_images
from digitlab.store import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder of an MNIST model")
    parser.add_argument("--n", type=int, default=2000, help="test digits")
    parser.add_argument("--grow", default="0,2,4,6,8", help="pixels of pen added on each side at 112 px")
    parser.add_argument("--set", help="a handwriting set to measure too, by writer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = load_model(args.model)
    data = load_dataset("mnist")
    pick = np.random.default_rng(args.seed).choice(len(data.test_labels), args.n, replace=False)
    print(f"{loaded.id}: {args.n:,} MNIST test digits drawn with a wider pen; narrowed (now) | not narrowed")
    print(f"{'pen':16s} {'right':>7s} {'not digit':>9s} {'sure':>6s} {'right|sure':>10s} | "
          f"{'right':>7s} {'not digit':>9s} {'sure':>6s} {'right|sure':>10s}")
    for grow in (int(g) for g in args.grow.split(",")):
        pictures = [_bold_picture(image, grow) for image in data.test_images[pick]]
        _row(f"+{grow} px a side", loaded, pictures, data.test_labels[pick])
    if args.set:
        from digitlab.data.handwriting import HandwritingSet

        store = HandwritingSet.open(args.set)
        writers: dict[str, list] = {}
        for sample in store.samples():
            writers.setdefault(sample.writer or "(none)", []).append(sample)
        for writer, samples in sorted(writers.items()):
            pictures = [Image.open(io.BytesIO(store.original_bytes(s))) for s in samples]
            _row(f"{writer[:10]} ({len(samples)})", loaded, pictures, np.array([s.label for s in samples]))


def _bold_picture(image: np.ndarray, grow: int) -> Image.Image:
    """An MNIST digit as dark ink on white at 112 px, its strokes ``grow`` px wider on each side."""
    picture = Image.fromarray(image).resize((112, 112), Image.Resampling.BILINEAR)
    for _ in range(grow):
        picture = picture.filter(ImageFilter.MaxFilter(3))
    return Image.eval(picture, lambda v: 255 - v)


def _row(name: str, loaded, pictures: list, labels: np.ndarray) -> None:
    cells = []
    for narrow in (True, False):
        original = preparation._even_strokes
        if not narrow:  # the baseline: strokes only ever widened, as before
            preparation._even_strokes = lambda ink, box, widths: original(ink, box, (*widths[:2], math.inf, math.inf))
        try:
            prepared = np.stack([prepare_digit(p, loaded.image_shape, loaded.pixel_max) for p in pictures])
        finally:
            preparation._even_strokes = original
        answers = predict_images(loaded.model, loaded.card, prepared, detector=loaded.detector)
        kind = np.array([a.kind for a in answers])
        digit = np.array([a.digit for a in answers])
        sure = kind == "digit"
        right_sure = (digit[sure] == labels[sure]).mean() if sure.any() else float("nan")
        cells.append(f"{(digit == labels).mean():7.2%} {np.mean(kind == 'not_a_digit'):9.1%} {sure.mean():6.1%} "
                     f"{right_sure:10.2%}")
    print(f"{name:16s} {cells[0]} | {cells[1]}")


if __name__ == "__main__":
    main()
