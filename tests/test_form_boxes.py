"""A form's printed boxes, one for each digit (apart, or a comb sharing its walls), are no marks: the digits in
them are found and read, an empty form is no number, and no handwritten digit is taken for a box."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data.numbers import mnist_form
from digitlab.errors import DigitlabError
from digitlab.data.ink import rectangle_fill
from digitlab.form_boxes import without_form_boxes
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
    """Before: 11.33% of such numbers read right by bench_read (its "form boxes" condition), the boxes read as
    digits or joined to them; 87.00% now with the default CNN."""
    model, card, mnist = mnist_reader
    rng = np.random.default_rng(1)
    pictures = [mnist_form(mnist.test_images, mnist.test_labels, rng) for _ in range(20)]
    readings = [read_number(model, card, p.image) for p in pictures]
    assert sum(len(r.digits) == len(p.text) for r, p in zip(readings, pictures)) >= 16
    right = sum(str(d.digit) == t for r, p in zip(readings, pictures) for d, t in zip(r.digits, p.text))
    assert right >= 0.8 * sum(len(p.text) for p in pictures)


def _drawn(size: tuple[int, int], *shapes) -> np.ndarray:
    """A white picture with ``shapes``: (method, xy, keyword arguments) drawn in black by ImageDraw."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for method, xy, kwargs in shapes:
        getattr(draw, method)(xy, **{"fill" if method == "line" else "outline": 0, **kwargs})
    return np.asarray(image)


@pytest.mark.parametrize("name, picture, marks", [
    ("100, 0s drawn as rectangles", _drawn((400, 180), ("line", [(50, 30), (50, 150)], {"width": 8}),
                                          ("rectangle", (110, 30, 200, 150), {"width": 8}),
                                          ("rectangle", (250, 30, 340, 150), {"width": 8})), 3),
    ("2020, 0s as rounded rectangles", _drawn((520, 180), ("line", [(30, 50), (60, 30), (90, 50), (30, 150), (95, 150)],
                                                          {"width": 8}),
                                              ("rounded_rectangle", (130, 30, 220, 150), {"width": 8, "radius": 18}),
                                              ("line", [(270, 50), (300, 30), (330, 50), (270, 150), (335, 150)],
                                               {"width": 8}),
                                              ("rounded_rectangle", (380, 30, 470, 150),
                                               {"width": 8, "radius": 18})), 4),
    ("an 8 of two squares", _drawn((300, 320), ("rectangle", (100, 30, 190, 160), {"width": 8}),
                                   ("rectangle", (100, 152, 190, 290), {"width": 8}),
                                   ("line", [(240, 30), (240, 290)], {"width": 8})), 2),
    ("a ticked box beside 10", _drawn((460, 220), ("rectangle", (30, 50, 119, 169), {"width": 3}),
                                      ("line", [(45, 110), (70, 150), (105, 70)], {"width": 6}),
                                      ("line", [(195, 50), (195, 170)], {"width": 8}),
                                      ("rectangle", (260, 50, 339, 169), {"width": 8})), 3),
])
def test_square_digits_and_a_lone_box_are_no_form(name, picture, marks):
    """A review: shapes with straight sides were taken for boxes ("100" read "1", "2020" "2??2??", "381" "31?11",
    a tick beside "10" read "41"). Now a box needs a digit written in it and another box beside it, or three cells
    side by side, or a row of four alike and nothing else as tall: these are as they were."""
    assert len(find_marks(ink_of(picture))) == marks


def test_a_thin_one_from_wall_to_wall_and_boxes_with_rounded_corners():
    """A review: with a ballpoint (a pen as thin as the walls) a "1" written from wall to wall went as a wall
    ("171" read "7"); boxes with rounded corners lost part of their walls, which read as "1"s."""
    shapes = [("rectangle", (20 + n * 105, 20, 99 + n * 105, 99), {"width": 3}) for n in range(5)]
    ones = [("line", [(60, 20), (60, 99)], {"width": 4}), ("line", [(145, 35), (185, 35), (155, 85)], {"width": 4}),
            ("line", [(270, 20), (270, 99)], {"width": 4})]
    marks = find_marks(ink_of(_drawn((560, 130), *shapes, *ones)))
    assert len(marks) == 3 and all(abs(m.box[0] - x) <= 2 for m, x in zip(marks, (58, 145, 268)))
    rounded = [("rounded_rectangle", (20 + n * 105, 20, 99 + n * 105, 99), {"width": 3, "radius": 12})
               for n in range(5)]
    digits = [("line", [(40 + n * 105, 35), (80 + n * 105, 35), (55 + n * 105, 85)], {"width": 7}) for n in range(4)]
    assert len(find_marks(ink_of(_drawn((560, 130), *rounded, *digits)))) <= 5  # as before: no pieces of walls


def test_a_page_of_small_squares_is_looked_at_for_boxes_only_so_far(monkeypatch):
    """A review: 3,136 empty 15-px squares took 3.3 s, each looked at as a box (0.03 s before the form boxes)."""
    import digitlab.form_boxes as form_boxes

    looked = []
    real = form_boxes._box
    monkeypatch.setattr(form_boxes, "_box", lambda *args, **kwargs: looked.append(1) or real(*args, **kwargs))
    grid = _drawn((1024, 1024), *[("rectangle", (x, y, x + 15, y + 15), {"width": 1})
                                  for y in range(3, 1010, 18) for x in range(3, 1010, 18)])
    without_form_boxes(grid < 128)
    assert len(looked) <= 2 * form_boxes._MOST  # the 64 largest, and again those in a row of boxes found


def test_a_comb_of_unequal_cells_and_a_turned_row_with_its_first_boxes_written():
    """A second review: a comb whose cells differ in width kept walls as "1"s ("123456" read "123415161"), and in a
    row of boxes turned 8-15° with only the first written, the far empty ones stayed ("61" read "610000")."""
    widths, wall = [80, 80, 80, 110, 80, 80], 3
    image = Image.new("L", (40 + sum(widths), 120), 255)
    draw = ImageDraw.Draw(image)
    x = 20
    for n, width in enumerate(widths):
        draw.rectangle((x, 20, x + width - 1, 99), outline=0, width=wall)
        if n < 5:
            left = x + (width - 40) // 2
            for stroke in SHAPES["17271"[n]]:
                draw.line([(left + a, 32 + b) for a, b in stroke], fill=0, width=PEN, joint="curve")
        x += width - wall
    marks = find_marks(ink_of(np.asarray(image)))
    assert len(marks) == 5 and all(m.height <= 56 + PEN for m in marks)
    for degrees in (-12.0, 15.0):
        picture, _ = _form("17", count=7, degrees=degrees)
        assert len(find_marks(ink_of(picture))) == 2


def test_a_comb_of_two_cells_with_a_digit_in_one():
    """A second review: a DD field alone (a comb of two cells), "8" in the first, read "81": its middle wall was a 1."""
    picture, _ = _form("7", count=2, comb=True)
    marks = find_marks(ink_of(picture))
    assert len(marks) == 1 and marks[0].height <= 56 + PEN
