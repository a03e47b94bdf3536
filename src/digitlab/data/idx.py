"""Read and write IDX files, the format MNIST ships in, raw or gzipped, with strict checks.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian ``uint32`` per dimension, then the values, big-endian, in C order.
The reader checks every part of that and that the payload is exactly as long as the header
says; a fault becomes one :class:`~digitlab.errors.DigitlabError` line naming the file.
It never allocates memory from what the header claims: the shape is checked first (at most
:data:`MAX_DIMS` dimensions, spanning at most :data:`MAX_PAYLOAD_BYTES` even where one of them
is 0), raw files are measured, and gzipped ones are decompressed in chunks, at most one byte
past the declared length.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> path = pathlib.Path(tempfile.mkdtemp()) / "toy-labels-idx1-ubyte.gz"
>>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
>>> read_labels(path)
array([3, 1, 4], dtype=uint8)
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import BinaryIO

import numpy as np

from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_path

__all__ = ["IdxHeader", "read_idx", "read_idx_bytes", "read_images", "read_labels", "write_idx"]

#: IDX type code -> big-endian NumPy dtype.
TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
#: The largest payload the reader accepts (guards against gzip bombs with an honest header).
MAX_PAYLOAD_BYTES = 2**31
#: The most dimensions the reader and writer accept (MNIST uses 1 for labels and 3 for images;
#: 4 leaves room for N×H×W×C).
MAX_DIMS = 4
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header declares.

    Attributes
    ----------
    dtype : numpy.dtype
        Big-endian element type.
    shape : tuple of int
        The dimensions.
    size : int
        Header length in bytes (4 + 4 per dimension).
    """

    dtype: np.dtype
    shape: tuple[int, ...]
    size: int

    @property
    def payload_bytes(self) -> int:
        """How many data bytes the header promises."""
        return prod(self.shape) * self.dtype.itemsize

    def to_bytes(self) -> bytes:
        """The header as it is stored."""
        ndim = len(self.shape)
        return struct.pack(f">BBBB{ndim}I", 0, 0, _type_code(self.dtype), ndim, *self.shape)


