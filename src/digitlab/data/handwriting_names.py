"""What may name a handwriting set and a writer: checked before anything touches the disk."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from typing import Any, Callable, Iterable, TypeVar

from digitlab.errors import DigitlabError

__all__ = ["NAME", "NO_NAME", "RESERVED", "WRITER_MAX", "check_new_writer", "check_set_name", "check_writer", "listed",
           "meant", "one_spelling", "writer_key", "written_by"]

RESERVED = ("digits", "mnist")
"""The built-in datasets' names: no handwriting set may take them."""
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A set's name: it is also its folder's name, so no path separators and no leading dot."""
WRITER_MAX = 64
T = TypeVar("T")
NO_NAME = "(no name)"
"""How samples saved without a writer's name are listed (they count as one writer); no writer may take it."""


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
        raise DigitlabError(f"{name!r} is a built-in dataset, not a handwriting set: name one of yours (digitlab data "
                            "info lists them), or another name for a new one")
    return name


_JOINERS = "\u200c\u200d"  # zero-width non-joiner and joiner


def check_writer(writer: str | None, longest: int = WRITER_MAX) -> str | None:
    """Return a writer's name stripped, its spaces one apart and its accents composed (NFC: "e" + a combining
    diaeresis, as some keyboards send "ë", is "ë"); None when empty; or raise a one-line error. ``longest``
    counts the composed name's characters (composing can lengthen one: U+0958 becomes two).

    Examples
    --------
    >>> check_writer("  Ada   L. ")
    'Ada L.'
    >>> check_writer("Zoe\u0308") == "Zo\u00eb"
    True
    >>> persian = "\u0646\u06cc\u06a9\u200c\u0646\u0627\u0645"  # with a zero-width non-joiner
    >>> check_writer("Ana\u00a0B"), check_writer(persian) == persian
    ('Ana B', True)
    >>> check_writer("a/b")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: a writer's name cannot contain '/', '\\' or control characters; use letters, digits and spaces
    """
    if writer is None:
        return None
    if not isinstance(writer, str):
        raise DigitlabError("a writer's name must be text")
    # a no-break space (U+00A0, U+202F...) is a space; the joiners of Persian and Devanagari names, and of emoji, are
    # letters' part (an audit: "Ana B" typed with a no-break space, and a Persian name, were refused as control
    # characters)
    writer = "".join(" " if unicodedata.category(ch) == "Zs" else ch for ch in unicodedata.normalize("NFC", writer))
    writer = writer.strip()
    if len(writer) > longest:
        raise DigitlabError(f"a writer's name can be at most {longest} characters, got {len(writer):,}")
    if any(ch in "/\\" or not (ch.isprintable() or ch in _JOINERS) for ch in writer):
        raise DigitlabError("a writer's name cannot contain '/', '\\' or control characters; "
                            "use letters, digits and spaces")
    return " ".join(writer.split()) or None


_UNSEEN = {"\u034f", "\u115f", "\u1160", "\u180e", "\u3164", "\uffa0"}
_VARIATIONS = set(map(chr, range(0xFE00, 0xFE10)))  # after a symbol they choose its look ("❤️"); after a letter, none
_ALIKE = {"LATIN", "CYRILLIC", "GREEK"}  # scripts whose letters pass for each other's


def _look_alike(name: str) -> str | None:
    """Why ``name`` could pass for another writer's (a security audit: "Ada" with a joiner or invisible marks in it,
    and "Аda" with a Cyrillic А, were three more writers who looked like Ada, and `data remove --writer Ada` left
    them), or None. A joiner is a letter's part in Persian or Devanagari (and in emoji), not beside a Latin letter."""
    if any(ch in _UNSEEN or ch in _VARIATIONS and (i == 0 or _script(name[i - 1]) in _ALIKE)
           for i, ch in enumerate(name)):  # after an emoji or a keycap's digit ("1️⃣", "ℹ️") it chooses a look
        return "hold invisible characters"
    if any(ch in _JOINERS and any(_script(n) == "LATIN" for n in name[max(i - 1, 0):i + 2])
           for i, ch in enumerate(name)):
        return "join Latin letters with an invisible joiner"
    for word in re.findall(r"[^\W\d_]+", name):  # runs of letters: "Anna-Мария" and "Γ.Smith" are two each
        if len({_script(ch) for ch in word} & _ALIKE) > 1:
            return f"mix Latin, Cyrillic or Greek letters in one word ({word!r})"
    return None


def _script(ch: str) -> str:
    """The first word of a character's Unicode name: its script for letters ("LATIN", "CYRILLIC", "GREEK")."""
    return unicodedata.name(ch, "").split(" ")[0]


