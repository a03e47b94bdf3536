"""The README tour's example pictures (``docs/examples``) are what their script draws, and read as the README says
with the lesson's toolchain: each holds the marks its digits make."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def _script():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_draws_the_shipped_pictures_again(tmp_path):
    script = _script()
    for text, name, seed in (("7", "seven.png", 7), ("4071", "4071.png", 4071)):
        script._write(text, tmp_path / name, seed=seed)
        again = np.asarray(Image.open(tmp_path / name))
        shipped = np.asarray(Image.open(EXAMPLES / name))
        assert again.shape == shipped.shape
        assert np.abs(again.astype(int) - shipped.astype(int)).max() <= 1  # the same drawing, Pillow's rounding aside


def test_the_number_has_four_marks_and_the_seven_one():
    from digitlab.data.images import read_image
    from digitlab.read import count_marks

    assert count_marks(read_image(EXAMPLES / "4071.png")) == 4
    assert count_marks(read_image(EXAMPLES / "seven.png")) == 1


def test_every_link_within_the_documents_leads_to_a_heading_or_a_file():
    """The README's contents line for newcomers links its sections: each link must still lead somewhere (GitHub's
    heading anchors: lower case, punctuation dropped, spaces as hyphens), and each link to a file must find it."""
    import re

    root = EXAMPLES.parents[1]
    for doc in ("README.md", "RELIABILITY.md", "BENCHMARKS.md"):
        text = (root / doc).read_text(encoding="utf-8")
        text_only = re.sub(r"```.*?```", "", text, flags=re.S)
        anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                   for h in re.findall(r"^#+ (.+)$", text_only, re.M)}
        for target in re.findall(r"\]\(([^)\s]+)\)", text_only):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            if path:
                assert (root / path).exists(), f"{doc}: {target} leads to no file"
            elif anchor:
                assert anchor in anchors, f"{doc}: #{anchor} is no heading's anchor"
