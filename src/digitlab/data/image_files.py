"""Reading a picture file safely: explicit limits, a short list of formats, one error line for any failure.

:func:`read_image` is the only way digitlab decodes a picture a person hands in (``digitlab predict``,
``read``, ``data import``, the web page, the REST API); :mod:`digitlab.data.images` prepares what it returns.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Iterable

from PIL import Image, ImageOps

from digitlab.data.plain_png import read_plain_grey
from digitlab.errors import DigitlabError

__all__ = ["FORMATS", "ImageTooLargeError", "MAX_BYTES", "MAX_FILE_BYTES", "MAX_FILE_SIDE", "MAX_JPEG_SIDE", "MAX_SIDE",
           "PICTURES", "UNREAD", "WORK_SIDE", "hidden", "pictures_and_passed_over", "pictures_in", "read_image",
           "read_image_and_bytes"]

PICTURES = (".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff")
"""The endings of the pictures taken from a folder."""
UNREAD = (".heic", ".heif", ".avif", ".jxl", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf")
"""Photos digitlab does not read (a phone's HEIC, a camera's raw files): in a folder, each is named, not passed over.
Any other file there (an iPhone's .AAE edits, notes) is passed over."""

MAX_BYTES = 5 * 1024 * 1024
"""Largest image accepted as bytes (an upload, a picture handed in), in bytes (5 MiB)."""
MAX_FILE_BYTES = 32 * 1024 * 1024
"""Largest image file read from a path on this machine (``digitlab predict`` or ``read`` on your own photo): a
12-megapixel phone photo at high JPEG quality is 5-10 MiB. Its pixels are held to :data:`MAX_SIDE` either way."""

MAX_SIDE = 4096
"""Largest width or height decoded, in pixels."""

MAX_FILE_SIDE = 10_000
"""Largest width or height of a picture read from a path on this machine: decoded whole, then reduced to
:data:`MAX_SIDE` (a page scanned at 600 dpi is 4960×7016; the server's pictures keep :data:`MAX_SIDE`)."""

MAX_JPEG_SIDE = 16384
"""Largest width or height of a JPEG read with ``draft``: libjpeg decodes it at 1/2 to 1/8 scale, so it is held to
:data:`MAX_SIDE` all the same (a 24- or 50-megapixel phone photo is 5712×4284 or 8160×6120)."""

WORK_SIDE = 1024
"""Longest side :func:`~digitlab.data.images.prepare_digit` works at; pass it as ``read_image(..., draft=WORK_SIDE)``."""

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
"""Pillow format names :func:`read_image` decodes; anything else is refused unread."""



class ImageTooLargeError(DigitlabError):
    """The image is over :data:`MAX_BYTES` (bytes) or :data:`MAX_FILE_BYTES` (a path), or the picture over
    :data:`MAX_SIDE` (HTTP 413 in the API)."""


# Decompression bombs: Pillow's own guard, set to the largest JPEG read at reduced scale. Pillow refuses above
# twice it and warns above it; opening reads only the header, and read_image refuses a side over MAX_SIDE (over
# MAX_JPEG_SIDE for a JPEG it decodes at reduced scale) in one line before decoding, so the warning (two lines on
# stderr, in the server's log too) would only ever come before that refusal.
Image.MAX_IMAGE_PIXELS = MAX_JPEG_SIDE * MAX_JPEG_SIDE
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def read_image(source: bytes | bytearray | str | Path, *, draft: int | None = None) -> Image.Image:
    """Decode an image from bytes or a file, refusing anything unsafe or unreadable.

    Parameters
    ----------
    source : bytes or path
        The encoded file (PNG, JPEG, BMP, GIF, WebP or TIFF), or its path.
    draft : int, optional
        Let a large JPEG decode straight to grayscale at a reduced scale (libjpeg's DCT scaling), keeping
        both sides at least ``draft`` pixels (:data:`WORK_SIDE` suits ``prepare_digit``): faster for photos.

    Returns
    -------
    PIL.Image.Image
        Fully decoded (``load()`` has run), first frame of animations, EXIF rotation applied.

    Raises
    ------
    DigitlabError
        Empty, over :data:`MAX_BYTES` (:data:`MAX_FILE_BYTES` for a path), not an image, another format, over
        :data:`MAX_SIDE` in width or height, or truncated / corrupt.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (40, 30), 255).save(buffer, "PNG")
    >>> read_image(buffer.getvalue()).size
    (40, 30)
    >>> read_image(b"hello")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: not an image: send a PNG, JPEG, BMP, GIF, WebP or TIFF file
    """
    return read_image_and_bytes(source, draft=draft)[0]


def read_image_and_bytes(source: bytes | bytearray | str | Path, *, draft: int | None = None
                         ) -> tuple[Image.Image, bytes]:
    """:func:`read_image`, with the encoded bytes it read (once): for a picture kept as it arrived."""
    data = _read_bytes(source)
    plain = read_plain_grey(data, MAX_SIDE)  # the drawing page's PNGs, without Pillow's general reader
    largest = MAX_FILE_SIDE if isinstance(source, (str, Path)) else MAX_SIDE
    return (plain if plain is not None else _decode(data, draft, largest)), data


def _decode(data: bytes, draft: int | None, largest: int = MAX_SIDE) -> Image.Image:
    """Pillow's decode of ``data``, within the limits (``largest`` a side: reduced to :data:`MAX_SIDE` once decoded),
    with one-line errors (see :func:`read_image`)."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # the warning, where a filter
        raise ImageTooLargeError(_too_large_message(None, pixels=_pixels_in(exc), largest=largest)) from None  # it
    except ValueError as exc:
        if "MAX_TEXT" not in str(exc):  # a PNG text block that unpacks past Pillow's limit (a bomb): not "not an image"
            raise DigitlabError(_not_readable(data)) from None
        raise DigitlabError("the PNG's text block unpacks to more than Pillow reads (a decompression bomb); save the "
                            "picture again without its text and retry") from None
    except Exception:
        raise DigitlabError(_not_readable(data)) from None
    scaled = bool(draft) and image.format in _SCALABLE
    if max(image.size) > (MAX_JPEG_SIDE if scaled else largest) or max(decoded_size(image, draft)) > largest:
        raise ImageTooLargeError(_too_large_message(image.size, image.format if scaled else None, largest=largest))
    if image.width < 1 or image.height < 1:
        raise DigitlabError(f"the image is {image.width}×{image.height} pixels; it has no pixels to read")
    if scaled:
        image.draft("L", (draft, draft))
    try:
        image.load()
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError, ...
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DigitlabError(
            f"the {image.format} image is truncated or corrupt ({detail}); save it again and retry"
        ) from None
    if max(image.size) > MAX_SIDE:  # a page scanned at 600 dpi: every step after sees at most MAX_SIDE
        exif = image.getexif()
        image = image.convert("RGBA" if image.mode == "P" else "L") if image.mode in ("1", "P") else image
        image = image.reduce(-(-max(image.size) // MAX_SIDE))
        image.getexif().update(exif)  # its orientation, for the turn below
    try:
        ImageOps.exif_transpose(image, in_place=True)  # not a copy: that would double a large picture's memory
    except Exception:  # a broken EXIF block is no reason to refuse the picture
        pass
    return image


_SCALABLE = ("JPEG", "MPO")  # libjpeg decodes both at reduced scale (MPO: a phone's JPEG with a second picture)
_KNOWN_OTHERS = {b"ftypheic": "a HEIC photo", b"ftypheix": "a HEIC photo", b"ftyphevc": "a HEIC photo",
                 b"ftypmif1": "a HEIF photo", b"ftypavif": "an AVIF picture"}


def _not_readable(data: bytes) -> str:
    """Why ``data`` is refused: the formats read, and what it is when it is a picture of a kind not read.

    >>> _not_readable(b"%PDF-1.7 ...")
    'a PDF is not read: export the page as a PNG or JPEG and send that'
    """
    kind = "a PDF" if data.startswith(b"%PDF") else _KNOWN_OTHERS.get(data[4:12])
    if kind:
        return f"{kind} is not read: export {'the page' if kind == 'a PDF' else 'it'} as a PNG or JPEG and send that"
    return "not an image: send a PNG, JPEG, BMP, GIF, WebP or TIFF file"


def decoded_size(image: Image.Image, draft: int | None) -> tuple[int, int]:
    """The size an opened (not yet loaded) picture decodes to: a JPEG with ``draft`` at the scale libjpeg takes,
    1/2, 1/4 or 1/8, as :meth:`PIL.JpegImagePlugin.JpegImageFile.draft` picks it (both sides kept ≥ ``draft``).

    >>> decoded_size(Image.new("L", (8160, 6120)), 1024)   # not a JPEG: decoded whole
    (8160, 6120)
    """
    width, height = image.size
    if not draft or image.format not in _SCALABLE:
        return width, height
    scale = next((s for s in (8, 4, 2) if min(width // draft, height // draft) >= s), 1)
    return -(-width // scale), -(-height // scale)


def hidden(path: Path) -> bool:
    """A file in a folder of pictures that no one put there to be read: hidden (``.DS_Store``, ``.git/``), or a NAS's
    own (``@eaDir/``)."""
    return any(part.startswith((".", "@")) for part in path.parts)


def pictures_in(paths: Iterable[Path]) -> list[Path]:
    """``paths`` with each folder replaced by the pictures in it and under it (:data:`PICTURES`' endings, sorted,
    hidden files left out): ``digitlab predict scans/`` for a folder too big for the shell's command line. Photos of
    a kind digitlab does not read (:data:`UNREAD`: a phone's HEIC) are among them, so that reading each says so: a
    folder's HEIC photos were passed over in silence and the command ended well. A folder with no pictures stays as
    it is, and reading it says so."""
    return pictures_and_passed_over(paths)[0]


def pictures_and_passed_over(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """:func:`pictures_in`, and the files in the folders of ``paths`` it leaves out (hidden ones aside: a note, an
    iPhone's .AAE edits, a ``.pgm`` scan), from one walk of each folder: named, so that no one takes the answers for
    all the folder held."""
    out: list[Path] = []
    left: list[Path] = []
    for path in map(Path, paths):
        files = [p for p in path.rglob("*") if not p.is_dir()  # a broken link, a pipe, a link to a device: read and
                 and not hidden(p.relative_to(path))] if path.is_dir() else []  # said, not passed over (an audit)
        found = sorted(p for p in files if p.suffix.lower() in PICTURES + UNREAD)
        left += [p for p in files if p.suffix.lower() not in PICTURES + UNREAD]
        out += found if any(p.suffix.lower() in PICTURES for p in found) else [path]
    return out, sorted(left)


def _read_bytes(source: bytes | bytearray | str | Path) -> bytes:
    """The encoded bytes of ``source``, checked for emptiness and size (:data:`MAX_FILE_BYTES` for a path on this
    machine, :data:`MAX_BYTES` for bytes)."""
    limit = MAX_BYTES
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            if pictures_in([path]) == [path]:
                unread = sorted({p.suffix[1:].upper() for p in path.rglob("*") if p.suffix.lower() in UNREAD})
                raise DigitlabError(f"{path} is a folder with no pictures in it ({', '.join(FORMATS)})" + (
                    f"; its {', '.join(unread)} photos digitlab does not read: save them as JPEG or PNG" if unread
                    else ""))
            raise DigitlabError(f"{path} is a folder; give the pictures in it (e.g. {path / '*.png'})")
        if not path.is_file():
            raise DigitlabError(f"{path} is not a file but a pipe or device; save the picture as a file and give that"
                                if path.exists() else f"no image file at {path}; check the path")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageTooLargeError(_too_many_bytes_message(size, MAX_FILE_BYTES))
        data = path.read_bytes()
        limit = MAX_FILE_BYTES
    else:
        raise DigitlabError(f"cannot read an image from a {type(source).__name__}; pass bytes or a path")
    if not data:
        raise DigitlabError("the image is empty (0 bytes); send a PNG, JPEG, BMP, GIF, WebP or TIFF file")
    if len(data) > limit:
        raise ImageTooLargeError(_too_many_bytes_message(len(data), limit))
    return data


def _too_many_bytes_message(size: int, limit: int = MAX_BYTES) -> str:
    """Sizes in MiB; in bytes when, rounded, the two would look equal ("5.0 MiB; the limit is 5 MiB")."""
    mib = limit // 2**20
    if f"{size / 2**20:.1f}" == f"{limit / 2**20:.1f}":
        return f"the image is {size:,} bytes; the limit is {mib} MiB ({limit:,} bytes), send a smaller file"
    return f"the image is {size / 2**20:.1f} MiB; the limit is {mib} MiB, send a smaller file"


def _pixels_in(bomb: Exception) -> int | None:
    """The pixel count Pillow's DecompressionBombError names ("Image size (N pixels) exceeds limit ..."), if any."""
    import re

    found = re.search(r"\((\d+) pixels\)", str(bomb))
    return int(found.group(1)) if found else None


def _too_large_message(size: tuple[int, int] | None, scaled_format: str | None = None, *,
                       pixels: int | None = None, largest: int = MAX_SIDE) -> str:
    """The one line for a picture over the limits: its size as known (its header's pixel count when Pillow refused
    it before saying its sides, e.g. 100,000×100,000: "10,000,000,000 pixels", not "over 537 million")."""
    shown = (f"{size[0]}×{size[1]} pixels" if size else f"{pixels:,} pixels" if pixels
             else f"over {2 * MAX_JPEG_SIDE ** 2 / 1e6:,.0f} million pixels")
    jpeg = (f" (a JPEG up to {MAX_JPEG_SIDE}×{MAX_JPEG_SIDE} is read at 1/2 to 1/8 scale where that brings it "
            f"within, each side kept at least {WORK_SIDE:,} px)") if scaled_format else ""
    return f"the image is {shown}; the limit is {largest}×{largest}{jpeg}, scale it down and retry"
