"""Does ``digitlab data import --sheet`` cut a photographed sheet of handwriting into the right samples?

Each sheet is ten lines, a line of 0s, then 1s, ... 9s, each of 8-12 real MNIST *test* digits of that class
(the last 5,000, which the model never trained on), blown up into smooth ink at one size per sheet (40-90 px
tall, each digit ±10%), on its own baseline, and photographed as a JPEG (bench_photos' paper, ink and light),
under each condition: plain paper, lined paper (each line of digits on a printed line), uneven light, the
sheet photographed turned 5° (plain and lined), and digits written close together ("tight": the gap between the
boxes their MNIST images fill is 0-20% of a digit's height, so some touch). A plain sheet scanned upside down
must be refused (counted as not taken), not cut with each line under the label of the line opposite. Three
conditions a teacher met: exercise paper's red margin line down the left; the sheet photographed on a darker desk
turned 1° (slivers of its edge and of the desk in the picture's corners); and shaded to 60% towards one side, on the
desk, turned 3°. Two more a teacher's class met: plain paper turned 1.5° (between the slopes lines were looked for
along), and lined paper with a margin line turned 1.5° (the thin red line fades into pieces where it steps across a
column). Then :func:`digitlab.sheet.cut_sheet` cuts it, as the import does, and we count:

- sheets taken: the lines found match ``--sheet 0123456789`` and pass its checks (a sheet that does not is
  refused whole);
- digits cut: of the digits written on the sheets taken, how many came out as samples; and each sample matched
  with the written digits whose ink centres lie in its box: one of its line's digit, one of another line's (a wrong
  label), two or more (a pair kept as one), or none (a fragment);
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

CONDITIONS = ("plain", "lined", "gradient 0.5", "plain, 5° askew", "lined, 5° askew", "tight", "plain, upside down",
              "margin line", "on a desk, 1° askew", "shaded, desk, 3° askew", "plain, 1.5° askew",
              "lined, margin line, 1.5° askew")
DESK = (120, 105, 90)
ROWS = "0123456789"


def sheet(condition: str, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
          ) -> tuple[bytes, list[list[int]], list[tuple[float, float, int]]]:
    """One photographed sheet: the JPEG, the MNIST indices written on each line, and where each digit's ink centre
    lies in the JPEG's pixels, with its digit."""
    height = rng.uniform(40, 90)
    pitch = int(height * rng.uniform(1.7, 2.1))
    counts = rng.integers(8, 13, len(ROWS))
    width = int(max(counts) * 1.7 * height + 2 * height)  # room for the widest gaps
    page = paper(rng, width, pitch * (len(ROWS) + 1))
    if "margin line" in condition:  # exercise paper's red line down the left, before the digits
        x = int(height * rng.uniform(0.4, 0.8))
        page[:, x:x + 2] = page[:, x:x + 2] * 0.3 + np.array((210, 70, 70), np.float32) * 0.7
    if condition.startswith("lined"):
        rule = np.array((150, 180, 220), np.float32)
        for y in range(pitch, page.shape[0], pitch):
            page[y + int(0.05 * height):y + int(0.05 * height) + 2] = page[y:y + 2] * 0.3 + rule * 0.7
    written, centres = [], []
    for n, digit in enumerate(ROWS):
        picks = rng.choice(np.flatnonzero(labels == int(digit)), counts[n], replace=False)
        written.append(picks.tolist())
        x = int(height)
        for i in picks:
            side = int(height * rng.uniform(0.9, 1.1) / 0.72)  # an MNIST digit's ink is about 72% of its box
            ink = glyph(images[i], side)
            y = int(pitch * (n + 1) - 0.86 * side + rng.uniform(-0.08, 0.08) * height)  # the foot near the line
            put(page, ink, x, max(0, y), colour=(20, 40, 140) if condition.startswith("lined") else (30, 30, 40))
            ys, xs = np.indices(ink.shape)
            centres.append((x + float((xs * ink).sum() / ink.sum()), max(0, y) + float((ys * ink).sum() / ink.sum()),
                            int(digit)))
            gap = rng.uniform(0.0, 0.2) if condition == "tight" else rng.uniform(0.25, 0.6)
            x += int(side * 0.75 + gap * height)
    if condition.startswith("gradient"):
        page = light(page, "gradient", float(condition.split()[-1]))
    if condition.startswith("shaded"):  # light falling off across the sheet, to 60% at its left side
        page = light(page, "gradient", 0.6)
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    if condition.endswith("askew"):  # on a desk: the sheet's edges and the desk's corners in the picture
        before, degrees = image.size, float(condition.split("°")[0].split()[-1])
        fill = DESK if "desk" in condition else (245, 243, 238)
        image = image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
        centres = [_turned(x, y, degrees, before, image.size) + (d,) for x, y, d in centres]
    if condition.endswith("upside down"):  # scanned the wrong way up: to be refused, not cut
        image = image.transpose(Image.Transpose.ROTATE_180)
        centres = [(image.width - x, image.height - y, d) for x, y, d in centres]
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), written, centres


