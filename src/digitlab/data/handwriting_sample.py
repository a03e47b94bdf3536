"""One sample of a handwriting set: its record as the index keeps it (:class:`Sample`), and a new one
checked and prepared before anything touches the disk (:func:`new_sample`)."""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import PurePosixPath

import numpy as np
from PIL import Image

from digitlab.data.handwriting_names import WRITER_MAX, check_new_writer, check_writer
from digitlab.errors import DigitlabError

__all__ = ["NewSample", "SOURCES", "Sample", "check_label", "decode_sample", "new_sample", "with_free_id"]

SOURCES = ("drawn", "photo", "import", "sheet")
"""Where a sample came from: the drawing page, a photo sent to the page, ``digitlab data import`` (of one digit's
picture, or of a sheet of them cut into digits: ``--sheet``)."""

_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")
_ORIGINAL = re.compile(rf"originals/({_ID.pattern})\.[a-z]+")  # compiled once: a pattern per id overflowed re's cache
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "WEBP": "webp", "TIFF": "tif"}


@dataclass(frozen=True)
class Sample:
    """One saved digit: its id, true label, writer, source, UTC time, and the original's SHA-256 and file."""

    id: str
    label: int
    writer: str | None
    source: str
    created: str
    sha256: str
    original: str  # path of the original picture, relative to the set's folder

    @classmethod
    def from_dict(cls, doc: dict) -> "Sample":
        """Read a record back, refusing anything malformed (``ValueError``)."""
        sample = cls(**{key: doc[key] for key in cls.__dataclass_fields__})
        if not (isinstance(sample.id, str) and _ID.fullmatch(sample.id)):
            raise ValueError("bad id")
        if type(sample.label) is not int or not 0 <= sample.label <= 9:
            raise ValueError("bad label")
        if sample.source not in SOURCES or not isinstance(sample.created, str) or not isinstance(sample.sha256, str):
            raise ValueError("bad source, time or checksum")
        try:  # a name saved before names were composed (NFC) and spaced one apart reads as it is saved now; it
            writer = check_writer(sample.writer, longest=3 * WRITER_MAX)  # may be longer so (NFC triples at most)
        except DigitlabError:
            raise ValueError("bad writer") from None
        if sample.writer is not None and (writer is None or sample.writer != sample.writer.strip()):
            raise ValueError("bad writer")
        original = _ORIGINAL.fullmatch(sample.original) if isinstance(sample.original, str) else None
        if original is None or original.group(1) != sample.id:
            raise ValueError("bad original path")
        return replace(sample, writer=writer)

    def to_dict(self) -> dict:
        """The record as the index keeps it (``dataclasses.asdict`` without its deep copy: plain fields)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class NewSample:
    """A sample checked and prepared but not saved yet (:func:`new_sample`; :meth:`HandwritingSet.save` saves it)."""

    sample: Sample
    picture: bytes  # the picture as it arrived
    prepared: np.ndarray  # its 28×28 MNIST form


def new_sample(picture: bytes, label: int, *, writer: str | None = None, source: str = "import",
               prepared: np.ndarray | None = None) -> NewSample:
    """Check and prepare a picture of the digit ``label`` for saving (as :meth:`HandwritingSet.add`, writing nothing)."""
    label, writer = check_label(label), check_new_writer(writer)
    if source not in SOURCES:
        raise DigitlabError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    fmt, prepared = decode_sample(picture, prepared)
    now = datetime.now(timezone.utc)
    sample_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    sample = Sample(sample_id, label, writer, source, now.isoformat(timespec="seconds"),
                    hashlib.sha256(picture).hexdigest(), f"originals/{sample_id}.{_EXTENSIONS.get(fmt, 'bin')}")
    return NewSample(sample, bytes(picture), prepared)


def with_free_id(item: NewSample, taken: set[str]) -> NewSample:
    """``item``, its id's random part drawn again until no id in ``taken`` has it (nor its file name). An id is a
    second's time and 32 random bits: two that met shared their files, the second overwriting the first's picture
    (a chaos tester forced it: one sample lost, the other's record pointing at a picture of another digit)."""
    sample = item.sample
    while sample.id in taken:
        sample_id = f"{sample.id.split('-')[0]}-{secrets.token_hex(4)}"
        sample = replace(sample, id=sample_id, original=f"originals/{sample_id}{PurePosixPath(sample.original).suffix}")
    return item if sample is item.sample else replace(item, sample=sample)


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
