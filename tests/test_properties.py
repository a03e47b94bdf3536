"""Property-based tests: whatever a person hands the readers, they answer or say one clear line.

Each property states the whole contract of one entry point that takes untrusted input:

- the IDX reader: any bytes, raw or gzipped, give the array the header declares or a
  :class:`~digitlab.errors.DigitlabError`; any array the writer accepts reads back bit for bit;
- picture preparation: :func:`read_image` on any bytes gives a decoded picture or the clear error,
  and :func:`prepare_digit` on any small array or Pillow picture gives a ``uint8`` array of the
  requested shape within ``0..pixel_max``, or the clear error;
- the pixel grid: :func:`prepare_pixels` on any JSON-like value gives a ``uint8`` grid or the clear
  error (and never reads ``true`` as 1);
- whole numbers: :func:`~digitlab.read.read_number` on any pen strokes (lines at any angle, dots, boxes)
  gives a reading of digits and separators with boxes inside the picture, or the clear error.

"The clear error" is a ``DigitlabError`` whose message is one line; anything else is a crash.
Inputs that once crashed stay here as ``@example``. The coverage-guided fuzz targets in ``fuzz/``
push on the same entry points for longer (``make fuzz``).

Example counts are kept small so this file takes seconds; under ``CI`` the examples are drawn
from a fixed seed, so a red CI run always reproduces. Run with ``--hypothesis-seed=N`` or
``--hypothesis-show-statistics`` to dig further.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from digitlab.data.idx import MAX_DIMS, MAX_PAYLOAD_BYTES, TYPE_CODES, read_idx, read_idx_bytes, write_idx
from digitlab.data.images import prepare_digit, prepare_pixels, read_image
from digitlab.errors import DigitlabError


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _clear(error: DigitlabError) -> None:
    """The error a person sees: one non-empty line (its first words counted for --hypothesis-show-statistics)."""
    message = str(error)
    assert message and "\n" not in message, repr(message)
    words = [w.strip(",;:()") for w in message.split() if "/" not in w]  # no paths, numbers or codes
    event("refused: " + " ".join([w for w in words if w.isalpha()][:5]))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


_serial = itertools.count()


def _fresh(workdir: Path, name: str) -> Path:
    """A new file name per example: a memory map of the last one may still be open."""
    return workdir / f"{next(_serial)}-{name}"


# ---------------------------------------------------------------------------------------------
# The IDX reader

# The two headers of issue 9: an empty dimension beside two huge ones, and 65 dimensions.
EMPTY_BESIDE_HUGE = bytes.fromhex("00000803" "00000000" "FFFFFFFF" "FFFFFFFF")
SIXTY_FIVE_DIMS = struct.pack(">BBBB65I", 0, 0, 0x08, 65, *([1] * 64), 0)


def _read_all_ways(path: Path) -> None:
    """read_idx (plain and memory-mapped) and read_idx_bytes answer alike: a value or the clear error."""
    outcomes = []
    for read in (read_idx, lambda p: read_idx(p, mmap=True), read_idx_bytes):
        try:
            outcomes.append(read(path))
        except DigitlabError as error:
            _clear(error)
            assert str(path) in str(error)
            outcomes.append(None)
    array, mapped, raw = outcomes
    assert (array is None) == (mapped is None) == (raw is None)
    if array is not None:
        event("read")
        assert array.dtype.isnative and 1 <= array.ndim <= MAX_DIMS
        assert array.nbytes <= MAX_PAYLOAD_BYTES
        np.testing.assert_array_equal(mapped, array)
        uncompressed = gzip.decompress(path.read_bytes()) if path.read_bytes()[:2] == b"\x1f\x8b" else path.read_bytes()
        assert raw == uncompressed


@_settings(300)
@given(data=st.binary(max_size=300), gzipped=st.booleans())
@example(data=EMPTY_BESIDE_HUGE, gzipped=False)
@example(data=EMPTY_BESIDE_HUGE, gzipped=True)
@example(data=SIXTY_FIVE_DIMS, gzipped=False)
@example(data=SIXTY_FIVE_DIMS, gzipped=True)
def test_idx_reader_on_any_bytes(workdir, data, gzipped):
    path = _fresh(workdir, "any-bytes")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    _read_all_ways(path)


_DIMENSION = st.one_of(
    st.integers(0, 6),
    st.integers(1, 6),
    st.sampled_from([0, 1, 2**16, 2**31 - 1, 2**31, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)


@st.composite
def idx_files(draw) -> bytes:
    """A header with random type and dimensions, then a payload of about the length it declares."""
    type_code = draw(st.sampled_from([*TYPE_CODES, *TYPE_CODES, *TYPE_CODES, 0x00, 0x0A, 0x0F, 0xFF]))
    ndim = draw(st.one_of(st.integers(1, MAX_DIMS), st.integers(1, MAX_DIMS), st.sampled_from([0, 5, 6, 64, 65, 255])))
    shape = draw(st.lists(_DIMENSION, min_size=min(ndim, 8), max_size=min(ndim, 8)))
    header = struct.pack(f">BBBB{len(shape)}I", 0, 0, type_code, ndim, *shape)
    itemsize = TYPE_CODES[type_code].itemsize if type_code in TYPE_CODES else 1
    declared = math.prod(shape) * itemsize
    length = max(0, min(declared, 4096) + draw(st.sampled_from([0, 0, 0, -1, 1, -itemsize, 5])))
    payload = draw(st.binary(min_size=length, max_size=length)) if length <= 256 else bytes(length)
    return header + payload


@_settings(300)
@given(data=idx_files(), gzipped=st.booleans())
@example(data=EMPTY_BESIDE_HUGE, gzipped=False)
@example(data=SIXTY_FIVE_DIMS, gzipped=True)
def test_idx_reader_on_structured_headers(workdir, data, gzipped):
    path = _fresh(workdir, "structured")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    _read_all_ways(path)
    try:
        array = read_idx(path)
    except DigitlabError:
        return
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    assert array.shape == shape and array.dtype == TYPE_CODES[data[2]].newbyteorder("=")


_IDX_DTYPES = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])


@_settings(150)
@given(
    array=_IDX_DTYPES.flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=0, max_side=5))
    ),
    gzipped=st.booleans(),
    byteswapped=st.booleans(),
)
def test_idx_round_trip(workdir, array, gzipped, byteswapped):
    if byteswapped:  # the writer takes either byte order
        array = array.astype(array.dtype.newbyteorder(">" if array.dtype.byteorder != ">" else "<"))
    path = _fresh(workdir, "round-trip.gz" if gzipped else "round-trip")
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("=")
    assert back.tobytes() == array.astype(back.dtype).tobytes()  # bit for bit: NaN, -0.0 included


# ---------------------------------------------------------------------------------------------
# Reading a picture


def _picture(fmt: str, mode: str, size: tuple[int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


_SAVABLE = {
    "PNG": ["L", "RGB", "RGBA", "P", "1", "LA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "BMP": ["L", "RGB", "1", "P"],
    "GIF": ["L", "P", "RGB"],
    "WEBP": ["RGB", "RGBA"],
    "TIFF": ["L", "RGB", "RGBA", "CMYK", "1", "I;16", "F", "I"],
}


@st.composite
def damaged_pictures(draw) -> bytes:
    """A small real picture in an accepted format, then cut, overwritten in places, or left whole."""
    fmt = draw(st.sampled_from(sorted(_SAVABLE)))
    mode = draw(st.sampled_from(_SAVABLE[fmt]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    data = bytearray(_picture(fmt, mode, size, draw(st.integers(0, 3))))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 4]))):
        at = draw(st.integers(0, len(data) - 1))
        data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return bytes(data[:cut])


def _associated_alpha_tiff() -> bytes:
    """A grayscale TIFF with premultiplied ("associated") alpha: Pillow decodes it as mode La,
    which it converts only to LA; prepare_digit's conversion to RGBA raised a raw ValueError."""
    pixels = np.zeros((20, 20, 2), dtype=np.uint8)
    pixels[..., 1] = 255
    pixels[4:16, 8:11, 0] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "LA").save(buffer, "TIFF")
    unassociated = struct.pack("<HHIH", 338, 3, 1, 2)  # ExtraSamples = 2, one SHORT
    assert buffer.getvalue().count(unassociated) == 1
    return buffer.getvalue().replace(unassociated, struct.pack("<HHIH", 338, 3, 1, 1))


