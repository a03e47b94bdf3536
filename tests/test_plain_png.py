"""The page's plain grey PNGs are read without Pillow's PNG reader, to the same pixels; any other PNG goes to Pillow."""

import io
import zlib

import numpy as np
import pytest
from conftest import png_chunk, png_file as png
from PIL import Image

from digitlab.data.image_files import ImageTooLargeError, read_image
from digitlab.data.plain_png import MAX_PLAIN_PIXELS, grey_png, plain_png_size, read_plain_grey
from digitlab.errors import DigitlabError

def pillow_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


def rows_of(pixels: np.ndarray, filters: bytes | None = None) -> bytes:
    height = pixels.shape[0]
    filters = filters if filters is not None else bytes(height)
    return b"".join(bytes([f]) + row.tobytes() for f, row in zip(filters, pixels))


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (112, 112), (448, 112), (112, 1), (1024, 1024)])
def test_plain_png_matches_pillow(size):
    width, height = size
    pixels = np.random.default_rng(width * height).integers(0, 256, (height, width), dtype=np.uint8)
    data = grey_png(pixels.tobytes(), width, height)
    image = read_plain_grey(data)
    assert image is not None and image.mode == "L" and image.size == size and image.format == "PNG"
    assert np.array_equal(np.asarray(image), pixels)
    assert np.array_equal(np.asarray(image), pillow_pixels(data))
    assert np.array_equal(np.asarray(read_image(data)), pixels)


def test_the_page_drawing_reads_as_pillow_reads_it():
    canvas = Image.new("L", (112, 112), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(canvas).line([(30, 25), (80, 25), (45, 90)], fill=0, width=7)
    data = grey_png(canvas.tobytes(), 112, 112)
    assert np.array_equal(np.asarray(read_plain_grey(data)), pillow_pixels(data))


def pillow_written(mode: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    colour = (10, 20, 30, 40)[: len(mode)] if mode in ("RGB", "RGBA") else 128
    Image.new(mode, (20, 10), colour).save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


PIXELS = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
GOOD = zlib.compress(rows_of(PIXELS))

OTHER_PNGS = {
    "Pillow's own (filtered rows)": pillow_written("L"),
    "RGBA": pillow_written("RGBA"),
    "palette": pillow_written("P"),
    "16-bit grey": pillow_written("I;16"),
    "1-bit": png(10, 6, GOOD, b"\x01\x00\x00\x00\x00"),
    "interlaced": png(10, 6, GOOD, b"\x08\x00\x00\x00\x01"),
    "a row with the Sub filter": png(10, 6, zlib.compress(rows_of(PIXELS, bytes([0, 1, 0, 0, 0, 0])))),
    "a chunk after the pixels": png(10, 6, GOOD, after=png_chunk(b"tEXt", b"a\0b")),
    "bytes after the stream": png(10, 6, GOOD + b"more"),
    "a stream one row short": png(10, 6, zlib.compress(rows_of(PIXELS[:5]))),
    "a stream one byte long": png(10, 6, zlib.compress(rows_of(PIXELS) + b"\0")),
    "a stream cut short": png(10, 6, GOOD[:-6]),
    "not zlib": png(10, 6, b"\x00" * 40),
    "the pixels' CRC wrong": png(10, 6, GOOD)[:-16] + b"\0\0\0\0" + png(10, 6, GOOD)[-12:],
    "no end chunk": png(10, 6, GOOD)[:-12],
    "bytes after the end": png(10, 6, GOOD) + b"\0",
    "0 pixels wide": png(0, 6, GOOD),
    "over the pixel limit": png(1025, 1024, zlib.compress(bytes(1024 * 1026))),
}


@pytest.mark.parametrize("name", OTHER_PNGS)
def test_any_other_png_goes_to_pillow(name):
    data = OTHER_PNGS[name]
    assert read_plain_grey(data) is None
    try:
        expected = pillow_pixels(data)
    except Exception:  # Pillow refuses it, so read_image must refuse it too, in one line
        with pytest.raises(DigitlabError):
            read_image(data)
    else:
        image = read_image(data)
        assert np.array_equal(np.asarray(image.convert("L")), expected)


def test_a_picture_over_the_side_limit_is_refused_by_read_image():
    data = png(5000, 1, zlib.compress(bytes(5001)))
    assert read_plain_grey(data) is None
    with pytest.raises(ImageTooLargeError, match="5000×1 pixels; the limit is 4096×4096"):
        read_image(data)


def test_a_stream_that_inflates_past_the_picture_stops_there():
    """A small IDAT that would inflate to 100 MB is stopped a byte past the picture's 66 bytes."""
    import tracemalloc

    data = png(10, 6, zlib.compress(bytes(100 * 1024 * 1024), 9))
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        assert read_plain_grey(data) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(data) + 1_000_000  # the file's slices, not the 100 MB it would inflate to


def test_header_size():
    data = grey_png(bytes(12), 4, 3)
    assert plain_png_size(data) == (4, 3)
    broken = data[:20] + b"\xff" + data[21:]  # the header's CRC no longer matches
    assert plain_png_size(broken) is None and read_plain_grey(broken) is None
    assert plain_png_size(b"GIF89a") is None
    assert MAX_PLAIN_PIXELS >= 400 * 150  # the page's widest drawing: number mode's 800×300 canvas at half size
