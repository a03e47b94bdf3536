"""Fuzz picture reading and preparation: any bytes decode and prepare, or are refused with one line.

Run: ``python fuzz/fuzz_image.py -max_total_time=60 CORPUS_DIR [SEED_DIR]`` (``fuzz/run.py`` does this).

Each input is the whole file, as a person would upload it: :func:`read_image` decodes it (with
the JPEG draft mode the predictor uses), and a picture that decodes goes through
:func:`prepare_digit` for MNIST (28×28, 0-255) or, for every other input by length, for
scikit-learn's digits (8×8, 0-16). The answer must be a ``uint8`` array of that shape within
``0..pixel_max``. Pillow's own Python parsers (PNG chunks, TIFF tags, GIF blocks ...) are
instrumented too, so the fuzzer is steered through the formats, not only through digitlab.
"""

from __future__ import annotations

import warnings

import numpy as np

import harness

with harness.instrumented("digitlab", "PIL"):
    from digitlab.data.images import WORK_SIDE, prepare_digit, read_image

# Pillow warns about the damaged files it reads past (corrupt EXIF, tags larger than the file);
# a warning is not a crash, and printing thousands of them would only slow the run.
warnings.simplefilter("ignore")

_TARGETS = [((28, 28), 255), ((8, 8), 16)]


def test_one_input(data: bytes) -> None:
    image = harness.answers_or_refuses(read_image, data, draft=WORK_SIDE)
    if image is None:
        return
    shape, pixel_max = _TARGETS[len(data) % 2]
    digit = harness.answers_or_refuses(prepare_digit, image, shape, pixel_max)
    if digit is None:
        return
    if digit.dtype != np.uint8 or digit.shape != shape or int(digit.max()) > pixel_max:
        raise AssertionError(f"prepare_digit answered {digit.dtype} {digit.shape} max {digit.max()}, "
                             f"not uint8 {shape} within 0..{pixel_max}")


if __name__ == "__main__":
    harness.main(test_one_input)
