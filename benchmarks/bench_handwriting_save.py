"""How long one save into a handwriting set takes as the set grows.

Saves ``N`` small PNGs (random ink in the middle of a 28×28 picture, all different) one after another
into a new set in a temporary data folder, with their prepared form given as the server gives it, and
prints the total and the mean of the last 100 saves. Every save reads and rewrites the set's index
under its lock, so the last saves show what a large set costs. With ``--import``, the same pictures are
written to a folder and go in with one ``import_pictures`` call (``digitlab data import``), which saves
them in batches, each with one index write.

Usage::

    python benchmarks/bench_handwriting_save.py [N] [--import]     # default 2,000
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


def main(n: int, whole_import: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-handwriting-save-") as folder:
        os.environ["DIGITLAB_DATA"] = folder
        if whole_import:
            import_all(n, Path(folder) / "pictures")
        else:
            save_all(n)


def make_pictures(n: int) -> list[tuple[bytes, np.ndarray]]:
    """``n`` different small PNGs (random ink in the middle) and their 28×28 arrays."""
    rng = np.random.default_rng(0)
    pictures = []
    for _ in range(n):
        image = np.zeros((28, 28), np.uint8)
        image[8:20, 8:20] = rng.integers(0, 256, (12, 12), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        pictures.append((buffer.getvalue(), image))
    return pictures


def save_all(n: int) -> None:
    from digitlab.data.handwriting import HandwritingSet

    pictures = make_pictures(n)
    store = HandwritingSet.open("bench", create=True)
    start = last = time.perf_counter()
    for i, (png, image) in enumerate(pictures):
        if i == n - 100:
            last = time.perf_counter()
        store.add(png, i % 10, writer="bench", source="import", prepared=image)
    end = time.perf_counter()
    print(f"{n:,} saves: {end - start:.1f} s; each of the last {min(n, 100)}: "
          f"{(end - last) / min(n, 100) * 1000:.1f} ms")


def import_all(n: int, folder: Path) -> None:
    from digitlab.data.handwriting_io import import_pictures

    folder.mkdir()
    for i, (png, _) in enumerate(make_pictures(n)):
        (folder / f"{i % 10}-{i:06d}.png").write_bytes(png)
    start = time.perf_counter()
    summary = import_pictures("bench", [folder], writer="bench")
    seconds = time.perf_counter() - start
    assert summary.added == n, summary
    print(f"import of {n:,} pictures: {seconds:.1f} s ({seconds / n * 1000:.1f} ms a picture)")


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(numbers[0]) if numbers else 2000, "--import" in sys.argv)
