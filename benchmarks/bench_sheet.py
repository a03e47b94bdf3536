"""Does ``digitlab data import --sheet`` cut a photographed sheet of handwriting into the right samples?

Each sheet is ten lines, a line of 0s, then 1s, ... 9s, each of 8-12 real MNIST *test* digits of that class
(the last 5,000, which the model never trained on), blown up into smooth ink at one size per sheet (40-90 px
tall, each digit ±10%), on its own baseline, and photographed as a JPEG (bench_photos' paper, ink and light),
under each condition: plain paper, lined paper (each line of digits on a printed line), uneven light, the
sheet photographed turned 5° (plain and lined), and digits written close together ("tight": the gap between the
boxes their MNIST images fill is 0-20% of a digit's height, so some touch). Then :func:`digitlab.sheet.cut_sheet` cuts it, as the import
does, and we count:

- sheets taken: the lines found match ``--sheet 0123456789`` (a sheet that does not is refused whole);
- digits cut: of the digits written on the sheets taken, how many came out as samples (one per digit);
- right by the model: a CNN run's answers on the cut digits' 28×28 form against their lines' labels, beside
  its answers on the same MNIST digits as they come (28×28): what cutting and photographing cost a sample.

Usage::

    python benchmarks/bench_sheet.py --model runs/<mnist-cnn-run> [--sheets 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_photos import glyph, light, paper, put  # noqa: E402
from digitlab.data import load_dataset  # noqa: E402
from digitlab.data.images import WORK_SIDE, read_image  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.predict import predict_images  # noqa: E402
from digitlab.sheet import cut_sheet  # noqa: E402
from digitlab.store import load_model  # noqa: E402

CONDITIONS = ("plain", "lined", "gradient 0.5", "plain, 5° askew", "lined, 5° askew", "tight")
ROWS = "0123456789"


def sheet(condition: str, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
          ) -> tuple[bytes, list[list[int]]]:
    """One photographed sheet: the JPEG, and the MNIST indices written on each line."""
    height = rng.uniform(40, 90)
    pitch = int(height * rng.uniform(1.7, 2.1))
    counts = rng.integers(8, 13, len(ROWS))
    width = int(max(counts) * 1.45 * height + 2 * height)
    page = paper(rng, width, pitch * (len(ROWS) + 1))
    if condition.startswith("lined"):
        rule = np.array((150, 180, 220), np.float32)
        for y in range(pitch, page.shape[0], pitch):
            page[y + int(0.05 * height):y + int(0.05 * height) + 2] = page[y:y + 2] * 0.3 + rule * 0.7
    written = []
    for n, digit in enumerate(ROWS):
        picks = rng.choice(np.flatnonzero(labels == int(digit)), counts[n], replace=False)
        written.append(picks.tolist())
        x = int(height)
        for i in picks:
            side = int(height * rng.uniform(0.9, 1.1) / 0.72)  # an MNIST digit's ink is about 72% of its box
            ink = glyph(images[i], side)
            y = int(pitch * (n + 1) - 0.86 * side + rng.uniform(-0.08, 0.08) * height)  # the foot near the line
            put(page, ink, x, max(0, y), colour=(20, 40, 140) if condition.startswith("lined") else (30, 30, 40))
            gap = rng.uniform(0.0, 0.2) if condition == "tight" else rng.uniform(0.25, 0.6)
            x += int(side * 0.75 + gap * height)
    if condition.startswith("gradient"):
        page = light(page, "gradient", float(condition.split()[-1]))
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    if condition.endswith("askew"):
        image = image.rotate(5.0, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(245, 243, 238))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder of an MNIST model (28×28)")
    parser.add_argument("--sheets", type=int, default=6, help="sheets per condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output")
    args = parser.parse_args()

    loaded = load_model(args.model)
    mnist = load_dataset("mnist")
    images, labels = mnist.test_images[5000:], mnist.test_labels[5000:]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"model {loaded.card.id}; {args.sheets} sheets per condition, 10 lines of 8-12 digits each")
    print(f"{'condition':18s} {'sheets taken':>12s} {'digits cut':>14s} {'right, cut':>11s} "
          f"{'right, as they come':>20s} {'s a sheet':>9s}")
    totals = {"sheets": 0, "taken": 0, "written": 0, "cut": 0, "right_cut": 0, "right_orig": 0, "n_orig": 0}
    for c, condition in enumerate(CONDITIONS):
        rng = np.random.default_rng([args.seed, c])
        taken = written = cut = 0
        cut_prepared, cut_labels, originals = [], [], []
        seconds = []
        for s in range(args.sheets):
            data, on_lines = sheet(condition, images, labels, rng)
            if s == 0:
                (args.out / f"sheet-{condition.replace(' ', '_').replace(',', '').replace('°', '')}.jpg").write_bytes(data)
            start = time.perf_counter()
            try:
                result = cut_sheet(read_image(data, draft=WORK_SIDE), ROWS)
            except DigitlabError as exc:
                print(f"  {condition}, sheet {s}: refused: {exc}")
                continue
            seconds.append(time.perf_counter() - start)
            taken += 1
            written += sum(map(len, on_lines))
            cut += len(result.digits)
            cut_prepared += [d.prepared for d in result.digits]
            cut_labels += [d.label for d in result.digits]
            originals += [i for line in on_lines for i in line]
        right_cut = right_orig = float("nan")
        if cut_prepared:
            answers = predict_images(loaded.model, loaded.card, np.stack(cut_prepared))
            right_cut = float(np.mean([a.digit for a in answers] == np.array(cut_labels)))
            answers = predict_images(loaded.model, loaded.card, images[originals])
            right_orig = float(np.mean([a.digit for a in answers] == labels[originals]))
            totals["right_cut"] += right_cut * cut
            totals["right_orig"] += right_orig * len(originals)
            totals["n_orig"] += len(originals)
        for key, value in (("sheets", args.sheets), ("taken", taken), ("written", written), ("cut", cut)):
            totals[key] += value
        print(f"{condition:18s} {taken:>6d} of {args.sheets:<3d} {cut:>5d} of {written:<5d} {right_cut:>10.2%} "
              f"{right_orig:>20.2%} {np.median(seconds) if seconds else float('nan'):>9.2f}")
    t = totals
    print(f"{'all':18s} {t['taken']:>6d} of {t['sheets']:<3d} {t['cut']:>5d} of {t['written']:<5d} "
          f"{t['right_cut'] / max(t['cut'], 1):>10.2%} {t['right_orig'] / max(t['n_orig'], 1):>20.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
