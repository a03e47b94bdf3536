"""The drawing page's own PNGs, read without Pillow's general PNG machinery.

The page (``serve/static/graypng.js``) writes each drawing as the simplest PNG there is: the signature, a
header (IHDR: 8-bit grey, not interlaced), one IDAT chunk holding one zlib stream of unfiltered rows, and
IEND. Pillow reads any PNG, but for a 112×112 drawing its chunk parsing and decoder set-up take half of the
≈ 30 µs it spends, and on a busy server several times that. :func:`read_plain_grey` reads exactly this layout
with one ``zlib`` call and hands back an image of the same pixels (a read-only ``L`` image over the inflated
rows, its ``format`` set to ``"PNG"``). Any PNG that differs in any way (another
colour type or bit depth, a filtered row, interlacing, another chunk, a wrong CRC, a stream that is short,
long or has bytes after it) returns None, and :func:`~digitlab.data.image_files.read_image` gives it to
Pillow, which reads it, or refuses it, as before.

Examples
--------
>>> import io
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.new("L", (3, 2), 255).save(buffer, "PNG")    # Pillow's PNGs filter their rows: not plain
>>> plain_png_size(buffer.getvalue()), read_plain_grey(buffer.getvalue())
((3, 2), None)
>>> plain = grey_png(b"\\x00\\x80\\xff" * 2, 3, 2)
>>> image = read_plain_grey(plain)
>>> image.mode, image.size, image.format, list(image.tobytes())
('L', (3, 2), 'PNG', [0, 128, 255, 0, 128, 255])
"""

from __future__ import annotations

import struct
import zlib

from PIL import Image

__all__ = ["MAX_PLAIN_PIXELS", "grey_png", "plain_png_size", "read_plain_grey"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY8 = b"\x08\x00\x00\x00\x00"  # IHDR after the size: bit depth 8, colour type 0 (grey), no interlacing
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty end chunk and its CRC
MAX_PLAIN_PIXELS = 1024 * 1024
"""Largest picture read here (the page sends 112×112, and 400×150 in its number mode); larger go to Pillow."""


def plain_png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG whose header chunk is intact and followed straight by its pixels (IDAT).

    Then that header is the size Pillow decodes; with any other chunk between (a second IHDR, say, which
    Pillow would take instead) this returns None, and the caller asks Pillow.
    """
    if (data[:16] == SIGNATURE + b"\0\0\0\rIHDR" and data[37:41] == b"IDAT"
            and zlib.crc32(data[12:29]) == int.from_bytes(data[29:33], "big")):
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    return None


def without_trailer(data: bytes) -> bytes:
    """A PNG's bytes up to the end of its IEND chunk, without what follows (which decoders ignore); any other file,
    or a PNG whose chunks do not lead to IEND, as it is. A security audit padded a 600-byte drawing with 5 MiB that
    a collecting server kept "as it arrived": a class's disk filled at 150 MB/s.

    >>> from io import BytesIO
    >>> buffer = BytesIO()
    >>> Image.new("L", (4, 4)).save(buffer, "PNG")
    >>> without_trailer(buffer.getvalue() + b"x" * 1000) == buffer.getvalue(), without_trailer(b"GIF89a") == b"GIF89a"
    (True, True)
    """
    at = len(SIGNATURE)
    if not data.startswith(SIGNATURE):
        return data
    while at + 12 <= len(data):
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        at += 12 + length
        if kind == b"IEND":
            return data[:at] if at <= len(data) else data
    return data


def read_plain_grey(data: bytes, max_side: int = 4096) -> Image.Image | None:
    """The picture of a plain 8-bit grey PNG (as the page writes them); None for any other file.

    Parameters
    ----------
    data : bytes
        The whole file.
    max_side : int
        Wider or taller pictures return None (for ``read_image`` to refuse in its own words; it passes its
        ``MAX_SIDE``).

    Returns
    -------
    PIL.Image.Image or None
        Mode ``L``, ``format`` ``"PNG"``: the pixels Pillow decodes from the same file.
    """
    size = plain_png_size(data)
    if size is None or data[24:29] != _GREY8:
        return None
    width, height = size
    if not (0 < width <= max_side and 0 < height <= max_side and width * height <= MAX_PLAIN_PIXELS):
        return None
    end = 41 + int.from_bytes(data[33:37], "big")  # the IDAT's data runs from byte 41 to here, then its CRC
    if data[end + 4 :] != _IEND or zlib.crc32(data[37:end]) != int.from_bytes(data[end : end + 4], "big"):
        return None
    expected = height * (width + 1)  # each row: its filter byte, then one byte a pixel
    stream = zlib.decompressobj()
    try:
        rows = stream.decompress(data[41:end], expected + 1)  # never more than one byte past the picture
    except zlib.error:
        return None
    if not stream.eof or stream.unused_data or len(rows) != expected or rows[:: width + 1] != bytes(height):
        return None  # short, long, trailing bytes, or a row with a filter: Pillow's to read
    image = Image.frombuffer("L", size, rows[1:] + b"\0", "raw", "L", width + 1, 1)  # skips the filter bytes
    image.format = "PNG"
    return image


def grey_png(pixels: bytes, width: int, height: int) -> bytes:
    """A plain 8-bit grey PNG of ``pixels`` (row by row), written as the page writes its drawings."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + pixels[y * width : (y + 1) * width] for y in range(height))
    header = struct.pack(">II", width, height) + _GREY8
    return SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