ASSOCIATED_ALPHA_TIFF = _associated_alpha_tiff()


def _prepare_or_refuse(image, image_shape=(28, 28), pixel_max=255) -> None:
    try:
        out = prepare_digit(image, image_shape, pixel_max)
    except DigitlabError as error:
        _clear(error)
        return
    assert out.dtype == np.uint8 and out.shape == tuple(image_shape)
    assert int(out.max()) <= pixel_max
    event("prepared")


@_settings(200)
@given(
    data=st.one_of(st.binary(max_size=64), damaged_pictures(), damaged_pictures()),
    draft=st.sampled_from([None, 8, 1024]),
)
@example(data=b"\x89PNG\r\n\x1a\n", draft=None)
@example(data=b"GIF89a" + bytes(20), draft=None)
@example(data=ASSOCIATED_ALPHA_TIFF, draft=None)  # found by this test: mode La crashed prepare_digit
@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow notes the damage it reads past; not a fault
def test_read_image_on_any_bytes(data, draft):
    try:
        image = read_image(data, draft=draft)
    except DigitlabError as error:
        _clear(error)
        return
    assert isinstance(image, Image.Image)  # (format is None once an EXIF rotation made a copy)
    assert 1 <= image.width and 1 <= image.height
    _prepare_or_refuse(image)


