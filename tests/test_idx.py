"""The IDX reader and writer, on small synthetic files written by the writer itself."""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from digitlab.data.idx import (
    MAX_DIMS,
    MAX_PAYLOAD_BYTES,
    read_idx,
    read_idx_bytes,
    read_images,
    read_labels,
    write_idx,
)
from digitlab.errors import DigitlabError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _header(type_code: int, *shape: int) -> bytes:
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, type_code, len(shape), *shape)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _fails(path: Path, *words: str) -> str:
    with pytest.raises(DigitlabError) as caught:
        read_idx(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message
    return message


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (1, 1, 1, 7)])
def test_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / f"a-idx{len(shape)}{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_writer_uses_the_exact_layout(tmp_path):
    path = tmp_path / "x-idx2-short"
    write_idx(path, np.array([[1, -2, 3]], dtype=np.int16))
    assert path.read_bytes() == _header(0x0B, 1, 3) + b"\x00\x01\xff\xfe\x00\x03"


def test_gz_and_raw_hold_the_same_bytes(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array)
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == (tmp_path / "a").read_bytes()
    assert read_idx_bytes(tmp_path / "a.gz") == (tmp_path / "a").read_bytes()


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    renamed = (tmp_path / "a.gz").rename(tmp_path / "labels-idx1-ubyte")
    np.testing.assert_array_equal(read_idx(renamed), array)


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "1.gz", array)
    write_idx(tmp_path / "2.gz", array)
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()


def test_mmap_reads_raw_uint8_without_copy(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "img", array)
    mapped = read_images(tmp_path / "img", mmap=True)
    np.testing.assert_array_equal(mapped, array)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable


def test_empty_dimension_round_trips(tmp_path):
    write_idx(tmp_path / "empty", np.zeros((0, 28, 28), dtype=np.uint8))
    assert read_images(tmp_path / "empty").shape == (0, 28, 28)


