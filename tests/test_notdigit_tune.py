"""A fine-tuned run's not-a-digit detector is taught the writer's digits: it stops turning them away, and still
turns away what it did before."""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.data.writers import writer, writer_samples
from digitlab.notdigit import nondigit_images
from digitlab.preprocess import to_features


@pytest.mark.slow
def test_the_detector_learns_a_writer_mnist_rarely_shows_and_keeps_the_rest(real_mnist):
    from digitlab.data import load_dataset
    from digitlab.notdigit import fit_detector
    from digitlab.notdigit_tune import held_digits, tune_detector
    from digitlab.train import train

    mnist = load_dataset("mnist", limit=3000)
    model = train("logreg", mnist, params={"max_iter": 100}).model
    base = fit_detector(mnist, model, seed=0, n_nondigits=1500)
    emma = writer_samples(writer("emma"), per_digit=20, seed=0)  # her digits are the ones MNIST's detector doubts
    taught = np.arange(len(emma.labels)) % 20 < 10  # ten of each digit taught, ten held out
    weights = [w.copy() for w in base.weights]

    held = held_digits(load_dataset("mnist").train_images)  # from all of MNIST's 60,000, as finetune draws them
    tuned = tune_detector(base, emma.images[taught], emma.labels[taught], mnist.train_images, held, base_model=model,
                          model=model, temperature=1.0, pixel_max=255, seed=0)

    def turned_away(detector, images) -> float:
        x = to_features(images, 255)
        return float(np.mean(detector.flags(x, model.predict_proba(x))))

    before, after = turned_away(base, emma.images[~taught]), turned_away(tuned, emma.images[~taught])
    assert before >= 0.05 and after <= before / 3, (before, after)  # 17% → 0% when written
    mnist_test = mnist.test_images[:3000]
    assert turned_away(tuned, mnist_test) <= turned_away(base, mnist_test) + 0.005  # as few of MNIST's own
    others = nondigit_images(1000, (28, 28), 255, split="test")
    assert turned_away(tuned, others) >= turned_away(base, others) - 0.03  # letters, scribbles: still turned away
    assert tuned.nondigits_flagged == pytest.approx(turned_away(tuned, others))  # the card's figure is that one
    assert all(np.array_equal(a, b) for a, b in zip(base.weights, weights))  # the base run's own is left alone
    assert not any(np.array_equal(a, b) for a, b in zip(tuned.weights, weights))


def test_too_small_a_replay_keeps_the_base_detector():
    from digitlab.notdigit_tune import tune_detector

    sentinel = object()
    few = np.zeros((200, 28, 28), np.uint8)
    assert tune_detector(sentinel, few[:10], np.arange(10), few, few, base_model=None, model=None, temperature=1.0,
                         pixel_max=255) is sentinel
