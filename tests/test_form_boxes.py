"""A form's printed boxes, one for each digit (apart, or a comb sharing its walls), are no marks: the digits in
them are found and read, an empty form is no number, and no handwritten digit is taken for a box."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data.numbers import mnist_form
from digitlab.errors import DigitlabError
from digitlab.form_boxes import rectangle_fill, without_form_boxes
from digitlab.read import count_marks, read_number
from digitlab.segment import find_marks, ink_of

PEN = 7
SHAPES = {  # pen strokes in a 40×56 box
    "1": [[(20, 0), (20, 56)]],
    "7": [[(0, 3), (40, 3), (14, 56)]],
    "2": [[(2, 12), (20, 2), (38, 14), (4, 53), (40, 53)]],
}


def _form(digits: str, *, count: int = 5, comb: bool = False, side: int = 80, wall: int = 3, gray: int = 0,
          degrees: float = 0.0, against: bool = False) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A row of ``count`` boxes with ``digits`` written one to a box from the left (an ``"0"`` an ellipse), the
    rest empty; each digit's centre; turned ``degrees`` (the centres then unknown: empty). With ``against``, a "1"
    runs from the top wall to the bottom one."""
    step = side - wall if comb else side + side // 4
    image = Image.new("L", (40 + step * (count - 1) + side, side + 40), 255)
    draw = ImageDraw.Draw(image)
    centres = []
    for n in range(count):
        x, y = 20 + n * step, 20
        draw.rectangle((x, y, x + side - 1, y + side - 1), outline=gray, width=wall)
        if n >= len(digits):
            continue
        left, top = x + (side - 40) // 2, y + (side - 56) // 2
        if digits[n] == "0":
            draw.ellipse((left + 4, top, left + 36, top + 56), outline=0, width=PEN)
        elif against and digits[n] == "1":
            draw.line([(left + 20, y), (left + 20, y + side - 1)], fill=0, width=PEN + 2)
        else:
            for stroke in SHAPES[digits[n]]:
                draw.line([(left + a, top + b) for a, b in stroke], fill=0, width=PEN, joint="curve")
        centres.append((x + side // 2, y + side // 2))
    if degrees:
        image, centres = image.rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=255), []
    return np.asarray(image), centres


@pytest.mark.parametrize("comb", [False, True], ids=["boxes apart", "comb"])
@pytest.mark.parametrize("gray", [0, 140], ids=["black", "grey"])
def test_the_digits_in_a_forms_boxes_are_its_marks_and_the_boxes_are_not(comb, gray):
    """Before: digits in boxes apart were each one mark with their box ("?????" read for 31415), and an empty
    comb's walls six "1"s."""
    picture, centres = _form("170", comb=comb, gray=gray)
    marks = find_marks(ink_of(picture))
    assert len(marks) == 3
    for mark, (cx, cy) in zip(marks, centres):
        x0, y0, x1, y1 = mark.box
        assert x0 < cx < x1 and y0 < cy < y1 and y1 - y0 <= 56 + PEN  # the digit's own ink, no wall with it


@pytest.mark.parametrize("degrees", [-3.0, 2.0])
@pytest.mark.parametrize("comb", [False, True], ids=["boxes apart", "comb"])
def test_a_form_photographed_turned_still_has_only_its_digits(degrees, comb):
    picture, _ = _form("2710", count=6, comb=comb, degrees=degrees)
    marks = find_marks(ink_of(picture))
    assert len(marks) == 4 and all(m.height <= 62 + PEN for m in marks)


@pytest.mark.parametrize("comb", [False, True], ids=["boxes apart", "comb"])
def test_an_empty_form_is_no_number_and_no_mark(comb):
    picture, _ = _form("", comb=comb)
    with pytest.raises(DigitlabError, match=r"^no ink found but straight lines \(.*empty form boxes\)"):
        read_number(None, None, picture)  # refused before any model is asked
    assert count_marks(picture) == 0


def test_a_one_written_from_wall_to_wall_stays_a_digit_and_its_box_goes():
    """A "1" from the top wall to the bottom one is a straight run as long as a wall, but thicker than one."""
    picture, centres = _form("717", comb=True, against=True)
    marks = find_marks(ink_of(picture))
    assert len(marks) == 3
    x0, y0, x1, y1 = marks[1].box
    assert x0 < centres[1][0] < x1 and x1 - x0 <= PEN + 4 and y1 - y0 >= 60  # the 1, all of it but the walls


def test_a_frame_round_the_whole_number_goes_too_and_its_digits_stay():
    """A frame holding three digits in its one hole is a box round them all (or digitlab.rules' frame): it goes."""
    framed = np.full((120, 300), 255, dtype=np.uint8)
    framed[20:24, 20:280] = framed[96:100, 20:280] = framed[20:100, 20:24] = framed[20:100, 276:280] = 0
    framed[35:85, 60:67] = framed[35:85, 150:157] = framed[35:85, 230:237] = 0
    assert [m.box for m in find_marks(ink_of(framed))] == [(x, 35, x + 7, 85) for x in (60, 150, 230)]


def test_no_drawn_zero_nor_bar_is_taken_for_a_box():
    """A box is a rectangle round a rectangular hole; a 0 drawn round fills about 79% of its rectangle."""
    yy, xx = np.mgrid[-40:41, -25:26]
    ring = (np.hypot(xx / 25, yy / 40) <= 1) & (np.hypot(xx / 18, yy / 33) > 1)
    assert rectangle_fill(ring | ~ring & (np.hypot(xx / 18, yy / 33) <= 1)) < 0.85
    on = np.zeros((120, 200), dtype=bool)
    on[20:101, 20:71] = ring
    on[20:100, 120:128] = True  # a plain bar, a "1"
    assert without_form_boxes(on) is on


@pytest.mark.mnist
def test_no_mnist_digit_is_taken_for_a_box(real_mnist):
    """500 MNIST test digits four times as large: none loses a pixel."""
    from digitlab.data import load_dataset

    mnist = load_dataset("mnist", limit=10)
    for image in mnist.test_images[:500]:
        on = np.pad(np.asarray(Image.fromarray(image).resize((112, 112), Image.Resampling.BILINEAR)) > 64, 10)
        assert (without_form_boxes(on) == on).all()


@pytest.mark.mnist
def test_numbers_of_mnist_digits_in_form_boxes_are_read(mnist_reader):
    """Before: 12.5% of such numbers read right by bench_read (its "form boxes" condition), the boxes read as
    digits or joined to them; 88.5% now with the default CNN."""
    model, card, mnist = mnist_reader
    rng = np.random.default_rng(1)
    pictures = [mnist_form(mnist.test_images, mnist.test_labels, rng) for _ in range(20)]
    readings = [read_number(model, card, p.image) for p in pictures]
    assert sum(len(r.digits) == len(p.text) for r, p in zip(readings, pictures)) >= 16
    right = sum(str(d.digit) == t for r, p in zip(readings, pictures) for d, t in zip(r.digits, p.text))
    assert right >= 0.8 * sum(len(p.text) for p in pictures)
