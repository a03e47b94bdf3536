"""Fuzz the model card reader: any bytes give a valid :class:`ModelCard` or one clear line.

Run: ``python fuzz/fuzz_card.py -max_total_time=60 CORPUS_DIR [SEED_DIR]`` (``fuzz/run.py`` does this).

An accepted card must survive its own round trip (``from_json(card.to_json())`` equal to it) and
hold what every reader relies on: an image shape of two sides from 1 to 4096, a pixel maximum from
1 to 255, and the weights file named for its format, beside the card.
"""

from __future__ import annotations

import harness

with harness.instrumented("digitlab"):
    from digitlab.card import FORMATS, ModelCard


def test_one_input(data: bytes) -> None:
    card = harness.answers_or_refuses(ModelCard.from_json, data, "fuzz")
    if card is None:
        return
    if ModelCard.from_json(card.to_json(), "round trip") != card:
        raise AssertionError("an accepted card does not survive its own round trip")
    if not (all(1 <= side <= 4096 for side in card.image_shape) and 1 <= card.pixel_max <= 255):
        raise AssertionError(f"accepted image_shape {card.image_shape} / pixel_max {card.pixel_max}")
    if card.file != FORMATS[card.format]:
        raise AssertionError(f"accepted file {card.file!r} for format {card.format!r}")


if __name__ == "__main__":
    harness.main(test_one_input)
