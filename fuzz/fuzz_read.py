"""Fuzz reading whole numbers: any picture is read as a number, or refused with one line.

Run: ``python fuzz/fuzz_read.py -max_total_time=60 CORPUS_DIR [SEED_DIR]`` (``fuzz/run.py`` does this).

The first byte chooses the input's form. Even: the rest is a whole picture file, decoded by
:func:`read_image` as ``digitlab read`` does. Odd: the next two bytes are a width and a height
(1-256 each) and the rest their grey pixels (repeated to fill the picture, white when none), so that
the fuzzer works on the geometry of ``read`` (marks, pieces joined, touching digits cut, rules,
frames, underlines level or slanting, the lines of ruled or squared paper, separators, lines of
digits along a slope and turned back) rather than on file formats. The picture goes through
:func:`count_marks` and :func:`read_number`, with the lesson's logistic regression on the bundled 8×8
digits (fitted once at start, about a second). The answer must be a count of marks, and a reading
whose text holds only digits, ``?``, separators, spaces and newlines, with one box per digit inside
the picture.
"""

from __future__ import annotations

import warnings

import numpy as np

import harness

with harness.instrumented("digitlab"):
    from digitlab.card import ModelCard
    from digitlab.data import load_dataset
    from digitlab.data.images import WORK_SIDE, read_image
    from digitlab.read import count_marks, read_number
    from digitlab.train import train

warnings.simplefilter("ignore")  # Pillow's warnings about damaged files are no crash

_DIGITS = load_dataset("digits")
_MODEL = train("logreg", _DIGITS).model
_CARD = ModelCard(id="fuzz-logreg-digits", model="logreg", dataset="digits", image_shape=(8, 8), pixel_max=16)
_TEXT = set("0123456789?.,-: \n")


def picture(data: bytes):
    """The picture ``data`` stands for (see the module's notes); None when a file does not decode."""
    if not data:
        return None
    if data[0] % 2 == 0:
        return harness.answers_or_refuses(read_image, data[1:], draft=WORK_SIDE)
    if len(data) < 3:
        return None
    width, height = data[1] + 1, data[2] + 1
    pixels = np.frombuffer(data[3:], dtype=np.uint8)
    return np.resize(pixels, (height, width)) if len(pixels) else np.full((height, width), 255, np.uint8)


def test_one_input(data: bytes) -> None:
    image = picture(data)
    if image is None:
        return
    marks = harness.answers_or_refuses(count_marks, image)
    if marks is not None and (not isinstance(marks, int) or marks < 0):
        raise AssertionError(f"count_marks answered {marks!r}")
    reading = harness.answers_or_refuses(read_number, _MODEL, _CARD, image)
    if reading is None:
        return
    width, height = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size
    if not set(reading.text) <= _TEXT or not reading.digits:
        raise AssertionError(f"read_number answered the text {reading.text!r} with {len(reading.digits)} digits")
    for digit in reading.digits:
        x0, y0, x1, y1 = digit.box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height) or not 0 <= digit.digit <= 9:
            raise AssertionError(f"a digit {digit.digit} with box {digit.box} in a {width}×{height} picture")


if __name__ == "__main__":
    harness.main(test_one_input)