def _turned(x: float, y: float, degrees: float, before: tuple[int, int], after: tuple[int, int]) -> tuple[float, float]:
    """Where the point (x, y) goes when Pillow turns the picture ``degrees`` counter-clockwise, expanding it."""
    t = np.radians(degrees)
    dx, dy = x - before[0] / 2, y - before[1] / 2
    return (float(dx * np.cos(t) + dy * np.sin(t) + after[0] / 2),
            float(-dx * np.sin(t) + dy * np.cos(t) + after[1] / 2))


def placed(digits, centres, scale: float) -> dict[str, int]:
    """Each cut digit matched with the written digits whose ink centres lie in its box: one of its own line's digit,
    one of another's (a wrong label), two or more (a pair kept as one), or none (a fragment)."""
    out = {"one": 0, "wrong label": 0, "pair": 0, "fragment": 0}
    for d in digits:
        x0, y0, x1, y1 = d.box
        inside = [c for x, y, c in centres if x0 <= x * scale < x1 and y0 <= y * scale < y1]
        if len(inside) > 1:
            out["pair"] += 1
        elif not inside:
            out["fragment"] += 1
        else:
            out["one" if inside[0] == d.label else "wrong label"] += 1
    return out


def condition_figures(condition: str, c: int, args, loaded, images, labels) -> dict:
    """Cut ``args.sheets`` sheets of one condition; count what was taken, cut, placed and read."""
    rng = np.random.default_rng([args.seed, c])
    f = {"sheets": args.sheets, "taken": 0, "written": 0, "cut": 0, "one": 0, "wrong label": 0, "pair": 0,
         "fragment": 0, "seconds": []}
    cut_prepared, cut_labels, originals = [], [], []
    for s in range(args.sheets):
        data, on_lines, centres = sheet(condition, images, labels, rng)
        if s == 0:
            (args.out / f"sheet-{condition.replace(' ', '_').replace(',', '').replace('°', '')}.jpg").write_bytes(data)
        start = time.perf_counter()
        try:
            picture = read_image(data, draft=WORK_SIDE)
            result = cut_sheet(picture, ROWS)
        except DigitlabError as exc:
            print(f"  {condition}, sheet {s}: refused: {exc}")
            continue
        f["seconds"].append(time.perf_counter() - start)
        f["taken"] += 1
        f["written"] += sum(map(len, on_lines))
        f["cut"] += len(result.digits)
        scale = picture.size[0] / Image.open(io.BytesIO(data)).size[0]  # a large JPEG is decoded smaller
        for key, value in placed(result.digits, centres, scale).items():
            f[key] += value
        cut_prepared += [d.prepared for d in result.digits]
        cut_labels += [d.label for d in result.digits]
        originals += [i for line in on_lines for i in line]
    f["right cut"] = f["right orig"] = 0
    if cut_prepared:
        answers = predict_images(loaded.model, loaded.card, np.stack(cut_prepared), detector=None)
        f["right cut"] = int(np.sum([a.digit for a in answers] == np.array(cut_labels)))
        answers = predict_images(loaded.model, loaded.card, images[originals], detector=None)
        f["right orig"] = int(np.sum([a.digit for a in answers] == labels[originals]))
    return f


def row(name: str, f: dict) -> str:
    seconds = f"{np.median(f['seconds']):9.2f}" if f["seconds"] else ""
    return (f"{name:18s} {f['taken']:>6d} of {f['sheets']:<3d} {f['cut']:>5d} of {f['written']:<5d} {f['one']:>5d} "
            f"{f['wrong label']:>5d} {f['pair']:>5d} {f['fragment']:>5d} {f['right cut'] / max(f['cut'], 1):>10.2%} "
            f"{f['right orig'] / max(f['written'], 1):>10.2%} {seconds}")


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
    print(f"{'condition':18s} {'sheets taken':>12s} {'digits cut':>14s} {'one':>5s} {'wrong':>5s} {'pair':>5s} "
          f"{'frag':>5s} {'right, cut':>10s} {'as written':>10s} {'s a sheet':>9s}")
    totals: dict = {}
    for c, condition in enumerate(CONDITIONS):
        f = condition_figures(condition, c, args, loaded, images, labels)
        print(row(condition, f))
        for key, value in f.items():
            totals[key] = totals.get(key, [] if key == "seconds" else 0) + value
    print(row("all", totals))
    print("one: a cut digit holding one written digit of its line's; wrong: one of another line's (a wrong label); "
          "pair: two or more kept as one; frag: none (a piece of one); right: the model's answers against the "
          "labels, on the cut digits and on the same MNIST digits as they come")
    return 0


if __name__ == "__main__":
    sys.exit(main())
