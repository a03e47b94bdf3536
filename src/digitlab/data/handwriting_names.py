"""What may go into a handwriting set (its name, a writer, a label, a picture): checked before anything touches the disk."""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

from digitlab.errors import DigitlabError

__all__ = ["NAME", "RESERVED", "WRITER_MAX", "check_label", "check_set_name", "check_writer", "decode_sample"]

RESERVED = ("digits", "mnist")
"""The built-in datasets' names: no handwriting set may take them."""
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A set's name: it is also its folder's name, so no path separators and no leading dot."""
WRITER_MAX = 64


def check_set_name(name: str) -> str:
    """Return ``name`` if it can name a handwriting set, else raise a one-line error.

    Examples
    --------
    >>> check_set_name("class-7b")
    'class-7b'
    >>> check_set_name("../etc")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: '../etc' cannot name a handwriting set: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DigitlabError(f"{str(name)[:80]!r} cannot name a handwriting set: use 1-64 lowercase letters, digits, "
                            "'.', '_' or '-', starting with a letter or digit")
    if name in RESERVED:
        raise DigitlabError(f"{name!r} is a built-in dataset; choose another name for your handwriting set")
    return name


def check_writer(writer: str | None) -> str | None:
    """Return a writer's name stripped (None when empty), or raise a one-line error.

    Examples
    --------
    >>> check_writer("  Ada L. ")
    'Ada L.'
    >>> check_writer("a/b")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: a writer's name cannot contain '/', '\\' or control characters; use letters, digits and spaces
    """
    if writer is None:
        return None
    if not isinstance(writer, str):
        raise DigitlabError("a writer's name must be text")
    writer = writer.strip()
    if len(writer) > WRITER_MAX:
        raise DigitlabError(f"a writer's name can be at most {WRITER_MAX} characters, got {len(writer):,}")
    if any(ch in "/\\" or not ch.isprintable() for ch in writer):
        raise DigitlabError("a writer's name cannot contain '/', '\\' or control characters; "
                            "use letters, digits and spaces")
    return writer or None


def check_label(label: object) -> int:
    """Return a sample's label as an int if it is a digit 0-9 (not a bool, not text), else raise a one-line error."""
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= int(label) <= 9:
        raise DigitlabError(f"a label must be a digit from 0 to 9, got {str(label)[:20]!r}")
    return int(label)


def decode_sample(picture: bytes, prepared: np.ndarray | None) -> tuple[str, np.ndarray]:
    """The picture's format and its 28×28 form (refusing a picture without ink).

    Without ``prepared`` the picture is decoded here (refusing anything unsafe) and prepared; with it, the
    caller has decoded it already and only its header is read, for the format.
    """
    from digitlab.data.images import FORMATS, WORK_SIDE, prepare_digit, read_image

    if not isinstance(picture, (bytes, bytearray)):
        raise DigitlabError("a sample's picture must be the bytes of an image file")
    if prepared is None:
        image = read_image(bytes(picture), draft=WORK_SIDE)
        fmt, prepared = image.format or "", prepare_digit(image, (28, 28), 255)
    else:
        try:
            with Image.open(io.BytesIO(picture), formats=FORMATS) as header:
                fmt = header.format or ""
        except Exception:
            raise DigitlabError("not an image: send a PNG, JPEG, BMP, GIF, WebP or TIFF file") from None
    prepared = np.asarray(prepared)
    if prepared.shape != (28, 28) or prepared.dtype != np.uint8:
        raise DigitlabError(f"a prepared sample must be 28×28 uint8, got {prepared.dtype} {prepared.shape}")
    if not prepared.any():
        raise DigitlabError("no ink found: the picture is blank; draw or photograph one digit")
    return fmt, prepared
