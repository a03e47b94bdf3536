"""What may name a handwriting set and a writer: checked before anything touches the disk."""

from __future__ import annotations

import re

from digitlab.errors import DigitlabError

__all__ = ["NAME", "RESERVED", "WRITER_MAX", "check_set_name", "check_writer"]

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
