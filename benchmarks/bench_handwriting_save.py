"""How long one save into a handwriting set takes as the set grows.

Saves ``N`` small PNGs (random ink in the middle of a 28×28 picture, all different) one after another
into a new set in a temporary data folder, with their prepared form given as the server gives it, and
prints the total and the mean of the last 100 saves. Every save reads and rewrites the set's index
under its lock, so the last saves show what a large set costs.

Usage::

    python benchmarks/bench_handwriting_save.py [N]      # default 2,000
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-handwriting-save-") as folder:
        os.environ["DIGITLAB_DATA"] = folder
        save_all(n)


def save_all(n: int) -> None:
    from digitlab.data.handwriting import HandwritingSet

    rng = np.random.default_rng(0)
    pictures = []
    for _ in range(n):
        image = np.zeros((28, 28), np.uint8)
        image[8:20, 8:20] = rng.integers(0, 256, (12, 12), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        pictures.append((buffer.getvalue(), image))
    store = HandwritingSet.open("bench", create=True)
    start = last = time.perf_counter()
    for i, (png, image) in enumerate(pictures):
        if i == n - 100:
            last = time.perf_counter()
        store.add(png, i % 10, writer="bench", source="import", prepared=image)
    end = time.perf_counter()
    print(f"{n:,} saves: {end - start:.1f} s; each of the last {min(n, 100)}: "
          f"{(end - last) / min(n, 100) * 1000:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