def check_new_writer(writer: str | None) -> str | None:
    """:func:`check_writer` for a name that samples will be saved under: it may not be :data:`NO_NAME`.

    >>> check_new_writer("(No name)")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: '(no name)' is how digitlab lists samples saved without a name; leave the name empty for those
    """
    writer = check_writer(writer)
    if writer is not None and writer_key(writer) == writer_key(NO_NAME):
        raise DigitlabError(f"{NO_NAME!r} is how digitlab lists samples saved without a name; "
                            "leave the name empty for those")
    if writer is not None and "\ufffd" in writer:  # bytes that were no UTF-8 (a request's %ff%fe), decoded as "�"
        raise DigitlabError("the name holds characters that could not be read (not UTF-8 text); type it again")
    if writer is not None and (why := _look_alike(writer)):  # a new name only: one saved before stays readable, and
        raise DigitlabError(f"a writer's name cannot {why}: it would look like another's; type it again")  # removable
    return writer


def writer_key(name: str) -> str:
    """What two writers' names are compared by: "Ada", "ada", "ADA " and "Ａｄａ" are one writer, as are "Zoë"
    typed with its accent composed or apart, and "Zoë  van Dijk" with two spaces (NFKC, ``str.casefold``, spaces).

    >>> writer_key("Zoe\u0308  van Dijk") == writer_key("ZO\u00cb VAN DIJK") == "zo\u00eb van dijk"
    True
    """
    return " ".join(unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).split())


def meant(name: str, writers: Iterable[str]) -> str:
    """``"; did you mean 'Zoë'?"`` when one of ``writers`` is ``name`` but for its accents (a teacher typed
    ``--hold-out zoe`` for Zoë), else ``""``. Only a hint: "Zoe" and "Zoë" may be two students.

    >>> meant("zoe", ["Ada", "Zoë"]), meant("zoe", ["Zoë", "Zöe"]), meant("ben", ["Ada"])
    ("; did you mean 'Zoë'?", '', '')
    """
    def bare(text: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFKD", writer_key(text)) if not unicodedata.combining(c))

    close = sorted({w for w in writers if bare(w) == bare(name)})
    return f"; did you mean {close[0]!r}?" if len(close) == 1 else ""


def alike(name: str, writers: Iterable[str]) -> list[str]:
    """The ``writers`` other than ``name`` whose first word is its first word but for case and accents: after one
    student's samples go, those that may be theirs under another spelling (a privacy audit removed "Zoe Quenby"
    and "Zoe", "Zoe Q." and "Zoë Quenby" stayed, unmentioned).

    >>> alike("Zoe Quenby", ["zoe quenby", "Zoe", "Zoë Quenby", "Zoe Q.", "Zoey", "Ada"])
    ['Zoe', 'Zoe Q.', 'Zoë Quenby']
    """
    def first(text: str) -> str:
        word = (writer_key(text).split() or [""])[0]
        return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))

    return sorted({w for w in writers if first(w) == first(name) and writer_key(w) != writer_key(name)})


def listed(writers: list[str], room: int = 200) -> str:
    """``writers`` joined for a one-line message, whole names only, as many as fit in about ``room`` characters, and
    how many more (an engineer: a class's list cut off mid-name, the last students not named at all).

    >>> listed(["Ada", "Ben"]), listed([]), listed(["Ada", "Ben", "Cyd"], room=8)
    ('Ada, Ben', 'none', 'Ada, Ben and 1 more')
    """
    shown: list[str] = []
    for name in writers:
        if shown and len(", ".join([*shown, name])) > room:
            return f"{', '.join(shown)} and {len(writers) - len(shown)} more"
        shown.append(name)
    return ", ".join(shown) or "none"


def written_by(writers: Iterable[str]) -> Callable[[Any], bool]:
    """Whether a sample (anything with a ``writer``) is by one of ``writers``: names compared regardless of case,
    :data:`NO_NAME` for the samples saved without one."""
    keys = {writer_key(w) for w in writers}
    return lambda sample: writer_key(sample.writer or NO_NAME) in keys


def one_spelling(samples: list[T]) -> list[T]:
    """``samples`` (dataclasses with a ``writer``) with each writer under one spelling: the first in the list, for
    every name that differs from it only as :func:`writer_key` allows (a set saved before names were compared so).

    >>> from dataclasses import make_dataclass
    >>> S = make_dataclass("S", ["writer"])
    >>> [s.writer for s in one_spelling([S("Ada"), S(None), S("ada"), S("Ben")])]
    ['Ada', None, 'Ada', 'Ben']
    """
    first: dict[str, str] = {}
    out = []
    for sample in samples:
        name = sample.writer and first.setdefault(writer_key(sample.writer), sample.writer)
        out.append(sample if name == sample.writer else replace(sample, writer=name))
    return out