# ---------------------------------------------------------------------------------------------
# Preparing a picture

_IMAGE_SHAPES = st.one_of(
    st.sampled_from([(28, 28), (8, 8)]),
    st.tuples(st.integers(8, 40), st.integers(8, 40)),
)
_ARRAY_DTYPES = st.sampled_from(
    [np.uint8, np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float32, np.float64, np.bool_]
)


def _pixel_arrays(shapes):
    return _ARRAY_DTYPES.flatmap(
        lambda dtype: hnp.arrays(
            dtype,
            shapes,
            elements=(
                st.floats(width=8 * np.dtype(dtype).itemsize, allow_nan=True, allow_infinity=True)
                if np.dtype(dtype).kind == "f"
                else None
            ),
        )
    )


@st.composite
def picture_arrays(draw) -> np.ndarray:
    """Mostly a plausible picture (paper with a stroke, then noise), sometimes anything at all."""
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    channels = draw(st.sampled_from([(), (), (1,), (3,), (4,)]))
    if draw(st.booleans()):
        return draw(_pixel_arrays(st.just((height, width, *channels))))
    dtype = np.dtype(draw(_ARRAY_DTYPES))
    if dtype.kind in "bf":
        top = 1
    else:
        brightest = int(np.iinfo(dtype).max)
        top = draw(st.sampled_from([v for v in (255, 4095, 65535, brightest) if v <= brightest]))
    paper, ink = draw(st.sampled_from([(0, top), (top, 0)]))
    array = np.full((height, width, *channels), paper, dtype=dtype)
    y, x = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
    array[y : y + draw(st.integers(1, height)), x : x + draw(st.integers(1, 4))] = ink
    if channels == (4,):
        array[..., 3] = draw(st.sampled_from([0, top]))
    return array


@_settings(200)
@given(
    array=st.one_of(picture_arrays(), _pixel_arrays(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))),
    image_shape=_IMAGE_SHAPES,
    pixel_max=st.sampled_from([255, 16, 1]) | st.integers(1, 255),
)
@example(array=np.full((3, 3), np.finfo(np.float64).max), image_shape=(28, 28), pixel_max=255)  # was "infinite"
@example(array=np.zeros((0, 5, 3), dtype=np.uint8), image_shape=(8, 8), pixel_max=16)
def test_prepare_digit_on_any_array(array, image_shape, pixel_max):
    _prepare_or_refuse(array, image_shape, pixel_max)


_PIL_MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "PA", "La", "RGBa",
              "I;16", "I;16B", "I;16L", "RGBX"]


@st.composite
def pil_pictures(draw) -> Image.Image:
    """Any Pillow mode, filled with arbitrary raw bytes (so I and F hold any value, NaN included)."""
    mode = draw(st.sampled_from(_PIL_MODES))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    length = len(Image.new(mode, size).tobytes())
    if draw(st.booleans()):
        raw = draw(st.binary(min_size=length, max_size=length))
    else:  # a stroke on paper, in bytes: more likely to reach the later steps
        grid = np.full(length, draw(st.sampled_from([0, 255])), dtype=np.uint8)
        start = draw(st.integers(0, length - 1))
        grid[start : start + draw(st.integers(1, max(1, length // 3)))] ^= 0xFF
        raw = grid.tobytes()
    image = Image.frombytes(mode, size, raw)
    if mode in ("P", "PA"):
        image.putpalette(draw(st.binary(min_size=768, max_size=768)))
        if draw(st.booleans()):
            image.info["transparency"] = draw(st.integers(0, 255))
    return image


@_settings(200)
@given(image=pil_pictures(), image_shape=_IMAGE_SHAPES, pixel_max=st.sampled_from([255, 16]))
@example(image=Image.new("La", (3, 3), (255, 255)), image_shape=(28, 28), pixel_max=255)  # found by this test
def test_prepare_digit_on_any_pillow_mode(image, image_shape, pixel_max):
    _prepare_or_refuse(image, image_shape, pixel_max)


@_settings(30)
@given(value=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(0, 255), max_size=5)))
def test_prepare_digit_refuses_what_is_no_picture(value):
    with pytest.raises(DigitlabError) as caught:
        prepare_digit(value)
    _clear(caught.value)


# ---------------------------------------------------------------------------------------------
# The JSON pixel grid

_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-2, 300),
    st.floats(),  # NaN, ±inf, huge, tiny
    st.floats(0, 255),
    st.sampled_from([10**400, -(10**30), 2**63, 2**64, 1e308, 5e-324]),
    st.text(max_size=4),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=40,
)


