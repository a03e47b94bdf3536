"""Text a person typed (a writer's name), as a figure can draw it.

Matplotlib draws text in its first font family that has each character. DejaVu Sans, which it brings,
covers Latin, Greek and Cyrillic; a name written in Chinese, Japanese, Korean, Arabic, Hindi or Thai needs
a font the machine may or may not have (Noto Sans CJK, WenQuanYi, ...). :func:`fonts_for` finds, among the
fonts installed, those that draw the names; a figure made inside :func:`drawing` uses them. :func:`writer_labels`
shows a name that no installed font draws by its row in the report's table ("writer 3"), where before it was a
row of empty boxes and a Matplotlib warning for every character.

Examples
--------
>>> writer_labels(["ana", "a$b", "\\U00013080"])  # the last: an Egyptian hieroglyph, in few fonts
{'ana': 'ana', 'a$b': 'a$b', '\\U00013080': 'writer 3'}
>>> plain("a$b")
'a\\\\$b'
>>> fonts_for(["ana", "Łucja", "Δήμητρα"])
{'font.family': ['DejaVu Sans']}
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Iterable, Iterator

from matplotlib import font_manager

__all__ = ["drawable", "drawing", "fonts_for", "plain", "writer_labels"]

BASE = "DejaVu Sans"
"""Matplotlib's own font: every figure's text is in it, where it has the characters."""
_NOT_A_FONT = ("Last Resort",)  # draws a placeholder box for every character of Unicode


def plain(text: str) -> str:
    """Text a person typed, shown as typed: ``$`` would start Matplotlib's maths."""
    return text.replace("$", r"\$")


def drawable(text: str) -> bool:
    """Whether the installed fonts draw every character of ``text`` (spaces, joiners and variation selectors
    aside)."""
    return _families(text) is not None


def fonts_for(texts: Iterable[str]) -> dict[str, list[str]]:
    """Matplotlib settings (``rc_context``) with the font families that draw ``texts``, Matplotlib's own first."""
    families = [BASE]
    for text in texts:
        for family in _families(text) or ():
            if family not in families:
                families.append(family)
    return {"font.family": families}


@contextlib.contextmanager
def drawing(texts: Iterable[str]) -> Iterator[None]:
    """Make and save a figure in here to draw ``texts`` in the fonts that have them (:func:`fonts_for`)."""
    import matplotlib.pyplot as plt

    with _quiet(), plt.rc_context(fonts_for(texts)):
        yield


def writer_labels(writers: Iterable[str], length: int = 24) -> dict[str, str]:
    """Each writer's label in a figure: the name, a longer one cut to ``length`` characters with "…" (its start and
    end where two would read the same: a teacher's "Maximilian Weber" and "Maximilian Webster" were both "Maximilian
    Web"), or ``writer N`` for the ``N``-th name when no installed font draws it or cutting cannot tell it apart
    (the report's table, in a browser, shows the name); a prime is added to ``writer N`` until it is nobody's name.

    >>> writer_labels(["\\U00013080", "writer 1"])
    {'\\U00013080': "writer 1'", 'writer 1': 'writer 1'}
    >>> list(writer_labels(["Maximilian Weber", "Maximilian Webster", "Ada Lovelace"], 14).values())
    ['Maximi…n Weber', 'Maximi…Webster', 'Ada Lovelace']
    """
    writers = list(writers)
    head = {name: name if len(name) <= length else name[:length - 1] + "…" for name in writers if drawable(name)}
    ends = {name: name if len(name) <= length else name[:(length - 1) // 2] + "…" + name[(length - 1) // 2 - length + 1:]
            for name in head}
    labels = {name: label if list(head.values()).count(label) == 1 else ends[name] for name, label in head.items()}
    labels = {name: label for name, label in labels.items() if list(labels.values()).count(label) == 1}
    for i, name in enumerate(writers, 1):
        if name not in labels:
            label = f"writer {i}"
            while label in writers or label in labels.values():
                label += "'"
            labels[name] = label
    return {name: labels[name] for name in writers}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Matplotlib's log line for a font of one weight only (most CJK fonts; taken for the normal one), once
    per text drawn, is not shown."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.cache
def _families(text: str) -> tuple[str, ...] | None:
    """The installed font families, Matplotlib's own first, that between them draw ``text``; None if none do."""
    missing = {ord(ch) for ch in text if ch.isprintable() and not ch.isspace() and ord(ch) not in _IGNORED}
    missing -= _charmap(BASE)
    families: list[str] = [BASE]
    for name in _upright_families():
        if not missing:
            break
        found = missing & _charmap(name)
        if found:
            families.append(name)
            missing -= found
    return None if missing else tuple(families)


_IGNORED = {0x200C, 0x200D, 0xFE0E, 0xFE0F}  # joiners and variation selectors: no glyph of their own


@functools.cache
def _upright_families() -> tuple[str, ...]:
    """Every installed font family with an upright face, those nearest a normal weight first (a CJK font often
    comes in one weight only: WenQuanYi Zen Hei's is 500), then by name."""
    def weight(entry: font_manager.FontEntry) -> int:
        return abs(entry.weight - 400) if isinstance(entry.weight, int) else 0 if entry.weight == "normal" else 300

    upright = [entry for entry in font_manager.fontManager.ttflist
               if entry.style == "normal" and not entry.name.startswith(_NOT_A_FONT) and entry.name != BASE]
    return tuple(dict.fromkeys(entry.name for entry in sorted(upright, key=lambda e: (weight(e), e.name))))


@functools.cache
def _charmap(family: str) -> frozenset[int]:
    """The characters that the file Matplotlib draws ``family`` with has outlines for: none for a file FreeType
    cannot open, or a font of bitmaps only, such as colour emoji, which Matplotlib cannot draw at any size.
    (Two files of one family can differ: this machine's DejaVu Sans has 12 characters Matplotlib's lacks.)"""
    try:
        with _quiet():
            font = font_manager.get_font(font_manager.findfont(font_manager.FontProperties(family=family),
                                                               fallback_to_default=False))
        return frozenset(font.get_charmap()) if font.scalable else frozenset()
    except (OSError, RuntimeError, ValueError):
        return frozenset()
