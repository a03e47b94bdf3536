"""Fonts found offline for the non-digit pictures: matplotlib's own TrueType files, split into a train
part (sans-serif, monospaced) and a test part (serif) that never share a file, plus the system's fonts
under ``/usr/share/fonts`` for the train part where they exist.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import ImageFont

__all__ = ["SYSTEM_DIR", "charmap", "font", "fonts", "pick_font", "system_fonts"]

_BUNDLED = {  # matplotlib's own files (mpl-data/fonts/ttf), by part
    "train": (
        "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
        "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
        "DejaVuSansMono-BoldOblique.ttf", "cmss10.ttf", "cmtt10.ttf",
    ),
    "test": (
        "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
        "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
        "cmr10.ttf", "cmti10.ttf", "cmb10.ttf",
    ),
}
_TEX_ENCODED = ("cm",)  # Computer Modern files map ASCII letters and digits, but not symbols, to themselves
SYSTEM_DIR = Path("/usr/share/fonts")
_SYSTEM_SKIP = ("serif", "math", "symbol", "emoji", "ding", "wingding", "webding")


@lru_cache(maxsize=None)
def fonts(split: str, *, symbols: bool, system: bool) -> tuple[Path, ...]:
    """The font files of ``split``: matplotlib's own (without the TeX-encoded ones for symbols), plus the
    system's for train when ``system``."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = [folder / name for name in _BUNDLED[split] if (folder / name).is_file()]
    if symbols:
        files = [f for f in files if not f.name.startswith(_TEX_ENCODED)]
    if split == "train" and system:
        known = {f.name for part in _BUNDLED.values() for f in map(Path, part)}
        files += [f for f in system_fonts() if f.name not in known]
    if not files:  # matplotlib is a dependency; its fonts missing means a broken install
        raise RuntimeError(f"no fonts found in {folder}; reinstall matplotlib")
    return tuple(files)


@lru_cache(maxsize=1)
def system_fonts() -> tuple[Path, ...]:
    """TrueType / OpenType files under /usr/share/fonts, sorted; none when the folder is absent."""
    if not SYSTEM_DIR.is_dir():
        return ()
    found = []
    for root, _dirs, names in os.walk(SYSTEM_DIR):
        for name in names:
            lower = name.lower()
            if lower.endswith((".ttf", ".otf")) and not any(word in lower for word in _SYSTEM_SKIP):
                found.append(Path(root) / name)
    return tuple(sorted(found))


@lru_cache(maxsize=None)
def charmap(path: Path) -> frozenset[int]:
    """The code points a font has glyphs for (empty when FreeType cannot read it)."""
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(str(path)).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


@lru_cache(maxsize=None)
def font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """The font at ``path`` in ``size`` pixels, loaded once."""
    return ImageFont.truetype(str(path), size)


def pick_font(rng: np.random.Generator, split: str, text: str, *, symbols: bool, system: bool) -> Path:
    """A font of the split that has every character of ``text`` (the bundled ones always do)."""
    found = fonts(split, symbols=symbols, system=system)
    for _ in range(20):
        path = found[rng.integers(len(found))]
        if all(ord(c) in charmap(path) for c in text):
            return path
    return found[0]  # DejaVu: every character drawn here is in it