def _shape_problem(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """Why ``shape`` of ``dtype`` cannot be an IDX array, or None when it can.

    The one check shared by the reader (before anything is allocated or reshaped) and the
    writer (so it never writes a file the reader refuses). Sizes are Python ints, so nothing
    overflows. A dimension of 0 makes the payload empty, but the other dimensions still count:
    ``(0, 4294967295, 4294967295)`` is refused, because no real array has that shape and NumPy
    cannot even describe it.
    """
    if not 1 <= len(shape) <= MAX_DIMS:
        return f"{len(shape)} dimensions (IDX arrays here have 1 to {MAX_DIMS})"
    payload = prod(shape) * dtype.itemsize
    if payload > MAX_PAYLOAD_BYTES:
        return (
            f"{payload:,} data bytes (shape {tuple(shape)}), "
            f"more than the {MAX_PAYLOAD_BYTES:,}-byte limit"
        )
    span = prod(max(d, 1) for d in shape) * dtype.itemsize
    if span > MAX_PAYLOAD_BYTES:
        return (
            f"shape {tuple(shape)}: an empty dimension beside others spanning {span:,} bytes, "
            f"more than the {MAX_PAYLOAD_BYTES:,}-byte limit"
        )
    return None


def _fault(path: Path, message: str) -> DigitlabError:
    return DigitlabError(f"{path}: {message}; it is not a valid IDX file (get a fresh copy)")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _read_exact(stream: BinaryIO, count: int, path: Path, what: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise _fault(path, f"truncated {what}: expected {count} bytes, found {len(data)}")
    return data


def _read_header(stream: BinaryIO, path: Path) -> IdxHeader:
    magic = _read_exact(stream, 4, path, "header")
    if magic[:2] != b"\x00\x00":
        raise _fault(path, f"bad magic number 0x{magic.hex()} (must start with two zero bytes)")
    type_code, ndim = magic[2], magic[3]
    if type_code not in TYPE_CODES:
        known = ", ".join(f"0x{code:02X}" for code in TYPE_CODES)
        raise _fault(path, f"unknown type code 0x{type_code:02X} (known: {known})")
    if not 1 <= ndim <= MAX_DIMS:  # before reading the dimensions: 255 of them is a lie
        raise _fault(path, f"the header declares {ndim} dimensions (IDX arrays here have 1 to {MAX_DIMS})")
    shape = struct.unpack(f">{ndim}I", _read_exact(stream, 4 * ndim, path, "header"))
    header = IdxHeader(TYPE_CODES[type_code], tuple(shape), 4 + 4 * ndim)
    problem = _shape_problem(header.shape, header.dtype)
    if problem:
        raise _fault(path, f"the header declares {problem}")
    return header


def _length_fault(path: Path, header: IdxHeader, found: int, *, capped: bool = False) -> DigitlabError:
    declared = header.payload_bytes
    if found < declared:
        return _fault(path, f"truncated: the header declares {declared:,} data bytes, the file holds {found:,}")
    if capped:  # decompression stopped one byte past the declared length
        return _fault(path, f"padded: data continues past the {declared:,} data bytes the header declares")
    return _fault(path, f"padded: {found - declared:,} bytes after the {declared:,} data bytes the header declares")


def _read_gzip(path: Path) -> tuple[IdxHeader, bytearray]:
    """Decompress in chunks, never past the declared payload plus one byte."""
    try:
        with gzip.open(path, "rb") as stream:
            header = _read_header(stream, path)
            buffer = bytearray(header.to_bytes())
            remaining = header.payload_bytes + 1
            while remaining > 0:
                chunk = stream.read(min(remaining, _CHUNK))
                if not chunk:
                    break
                buffer += chunk
                remaining -= len(chunk)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fault(path, f"damaged gzip stream ({reason})") from None
    found = len(buffer) - header.size
    if found != header.payload_bytes:
        raise _length_fault(path, header, found, capped=True)
    return header, buffer


def _open_raw(path: Path) -> tuple[IdxHeader, BinaryIO]:
    stream = open(path, "rb")
    try:
        header = _read_header(stream, path)
        found = os.fstat(stream.fileno()).st_size - header.size
        if found != header.payload_bytes:
            raise _length_fault(path, header, found)
    except BaseException:
        stream.close()
        raise
    return header, stream


def _check_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DigitlabError(f"{path}: no such file")
    return path


def read_idx_bytes(path: str | os.PathLike[str]) -> bytes:
    """Return the whole uncompressed IDX file (header and data) after checking it.

    This is what the official SHA-256 checksums are computed over.

    Parameters
    ----------
    path : path-like
        An IDX file, raw or gzipped (recognised by its content, not its name).

    Raises
    ------
    DigitlabError
        When the file is missing, damaged or not IDX.
    """
    path = _check_file(path)
    if _is_gzip(path):
        return bytes(_read_gzip(path)[1])
    header, stream = _open_raw(path)
    with stream:
        stream.seek(0)
        return stream.read()


def read_idx(path: str | os.PathLike[str], *, mmap: bool = False) -> np.ndarray:
    """Read an IDX file, raw or gzipped, into an array of native byte order.

    Parameters
    ----------
    path : path-like
        The file. Gzip is recognised by its content, so the name does not matter.
    mmap : bool
        Memory-map a raw file read-only instead of reading it (ignored for gzip and for
        multi-byte types, which need a byte swap).

    Returns
    -------
    ndarray
        Shape and type as the header declares.

    Raises
    ------
    DigitlabError
        One line naming the file and the fault: bad magic number, unknown type code,
        truncated or padded data, a damaged gzip stream.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grid-idx2-int"
    >>> write_idx(path, np.arange(6, dtype=np.int32).reshape(2, 3))
    >>> read_idx(path)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=int32)
    """
    path = _check_file(path)
    if _is_gzip(path):
        header, buffer = _read_gzip(path)
        array = np.frombuffer(buffer, dtype=header.dtype, offset=header.size).reshape(header.shape)
    else:
        header, stream = _open_raw(path)
        with stream:
            if mmap and header.dtype.itemsize == 1 and header.payload_bytes > 0:
                return np.memmap(stream, dtype=header.dtype, mode="r", offset=header.size, shape=header.shape)
            count = prod(header.shape)
            array = np.fromfile(stream, dtype=header.dtype, count=count).reshape(header.shape)
    native = header.dtype.newbyteorder("=")
    return array if array.dtype == native else array.astype(native)


def read_images(path: str | os.PathLike[str], *, mmap: bool = False) -> np.ndarray:
    """Read an IDX file of ``uint8`` images, N×H×W.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy-images-idx3-ubyte"
    >>> write_idx(path, np.zeros((2, 4, 4), dtype=np.uint8))
    >>> read_images(path).shape
    (2, 4, 4)
    """
    images = read_idx(path, mmap=mmap)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DigitlabError(
            f"{path}: expected uint8 images N×H×W, found {images.dtype} with shape {images.shape}; "
            "is this a labels file?"
        )
    return images


def read_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file of ``uint8`` digit labels and check that each is 0-9.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bad-labels-idx1-ubyte"
    >>> write_idx(path, np.array([1, 12], dtype=np.uint8))
    >>> read_labels(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: .../bad-labels-idx1-ubyte: label 12 at index 1 is outside 0-9; ...
    """
    labels = read_idx(path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DigitlabError(
            f"{path}: expected uint8 labels (one dimension), found {labels.dtype} with shape {labels.shape}; "
            "is this an images file?"
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        index = int(bad[0])
        raise DigitlabError(
            f"{path}: label {labels[index]} at index {index} is outside 0-9; "
            f"{bad.size} label(s) are bad, so this is not a digit labels file"
        )
    return labels


def _type_code(dtype: np.dtype) -> int:
    for code, known in TYPE_CODES.items():
        if known.newbyteorder("=") == dtype.newbyteorder("="):
            return code
    names = ", ".join(str(known.newbyteorder("=")) for known in TYPE_CODES.values())
    raise DigitlabError(f"IDX cannot hold {dtype} values; convert the array to one of: {names}")


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when the name ends in ``.gz``; atomically.

    Parameters
    ----------
    path : path-like
        Destination. The file appears whole or not at all.
    array : array-like
        uint8, int8, int16, int32, float32 or float64, 1 to :data:`MAX_DIMS` dimensions,
        at most :data:`MAX_PAYLOAD_BYTES` of data.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "one-idx1-ubyte"
    >>> write_idx(path, np.array([7], dtype=np.uint8))
    >>> path.read_bytes()
    b'\\x00\\x00\\x08\\x01\\x00\\x00\\x00\\x01\\x07'
    """
    array = np.asarray(array)
    if not 1 <= array.ndim <= MAX_DIMS:
        raise DigitlabError(f"IDX holds arrays of 1 to {MAX_DIMS} dimensions, not {array.ndim}")
    dtype = TYPE_CODES[_type_code(array.dtype)]
    problem = _shape_problem(array.shape, dtype)
    if problem:  # the reader would refuse the file
        raise DigitlabError(f"IDX cannot hold this array: it has {problem}")
    header = IdxHeader(dtype, tuple(array.shape), 4 + 4 * array.ndim).to_bytes()
    payload = np.ascontiguousarray(array, dtype=dtype).tobytes()
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.name.endswith(".gz"):
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as stream:
                stream.write(header)
                stream.write(payload)
        else:
            with open(tmp, "wb") as stream:
                stream.write(header)
                stream.write(payload)
