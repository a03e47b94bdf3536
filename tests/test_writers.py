"""Synthetic writers: reproducible, different from each other, and drawing the styles they claim."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from digitlab.data.writers import SHAPES, WRITERS, writer, writer_samples
from digitlab.errors import DigitlabError


def widest_ink_run(images: np.ndarray, rows: slice) -> np.ndarray:
    """For each 28×28 image, the widest horizontal span of ink (> 128) in ``rows``, in pixels."""
    spans = []
    for image in images:
        ink = image[rows] > 128
        spans.append(max((np.ptp(np.flatnonzero(r)) + 1) if r.any() else 0 for r in ink))
    return np.array(spans)


@pytest.fixture(scope="module")
def anna():
    return writer_samples(writer("anna"), per_digit=6, seed=1)


def test_same_seed_same_pictures_other_seed_other_pictures(anna):
    again = writer_samples(writer("anna"), per_digit=6, seed=1)
    assert again.pictures == anna.pictures and np.array_equal(again.images, anna.images)
    other = writer_samples(writer("anna"), per_digit=6, seed=2)
    assert not np.array_equal(other.images, anna.images)
    fewer = writer_samples(writer("anna"), per_digit=2, seed=1)  # a prefix: per_digit does not reshuffle
    assert np.array_equal(fewer.images, anna.images[:20])


def test_prepared_images_are_mnist_form_with_ink_and_pictures_are_dark_on_light(anna):
    assert anna.images.shape == (60, 28, 28) and anna.images.dtype == np.uint8
    assert (anna.images.reshape(60, -1).max(axis=1) > 200).all()  # every image has ink
    assert anna.images[:, 0, :].max() == 0 and anna.images[:, :, 0].max() == 0  # MNIST's empty border
    assert anna.labels.tolist() == list(range(10)) * 6
    picture = Image.open(io.BytesIO(anna.pictures[0]))
    gray = np.asarray(picture)
    assert picture.format == "PNG" and 200 <= picture.width <= 400 and picture.width == picture.height
    assert gray[0, 0] > 200 and gray.min() < 90  # light paper, dark ink
    assert len(np.unique(gray)) >= 8  # antialiased edges, not two colours


def test_at_least_six_named_writers_with_different_styles():
    names = [w.name for w in WRITERS]
    assert len(WRITERS) >= 6 and len(set(names)) == len(names)
    assert all(w.description and "\n" not in w.description for w in WRITERS)
    styles = {(tuple(sorted(w.shapes.items())), w.slant, w.pen, w.aspect, w.corner) for w in WRITERS}
    assert len(styles) == len(WRITERS)
    assert all(shape in SHAPES[d] for w in WRITERS for d, shape in w.shapes.items())
    means = [writer_samples(w, per_digit=1, seed=0).images.mean() for w in WRITERS]
    assert len({round(m, 3) for m in means}) == len(WRITERS)  # even one sample each tells them apart


def test_the_crossed_7_and_the_footed_1_are_drawn(anna):
    plain = writer_samples(dataclasses.replace(writer("anna"), shapes={}), per_digit=6, seed=1)
    crossed = widest_ink_run(anna.images[anna.labels == 7], slice(11, 18))
    uncrossed = widest_ink_run(plain.images[plain.labels == 7], slice(11, 18))
    assert np.median(crossed) >= 6 and np.median(uncrossed) <= 4, (crossed, uncrossed)
    footed = widest_ink_run(anna.images[anna.labels == 1], slice(22, 25))
    stick = widest_ink_run(plain.images[plain.labels == 1], slice(22, 25))
    assert np.median(footed) >= 6 and np.median(stick) <= 4, (footed, stick)


def test_the_corner_writer_writes_small_in_the_top_left_quarter():
    dmitri = writer_samples(writer("dmitri"), per_digit=1, seed=0)
    for data in dmitri.pictures:
        ink = np.asarray(Image.open(io.BytesIO(data))) < 128
        rows, cols = np.nonzero(ink)
        assert rows.max() < ink.shape[0] / 2 and cols.max() < ink.shape[1] / 2


def test_mistakes_are_one_clear_line():
    with pytest.raises(DigitlabError, match="no synthetic writer named 'zoe'; choose one of: anna"):
        writer("zoe")
    with pytest.raises(DigitlabError, match="per_digit must be a whole number of at least 1"):
        writer_samples(writer("anna"), per_digit=0)