def test_labels_and_images_helpers(tmp_path):
    write_idx(tmp_path / "labels", np.array([0, 9, 5], dtype=np.uint8))
    write_idx(tmp_path / "images", np.zeros((3, 2, 2), dtype=np.uint8))
    np.testing.assert_array_equal(read_labels(tmp_path / "labels"), [0, 9, 5])
    with pytest.raises(DigitlabError, match="expected uint8 images"):
        read_images(tmp_path / "labels")
    with pytest.raises(DigitlabError, match="expected uint8 labels"):
        read_labels(tmp_path / "images")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_labels_outside_0_to_9_are_rejected(tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    write_idx(path, np.array([3, 10, 2, 255], dtype=np.uint8))
    with pytest.raises(DigitlabError) as caught:
        read_labels(path)
    message = str(caught.value)
    assert str(path) in message and "label 10 at index 1 is outside 0-9" in message and "2 label(s)" in message


# ----------------------------------------------------------------------------- the writer refuses


@pytest.mark.parametrize("array", [np.array(5, dtype=np.uint8), np.zeros(3, dtype=np.int64), np.zeros(3, dtype=bool)])
def test_writer_refuses_what_idx_cannot_hold(tmp_path, array):
    path = tmp_path / "out"
    with pytest.raises(DigitlabError):
        write_idx(path, array)
    assert list(tmp_path.iterdir()) == []


def test_writer_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.gz"
    write_idx(path, np.arange(5, dtype=np.uint8))
    before = path.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(gzip.GzipFile, "write", broken)
    with pytest.raises(OSError):
        write_idx(path, np.arange(9, dtype=np.uint8))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.gz"]


# ----------------------------------------------------------------------------- corruption, raw and gz


@pytest.fixture(params=["", ".gz"], ids=["raw", "gz"])
def suffix(request):
    return request.param


def test_missing_file(tmp_path):
    _fails(tmp_path / "nope", "no such file")


def test_empty_file(tmp_path, suffix):
    _fails(_write(tmp_path / f"f{suffix}", b""), "truncated header")


def test_short_header(tmp_path, suffix):
    _fails(_write(tmp_path / f"f{suffix}", b"\x00\x00\x08"), "truncated header")


def test_bad_magic(tmp_path, suffix):
    _fails(_write(tmp_path / f"f{suffix}", b"\x01\x00\x08\x01\x00\x00\x00\x01\x07"), "bad magic number 0x01000801")


def test_text_file_is_not_idx(tmp_path):
    _fails(_write(tmp_path / "notes.txt", b"hello, world\n"), "bad magic number")


def test_unknown_type_code(tmp_path, suffix):
    _fails(_write(tmp_path / f"f{suffix}", _header(0x0A, 1) + b"\x07"), "unknown type code 0x0A")


def test_zero_dimensions(tmp_path, suffix):
    _fails(_write(tmp_path / f"f{suffix}", b"\x00\x00\x08\x00"), "0 dimensions")


def test_truncated_dimensions(tmp_path, suffix):
    _fails(_write(tmp_path / f"f{suffix}", b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00"), "truncated header")


def test_truncated_payload(tmp_path, suffix):
    data = _header(0x08, 2, 3, 3) + bytes(17)
    _fails(_write(tmp_path / f"f{suffix}", data), "truncated", "declares 18 data bytes", "holds 17")


def test_truncated_multibyte_payload(tmp_path, suffix):
    data = _header(0x0C, 3) + bytes(11)  # 3 int32 need 12 bytes
    _fails(_write(tmp_path / f"f{suffix}", data), "truncated", "declares 12", "holds 11")


def test_padded_payload(tmp_path, suffix):
    data = _header(0x08, 4) + bytes(4) + b"junk!"
    message = _fails(_write(tmp_path / f"f{suffix}", data), "padded", "the 4 data bytes")
    if not suffix:
        assert "5 bytes after" in message


def test_padded_by_one_byte(tmp_path, suffix):
    data = _header(0x08, 4) + bytes(5)
    _fails(_write(tmp_path / f"f{suffix}", data), "padded")


def test_header_declaring_more_than_the_limit(tmp_path, suffix):
    data = _header(0x0E, 65535, 65535, 65535) + bytes(8)
    _fails(_write(tmp_path / f"f{suffix}", data), "limit")


def test_empty_dimension_beside_huge_ones_is_a_clear_error(tmp_path, suffix):
    """Issue 9: ``00 00 08 03 | 0 | FFFFFFFF | FFFFFFFF`` declares 0 data bytes, so the length
    checks pass; NumPy's reshape then raised a raw ``ValueError: array is too big``."""
    data = bytes.fromhex("00000803" "00000000" "FFFFFFFF" "FFFFFFFF")
    assert len(data) == 16
    _fails(_write(tmp_path / f"f{suffix}", data), "shape (0, 4294967295, 4294967295)", "limit")
    with pytest.raises(DigitlabError, match="shape"):
        read_idx_bytes(tmp_path / f"f{suffix}")


def test_sixty_five_dimensions_is_a_clear_error(tmp_path, suffix):
    """Issue 9: 65 dimensions (NumPy holds at most 64) failed in the reshape the same way."""
    data = _header(0x08, *([1] * 64), 0)
    _fails(_write(tmp_path / f"f{suffix}", data), "65 dimensions", f"1 to {MAX_DIMS}")


@pytest.mark.parametrize("ndim", [MAX_DIMS + 1, 255])
def test_too_many_dimensions_is_refused_before_they_are_read(tmp_path, suffix, ndim):
    data = bytes([0, 0, 0x08, ndim]) + b"\x00\x00\x00\x01"  # the rest of the dimensions never came
    _fails(_write(tmp_path / f"f{suffix}", data), f"{ndim} dimensions")


@pytest.mark.parametrize("shape", [(0, 2**31, 2), (2**16, 0, 2**16, 2), (1, 0, 2**32 - 1)])
def test_empty_arrays_must_still_have_a_sane_shape(tmp_path, suffix, shape):
    _fails(_write(tmp_path / f"f{suffix}", _header(0x08, *shape)), "empty dimension", "limit")


def test_empty_arrays_with_a_sane_shape_still_read(tmp_path, suffix):
    path = _write(tmp_path / f"f{suffix}", _header(0x0E, 0, 28, 28))
    back = read_idx(path)
    assert back.shape == (0, 28, 28) and back.dtype == np.float64


def test_writer_refuses_what_the_reader_would(tmp_path):
    with pytest.raises(DigitlabError, match=f"1 to {MAX_DIMS} dimensions"):
        write_idx(tmp_path / "five", np.zeros((1,) * (MAX_DIMS + 1), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(60000, 150, 150), (40000, 40000)])
def test_lying_header_never_allocates_what_it_claims(tmp_path, suffix, shape):
    """A header claiming ~1.5 GB on a tiny file fails fast, without allocating it."""
    data = _header(0x08, *shape) + bytes(100)
    path = _write(tmp_path / f"liar{suffix}", data)
    tracemalloc.start()
    try:
        _fails(path, "truncated")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.prod(shape) <= MAX_PAYLOAD_BYTES
    assert peak < 8 * 2**20  # a few MB of chunk buffers at most


def test_damaged_gzip_stream(tmp_path):
    good = gzip.compress(_header(0x08, 1000) + bytes(range(256)) * 4)[:-200]
    _fails(_write(tmp_path / "cut", good), "damaged gzip stream")


def test_gzip_crc_mismatch(tmp_path):
    blob = bytearray(gzip.compress(_header(0x08, 4) + b"\x01\x02\x03\x04"))
    blob[-8] ^= 0xFF  # the CRC32 in the trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(blob))
    _fails(path, "damaged gzip stream")


def test_read_idx_bytes_checks_too(tmp_path, suffix):
    path = _write(tmp_path / f"f{suffix}", _header(0x08, 4) + bytes(3))
    with pytest.raises(DigitlabError, match="truncated"):
        read_idx_bytes(path)


@pytest.mark.parametrize("odd", ["folder", "pipe"])
def test_an_odd_file_where_the_export_record_goes_is_left_and_the_export_goes_beside(tmp_path, odd):
    """An audit: a pipe named .digitlab-export.json in the folder hung `data export` (its read waits for a writer);
    a folder of that name ended it in an error after the four files were written. Neither is an export's record:
    the folder is not one an export made, and the export goes to DIR-2, as beside MNIST's own files."""
    from digitlab.data.idx_export import EXPORTED, unused_idx_folder

    target = tmp_path / "idx"
    target.mkdir()
    (target / "train-images-idx3-ubyte").write_bytes(b"someone's")
    (target / EXPORTED).mkdir() if odd == "folder" else os.mkfifo(target / EXPORTED)
    assert unused_idx_folder(target) == tmp_path / "idx-2"
    (target / "train-images-idx3-ubyte").unlink()
    assert unused_idx_folder(target) == tmp_path / "idx-2"
