"""Reading whole numbers: finding the digits (known boxes), their order, the generator, ``digitlab read``.

Pictures are drawn here with Pillow, each digit on a layer of its own first, so that its true box
is the box of its own ink. Tests that need the real MNIST files are marked ``mnist``.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import run_cli
from digitlab.data.numbers import drawn_number, mnist_number
from digitlab.errors import DigitlabError
from digitlab.predict import unsure_threshold
from digitlab.read import count_marks, read_number
from digitlab.cuts import split_candidates
from digitlab.segment import MAX_MARKS, find_marks, ink_of

PEN = 8

# Digits as pen strokes in a 40×60 box: each a list of strokes, each a list of points.
STROKES = {
    "1": [[(20, 0), (20, 60)]],
    "7": [[(0, 4), (40, 4), (14, 60)]],
    "2": [[(2, 12), (20, 2), (38, 14), (4, 56), (40, 56)]],
    "4 in two strokes": [[(26, 0), (2, 38), (40, 38)], [(30, 48), (30, 60)]],  # the stem does not reach the bar
    "5 with a detached flag": [[(12, 2), (40, 2)], [(8, 12), (6, 28), (30, 30), (38, 45), (24, 58), (2, 54)]],
}


def _layer(size: tuple[int, int], strokes, x: int, y: int) -> np.ndarray:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line([(x + px, y + py) for px, py in stroke], fill=0, width=PEN, joint="curve")
    return np.asarray(image)


def _zero(size: tuple[int, int], x: int, y: int) -> np.ndarray:
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).ellipse([x, y, x + 40, y + 60], outline=0, width=PEN)
    return np.asarray(image)


def _picture(size: tuple[int, int], digits: list[tuple[str, int, int]]) -> tuple[np.ndarray, list[tuple]]:
    """Dark digits on white paper, and each digit's true box (x0, y0, x1, y1) from its own ink."""
    layers = [_zero(size, x, y) if name == "0" else _layer(size, STROKES[name], x, y) for name, x, y in digits]
    boxes = []
    for layer in layers:
        rows, cols = np.flatnonzero((layer < 128).any(axis=1)), np.flatnonzero((layer < 128).any(axis=0))
        boxes.append((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    return np.minimum.reduce(layers), boxes


def _boxes(picture: np.ndarray) -> list[tuple]:
    return [m.box for m in find_marks(ink_of(picture))]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """The lesson's logistic regression on the bundled 8×8 digits, saved as a run would save it (a second)."""
    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    digits = load_dataset("digits")
    folder = tmp_path_factory.mktemp("runs") / "digits-logreg"
    save_model(train("logreg", digits), digits, folder)
    return folder


@pytest.fixture(scope="module")
def digits_model(saved_model):
    from digitlab.store import load_model

    loaded = load_model(saved_model)
    return loaded.model, loaded.card


# ---------------------------------------------------------------------------------------------
# Finding the digits


def test_separate_digits_are_found_with_their_boxes_left_to_right():
    picture, truth = _picture((320, 100), [("7", 200, 20), ("1", 30, 20), ("0", 100, 20), ("2", 260, 20)])
    truth.sort()
    assert _boxes(picture) == truth
    assert count_marks(picture) == 4


def test_one_digit_is_one_mark_and_light_ink_on_dark_works_the_same():
    picture, truth = _picture((120, 120), [("2", 40, 30)])
    assert _boxes(picture) == truth
    assert _boxes(255 - picture) == truth
    assert count_marks(Image.fromarray(picture).convert("RGB")) == 1


@pytest.mark.parametrize("name", ["4 in two strokes", "5 with a detached flag"])
def test_pieces_of_one_digit_that_do_not_touch_are_one_mark(name):
    picture, truth = _picture((200, 100), [("1", 20, 20), (name, 90, 20), ("7", 150, 20)])
    marks = find_marks(ink_of(picture))
    assert [m.box for m in marks] == truth
    assert marks[1].pieces == 2


def test_specks_of_noise_are_dropped():
    picture, truth = _picture((260, 110), [("1", 30, 25), ("0", 110, 25), ("7", 190, 25)])
    noisy = picture.copy()
    rng = np.random.default_rng(0)
    for x, y in zip(rng.integers(0, 260, 40), rng.integers(0, 110, 40)):  # dust: single pixels
        noisy[y, x] = 0
    noisy[5:8, 240:243] = 0  # and two small specks in the corners
    noisy[98:102, 10:14] = 0
    assert _boxes(noisy) == truth


def test_two_lines_are_read_top_to_bottom_each_left_to_right(digits_model):
    picture, truth = _picture((220, 200), [("0", 120, 110), ("1", 20, 20), ("2", 20, 110), ("7", 120, 25)])
    marks = find_marks(ink_of(picture))
    assert [m.line for m in marks] == [0, 0, 1, 1]
    assert [m.box for m in marks] == [truth[1], truth[3], truth[2], truth[0]]
    reading = read_number(*digits_model, picture)
    assert [d.line for d in reading.digits] == [0, 0, 1, 1]
    assert len(reading.text) == 5 and reading.text[2] == "\n"  # a new line: a space parts two numbers on one line


def test_a_double_underline_drawn_a_degree_off_level_is_left_out():
    """A reader: "98.67" double-underlined read ``?.6?7``. Each line fell 1 px in 62 (0.9°): too little slant for a
    tilted rule (1° and more), too much for a level run of two digit heights; their steps joined the digits."""
    paper = np.zeros((180, 370), dtype=np.uint8)
    for x in (60, 120, 220, 280):
        paper[50:120, x : x + 8] = 255  # four 1s, 70 px tall
    for top in (141, 151):
        for x in range(30, 340):
            paper[top + (x - 30) // 62 : top + (x - 30) // 62 + 3, x] = 255  # a line 3 px thick, falling 0.9°
    assert [m.box for m in find_marks(ink_of(paper))] == [(60, 50, 68, 120), (120, 50, 128, 120), (220, 50, 228, 120),
                                                          (280, 50, 288, 120)]


def test_a_price_tag_photographed_on_a_desk_is_read_on_the_tag():
    """A reader: a tag filling under a fifth of a photo of a desk was taken for the ink, the desk for the paper, and
    "2.84" read ``24`` (the tag cut in two); here "111" would be read on the desk. A lit rectangle holding a pen's ink
    (darker than the desk), 8% of the picture or more, is a sheet."""
    from PIL import ImageFilter

    desk = Image.new("L", (480, 320), 95)
    draw = ImageDraw.Draw(desk)
    draw.rectangle([150, 120, 330, 200], fill=238)  # the tag: 12% of the picture
    for x in (175, 230, 285):  # "111" with a felt pen
        draw.line([(x, 132), (x - 6, 188)], fill=30, width=9)
    photo = np.asarray(desk.filter(ImageFilter.GaussianBlur(1.0))).astype(np.float32)
    photo = np.clip(photo + np.random.default_rng(0).normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
    marks = find_marks(ink_of(photo))
    assert [(m.box[0] // 10, m.box[2] // 10) for m in marks] == [(16, 18), (21, 23), (27, 29)]
    block = Image.new("L", (400, 300), 15)  # a reviewer: a blocky light "0" on a dark ground is no tag with a "1"
    ImageDraw.Draw(block).rectangle([150, 60, 250, 240], fill=240)
    ImageDraw.Draw(block).rectangle([193, 95, 207, 205], fill=15)  # its hole: the ground seen through it
    assert [m.box for m in find_marks(ink_of(np.asarray(block)))] == [(150, 60, 251, 241)]


def test_two_numbers_on_a_line_are_parted_by_a_space_but_never_in_a_forms_boxes(mnist_reader):
    """A reader: "87 128" read ``87128``; two columns of answers four digit heights apart, one number a line. Paper
    1.4 digit heights wide between two marks of a line now parts them; digits one to a printed box never are."""
    from digitlab.data.numbers import mnist_form

    model, card, mnist = mnist_reader
    rng = np.random.default_rng(3)
    left = mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=2, dark_on_light=True)
    right = mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=3, dark_on_light=True)
    height = max(b[3] - b[1] for b in left.boxes + right.boxes)
    for gap, joined in ((0.6, ""), (2.0, " ")):
        paper = np.full((max(left.image.shape[0], right.image.shape[0]) + 20,
                         left.image.shape[1] + right.image.shape[1] + int(gap * height) + 40), 255, np.uint8)
        paper[10 : 10 + left.image.shape[0], 20 : 20 + left.image.shape[1]] = left.image
        x = 20 + max(b[2] for b in left.boxes) + int(gap * height) - min(b[0] for b in right.boxes)
        paper[10 : 10 + right.image.shape[0], x : x + right.image.shape[1]] = np.minimum(
            paper[10 : 10 + right.image.shape[0], x : x + right.image.shape[1]], right.image)
        text = read_number(model, card, paper).text
        assert len(text) == 5 + len(joined) and text.find(" ") == (2 if joined else -1), (gap, text)
    forms = [mnist_form(mnist.test_images, mnist.test_labels, rng) for _ in range(30)]
    assert not any(" " in read_number(model, card, form.image).text for form in forms)


def test_touching_digits_can_be_cut_where_they_meet():
    picture, truth = _picture((200, 100), [("1", 40, 20), ("0", 64, 20)])  # the 1 touches the 0
    [mark] = find_marks(ink_of(picture))
    cuts = [(left.box, right.box) for left, right, _ in split_candidates(mark)]
    assert any(abs(left[2] - truth[0][2]) <= 2 and abs(right[0] - truth[1][0]) <= 2 for left, right in cuts)


def test_a_cut_counts_the_strokes_it_goes_through():
    """Two digits touch at one place; a cut through a loop (a 6 leaning far, read as "65") goes through two."""
    from digitlab.cuts import crossings

    ring = np.zeros((40, 40), dtype=bool)
    yy, xx = np.mgrid[:40, :40]
    ring[(np.hypot(yy - 20, xx - 20) < 15) & (np.hypot(yy - 20, xx - 20) > 10)] = True
    left = xx < 20
    assert crossings(ring & left, ring & ~left) == 2
    blocks = np.zeros((30, 60), dtype=bool)
    blocks[5:25, 5:25] = blocks[5:25, 35:55] = blocks[14:17, 25:35] = True  # two blocks joined by a bar
    left = np.arange(60)[None, :] < 30
    assert crossings(blocks & left, blocks & ~left) == 1
    assert crossings(blocks & (np.arange(60)[None, :] < 5), blocks & (np.arange(60)[None, :] >= 55)) == 0


def test_a_mark_far_too_wide_for_one_digit_is_always_cut(digits_model):
    picture, _ = _picture((300, 100), [("0", 30, 20), ("0", 66, 20), ("0", 102, 20), ("0", 138, 20)])
    assert count_marks(picture) == 1  # four zeros run together: one mark, 4.3 times as wide as tall
    assert len(read_number(*digits_model, picture).digits) >= 2


@pytest.mark.parametrize("gap", [3, 12, 0])  # an underline below the digits, close, or touching them
def test_an_underline_is_not_a_digit_nor_joins_the_digits(gap):
    """A user's audit: an underline 3 px below "4870" read "4820"; 0 of 18 underlined numbers were read right."""
    digits = [("1", 30, 20), ("7", 90, 20), ("0", 150, 20), ("2", 210, 20)]
    picture, truth = _picture((300, 120), digits)
    lined = picture.copy()
    lined[80 + gap - PEN // 2 : 80 + gap - PEN // 2 + 5, 10:290] = 0  # 5 px thick, longer than the number
    found = [m.box for m in find_marks(ink_of(lined))]
    assert len(found) == 4, found  # the line touching the digits takes their bottom rows with it, no more
    assert all(a[:3] == b[:3] and 0 <= b[3] - a[3] <= PEN for a, b in zip(found, truth)), (found, truth)


@pytest.mark.parametrize("lines", [1, 3])
def test_a_ruled_line_through_the_digits_leaves_them_whole(lines):
    """A teacher: "305" written across the middle line of a strip of ruled paper (1-3 lines: too few to be the
    paper's) read "7?? | 0?0": the line was left out with the strokes that cross it, each digit cut in two."""
    digits = [("1", 30, 40), ("7", 90, 40), ("0", 150, 40), ("2", 210, 40)]
    picture, truth = _picture((300, 160), digits)
    ruled = picture.copy()
    for row in [80, 30, 130][:lines]:  # the first through the digits' middle
        ruled[row : row + 2] = np.minimum(ruled[row : row + 2], 150)  # grey, 2 px, across the whole picture
    found = [m.box for m in find_marks(ink_of(ruled))]
    assert len(found) == 4 and all(np.abs(np.subtract(a, b)).max() <= 1 for a, b in zip(found, truth)), found
    touching = picture.copy()  # a line the digits only touch still goes: no stubs of it beside them
    touching[truth[0][3] : truth[0][3] + 2] = np.minimum(touching[truth[0][3] : truth[0][3] + 2], 150)
    found = [m.box for m in find_marks(ink_of(touching))]  # (its bottom rows with it, as an underline's)
    assert [(a[0], a[2]) for a in found] == [(b[0], b[2]) for b in truth]
    assert all(0 <= b[3] - a[3] <= 2 for a, b in zip(found, truth)), found


@pytest.mark.mnist
def test_numbers_of_mnist_digits_with_a_ruled_line_through_them_are_found_whole(mnist_reader):
    _, _, mnist = mnist_reader
    rng = np.random.default_rng(7)
    found = []
    for _ in range(20):
        p = mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=4, dark_on_light=True)
        image = p.image.copy()
        y0, y1 = min(b[1] for b in p.boxes), max(b[3] for b in p.boxes)
        row = y0 + int(rng.uniform(0.3, 0.7) * (y1 - y0))
        image[row : row + 2] = np.minimum(image[row : row + 2], 160)
        found.append(len(find_marks(ink_of(image))))
    assert sum(n == 4 for n in found) >= 18, found


def test_a_frame_around_the_number_is_not_a_mark():
    """A box drawn around a number was its tallest mark, and the digits became its fragments ("153??" for 5594)."""
    picture, truth = _picture((300, 140), [("1", 40, 40), ("7", 100, 40), ("0", 160, 40), ("2", 220, 40)])
    framed = picture.copy()
    framed[10:14, 10:290] = framed[126:130, 10:290] = 0
    framed[10:130, 10:14] = framed[10:130, 286:290] = 0
    assert [m.box for m in find_marks(ink_of(framed))] == truth
    away = np.pad(framed, ((0, 0), (100, 100)), constant_values=255)  # the frame's sides far from the picture's edges
    assert [m.box for m in find_marks(ink_of(away))] == [(x0 + 100, y0, x1 + 100, y1) for x0, y0, x1, y1 in truth]


def test_an_answer_box_as_tall_as_the_digits_touching_it_is_not_read_as_ones():
    """A reader's worksheets: a box only as tall as the writing, the digits touching its top and bottom, lost its top
    and bottom as rules and kept its sides, read as two sure 1s round the number ("66" as "1661", 9 of 30 right)."""
    picture, truth = _picture((300, 140), [("1", 60, 40), ("7", 120, 40), ("0", 180, 40)])
    rows = [y for y0, y1 in ((b[1], b[3]) for b in truth) for y in (y0, y1)]
    top, bottom = min(rows), max(rows)
    boxed = picture.copy()
    boxed[top - 2:top + 1, 20:280] = boxed[bottom - 1:bottom + 2, 20:280] = 0  # walls through the digits' ends
    boxed[top - 2:bottom + 2, 20:23] = boxed[top - 2:bottom + 2, 277:280] = 0
    found = _boxes(boxed)
    assert [(b[0], b[2]) for b in found] == [(b[0], b[2]) for b in truth], (found, truth)  # no side as a mark


@pytest.mark.parametrize("clear", [0, 3])  # the 1 touching both lines, or 3 px from them
def test_a_one_at_the_start_of_a_number_between_two_lines_stays(clear):
    """A reviewer: a line over a number and a line under it, both starting at its first digit, a 1, made that 1 a
    box's side ("170" read "70"). A box has two sides, at both ends of its lines."""
    picture, truth = _picture((300, 140), [("1", 60, 40), ("7", 120, 40), ("0", 180, 40)])
    top, bottom = min(b[1] for b in truth), max(b[3] for b in truth)
    lined = picture.copy()
    start = truth[0][0]
    lined[top - 3 - clear:top - clear, start:280] = lined[bottom + clear:bottom + 3 + clear, start:280] = 0
    assert len(_boxes(lined)) == 3, _boxes(lined)


def test_a_page_with_only_a_ruled_line_has_no_number(digits_model):
    ruled = np.full((200, 500), 255, dtype=np.uint8)
    ruled[100:104, 20:480] = 0
    with pytest.raises(DigitlabError, match=r"^no ink found but straight lines \(a ruled line"):
        read_number(*digits_model, ruled)
    assert count_marks(ruled) == 0
    page = np.full((1200, 900), 250, dtype=np.uint8)  # an empty ruled page photographed sideways: a learner read
    page[100::45] = page[101::45] = 150  # "1111111111111111111", each 1 at 99.9%
    for lines in (page, page.T):
        with pytest.raises(DigitlabError, match=r"^no ink found but straight lines \(a ruled line"):
            read_number(*digits_model, lines)
        assert count_marks(lines) == 0
    askew = Image.new("L", (1200, 900), 250)  # turned sideways and 5° askew, as a hand holds a phone (a reviewer:
    for x in range(100, 1200, 45):  # only a page turned within 2° of sideways was refused)
        ImageDraw.Draw(askew).line([(x, -20), (x + 79, 920)], fill=150, width=2)
    with pytest.raises(DigitlabError, match=r"^no ink found but straight lines"):
        read_number(*digits_model, np.asarray(askew))
    for gap in (40, 10):  # but thin 1s cropped to their ink, as tall as the picture, stay, written close together too
        ones = np.full((60, 8 * gap), 255, dtype=np.uint8)
        ones[:, gap // 2::gap] = ones[:, gap // 2 + 1::gap] = 0
        assert count_marks(ones) == 8, gap


def test_no_ink_is_one_clear_error(digits_model):
    blank = np.full((100, 300), 230, dtype=np.uint8)
    with pytest.raises(DigitlabError, match="^no ink found: the image is blank; write or photograph a number$"):
        read_number(*digits_model, blank)
    assert count_marks(blank) == 0
    with pytest.raises(DigitlabError, match="image array must hold numbers"):
        count_marks(np.array([["a"]]))


def test_a_texture_is_refused_not_read_slowly():
    dots = np.full((400, 400), 255, dtype=np.uint8)
    dots[5::12, 5::12] = 0  # 1,089 equal dots
    dots[6::12, 5::12] = 0
    with pytest.raises(DigitlabError, match=f"up to {MAX_MARKS} digits"):
        find_marks(ink_of(dots))


def test_reading_gives_boxes_top_three_and_a_mark_for_doubtful_digits(digits_model):
    picture, truth = _picture((260, 100), [("1", 30, 20), ("7", 110, 20), ("0", 190, 20)])
    reading = read_number(*digits_model, picture)
    assert [d.box for d in reading.digits] == truth
    assert reading.text == "".join(d.shown for d in reading.digits)
    for digit in reading.digits:
        assert len(digit.top) == 3 and digit.top[0] == (digit.digit, digit.probability)
        assert digit.shown == (str(digit.digit) if digit.kind == "digit" else "?")
        assert digit.prepared.shape == (8, 8)
    doc = reading.to_dict()
    assert json.loads(json.dumps(doc))["digits"][0]["box"] == list(truth[0])
    assert doc["sure_from"] == unsure_threshold(digits_model[1])  # the bar a doubtful digit missed


def test_a_reading_names_the_confidence_its_unsure_digits_missed(digits_model, tmp_path):
    from dataclasses import replace

    from digitlab.calibrate import Calibration

    model, card = digits_model
    picky = replace(card, calibration=Calibration(temperature=1.0, unsure_below=0.9999, kept_accuracy=1.0,
                                                  coverage=0.1, ece_before=0.0, ece_after=0.0, held_out="test",
                                                  n_held_out=100))
    picture, _ = _picture((260, 100), [("1", 30, 20), ("7", 110, 20), ("0", 190, 20)])
    reading = read_number(model, picky, picture)
    assert reading.sure_from == 0.9999 and reading.text == "???"
    assert {d.kind for d in reading.digits} == {"unsure"}


def test_boxes_are_in_the_pictures_own_pixels_when_it_is_worked_on_smaller():
    picture, truth = _picture((320, 100), [("1", 30, 20), ("0", 100, 20)])
    big = np.asarray(Image.fromarray(picture).resize((3200, 1000), Image.Resampling.NEAREST))
    for found, true in zip(_boxes(big), truth):
        assert all(abs(a - 10 * b) <= 10 for a, b in zip(ink_of(big).to_picture(found), true))


# ---------------------------------------------------------------------------------------------
# The generator


def _bar(digit: int, rng: np.random.Generator) -> np.ndarray:
    ink = np.zeros((100, 60), dtype=np.float32)
    ink[5:95, 25:35] = 1.0
    ink[5:15, 10:50] = digit / 9  # something that differs per digit
    return ink


def test_drawn_numbers_are_reproducible_and_their_boxes_are_found():
    first = [drawn_number(np.random.default_rng(7), _bar, n_digits=n) for n in (2, 4, 6)]
    again = [drawn_number(np.random.default_rng(7), _bar, n_digits=n) for n in (2, 4, 6)]
    for a, b in zip(first, again):
        assert a.text == b.text and a.boxes == b.boxes and (a.image == b.image).all()
    for picture in first:
        assert len(picture.text) == len(picture.boxes)
        ink = ink_of(picture.image)  # pictures over 1,024 px wide are worked on at half size
        found = [ink.to_picture(m.box) for m in find_marks(ink)]
        assert len(found) == len(picture.boxes)
        for f, t in zip(found, picture.boxes):
            assert max(abs(a - b) for a, b in zip(f, t)) <= 4


def test_the_generator_refuses_bad_requests():
    images, labels = np.zeros((3, 28, 28), dtype=np.uint8), np.zeros(3, dtype=np.uint8)
    with pytest.raises(DigitlabError, match="join must be one of"):
        mnist_number(images, labels, np.random.default_rng(0), join="glued")
    with pytest.raises(DigitlabError, match="at least 2"):
        mnist_number(images, labels, np.random.default_rng(0), n_digits=1, join="touch")


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_reads_good_pictures_and_gives_one_line_per_bad_one(saved_model, tmp_path):
    picture, _ = _picture((260, 100), [("1", 30, 20), ("7", 110, 20), ("0", 190, 20)])
    Image.fromarray(picture).save(tmp_path / "number.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    Image.new("L", (200, 80), 255).save(tmp_path / "blank.png")
    files = [str(tmp_path / name) for name in ("number.png", "broken.png", "blank.png")]
    result = run_cli("read", "--model", str(saved_model), *files, "--save-prepared", str(tmp_path / "seen"))
    assert result.returncode == 1, result.stderr
    assert "number.png: " in result.stdout and "%" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert "broken.png: not an image" in errors[0] and "blank.png: no ink found" in errors[1]
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == [f"number-digit0{k}.png" for k in (1, 2, 3)]

    result = run_cli("read", "--model", str(saved_model), files[0], "--json")
    assert result.returncode == 0, result.stderr
    [reading] = json.loads(result.stdout)["readings"]
    assert len(reading["text"]) == 3 and len(reading["digits"]) == 3
    assert all(len(d["box"]) == 4 and len(d["top"]) == 3 for d in reading["digits"])


def test_cli_names_the_confidence_its_unsure_digits_missed(lesson_run, tmp_path):
    import shutil

    picky = tmp_path / "picky"  # the lesson's run, its card asking for 99.99% before a digit counts as sure
    shutil.copytree(lesson_run.folder, picky)
    card = json.loads((picky / "model.json").read_text())
    card["calibration"]["unsure_below"] = 0.9999
    (picky / "model.json").write_text(json.dumps(card))
    picture, _ = _picture((260, 100), [("1", 30, 20), ("7", 110, 20), ("0", 190, 20)])
    Image.fromarray(picture).save(tmp_path / "number.png")
    result = run_cli("read", "--model", str(picky), str(tmp_path / "number.png"))
    assert result.returncode == 0, result.stderr
    assert "doubtful" in result.stdout and "(sure from 99.99%)" in result.stdout, result.stdout
    result = run_cli("read", "--model", str(lesson_run.folder), str(tmp_path / "number.png"))
    assert result.returncode == 0 and "sure from" not in result.stdout, result.stdout  # every digit sure
    asked = run_cli("read", "--model", str(lesson_run.folder), str(tmp_path / "number.png"), "--min-confidence", "0.9999")
    assert asked.returncode == 0 and "doubtful" in asked.stdout and "(sure from 99.99%)" in asked.stdout, asked.stdout


def test_the_terminal_says_not_a_digit_instead_of_a_confident_looking_guess():
    from types import SimpleNamespace as S

    from digitlab.cli_read import _any_unsure, _digits_line

    reading = S(digits=[S(kind="digit", digit=4, probability=0.992, top=[(4, 0.992)], unlike_a_digit=False),
                        S(kind="not_a_digit", digit=7, probability=1.0, top=[(7, 1.0), (0, 0.0)]),
                        S(kind="unsure", digit=1, probability=0.61, top=[(1, 0.61), (7, 0.3)])], sure_from=0.9)
    assert _digits_line(reading) == "4 99.2%, [yellow]?[/] not a digit, [yellow]?[/] 1 61.0% / 7 30.0%"
    unsure = S(digits=[S(kind="unsure", digit=0, probability=0.98522, top=[(0, 0.98522), (2, 0.0147)])],
               sure_from=0.987)
    assert _digits_line(unsure) == "[yellow]?[/] 0 98.5% / 2 1.5%"  # under its bar, "sure from 98.7%", as it is
    close = S(digits=[S(kind="unsure", digit=0, probability=0.9846, top=[(0, 0.9846), (2, 0.0147)])],
              sure_from=0.9848)  # a sceptic: "98.5%" (rounded up) beside "sure from 98.5%"
    assert _digits_line(close) == "[yellow]?[/] 0 98.46% / 2 1.5%"
    assert _any_unsure(reading) and not _any_unsure(S(digits=reading.digits[:2]))
    doubted = S(digits=[S(kind="digit", digit=4, probability=0.992, top=[(4, 0.992)], unlike_a_digit=True)],
                sure_from=0.9)  # a reviewer: the number's digits lost the mark
    assert _digits_line(doubted) == "4 99.2% [magenta]but might not be a digit[/]"


def test_cli_bad_model_is_one_line_and_exit_code_2(tmp_path):
    result = run_cli("read", "--model", str(tmp_path / "nowhere"), str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:") and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# Real MNIST digits


@pytest.mark.mnist
def test_numbers_of_mnist_test_digits_are_found_and_read(mnist_reader):
    model, card, mnist = mnist_reader
    rng = np.random.default_rng(0)
    pictures = [mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=3) for _ in range(20)]
    found = [[m.box for m in find_marks(ink_of(p.image))] for p in pictures]
    assert sum(len(f) == 3 for f in found) >= 19
    readings = [read_number(model, card, p.image) for p in pictures]
    right = sum(str(d.digit) == t for r, p in zip(readings, pictures) for d, t in zip(r.digits, p.text))
    assert right >= 0.8 * 60


@pytest.mark.mnist
def test_touching_mnist_pairs_touch_within_the_limit_and_are_mostly_cut(mnist_reader):
    model, card, mnist = mnist_reader
    rng = np.random.default_rng(1)
    pictures = [mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=2, join="touch") for _ in range(20)]
    for p in pictures:
        (a0, _, a1, _), (b0, _, b1, _) = p.boxes
        assert a1 - b0 <= 0.15 * ((a1 - a0) + (b1 - b0)) / 2 + 1
    assert sum(count_marks(p.image) == 1 for p in pictures) >= 15  # the ink touches: one mark
    assert sum(len(read_number(model, card, p.image).digits) == 2 for p in pictures) >= 12


def test_predict_on_a_picture_of_several_digits_points_to_read(saved_model, tmp_path):
    picture, _ = _picture((260, 100), [("2", 30, 20), ("7", 150, 20)])
    Image.fromarray(picture).save(tmp_path / "27.png")
    one, _ = _picture((120, 100), [("2", 30, 20)])
    Image.fromarray(one).save(tmp_path / "2.png")
    result = run_cli("predict", "--model", str(saved_model), str(tmp_path / "27.png"), str(tmp_path / "2.png"))
    assert result.returncode == 0, result.stderr
    assert "holds 2 separate marks" in result.stdout and f"digitlab read {tmp_path / '27.png'}" in result.stdout
    assert result.stdout.count("separate marks") == 1
    result = run_cli("predict", "--model", str(saved_model), str(tmp_path / "27.png"), str(tmp_path / "2.png"), "--json")
    assert [p["marks"] for p in json.loads(result.stdout)["predictions"]] == [2, 1]
    grain = np.full((300, 300), 200, np.uint8)  # a learner's photo of blank paper: `read` refuses its 300 specks
    grain[tuple(np.random.default_rng(0).integers(5, 295, (2, 400)))] = 40
    Image.fromarray(grain).save(tmp_path / "grain.png")
    result = run_cli("predict", "--model", str(saved_model), str(tmp_path / "grain.png"))
    assert "more separate marks than a number has" in result.stdout and "digitlab read" not in result.stdout


def test_a_number_among_many_specks_keeps_its_digits():
    """A reviewer: a 1 and a 7 among 38 specks of dust came out as 38 specks, the digits removed as rules: the
    page's digit height (the tallest piece but up to 3, for a margin line) had counted the specks."""
    rng = np.random.default_rng(0)
    page = np.full((200, 400), 255, np.uint8)
    page[50:150, 100:108] = 0  # a 1
    page[50:58, 200:270] = 0  # a 7's bar...
    for y in range(58, 150):
        page[y, 262 - (y - 58) // 3:270 - (y - 58) // 3] = 0  # ...and its stem
    for _ in range(60):
        y, x = rng.integers(5, 190), rng.integers(5, 390)
        if not (40 < y < 160 and 90 < x < 280):
            page[y:y + 3, x:x + 3] = 0
    assert [m.box for m in find_marks(ink_of(page))] == [(100, 50, 108, 150), (200, 50, 270, 150)]


def test_a_page_of_hatching_costs_little_memory(digits_model):
    """A reviewer: 10 KB of diagonal hatching is one mark of 250 pieces; a cut between each two pieces was a mask the
    page's size, and /api/read took 536 MB (RELIABILITY.md: about 300 MB of decoding at the worst)."""
    import tracemalloc

    model, card = digits_model
    image = Image.new("L", (1024, 1024), 255)
    draw = ImageDraw.Draw(image)
    for y in range(0, 1024, 4):
        draw.line([(0, y), (1023, y + 50)], fill=0, width=1)
    tracemalloc.start()
    try:
        read_number(model, card, np.asarray(image))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6, peak  # 31 MB; 536 MB before


def test_a_picture_built_to_make_splitting_expensive_is_refused_quickly(digits_model):
    """32 lines of long zigzags: each mark is far too wide, so every cut is tried; a budget bounds the work."""
    import time

    model, card = digits_model
    image = Image.new("L", (1024, 1024), 255)
    draw = ImageDraw.Draw(image)
    for row in range(32):
        for col in range(2):
            x0, y0 = col * 512 + 6, row * 32 + 3
            draw.line([(x0 + x, y0 + 13 + 12 * np.sin(x / 2.5)) for x in range(500)], fill=0, width=2)
    start = time.perf_counter()
    with pytest.raises(DigitlabError, match="reads up to 64 digits") as info:
        read_number(model, card, np.asarray(image))
    assert time.perf_counter() - start < 10 and "\n" not in str(info.value)


def test_predict_on_a_picture_of_very_many_marks_still_answers(saved_model, tmp_path):
    image = Image.new("L", (400, 400), 255)
    draw = ImageDraw.Draw(image)
    for y in range(10):
        for x in range(10):
            draw.ellipse([20 + 36 * x, 20 + 36 * y, 32 + 36 * x, 32 + 36 * y], fill=0)
    image.save(tmp_path / "dots.png")
    result = run_cli("predict", "--model", str(saved_model), str(tmp_path / "dots.png"), "--json")
    assert result.returncode == 0, result.stderr
    [answer] = json.loads(result.stdout)["predictions"]
    assert answer["marks"] is None and "digit" in answer


def test_cli_json_boxes_are_in_a_large_jpegs_own_pixels_as_the_api_gives_them(saved_model, tmp_path):
    """A large JPEG is decoded at a reduced scale: `read --json` gave its boxes in that smaller picture (a user's
    audit: [300, 664, ...] against the API's [600, 1328, ...] for a 4000×3000 photo) and no size to tell."""
    from digitlab.data.images import WORK_SIDE, read_image

    picture, truth = _picture((320, 240), [("1", 30, 90), ("0", 100, 90)])
    big = Image.fromarray(picture).resize((3200, 2400), Image.Resampling.NEAREST)
    big.save(tmp_path / "photo.jpg", quality=95)
    assert read_image(tmp_path / "photo.jpg", draft=WORK_SIDE).size == (1600, 1200)  # decoded smaller, as read does
    result = run_cli("read", "--model", str(saved_model), str(tmp_path / "photo.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    [reading] = json.loads(result.stdout)["readings"]
    assert (reading["width"], reading["height"]) == (3200, 2400)
    for found, true in zip(reading["digits"], truth):
        assert all(abs(a - 10 * b) <= 40 for a, b in zip(found["box"], true)), (found["box"], true)


def test_a_decimal_point_is_in_the_text_and_counted(saved_model, digits_model, tmp_path):
    """A user's audit: "3.14" read "314" at 99.8% and more a digit, with no word of the point (100× off)."""
    picture, _ = _picture((220, 100), [("1", 30, 20), ("7", 110, 20)])
    plain = read_number(*digits_model, picture)
    dotted = picture.copy()
    dotted[70:80, 88:98] = 0  # a pen's dot, low between the two digits
    reading = read_number(*digits_model, dotted)
    assert (plain.dots, reading.dots) == (0, 1) and reading.to_dict()["dots"] == 1
    assert len(reading.digits) == 2 and reading.text == plain.text[0] + "." + plain.text[1]
    assert reading.to_dict()["separators"] == [{"symbol": ".", "box": [88, 70, 98, 80], "line": 0}]
    Image.fromarray(dotted).save(tmp_path / "dotted.png")
    result = run_cli("read", "--model", str(saved_model), str(tmp_path / "dotted.png"), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["readings"][0]["text"] == reading.text


def test_a_minus_sign_is_a_separator_and_does_not_make_the_digit_after_it_look_too_wide(digits_model):
    """A user's audit: "-0" read "?01": the line's digit height was the median of the minus and the 0; then
    "?0", the minus shown as not a digit."""
    picture, truth = _picture((200, 100), [("0", 100, 20)])
    picture[47:53, 30:75] = 0  # a minus sign, half a digit's height long
    from digitlab.read import _line_sizes

    marks = find_marks(ink_of(picture))
    assert len(marks) == 2 and _line_sizes(marks)[0].height == truth[0][3] - truth[0][1]  # the 0's, not 33 px
    reading = read_number(*digits_model, picture)
    assert [d.box for d in reading.digits] == truth and reading.text == "-" + reading.digits[0].shown
    assert [(s.symbol, s.box) for s in reading.separators] == [("-", (30, 47, 75, 53))]


@pytest.mark.parametrize("broken", [False, True])
def test_a_tall_one_is_a_digit_not_a_rule(broken):
    """A review: a "1" 1.6 times as tall as the 0s beside it (or beside 0s broken in two, which pull the typical
    height down) was removed as a rule: "1000" read "000", with nothing to say a digit had gone."""
    page = Image.new("L", (500, 280), 255)
    draw = ImageDraw.Draw(page)
    draw.line([(40, 48), (40, 240)], fill=0, width=PEN)  # the 1: 192 px against the 0s' 120
    for x in (90, 180, 270):
        if broken:  # each 0 in two pieces, a gap across its middle
            draw.line([(x, 175), (x, 120), (x + 60, 120), (x + 60, 175)], fill=0, width=PEN)
            draw.line([(x, 190), (x, 240), (x + 60, 240), (x + 60, 190)], fill=0, width=PEN)
        else:
            draw.rectangle([x, 120, x + 60, 240], outline=0, width=PEN)
    marks = find_marks(ink_of(np.asarray(page)))
    assert len(marks) == 4 and marks[0].box[3] - marks[0].box[1] >= 190  # the 1 is there, whole


# ---------------------------------------------------------------------------------------------
# Numbers written uphill or photographed turned


def test_a_number_written_uphill_is_one_line_in_order():
    """A user's audit: numbers tilted 15-20° were split into two or three lines, read out of order."""
    rise = np.tan(np.radians(18))
    digits = [(name, 30 + 70 * k, int(260 - rise * 70 * k)) for k, name in enumerate("17217")]
    picture, truth = _picture((420, 340), digits)
    marks = find_marks(ink_of(picture))
    assert [m.line for m in marks] == [0] * 5
    assert [m.box for m in marks] == truth


def test_a_number_photographed_turned_is_one_line_and_two_turned_lines_stay_two():
    picture, _ = _picture((600, 300), [(name, 40 + 90 * k, 120) for k, name in enumerate("17201")])
    for degrees in (-20, -12, 12, 20):
        turned = np.asarray(Image.fromarray(picture).rotate(degrees, expand=True, fillcolor=255))
        marks = find_marks(ink_of(turned))
        assert [m.line for m in marks] == [0] * 5, degrees
        assert [m.box[0] for m in marks] == sorted(m.box[0] for m in marks)
    two, _ = _picture((400, 300), [("1", 40, 40), ("7", 140, 40), ("2", 240, 40),
                                   ("7", 40, 180), ("1", 140, 180), ("0", 240, 180)])
    turned = np.asarray(Image.fromarray(two).rotate(15, expand=True, fillcolor=255))
    assert [m.line for m in find_marks(ink_of(turned))] == [0, 0, 0, 1, 1, 1]


@pytest.mark.mnist
def test_digits_of_a_turned_photo_are_turned_back_and_upright_ones_are_not(mnist_reader, monkeypatch):
    """Turned back by the line's angle when that reads surer: a photo taken turned 15° reads as a level one
    does; a number written uphill, its digits upright, is not turned."""
    import digitlab.read as read

    model, card, mnist = mnist_reader
    rng = np.random.default_rng(3)
    level, turned, uphill = [], [], []
    for _ in range(40):
        sign = 1 if rng.integers(2) else -1
        seed = int(rng.integers(1 << 30))
        picture = mnist_number(mnist.test_images, mnist.test_labels, np.random.default_rng(seed), n_digits=4)
        paper = int(np.median(picture.image[0]))
        level.append((picture.text, picture.image))
        turned.append((picture.text, np.asarray(Image.fromarray(picture.image).rotate(
            15 * sign, Image.Resampling.BICUBIC, expand=True, fillcolor=paper))))
        uphill.append((picture.text, mnist_number(mnist.test_images, mnist.test_labels, np.random.default_rng(seed),
                                                  n_digits=4, rise=sign * np.tan(np.radians(15))).image))

    def right(pictures) -> int:  # digits read right, of 160
        return sum(sum(str(d.digit) == t for d, t in zip(read_number(model, card, image).digits, text))
                   for text, image in pictures if len(read_number(model, card, image).digits) == len(text))

    as_level, as_turned, as_uphill = right(level), right(turned), right(uphill)
    monkeypatch.setattr(read, "_TURNED", 90.0)
    monkeypatch.setattr(read, "_TURNED_PAIR", 90.0)
    not_turned_back = right(turned)
    # measured: level 133, turned 125 (119 not turned back), uphill 135 (130 never turned); before a cut through
    # two strokes paid for it (digitlab.read._THROUGH): level 130, turned 125, 112 not turned back
    assert as_turned >= as_level - 10 and as_turned >= not_turned_back + 5, (as_level, as_turned, not_turned_back)
    assert as_uphill >= as_level - 10 and as_uphill >= right(uphill) - 3


# ---------------------------------------------------------------------------------------------
# Separators: . , - :


def _with(picture: np.ndarray, *shapes) -> np.ndarray:
    """The picture with pen shapes added: ("dot", x, y, diameter), ("line", [(x, y), ...])."""
    image = Image.fromarray(picture.copy())
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        if shape[0] == "dot":
            _, x, y, d = shape
            draw.ellipse([x, y, x + d, y + d], fill=0)
        else:
            draw.line(shape[1], fill=0, width=PEN)
    return np.asarray(image)


@pytest.mark.parametrize("shapes, symbols", [
    ([("dot", 84, 70, 10)], "."),                                        # 1.7, a pen's dot on the line
    ([("line", [(90, 72), (84, 92)]), ("dot", 86, 68, 10)], ","),        # 1,7 hanging below the line
    ([("line", [(70, 48), (100, 50)])], "-"),                           # 1-7, a dash across the middle
    ([("dot", 84, 34, 10), ("dot", 84, 68, 10)], ":"),                   # 1:7
])
def test_a_separator_between_two_digits_is_in_the_text_not_a_digit(digits_model, shapes, symbols):
    picture, truth = _picture((220, 110), [("1", 30, 20), ("7", 120, 20)])
    reading = read_number(*digits_model, _with(picture, *shapes))
    assert [d.box for d in reading.digits] == truth
    assert [s.symbol for s in reading.separators] == [symbols]
    assert reading.text == reading.digits[0].shown + symbols + reading.digits[1].shown
    assert reading.dots == (symbols == ".")


@pytest.mark.parametrize("shapes, symbols", [
    ([("dot", 59, 72, 10)], "."),                                       # 5 px (7% of a height) from the 1's foot
    ([("line", [(67, 80), (63, 94)]), ("dot", 62, 74, 10)], ","),       # a comma as close
    ([("dot", 103, 40, 10), ("dot", 103, 56, 10)], ":"),  # a colon 6 px from the 7's box (under a fifth: once joined)
    ([("dot", 60, 40, 10), ("dot", 60, 56, 10)], ":"),                   # and from the 1
])
def test_a_point_or_comma_written_close_to_a_digit_is_still_one(digits_model, shapes, symbols):
    """A reader's "12.05.2024" read 12.052024, "1,000" 1000 and "12.50" turned 8° 1250: a point or comma written
    within a tenth of a digit's height of the digit beside it was taken for part of it. Another's "7:30", its colon
    8-20% of a height from the digits, read ``7?0``: the two dots, stacked into one piece, were joined to the 3."""
    picture, truth = _picture((220, 110), [("1", 30, 20), ("7", 120, 20)])
    reading = read_number(*digits_model, _with(picture, *shapes))
    assert [d.box for d in reading.digits] == truth and [s.symbol for s in reading.separators] == [symbols]


def test_mnist_text_writes_its_symbols_as_close_as_asked_and_its_digits_as_before():
    """bench_read.py's "close" numbers: a symbol 2-10% of a height from its neighbours instead of 10-50% (the same
    random draws: the same digits and symbols, only nearer); the default draws the same pictures as before the
    option, so the other conditions' figures stay comparable."""
    from digitlab.data import load_dataset
    from digitlab.data.numbers import mnist_text

    ds = load_dataset("digits")
    images = (ds.test_images * 15).astype(np.uint8)

    def gaps(picture) -> list[int]:  # from the digit before the point to it, and from it to the digit after
        (_, _, before, _), (x0, _, x1, _), (after, *_) = picture.boxes[1:4]
        return [x0 - before, after - x1]

    for seed in range(5):
        near = mnist_text(images, ds.test_labels, np.random.default_rng(seed), "dd.dd", symbol_gap=(0.02, 0.1))
        far = mnist_text(images, ds.test_labels, np.random.default_rng(seed), "dd.dd")
        height = float(np.median([b[3] - b[1] for b, c in zip(far.boxes, far.text) if c.isdigit()]))
        assert near.text == far.text and all(n <= f - 0.08 * height + 2 for n, f in zip(gaps(near), gaps(far)))
    default = mnist_text(images, ds.test_labels, np.random.default_rng(7), "d,ddd")
    # the picture the code before symbol_gap drew (9f274bb), pinned: a reviewer saw the default compared only with
    # itself
    assert hashlib.sha256(default.image.tobytes()).hexdigest()[:16] == "e89ffa518be5c2e0"
    assert default.boxes[1] == (154, 165, 174, 199)


def test_separators_are_found_on_a_turned_line_and_their_boxes_are_in_the_pictures_pixels(digits_model):
    picture, _ = _picture((400, 140), [("1", 30, 40), ("7", 120, 40), ("2", 220, 40), ("0", 320, 40)])
    picture = _with(picture, ("line", [(176, 68), (204, 70)]), ("dot", 282, 92, 12))   # 17-2.0
    turned = np.asarray(Image.fromarray(picture).rotate(12, expand=True, fillcolor=255))
    reading = read_number(*digits_model, turned)
    assert [s.symbol for s in reading.separators] == ["-", "."] and len(reading.digits) == 4
    assert "".join("d" if c.isdigit() or c == "?" else c for c in reading.text) == "dd-d.d"
    big = io.BytesIO()  # a picture read at half its size: the separators' boxes scale as the digits' do
    Image.fromarray(picture).resize((800, 280), Image.Resampling.NEAREST).save(big, "PNG")
    small = read_number(*digits_model, picture)
    scaled = small.in_picture(big.getvalue(), (400, 140))
    assert [s["box"] for s in scaled["separators"]] == [[2 * v for v in s.box] for s in small.separators]


def test_a_digits_own_pieces_and_a_plain_number_give_no_separators(digits_model):
    """A 5's detached flag, a 4 drawn in two strokes: pieces inside the digit's box, never separators."""
    picture, truth = _picture((300, 110), [("5 with a detached flag", 30, 20), ("4 in two strokes", 130, 20),
                                           ("7", 220, 20)])
    reading = read_number(*digits_model, picture)
    assert reading.separators == () and [d.box for d in reading.digits] == truth


def test_a_minus_before_a_lone_digit_is_one_and_a_dot_alone_is_no_separator(digits_model):
    """Before a digit, a dash is a minus; a dot alone is the picture's one mark (its line's height is its own),
    left to the model."""
    one, _ = _picture((220, 110), [("1", 150, 20)])
    reading = read_number(*digits_model, _with(one, ("line", [(60, 50), (110, 50)])))
    assert reading.text == "-" + reading.digits[0].shown
    alone = read_number(*digits_model, _with(np.full((100, 200), 255, dtype=np.uint8), ("dot", 90, 40, 12)))
    assert alone.separators == () and alone.digits


@pytest.mark.mnist
def test_separators_in_numbers_of_mnist_digits_and_none_in_plain_ones(mnist_reader):
    from digitlab.data.numbers import mnist_text

    model, card, mnist = mnist_reader
    rng = np.random.default_rng(5)
    patterns = ["dd.dd", "d,ddd", "-ddd", "ddd-dddd", "d:dd"]
    pictures = [mnist_text(mnist.test_images, mnist.test_labels, rng, patterns[k % 5]) for k in range(25)]
    found = ["".join(s.symbol for s in read_number(model, card, p.image).separators) for p in pictures]
    assert sum(f == "".join(c for c in p.text if not c.isdigit()) for f, p in zip(found, pictures)) >= 23
    plain = [mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=5) for _ in range(30)]
    assert sum(bool(read_number(model, card, p.image).separators) for p in plain) <= 1


def _ones(width: int, xs: list[int]) -> np.ndarray:
    """Light "1"s, 6×40 px, on a dark 60 px tall strip, at ``xs``."""
    strip = np.zeros((60, width), dtype=np.uint8)
    for x in xs:
        strip[10:50, x : x + 6] = 255
    return strip


def _separators(picture: np.ndarray) -> tuple[list, list]:
    from digitlab.separators import find_separators

    ink = ink_of(picture)
    found, digits = find_separators(ink, find_marks(ink))
    return [(s.symbol, s.box) for s in found], [m.box for m in digits]


def test_a_point_is_measured_from_the_solid_ink_not_its_soft_rim():
    """A reader: "12.50" drawn on the drawing page read ``1250``, its point 7% of a height from the 5 but 4.8% from
    the 5's anti-aliased rim. Here a point 4 px (6.5%) of solid paper from the 1 after it, blurred as a photo or the
    page's pen blurs it: 3.2% from the rims, where a broken stroke stands; from the solid ink, a point's 6%."""
    from PIL import Image, ImageDraw, ImageFilter

    from digitlab.separators import _band

    big = Image.new("L", (640, 320), 0)  # drawn 4× and shrunk: soft edges
    draw = ImageDraw.Draw(big)
    for x in (80, 244, 440):
        draw.rectangle([x, 40, x + 40, 280], fill=255)  # three 1s
    draw.ellipse([180, 232, 228, 280], fill=255)  # a point on the foot line, 16 px of paper before the second 1
    picture = np.asarray(big.resize((160, 80), Image.LANCZOS).filter(ImageFilter.GaussianBlur(1.2)))
    ink = ink_of(picture)
    marks = find_marks(ink)
    band = _band(marks)
    point = (44, 57, 58, 71)
    assert band.clearance(point) < (0.06 * band.height) ** 2 <= band.core_clearance(ink, point)
    assert _separators(picture) == ([(".", point)], [(19, 9, 31, 71), (60, 9, 72, 71), (109, 9, 121, 71)])


def test_what_only_looks_like_a_separator_is_not_one():
    """A review: pieces of digits, and a scratch far from them, had become points, commas and minus signs."""
    leaning = _ones(160, [15, 130])
    for y in [y for y in range(10, 50) if not 32 <= y < 36]:  # a leaning 1 broken low by 4 px: no comma
        x = int(round(80 - 0.45 * (y - 10)))
        leaning[y, x : x + 4] = 255
    foot = _ones(160, [20, 70, 130])
    foot[45:50, 78:84] = 255  # a 1's foot broken off, 2 px from it: no point
    bar = _ones(160, [20, 70, 130])
    bar[44:50, 79:93] = 255  # a 1's base bar broken off 3 px (7.5%) away, flat: no comma, and no digit of its own
    four = _ones(130, [95])
    four[10:50, 40:46] = 255  # a 4: stem, diagonal, bar
    for k in range(26):
        four[10 + k : 13 + k, 38 - int(k * 0.7) : 42 - int(k * 0.7)] = 255
    four[33:38, 20:38] = 255
    four[33:38, 48:60] = 255  # its bar's end, broken off 2 px right of the stem: no minus
    scratch = _ones(200, [20, 60])
    scratch[28:32, 150:175] = 255  # a scratch two heights right of the last digit: no minus
    for picture in (leaning, foot, four, scratch, bar):
        assert _separators(picture)[0] == []
    assert len(_separators(bar)[1]) == 3  # a reviewer: the bar had become a fourth "digit" (1141 for 1?1)
    short = _ones(120, [20, 90])
    short[29:32, 50:59] = 255  # a short dash, speck-sized, 22% of a height: a dash, not a point
    assert _separators(short) == ([("-", (50, 29, 59, 32))], [(20, 10, 26, 50), (90, 10, 96, 50)])


def test_two_level_lines_close_together_stay_two_lines_in_order():
    """A review: with four or five digits a line, a sloping grouping took both lines as one, read alternately."""
    for per, gap, offset in ((5, 20, 0), (5, 20, 14), (4, 14, 0), (8, 10, 7)):
        paper = np.zeros((120 + gap, 80 + 28 * per), dtype=np.uint8)
        for line in range(2):
            y = 40 + line * (20 + gap)
            for k in range(per):
                x = 40 + 28 * k + (offset if line else 0)
                paper[y : y + 20, x : x + 14] = 255
                paper[y + 4 : y + 16, x + 4 : x + 10] = 0
        marks = find_marks(ink_of(paper))
        assert [m.line for m in marks] == [0] * per + [1] * per, (per, gap, offset)


def test_a_frame_goes_but_not_a_digit_written_against_it_nor_a_grid_of_cells_or_a_second_line():
    """A second review: a frame was taken away whole, with any digit touching it; a grid of cells, and a second
    line of joined digits under the first (taken for an underline), went the same way."""
    def zero(picture, y, x, h=40, w=24, t=5):
        picture[y : y + h, x : x + w] = True
        picture[y + t : y + h - t, x + t : x + w - t] = False

    framed = np.zeros((80, 120), dtype=bool)
    framed[20:70, 35:41] = True  # a 1 down to the frame's bottom edge
    zero(framed, 20, 60)
    framed[8:11, 20:100] = framed[69:72, 20:100] = framed[8:72, 20:23] = framed[8:72, 97:100] = True
    boxes = [m.box for m in find_marks(ink_of((framed * 255).astype(np.uint8)))]
    assert boxes[1] == (60, 20, 84, 60) and boxes[0][:3] == (35, 20, 41)  # the 0, and the 1 less the frame's band
    assert 65 <= boxes[0][3] <= 67  # (a form box's walls, found in this frame, go with two pixels round them)
    cells = np.zeros((70, 190), dtype=bool)
    cells[[2, 67], :] = True
    cells[:, 2::40] = True
    cells[12:57, 12:18] = cells[12:57, 52:58] = cells[3:58, 132:138] = True  # the last 1 touches the top line
    zero(cells, 12, 92, h=45)
    marks = find_marks(ink_of((cells * 255).astype(np.uint8)))
    assert [m.box[0] for m in marks] == [12, 52, 92, 132]  # the cells' lines are no marks
    two = np.zeros((120, 260), dtype=bool)
    two[10:50, 110:116] = True
    zero(two, 10, 140)
    for k in range(9):  # nine 0s touching: one long piece under the first line
        zero(two, 70, 20 + 24 * k, w=28)
    assert {m.line for m in find_marks(ink_of((two * 255).astype(np.uint8)))} == {0, 1}


def test_a_minus_written_close_before_the_number_is_one_but_a_bar_broken_after_a_digit_is_not():
    """A reader's "-40", the minus 4% of a height from the 4, read 40. Before the number no digit's own bar can lie, so
    a minus stands from 3%; between two digits a flat piece that close is a 4's broken bar (the test above)."""
    minus = _ones(160, [52, 110])
    minus[28:33, 30:50] = 255  # 2 px (5% of a height) before the first 1
    assert _separators(minus) == ([("-", (30, 28, 50, 33))], [(52, 10, 58, 50), (110, 10, 116, 50)])
    touching = _ones(160, [51, 110])
    touching[28:33, 30:50] = 255  # 1 px (2.5%): too close, part of the digit
    assert _separators(touching)[0] == []


@pytest.mark.parametrize("rise", [16, 20])  # the second digit 0.4 and 0.5 of a height higher than the first
def test_a_minus_before_two_digits_written_unevenly_is_one(rise):
    """A reader's "-59", the 9 written higher than the 5: the band through the two digits' centres tilted, carried on
    to the minus put it outside the band's middle, and it was a "?" (1 of 20 right at 0.3 of a height, 0 at 0.4)."""
    strip = np.zeros((80, 140), dtype=np.uint8)
    strip[30:70, 60:66] = strip[30 - rise:70 - rise, 100:106] = 255  # two 1s, the second higher
    strip[44:49, 25:45] = 255  # a minus near the first digit's middle
    assert _separators(strip)[0] == [("-", (25, 44, 45, 49))]


@pytest.mark.parametrize("degrees", [15, 20, 25])
def test_a_minus_before_two_digits_written_uphill_is_one(degrees):
    """A reviewer: the band through two digits taken at the first one's centre lost the minus of "-11" written uphill
    from 15°, the minus on the number's own slope. Either place of the band's middle makes it a minus."""
    rise = np.tan(np.radians(degrees))
    strip = np.zeros((120, 160), dtype=np.uint8)
    strip[50:90, 60:66] = 255
    strip[50 - round(40 * rise):90 - round(40 * rise), 100:106] = 255  # the second 1 up the slope
    y = round(70 + 28 * rise)  # the minus's centre, 28 px before the first 1's, down the slope
    strip[y - 2:y + 3, 25:45] = 255
    assert [s for s, _ in _separators(strip)[0]] == ["-"]


def test_a_separator_is_apart_from_a_digits_ink_not_its_box_and_a_short_thick_dash_is_a_dash():
    """A second review: beside a 1 leaning 26°, a dash 12 px from its ink but 2 px from its box was joined to it;
    a 10×5 bar across the middle was a point; a dash 45 px (1.1 heights) before the next digit was read as one."""
    leaning = _ones(130, [100])
    leaning[10:50, 10:34] = 255
    leaning[15:45, 15:29] = 0  # a 0
    for y in range(10, 50):  # a 1 leaning 26°, its foot at x 60
        x = int(60 + (50 - y) * 0.5)
        leaning[y, x : x + 5] = 255
    leaning[28:33, 38:58] = 255  # a dash ending 2 px before the 1's box, 12 px from its ink at mid-height
    found, digits = _separators(leaning)
    assert [s for s, _ in found] == ["-"] and len(digits) == 3
    thick = _ones(130, [20, 100])
    thick[28:33, 55:65] = 255
    assert [s for s, _ in _separators(thick)[0]] == ["-"]
    far = _ones(160, [20, 135])
    far[28:33, 60:90] = 255  # 45 px before the next 1
    assert _separators(far) == ([("-", (60, 28, 90, 33))], [(20, 10, 26, 50), (135, 10, 141, 50)])


def _slanted_line(picture: np.ndarray, x0: int, x1: int, y_high: int, degrees: float, thick: int) -> np.ndarray:
    """``picture`` with a line from ``x0`` to ``x1`` drawn ``degrees`` off level (rising to the right when positive),
    its higher end at ``y_high``: an underline drawn freehand."""
    drop = np.tan(np.radians(abs(degrees))) * (x1 - x0)
    left, right = (y_high + drop, y_high) if degrees > 0 else (y_high, y_high + drop)
    image = Image.fromarray(picture)
    ImageDraw.Draw(image).line([(x0, left), (x1, right)], fill=0, width=thick)
    return np.asarray(image)


@pytest.mark.parametrize("degrees, gap", [(4, 6), (-8, 6), (12, 3), (6, 0), (-10, 0)])
def test_an_underline_drawn_at_a_slant_is_not_a_digit_nor_joins_the_digits(degrees, gap):
    """A number underlined freehand, the line 3-10° off level, read as 43% of such 4-digit numbers (bench_read:
    the line's pieces became marks, or joined the digit it touched); apart or touching the digits' feet."""
    digits = [("1", 30, 20), ("7", 90, 20), ("0", 150, 20), ("2", 210, 20)]
    picture, truth = _picture((300, 160), digits)
    lined = _slanted_line(picture, 10, 290, 80 + gap, degrees, 4)
    found = [m.box for m in find_marks(ink_of(lined))]
    assert len(found) == 4, found
    assert all(abs(a[0] - b[0]) <= 2 and abs(a[2] - b[2]) <= 2 and a[1] == b[1] and 0 <= b[3] - a[3] <= PEN
               for a, b in zip(found, truth)), (found, truth)


@pytest.mark.parametrize("degrees", [5, -12])
def test_a_short_slanting_underline_under_one_or_two_digits_goes_and_a_2s_base_drawn_apart_stays(degrees):
    """Shorter than two digit heights, an underline is no run: it goes as a thin bar apart below the digits,
    measured along its own slope; a 2's base drawn apart, which the 2 comes down to at one end, stays."""
    picture, truth = _picture((120, 130), [("7", 40, 20)])
    assert [m.box for m in find_marks(ink_of(_slanted_line(picture, 30, 90, 90, degrees, 4)))] == truth
    two, truth = _picture((200, 130), [("1", 40, 20), ("0", 100, 20)])
    assert [m.box for m in find_marks(ink_of(_slanted_line(two, 25, 160, 92, degrees, 4)))] == truth
    several, truth = _picture((200, 130), [("1", 40, 20), ("7", 100, 20)])  # the 7's foot near the bar's end
    assert [m.box for m in find_marks(ink_of(_slanted_line(several, 30, 126, 88, degrees, 4)))] == truth
    image = Image.new("L", (120, 130), 255)
    ImageDraw.Draw(image).line([(40, 10), (80, 10), (42, 66)], fill=0, width=PEN)  # a 2 without its base...
    base = _slanted_line(np.asarray(image), 40, 95, 76, degrees, PEN)  # ...which is drawn apart, slanting
    marks = find_marks(ink_of(base))
    assert len(marks) == 1 and marks[0].pieces == 2 and marks[0].box[3] >= 80, marks  # the 2 with its base


@pytest.mark.mnist
def test_numbers_of_mnist_digits_underlined_at_a_slant_are_found_whole(mnist_reader):
    _, _, mnist = mnist_reader
    rng = np.random.default_rng(5)
    found = []
    for _ in range(20):
        p = mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=4, dark_on_light=True)
        x0, x1 = min(b[0] for b in p.boxes) - 6, max(b[2] for b in p.boxes) + 6
        bottom = max(b[3] for b in p.boxes)
        padded = np.pad(p.image, ((0, 80), (0, 0)), constant_values=int(np.median(p.image[0])))
        found.append(len(find_marks(ink_of(_slanted_line(padded, x0, x1, bottom + 4, rng.uniform(3, 10), 3)))))
    assert sum(n == 4 for n in found) >= 18, found


def test_a_long_slanting_stroke_of_a_digit_is_not_an_underline():
    """A first version took runs two digit heights long at a slant: a 2's long base, rising 5°, went (pairs of
    touching MNIST digits), and a 2's base joined to a 5 beside the 5's flag (a small piece that made the digits'
    height seem half)."""
    image = Image.new("L", (320, 120), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(20, 30), (40, 18), (60, 30), (22, 80), (150, 69)], fill=0, width=PEN, joint="curve")  # a 2...
    draw.line([(200, 20), (200, 80)], fill=0, width=PEN)  # ...and a 1
    draw.line([(240, 20), (262, 20)], fill=0, width=PEN)  # a 5's flag drawn apart...
    draw.line([(238, 32), (236, 50), (262, 52), (266, 70), (244, 82)], fill=0, width=PEN)  # ...and its body
    marks = find_marks(ink_of(np.asarray(image)))
    assert len(marks) == 3 and marks[0].box[2] >= 150, marks  # the 2 with all its base


def test_what_a_slanting_underline_rule_took_away_in_review_stays_and_a_texture_stays_quick():
    """A review: under digits side by side the bar had only to be apart and flat, so a 2's base drawn apart beside
    a 1 went ("12" read "1?"), and so did a second line of six small joined 0s; and every piece of a texture of
    short dashes had its slope searched (11.6 s for 400×400 px)."""
    import time

    twelve = Image.new("L", (170, 110), 255)
    draw = ImageDraw.Draw(twelve)
    draw.line([(40, 20), (40, 80)], fill=0, width=8)
    draw.line([(72, 32), (90, 22), (108, 34), (74, 76)], fill=0, width=8, joint="curve")  # a 2 without its base...
    draw.line([(74, 86), (118, 86)], fill=0, width=8)  # ...which is drawn apart
    marks = find_marks(ink_of(np.asarray(twelve)))
    assert len(marks) == 2 and marks[1].box[3] >= 88, marks
    two_lines = Image.new("L", (320, 200), 255)
    draw = ImageDraw.Draw(two_lines)
    for i, x in enumerate(range(30, 270, 60)):
        if i < 2:
            draw.line([(x + 20, 20), (x + 20, 80)], fill=0, width=8)
        else:
            draw.ellipse([x, 20, x + 40, 80], outline=0, width=8)
    for i in range(6):
        draw.ellipse([40 + 28 * i, 110, 70 + 28 * i, 140], outline=0, width=3)
    assert {m.line for m in find_marks(ink_of(np.asarray(two_lines)))} == {0, 1}
    dashes = np.full((400, 400), 255, dtype=np.uint8)
    for y in range(2, 398, 2):
        for x in range(2, 396, 4):
            dashes[y, x : x + 3] = 0
    start = time.perf_counter()
    with pytest.raises(DigitlabError):
        find_marks(ink_of(dashes))
    assert time.perf_counter() - start < 5


def test_a_digit_leaning_far_is_not_cut_through_its_loop(mnist_reader, monkeypatch):
    """A sceptic: a 6 leaning far read "65", two sure digits, where predict said unsure. A cut through two strokes
    pays for it (read._THROUGH) and must leave tall halves (read._THROUGH_HEIGHT); two digits touch at one place."""
    import digitlab.read as read

    model, card, mnist = mnist_reader
    rng, pictures = np.random.default_rng(5), []
    for _ in range(60):
        one = mnist_number(mnist.test_images, mnist.test_labels, rng, n_digits=1).image
        h, paper = one.shape[0], int(np.median(one[0]))
        shear = float(np.tan(np.radians(rng.uniform(30, 45))))
        pictures.append(np.asarray(Image.fromarray(one).transform(
            (one.shape[1] + int(shear * h) + 1, h), Image.Transform.AFFINE, (1, shear, -shear * h, 0, 1, 0),
            Image.Resampling.BICUBIC, fillcolor=paper)))

    def cut() -> int:  # pictures of one digit read as two or more
        return sum(len(read_number(model, card, picture).digits) > 1 for picture in pictures)

    now, height = cut(), read._THROUGH_HEIGHT  # measured: 2 of 60 read as several digits; 6 without the height
    monkeypatch.setattr(read, "_THROUGH_HEIGHT", read._HALF_HEIGHT)  # rule, 10 without the penalty, 20 without either
    no_height = cut()
    monkeypatch.setattr(read, "_THROUGH", 0.0)
    neither = cut()
    monkeypatch.setattr(read, "_THROUGH_HEIGHT", height)
    no_penalty = cut()
    assert now < no_height < neither and now < no_penalty < neither, (now, no_height, no_penalty, neither)
    touching = [mnist_number(mnist.test_images, mnist.test_labels, np.random.default_rng(s), n_digits=2, join="touch")
                for s in range(30)]
    monkeypatch.undo()
    assert sum(len(read_number(model, card, p.image).digits) == 2 for p in touching) >= 24  # still cut apart


@pytest.mark.mnist
@pytest.mark.parametrize("degrees", [20, -20])
def test_a_minus_a_dash_and_a_colon_are_found_in_a_photo_turned_20_degrees(mnist_reader, degrees):
    """A reader: in a photo turned 20° (a line is one line to 25°) "-54" read ``?54``, "165-4578" ``165?4578`` and
    "4:30" ``4.30``: a turned bar's upright box is under twice as wide as tall, and a colon's dots no longer stand
    one over the other. They are measured along the line now."""
    from digitlab.data.numbers import mnist_text

    model, card, mnist = mnist_reader
    rng = np.random.default_rng(20 + degrees)
    right = 0
    for pattern in ["-dd", "ddd-dddd", "d:dd"] * 4:
        picture = mnist_text(mnist.test_images, mnist.test_labels, rng, pattern, dark_on_light=True)
        turned = np.asarray(Image.fromarray(picture.image).rotate(degrees, expand=True, fillcolor=255))
        reading = read_number(model, card, turned)
        shape = "".join("d" if c.isdigit() or c == "?" else c for c in reading.text)
        right += shape == pattern
    assert right >= 10, right


def test_a_nines_loop_broken_in_two_arcs_beside_its_stem_stays_the_nines():
    """A reviewer: the colon rule, at first two round pieces one over the other, took a 9's small loop broken into
    two arcs (both high, each under a fifth of a height) for a colon and read "91" as ``011``."""
    def arc(cx, cy, a0, a1):
        return [(cx + 8 * np.cos(t), cy + 14 * np.sin(t)) for t in np.radians(np.linspace(a0, a1, 20))]

    picture = Image.new("L", (260, 120), 255)
    draw = ImageDraw.Draw(picture)
    for stroke in ([(80, 20), (80, 90)], arc(60, 38, 202, 338), arc(60, 38, 22, 158), [(150, 20), (150, 90)]):
        draw.line(stroke, fill=0, width=6, joint="curve")
    found, digits = _separators(np.asarray(picture))
    assert found == [] and len(digits) == 2, (found, digits)


@pytest.mark.parametrize("shape", ["rectangle", "ellipse"])
def test_a_frame_or_ring_round_one_digit_of_a_number_is_not_a_mark(shape):
    """A teacher's mark round one digit of a number, apart from it, was read as a digit (``2384`` as ``23804``), or
    joined the digit into a ``?``: 0 of 8 numbers right with a ring round one digit, 7 of 8 without. A slashed 0 (its
    slash apart from its ring) is no taller than the digit beside it, and stays."""
    picture, truth = _picture((360, 160), [("1", 40, 50), ("7", 120, 50), ("0", 200, 50), ("2", 280, 50)])
    marked = Image.fromarray(picture)
    getattr(ImageDraw.Draw(marked), shape)([100, 22, 180, 138], outline=0, width=4)  # round the 7, 20-28 px away
    assert _boxes(np.asarray(marked)) == truth
    slashed, truth = _picture((200, 120), [("1", 40, 30), ("0", 100, 30)])  # a slashed 0, the slash apart, beside a 1
    slashed = Image.fromarray(slashed)
    ImageDraw.Draw(slashed).line([(125, 46), (115, 74)], fill=0, width=4)
    assert [box[:2] for box in _boxes(np.asarray(slashed))] == [box[:2] for box in truth]
    tall = Image.fromarray(_picture((260, 200), [("1", 40, 60)])[0])  # a slashed 0 written 30% taller than the 1
    ImageDraw.Draw(tall).ellipse([110, 51, 165, 130], outline=0, width=5)  # (a reviewer: taken for a ring, and its
    ImageDraw.Draw(tall).line([(145, 76), (129, 106)], fill=0, width=4)  # slash read as a digit)
    assert [box[0] for box in _boxes(np.asarray(tall))] == [57, 110]


def test_a_comma_stays_on_its_own_line(digits_model):
    """A teacher's worksheet "3.14 / -12 / 7:30 / 1,000" read ``3.,14 | ... | 1000``: a comma below the top line
    still "hung from its bottom", any distance under it, and went to the first line tried."""
    picture, _ = _picture((220, 300), [("1", 30, 20), ("7", 120, 20), ("1", 30, 200), ("7", 120, 200)])
    big = np.asarray(Image.fromarray(picture).resize((440, 600), Image.Resampling.BILINEAR))  # digits 120 px tall
    comma = [("line", [(180, 520), (172, 540)]), ("dot", 172, 512, 12)]  # a speck hanging from the lower line's foot
    reading = read_number(*digits_model, _with(big, *comma))
    assert [(s.symbol, s.line) for s in reading.separators] == [(",", 1)]
    assert reading.text.split("\n")[1] == reading.digits[2].shown + "," + reading.digits[3].shown


def test_a_colon_of_a_thin_pen_is_one_but_a_lone_speck_as_small_is_no_point(digits_model):
    """A pupil's thin pen: "7:30" read ``730``, the colon's dots 6% of a digit's height across (a point's are 8% or
    more). Two such dots one over the other are a colon; one alone, low between the digits, is a speck, not a point."""
    picture, truth = _picture((220, 110), [("1", 30, 20), ("7", 120, 20)])
    colon = read_number(*digits_model, _with(picture, ("dot", 85, 36, 3), ("dot", 85, 68, 3)))  # 4 px of 60
    assert [d.box for d in colon.digits] == truth and [s.symbol for s in colon.separators] == [":"]
    speck = read_number(*digits_model, _with(picture, ("dot", 85, 70, 3)))
    assert [d.box for d in speck.digits] == truth and speck.separators == ()


def test_a_colon_whose_dot_sits_on_a_ruled_line_is_one(digits_model):
    """A pupil's "7:30" on a strip of ruled paper read ``730``: the line through the digits' lower half ran through the
    colon's lower dot too, and the dot, joined to it, was no dot (the digits were found without the line)."""
    picture, _ = _picture((220, 110), [("1", 30, 20), ("7", 120, 20)])
    ruled = _with(picture, ("dot", 84, 34, 10), ("dot", 84, 66, 10)).copy()
    for row in (8, 70, 102):  # three grey lines: too few for ruled paper, one through the lower dot
        ruled[row : row + 2] = np.minimum(ruled[row : row + 2], 150)
    reading = read_number(*digits_model, ruled)  # the line's pixels beside a stroke stay: boxes a pixel wider
    assert len(reading.digits) == 2 and [s.symbol for s in reading.separators] == [":"]


def test_a_hooked_comma_and_a_small_colon_beside_a_digit_are_separators(digits_model):
    """A bookkeeper's "3,75" read ``3175`` with a sure 1: a comma drawn slanting, as wide as tall, hanging under the
    line, was taken for a digit. And "04.12.2026 7:30" read ``... 730``: the colon's dots, a few pixels each, joined to
    the 3 beside them, filled 60% of their boxes, under a colon's 70%."""
    picture, truth = _picture((220, 110), [("1", 30, 20), ("7", 120, 20)])
    hooked = _with(picture, ("line", [(94, 80), (94, 86), (80, 100)]))  # a stub, then down to the left, under the line
    reading = read_number(*digits_model, hooked)
    assert [d.box for d in reading.digits] == truth and [s.symbol for s in reading.separators] == [","]
    small = np.asarray(Image.fromarray(picture).resize((110, 55), Image.Resampling.BILINEAR)).copy()  # digits 30 px
    for top in (17, 26):  # two 5×6 diamonds 3 px apart, across the middle, 4 px from the 7
        for row, half in enumerate((0, 1, 2, 2, 1, 0)):
            small[top + row, 54 - half : 55 + half] = 0
    reading = read_number(*digits_model, small)
    assert len(reading.digits) == 2 and [s.symbol for s in reading.separators] == [":"], reading.separators


def test_a_thin_pens_point_is_one_though_under_a_points_usual_size(digits_model):
    """A bookkeeper's "12.50" with a fine pen read ``1250``, the price a hundred times over: the point, a tap of that
    pen 5.5% of a digit's height across, was under the 8% a point had to be. A dot as wide as the pen is a point; one
    thinner than the pen that wrote the digits is a speck (the first test above)."""
    image = Image.new("L", (220, 110), 255)
    draw = ImageDraw.Draw(image)
    for stroke in STROKES["1"] + [[(120 + x, 20 + y) for x, y in STROKES["7"][0]]]:
        draw.line([(30 + x, 20 + y) for x, y in stroke] if len(stroke) == 2 else stroke, fill=0, width=3)
    plain = np.asarray(image).copy()
    draw.ellipse([84, 74, 87, 77], fill=0)  # 4 px across: 8% of 60 is 4.8
    reading = read_number(*digits_model, np.asarray(image))
    assert len(reading.digits) == 2 and [s.symbol for s in reading.separators] == ["."], reading.separators
    plain[74:78, 56:60] = 0  # as small, 4 px (7%) from the 1: a piece of its stroke broken off, as a pencil's was
    assert read_number(*digits_model, plain).separators == ()


def test_cli_says_what_to_do_when_the_digits_are_tiny_or_none_is_read_surely(saved_model, tmp_path):
    """A bookkeeper's number 15 px high read as a row of ``?`` (once a sure wrong digit), and a texture as ``?``, exit
    0, with nothing said of why or what to do."""
    picture, _ = _picture((260, 100), [("1", 30, 20), ("7", 110, 20), ("0", 190, 20)])  # digits 60 px tall
    Image.fromarray(picture).resize((52, 20), Image.Resampling.LANCZOS).save(tmp_path / "tiny.png")  # 12 px
    Image.fromarray(picture).save(tmp_path / "number.png")
    tiny = run_cli("read", "--model", str(saved_model), str(tmp_path / "tiny.png"), "--min-confidence", "0.9")
    assert tiny.returncode == 0 and "px tall: photograph or scan the number closer" in tiny.stdout, tiny.stdout
    read = run_cli("read", "--model", str(saved_model), str(tmp_path / "tiny.png"), "--min-confidence", "0.01")
    assert "note:" not in read.stdout, read.stdout  # read surely however small: nothing to say (a reviewer's "111")
    asked = run_cli("read", "--model", str(saved_model), str(tmp_path / "number.png"), "--min-confidence", "0.99999")
    said = " ".join(asked.stdout.split())
    assert "???" in said and "no digit read surely: this model is unsure of them all" in said, said
    sure = run_cli("read", "--model", str(saved_model), str(tmp_path / "number.png"), "--min-confidence", "0.01")
    assert "note:" not in sure.stdout, sure.stdout


def test_a_short_minus_before_the_number_is_one_but_not_a_short_dash_between_digits(digits_model):
    """A reader's "-42", its minus 18% of a digit's height long, read ``42``: the sign lost. Before the number a minus
    may be 15% long; between two digits a dash is still a fifth (a 4's bar broken off is that shape)."""
    picture, truth = _picture((220, 110), [("1", 30, 20), ("7", 120, 20)])
    minus = picture.copy()
    minus[48:52, 26:36] = 0  # 10 px of a 60-px height: 17%, 10 px before the 1
    reading = read_number(*digits_model, minus)
    assert [d.box for d in reading.digits] == truth and [s.symbol for s in reading.separators] == ["-"]
    dash = picture.copy()
    dash[48:52, 80:90] = 0  # the same bar between the 1 and the 7
    assert [s.symbol for s in read_number(*digits_model, dash).separators] == []


def test_a_digit_on_squared_paper_photographed_turned_is_one_or_two_marks_not_the_grids_pieces():
    """A reviewer's 4 on squared paper, photographed turned 8° and cropped to it, counted 7 marks: the grid's lines cut
    by the picture's edge. The collecting page refused it as several digits (and `data import` would)."""
    from PIL import ImageFilter

    page = Image.new("L", (1400, 1200), 230)
    draw = ImageDraw.Draw(page)
    for k in range(0, 1400, 30):
        draw.line([(k, 0), (k, 1200)], fill=120, width=2)
        draw.line([(0, k), (1400, k)], fill=120, width=2)
    draw.line([(720, 400), (580, 670), (810, 670)], fill=30, width=6)
    draw.line([(750, 550), (750, 810)], fill=30, width=6)
    photo = page.rotate(8, fillcolor=230, resample=Image.Resampling.BICUBIC).crop((250, 250, 1150, 950))
    assert count_marks(photo.filter(ImageFilter.GaussianBlur(1))) <= 2
