"""Fine-tuning to a person's handwriting: it learns their digits, keeps the original, repeats from a seed."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from digitlab.data.writers import writer, writer_samples
from digitlab.errors import DigitlabError
from digitlab.finetune import MIN_PER_DIGIT, check_enough, finetune_model
from digitlab.preprocess import to_features

FAST = dict(steps=100)  # a short recipe for a tiny network; the benchmark runs the real one


@pytest.fixture(scope="module")
def mnist_part(real_mnist):
    """1,000 real MNIST training images (stratified) and 2,000 test images."""
    from digitlab.data import load_dataset

    ds = load_dataset("mnist", limit=1000)
    return (ds.train_images, ds.train_labels), (ds.test_images[:2000], ds.test_labels[:2000])


@pytest.fixture(scope="module")
def tiny_cnn(mnist_part):
    """A width-4 CNN, a few epochs on 1,000 MNIST images: about 83% on MNIST, worse on the writers."""
    torch = pytest.importorskip("torch")
    from digitlab.models.cnn import CNNClassifier

    (images, labels), _ = mnist_part
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is much faster on a shared machine
    try:
        model = CNNClassifier(width=4, epochs=4, lr=0.2, augment=0.0, distort=0.0, tta=False, device="cpu",
                              random_state=0)
        return model.fit(to_features(images, 255), labels)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def emma():
    """Five samples of each digit to learn from, five others to test on."""
    samples = writer_samples(writer("emma"), per_digit=10, seed=0)
    return (samples.images[:50], samples.labels[:50]), (samples.images[50:], samples.labels[50:])


def accuracy(model, images, labels) -> float:
    return float(np.mean(model.predict(to_features(images, 255)) == labels))


def test_cnn_learns_the_writer_keeps_mnist_and_leaves_the_original_alone(tiny_cnn, emma, mnist_part):
    (train, test), (replay, mnist_test) = emma, mnist_part
    weights = {k: v.copy() for k, v in tiny_cnn.export_tensors().items()}
    before, mnist_before = accuracy(tiny_cnn, *test), accuracy(tiny_cnn, *mnist_test)

    tuned = finetune_model(tiny_cnn, *train, replay=replay, seed=0, **FAST)

    assert type(tuned) is type(tiny_cnn) and tuned is not tiny_cnn
    assert tuned.get_params() == tiny_cnn.get_params()
    after = accuracy(tuned, *test)
    assert after >= before + 0.2, (before, after)  # about 42% → 82%
    assert accuracy(tuned, *mnist_test) >= mnist_before - 0.02
    assert all(np.array_equal(v, weights[k], equal_nan=True) for k, v in tiny_cnn.export_tensors().items())
    assert accuracy(tiny_cnn, *test) == before


def _small_cnn(replay, **params):
    """A width-4 CNN fitted on the replay digits, on one thread (tiny batches: two threads wait on each other)."""
    torch = pytest.importorskip("torch")
    from digitlab.models.cnn import CNNClassifier

    before_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return CNNClassifier(width=4, augment=0.0, distort=0.0, tta=False, device="cpu", random_state=0,
                             **params).fit(to_features(replay[0], 255), replay[1])
    finally:
        torch.set_num_threads(before_threads)


def test_a_cnn_with_batchnorm_before_the_pool_is_fine_tuned_in_its_own_order(emma, mnist_part):
    """Models saved before ``norm_after_pool`` have BatchNorm before the pool."""
    from digitlab.models.cnn import CNNClassifier

    (train, test), (replay, mnist_test) = emma, mnist_part
    old = _small_cnn(replay, epochs=4, lr=0.2, norm_after_pool=False)
    before, mnist_before = accuracy(old, *test), accuracy(old, *mnist_test)
    tuned = finetune_model(old, *train, replay=replay, seed=0, **FAST)
    assert tuned.norm_after_pool is False
    assert [name for name, _ in tuned.module_.named_children()][:4] == ["conv1", "bn1", "pool1", "relu1"]
    assert accuracy(tuned, *test) >= before + 0.2, (before, accuracy(tuned, *test))
    assert accuracy(tuned, *mnist_test) >= mnist_before - 0.02
    # Fine-tuning runs BatchNorm in eval mode, where a positive scale commutes with the pool and both orders
    # are one function. With a negative scale they differ, and so must the steps taken from the same weights.
    tensors = old.export_tensors()
    tensors["bn1.weight"][0] *= -1
    params = old.get_params()
    a, b = (finetune_model(CNNClassifier.from_tensors({**params, "norm_after_pool": order}, tensors),
                           *train, replay=replay, seed=0, steps=3).export_tensors() for order in (False, True))
    assert not np.array_equal(a["conv1.weight"], b["conv1.weight"])


def test_a_cnn_with_extra_convolutions_is_fine_tuned_with_them(emma, mnist_part):
    (train, _), (replay, _) = emma, mnist_part
    deep = _small_cnn(replay, epochs=1, extra_convs=2)
    tuned = finetune_model(deep, *train, replay=replay, seed=0, steps=3)
    assert tuned.extra_convs == 2 and set(tuned.export_tensors()) == set(deep.export_tensors())
    assert not np.array_equal(tuned.export_tensors()["conv3b.weight"], deep.export_tensors()["conv3b.weight"])


def test_cnn_fine_tuning_repeats_from_a_seed_and_saves_like_any_cnn(tiny_cnn, emma, mnist_part):
    from digitlab.models.cnn import CNNClassifier

    (train, test), (replay, _) = emma, mnist_part
    first = finetune_model(tiny_cnn, *train, replay=replay, seed=3, steps=20)
    second = finetune_model(tiny_cnn, *train, replay=replay, seed=3, steps=20)
    other = finetune_model(tiny_cnn, *train, replay=replay, seed=4, steps=20)
    a, b, c = (m.export_tensors() for m in (first, second, other))
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert not all(np.array_equal(a[k], c[k], equal_nan=True) for k in a)
    reloaded = CNNClassifier.from_tensors(first.get_params(), a)
    features = to_features(test[0], 255)
    assert np.array_equal(reloaded.predict_proba(features), first.predict_proba(features))


def test_a_classic_model_is_refitted_on_replay_and_the_set(emma, mnist_part):
    (train, test), ((images, labels), _) = emma, mnist_part
    knn = KNeighborsClassifier(n_neighbors=1).fit(to_features(images, 255), labels)
    tuned = finetune_model(knn, *train, replay=(images, labels))
    assert tuned is not knn and tuned.get_params() == knn.get_params()
    assert accuracy(tuned, *test) >= accuracy(knn, *test) + 0.2
    assert knn.n_samples_fit_ == len(images) and tuned.n_samples_fit_ == len(images) + 5 * len(train[0])


def test_too_few_samples_are_refused_in_one_line():
    with pytest.raises(DigitlabError) as caught:
        check_enough(np.array([3]))
    message = str(caught.value)
    assert message == (f"fine-tuning needs at least {MIN_PER_DIGIT} samples of each digit 0-9; this set has only 1 of the digit 3 "
                       "and none of 0-2, 4-9 — draw more with `digitlab serve --collect`")
    with pytest.raises(DigitlabError, match="this set has only 2 of the digit 0, only 1 of the digit 5 — draw more"):
        check_enough(np.r_[0, 0, np.repeat([1, 2, 3, 4, 6, 7, 8, 9], 3), 5])
    check_enough(np.repeat(np.arange(10), MIN_PER_DIGIT))  # just enough


def test_bad_sets_are_refused_before_any_training():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8)
    labels = np.tile(np.arange(10), 3)
    knn = KNeighborsClassifier(n_neighbors=1).fit(to_features(images, 255), labels)
    with pytest.raises(DigitlabError, match="not fitted"):
        finetune_model(KNeighborsClassifier(), images, labels)
    with pytest.raises(DigitlabError, match="uint8 images N×H×W"):
        finetune_model(knn, images.astype(np.float32), labels)
    with pytest.raises(DigitlabError, match="8×8 images, but the model reads 784 pixels"):
        finetune_model(knn, images[:, :8, :8], labels)
    with pytest.raises(DigitlabError, match="30 images but 29 labels"):
        finetune_model(knn, images, labels[:-1])
    with pytest.raises(DigitlabError, match="needs at least 3 samples of each digit"):
        finetune_model(knn, images[:12], labels[:12])
    with pytest.raises(DigitlabError, match="labels must be the digits 0-9"):
        check_enough([1, 12])


def test_a_cnn_trained_under_torchrun_fine_tunes_too(tiny_cnn, emma, mnist_part):
    import copy

    from digitlab.models.cnn import CNNClassifier

    (train, _), (replay, _) = emma, mnist_part
    distributed = copy.deepcopy(tiny_cnn)
    distributed.world_size_ = 2  # as torchrun leaves it: its weights file carries a world_size tensor
    assert "world_size" in distributed.export_tensors()
    tuned = finetune_model(distributed, *train, replay=replay, seed=0, steps=5)
    assert isinstance(tuned, CNNClassifier) and tuned.predict(to_features(train[0], 255)).shape == (50,)
