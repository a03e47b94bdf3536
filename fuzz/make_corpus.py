"""Build the seed corpus the fuzz targets start from: small slices of real files, one folder per target.

Usage: ``python fuzz/make_corpus.py OUT_DIR [TARGET ...]`` writes ``OUT_DIR/<target>/<name>`` for
each target (all of them by default). The same inputs every time: it draws nothing at random.

- ``idx``: slices of the real MNIST files (images and labels, read with digitlab's own reader,
  written back raw and gzipped), a small array of every IDX type and rank, an empty one, and the
  two headers that once crashed the reader (issue 9). The first byte of an input chooses raw (0)
  or gzipped (1), as ``fuzz_idx.py`` expects.
- ``image``: real MNIST digits (and a drawn one) saved by Pillow as PNG, JPEG, BMP, GIF, WebP and
  TIFF in the modes people's files come in: grayscale, RGB, RGBA, palette with transparency,
  1-bit, 16-bit, CMYK, progressive JPEG, an animated GIF, compressed TIFFs, a JPEG with an EXIF
  rotation, and a TIFF with premultiplied alpha (mode La, which once crashed prepare_digit).
- ``pixels``: request bodies for the pixel grid: real digits as 28×28 and 8×8 grids, fractions,
  and the near misses (true, NaN, Infinity, huge numbers, ragged rows, strings, nesting).

The real MNIST files are read from ``$DIGITLAB_MNIST_SOURCE`` or ``../shared/data/mnist`` (the
folder the tests use); without them the MNIST seeds are replaced by synthetic digits, and the
script says so.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digitlab.data.idx import read_idx_bytes, read_images, read_labels, write_idx

REPO = Path(__file__).resolve().parents[1]
Seeds = Iterator[tuple[str, bytes]]


def mnist_folder() -> Path | None:
    """Where the real MNIST files are, or None."""
    env = os.environ.get("DIGITLAB_MNIST_SOURCE")
    folder = Path(env) if env else REPO.parent / "shared" / "data" / "mnist"
    return folder if (folder / "t10k-images-idx3-ubyte.gz").is_file() else None


def real_digits(count: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` MNIST test digits and labels, or synthetic strokes when MNIST is absent."""
    folder = mnist_folder()
    if folder is not None:
        images = read_images(folder / "t10k-images-idx3-ubyte.gz")[:count].copy()
        labels = read_labels(folder / "t10k-labels-idx1-ubyte.gz")[:count].copy()
        return images, labels
    print("make_corpus: the real MNIST files are absent; using synthetic digits", file=sys.stderr)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for i in range(count):
        images[i, 4 + i % 4 : 24, 12 + i % 3 : 16 + i % 3] = 255  # a "1", slightly different each time
    return images, np.ones(count, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# IDX


def _idx_bytes(array: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seed-idx"
        write_idx(path, array)
        return read_idx_bytes(path)


def idx_seeds() -> Seeds:
    """Inputs for ``fuzz_idx.py``: a mode byte (0 raw, 1 gzipped), then an IDX file."""
    images, labels = real_digits(3)
    folder = mnist_folder()
    files: dict[str, bytes] = {
        "mnist-images-1": _idx_bytes(images[:1]),
        "mnist-images-3": _idx_bytes(images[:3]),
        "mnist-labels-3": _idx_bytes(labels[:3]),
    }
    if folder is not None:
        train_labels = read_labels(folder / "train-labels-idx1-ubyte.gz")
        files["mnist-train-labels-100"] = _idx_bytes(train_labels[:100].copy())
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        for shape in ((5,), (2, 3), (1, 2, 2), (1, 1, 2, 2)):
            array = (rng.standard_normal(shape) * 50).astype(dtype)
            files[f"{np.dtype(dtype).name}-{len(shape)}d"] = _idx_bytes(array)
    files["empty-0x28x28"] = _idx_bytes(np.zeros((0, 28, 28), dtype=np.uint8))
    # Issue 9's crashes: an empty dimension beside two huge ones, and 65 dimensions.
    files["issue9-empty-beside-huge"] = bytes.fromhex("00000803" "00000000" "FFFFFFFF" "FFFFFFFF")
    files["issue9-65-dimensions"] = struct.pack(">BBBB65I", 0, 0, 0x08, 65, *([1] * 64), 0)
    for name, data in files.items():
        yield f"{name}.raw", b"\x00" + data
        if name.startswith(("mnist", "uint8", "float64", "issue9")):
            yield f"{name}.gz", b"\x01" + data


# ---------------------------------------------------------------------------------------------
# Pictures


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _drawn_seven() -> Image.Image:
    """A dark "7" drawn with a pen on light paper, as a phone photo of paper would be."""
    image = Image.new("L", (40, 48), 235)
    pen = ImageDraw.Draw(image)
    pen.line([(8, 8), (32, 8), (16, 42)], fill=20, width=4)
    return image


def _associated_alpha_tiff(gray: np.ndarray) -> bytes:
    """A grayscale TIFF whose alpha is premultiplied (ExtraSamples = 1): Pillow opens it as mode La."""
    pixels = np.stack([gray, np.where(gray > 0, 255, 0).astype(np.uint8)], axis=-1)
    data = _save(Image.fromarray(pixels, "LA"), "TIFF")
    return data.replace(struct.pack("<HHIH", 338, 3, 1, 2), struct.pack("<HHIH", 338, 3, 1, 1))


def image_seeds() -> Seeds:
    """Inputs for ``fuzz_image.py``: whole picture files."""
    images, _ = real_digits(3)
    paper = [Image.fromarray(255 - digit, "L") for digit in images]  # dark ink on white, like paper
    screen = [Image.fromarray(digit, "L") for digit in images]  # light on dark, like MNIST itself
    first, second = paper[0], paper[1]
    big = first.resize((56, 56), Image.Resampling.BILINEAR)
    rgba = Image.merge("RGBA", [*first.convert("RGB").split(), Image.fromarray(images[0], "L")])
    palette = first.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    sixteen = Image.fromarray(images[0].astype(np.uint16) * 257)  # mode I;16

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90°
    seeds = {
        "mnist-L.png": _save(first, "PNG"),
        "mnist-screen-L.png": _save(screen[2], "PNG"),
        "mnist-RGB.png": _save(second.convert("RGB"), "PNG"),
        "mnist-RGBA.png": _save(rgba, "PNG"),
        "mnist-P-transparent.png": _save(palette, "PNG", transparency=0),
        "mnist-1.png": _save(first.convert("1"), "PNG"),
        "mnist-LA.png": _save(first.convert("LA"), "PNG"),
        "mnist-I16.png": _save(sixteen, "PNG"),
        "mnist-L.jpg": _save(big, "JPEG", quality=80),
        "mnist-RGB-progressive.jpg": _save(big.convert("RGB"), "JPEG", quality=70, progressive=True),
        "mnist-CMYK.jpg": _save(first.convert("CMYK"), "JPEG", quality=80),
        "mnist-exif-rotated.jpg": _save(first.convert("RGB"), "JPEG", quality=80, exif=exif.tobytes()),
        "mnist-L.bmp": _save(first, "BMP"),
        "mnist-P.bmp": _save(palette, "BMP"),
        "mnist-1.bmp": _save(first.convert("1"), "BMP"),
        "mnist-L.gif": _save(first, "GIF"),
        "mnist-transparent.gif": _save(palette, "GIF", transparency=0),
        "mnist-animated.gif": _save(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0),
        "mnist-lossy.webp": _save(first.convert("RGB"), "WEBP", quality=60),
        "mnist-lossless-RGBA.webp": _save(rgba, "WEBP", lossless=True),
        "mnist-L.tif": _save(first, "TIFF"),
        "mnist-RGB-lzw.tif": _save(second.convert("RGB"), "TIFF", compression="tiff_lzw"),
        "mnist-1-packbits.tif": _save(first.convert("1"), "TIFF", compression="packbits"),
        "mnist-RGBA-deflate.tif": _save(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "mnist-CMYK.tif": _save(first.convert("CMYK"), "TIFF"),
        "mnist-I16.tif": _save(sixteen, "TIFF"),
        "mnist-F.tif": _save(first.convert("F"), "TIFF"),
        "mnist-La-associated-alpha.tif": _associated_alpha_tiff(images[2]),
        "drawn-seven.png": _save(_drawn_seven(), "PNG"),
        "drawn-seven.jpg": _save(_drawn_seven().convert("RGB"), "JPEG", quality=85),
    }
    yield from seeds.items()


# ---------------------------------------------------------------------------------------------
# The pixel grid


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def pixels_seeds() -> Seeds:
    """Inputs for ``fuzz_pixels.py``: request bodies, ``{"pixels": grid}`` or a bare grid."""
    images, _ = real_digits(2)
    grid = images[0].tolist()
    small = (np.asarray(Image.fromarray(images[1]).resize((8, 8), Image.Resampling.BOX)) // 16).tolist()  # 0-15
    fractions = (images[1] / 1.7).round(2).tolist()
    seeds = {
        "mnist-28x28.json": _json({"pixels": grid}),
        "mnist-28x28-bare.json": _json(grid),
        "mnist-28x28-fractions.json": _json({"pixels": fractions}),
        "small-8x8.json": _json({"pixels": small}),
        "tiny-2x2.json": _json({"pixels": [[0, 255], [127.5, 3]]}),
    }
    near = {
        "true": True,
        "nan": float("nan"),
        "infinity": float("inf"),
        "huge": 1e400,
        "negative": -1,
        "too-bright": 256,
        "string": "255",
        "null": None,
        "list": [1],
    }
    for name, value in near.items():
        bad = [row[:] for row in grid]
        bad[14][14] = value
        seeds[f"mnist-with-{name}.json"] = json.dumps({"pixels": bad}, separators=(",", ":")).encode()
    seeds["ragged.json"] = _json({"pixels": grid[:27] + [grid[27][:27]]})
    seeds["27-rows.json"] = _json({"pixels": grid[:27]})
    seeds["flat.json"] = _json({"pixels": sum(grid, [])})
    seeds["big-int.json"] = b'{"pixels":[[' + b"9" * 400 + b",0],[0,0]]}"
    seeds["nested.json"] = b'{"pixels":' + b"[" * 60 + b"0" + b"]" * 60 + b"}"
    seeds["object.json"] = _json({"pixels": {"0": [0, 1]}, "other": [True, None, "x"]})
    yield from seeds.items()


def card_seeds() -> Seeds:
    """Inputs for ``fuzz_card.py``: real model cards that digitlab wrote, and near misses of them."""
    import tempfile

    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    data = load_dataset("digits", limit=200)
    with tempfile.TemporaryDirectory() as folder:
        for name in ("logreg", "knn"):  # a safetensors card with its state, and a skops card
            card = save_model(train(name, data), data, Path(folder) / name).read_bytes()
            yield f"{name}.json", card
    doc = json.loads(card)
    near = {"image_shape": [10**9, 8], "pixel_max": 0, "file": "../model.skops", "sha256": "x",
            "metrics": {"accuracy": 2}, "classes": [True], "params": []}
    for key, value in near.items():
        yield f"knn-bad-{key}.json", _json({**doc, key: value})
    yield "infinity.json", card.replace(b'"pixel_max": 16', b'"pixel_max": Infinity')
    yield "nested.json", b'{"params":' + b"[" * 64 + b"]" * 64 + b"}"


def read_seeds() -> Seeds:
    """Inputs for ``fuzz_read.py``: numbers of real digits, plain, underlined (level and slanting), framed, on
    ruled paper, with a point and on two lines, as raw grids (first byte odd) and as PNG files (even)."""
    images, _ = real_digits(4)
    number = np.full((44, 132), 255, dtype=np.uint8)
    for i, digit in enumerate(images[:3]):
        number[8:36, 10 + 40 * i : 38 + 40 * i] = 255 - digit
    variants = {"plain": Image.fromarray(number)}
    for name, line in (("underlined", [(6, 39), (126, 39)]), ("slanting", [(6, 42), (126, 36)])):
        variants[name] = Image.fromarray(number)
        ImageDraw.Draw(variants[name]).line(line, fill=0, width=2)
    variants["framed"] = Image.fromarray(number)
    ImageDraw.Draw(variants["framed"]).rectangle([3, 3, 128, 40], outline=0, width=2)
    ruled = number.copy()
    ruled[::11] = np.minimum(ruled[::11], 170)
    variants["ruled"] = Image.fromarray(ruled)
    variants["point"] = Image.fromarray(number)
    ImageDraw.Draw(variants["point"]).ellipse([44, 31, 49, 36], fill=0)
    variants["two-lines"] = Image.fromarray(np.vstack([number, number[:, ::-1]]))
    for name, image in variants.items():
        pixels = np.asarray(image)
        yield f"{name}.grid", bytes([1, pixels.shape[1] - 1, pixels.shape[0] - 1]) + pixels.tobytes()
        yield f"{name}.png", b"\x00" + _save(image, "PNG")


#: target name -> seed maker. A target without an entry starts from an empty corpus.
SEEDS: dict[str, Callable[[], Seeds]] = {
    "idx": idx_seeds,
    "image": image_seeds,
    "pixels": pixels_seeds,
    "card": card_seeds,
    "read": read_seeds,
}


def build(out: Path, targets: list[str] | None = None) -> dict[str, int]:
    """Write the seeds of ``targets`` (default: all) under ``out/<target>/``; return how many each got."""
    counts = {}
    for target in targets or list(SEEDS):
        folder = out / target
        folder.mkdir(parents=True, exist_ok=True)
        counts[target] = 0
        for name, data in SEEDS.get(target, lambda: iter(()))():
            (folder / name).write_bytes(data)
            counts[target] += 1
    return counts


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1])
        return 0 if argv else 2
    counts = build(Path(argv[0]), argv[1:] or None)
    for target, count in counts.items():
        print(f"{target}: {count} seeds in {Path(argv[0]) / target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