@st.composite
def near_grids(draw) -> tuple[list, tuple[int, int]]:
    """A grid of about the expected shape whose cells are mostly numbers 0-255, sometimes not."""
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    plain = st.integers(0, 255)
    cell = st.one_of(plain, st.floats(0, 255), _JSON_SCALARS) if draw(st.booleans()) else plain
    grid = [[draw(cell) for _ in range(cols)] for _ in range(rows)]
    if draw(st.integers(0, 3)) == 0 and grid:  # one row longer, shorter or not a list
        r = draw(st.integers(0, rows - 1))
        grid[r] = draw(st.sampled_from([grid[r][:-1], grid[r] + [0], 0, {"x": 1}, grid[r][0] if grid[r] else 0]))
    return grid, (rows, cols)


def _is_plain_grid(grid, shape) -> bool:
    """Exactly ``shape`` of ints or floats (not bools) from 0 to 255 once rounded, as documented (-0.4 is 0, 255.3 is
    255; hypothesis found -0.5, which rounds to 0 too, half to even)."""
    return (
        isinstance(grid, list)
        and len(grid) == shape[0]
        and all(isinstance(row, list) and len(row) == shape[1] for row in grid)
        and all(0 <= v <= 255 if type(v) is int else type(v) is float and math.isfinite(v) and 0 <= np.rint(v) <= 255
                for row in grid for v in row)
    )


def _check_pixels(grid, shape) -> None:
    try:
        out = prepare_pixels(grid, shape)
    except DigitlabError as error:
        _clear(error)
        assert not _is_plain_grid(grid, shape), f"a plain grid was refused: {error}"
        return
    assert out.dtype == np.uint8 and out.shape == shape
    assert _is_plain_grid(grid, shape), "accepted something that is not a grid of numbers 0-255"
    event("accepted")
    np.testing.assert_array_equal(out, np.rint(np.array(grid, dtype=np.float64)).astype(np.uint8))


@_settings(300)
@given(value=_JSON_VALUES, shape=st.sampled_from([(28, 28), (2, 2), (1, 1), (1, 3)]), via_json=st.booleans())
@example(value=[[True, 0], [0, 255]], shape=(2, 2), via_json=True)  # issue 9: true was read as 1
@example(value=[[0.5, False]], shape=(1, 2), via_json=False)
@example(value=[[10**400]], shape=(1, 1), via_json=False)
def test_prepare_pixels_on_any_json_value(value, shape, via_json):
    if via_json:  # what the API's body parser would hand over (NaN and Infinity included)
        try:
            value = json.loads(json.dumps(value))
        except ValueError:  # an int too long for str(); the body parser refuses that itself
            assume(False)
    _check_pixels(value, shape)


@_settings(300)
@given(grid_and_shape=near_grids())
@example(grid_and_shape=([[True] * 3] * 2, (2, 3)))
@example(grid_and_shape=([[1, 2, 3], [4, 5, True]], (2, 3)))
@example(grid_and_shape=([[0, 1], [2, 3.5]], (2, 2)))
@example(grid_and_shape=([[0, -0.5]], (1, 2)))  # rounds to 0, and is taken (hypothesis found it)
def test_prepare_pixels_on_near_grids(grid_and_shape):
    grid, shape = grid_and_shape
    _check_pixels(grid, shape)


def test_associated_alpha_tiff_prepares_like_its_straight_alpha_twin():
    image = read_image(ASSOCIATED_ALPHA_TIFF)
    assert image.mode == "La"
    straight = np.zeros((20, 20, 2), dtype=np.uint8)
    straight[..., 1] = 255
    straight[4:16, 8:11, 0] = 255
    np.testing.assert_array_equal(prepare_digit(image), prepare_digit(Image.fromarray(straight, "LA")))


def test_prepare_pixels_refuses_true_and_false_with_their_place():
    grid = [[0] * 28 for _ in range(28)]
    grid[3][7] = True
    with pytest.raises(DigitlabError, match="found true at row 3, column 7"):
        prepare_pixels(grid)
    grid[3][7], grid[27][0] = 0, False
    with pytest.raises(DigitlabError, match="found false at row 27, column 0"):
        prepare_pixels(grid)


# ---------------------------------------------------------------------------------------------
# Reading whole numbers


@st.composite
def number_pictures(draw) -> np.ndarray:
    """Pen strokes on paper (lines at any angle and thickness, dots, boxes), dark on light or light on dark: the
    marks, rules, frames, underlines level or slanting, separators and cuts of ``read`` on what no number is."""
    from PIL import ImageDraw

    width, height = draw(st.integers(8, 220)), draw(st.integers(8, 140))
    dark = draw(st.booleans())
    picture = Image.new("L", (width, height), 255 if dark else 0)
    pen = ImageDraw.Draw(picture)
    for _ in range(draw(st.integers(1, 12))):
        x0, x1 = draw(st.integers(-10, width + 10)), draw(st.integers(-10, width + 10))
        y0, y1 = draw(st.integers(-10, height + 10)), draw(st.integers(-10, height + 10))
        ink, thick = draw(st.integers(0, 255)), draw(st.integers(1, 9))
        shape = draw(st.sampled_from(["line", "dot", "box"]))
        if shape == "line":
            pen.line([(x0, y0), (x1, y1)], fill=ink, width=thick)
        elif shape == "dot":
            pen.ellipse([x0, y0, x0 + thick, y0 + thick], fill=ink)
        else:
            pen.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=ink, width=thick)
    return np.asarray(picture)


_READER: list = []


def _reader():
    """The lesson's logistic regression on the bundled 8×8 digits and its card, fitted once (a second)."""
    if not _READER:
        from digitlab.card import ModelCard
        from digitlab.data import load_dataset
        from digitlab.train import train

        _READER.append((train("logreg", load_dataset("digits")).model,
                        ModelCard(id="logreg-digits", model="logreg", dataset="digits", image_shape=(8, 8),
                                  pixel_max=16)))
    return _READER[0]


@_settings(60)
@given(picture=number_pictures())
def test_read_number_on_any_strokes(picture):
    from digitlab.read import read_number

    model, card = _reader()
    try:
        reading = read_number(model, card, picture)
    except DigitlabError as error:
        _clear(error)
        return
    assert set(reading.text) <= set("0123456789?.,-: \n") and reading.digits
    lines = reading.text.split("\n")  # a line each; a space only between two numbers of a line
    assert all(line and line.strip() == line and "  " not in line for line in lines), reading.text
    height, width = picture.shape
    assert all(0 <= d.box[0] < d.box[2] <= width and 0 <= d.box[1] < d.box[3] <= height for d in reading.digits)
    event("read")


CLOSE = st.sampled_from([0.9932, 0.99315, 0.99318, 0.99321, 0.995, 0.9949, 0.99535, 0.9, 0.5])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 1.0) | CLOSE, st.booleans()), min_size=1, max_size=60))
def test_the_unsure_bar_is_a_figure_of_a_tenth_of_a_percent_and_reads_as_its_answers_do(pairs):
    """The bar is a figure of 0.1% (the same answers kept, or a few more called "unsure"), so that no sure answer is
    shown under it and no unsure one over it, as predict and the page write them (k-NN's sure answers read "99.5%"
    beside "99.6%"; a logistic regression's "99.3%" beside "99.4%"). Only where rounding it up would keep no answer
    or too few right is it finer."""
    from digitlab.calibrate import TIE, choose_threshold, sure
    from digitlab.predict import percent_needed, shown_below, shown_percent

    confidence, right = np.array([c for c, _ in pairs]), np.array([r for _, r in pairs])
    bar, coverage, accuracy = choose_threshold(confidence, right, 0.9)
    kept = sure(confidence, bar)
    assert math.isclose(kept.mean(), coverage) and (not kept.any() or math.isclose(right[kept].mean(), accuracy))
    assert bar <= confidence.max() + TIE
    if abs(bar * 1000 - round(bar * 1000)) > 1e-6:  # finer: rounding up would have kept none, or too few right
        up = sure(confidence, math.ceil(bar * 1000) / 1000)
        assert not up.any() or right[up].mean() < 0.9
        return
    needed = float(percent_needed(bar).rstrip("%"))
    for p, sure_one in zip(confidence, kept):
        shown = (shown_percent if sure_one else lambda q: shown_below(q, bar))(float(p))
        value = float(shown.lstrip("><").rstrip("%"))
        assert (shown.startswith(">") or value >= needed) if sure_one else value < needed, (p, bar, shown)
