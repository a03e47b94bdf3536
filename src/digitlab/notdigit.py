"""Is it a digit at all? A small network that tells digits from non-digits, stored beside the model.

A digit classifier answers one of ten digits for anything it is shown, so a scribble, a letter or a
smiley gets a digit, often a confident one. Its own confidence is a weak alarm: it was trained to
choose among digits and never saw anything else (``benchmarks/bench_notdigit.py`` measures its top
probability and entropy against this module's detector on the same pictures). So each run trains a
second, small model on exactly the question "digit or not?": the run's own training digits against
pictures that are not one digit (:func:`~digitlab.data.nondigits.make_nondigits`: letters, symbols,
scribbles, shapes, near-blank noise, two digits side by side, shaded blank paper), prepared the same way.

The detector is scikit-learn's :class:`~sklearn.neural_network.MLPClassifier` (one hidden layer) on
the same pixel features the zoo's models take. Its logit and the entropy of the classifier's
calibrated probabilities are combined by a logistic regression fitted on pictures neither model
trained on (the classifier's held-out digits, a fifth of the non-digits): the two disagree on
different pictures, so together they catch more. The threshold is the lowest score that flags at
most :data:`FLAG_RATE` of those held-out digits; the card records how many held-out non-digits it
flags. The MLP depends only on the digits, the non-digits and the seed, so it is kept in the data
cache and a later run on the same digits reads it back (:func:`mlp_cache_path`). At prediction time
the MLP's own weight arrays (``coefs_``, ``intercepts_``) are evaluated in NumPy: the same numbers as
``predict_proba`` without its per-call checks.

Examples
--------
>>> from digitlab.data import load_dataset
>>> from digitlab.train import train
>>> digits = load_dataset("digits")
>>> detector = fit_detector(digits, train("logreg", digits).model, seed=0, n_nondigits=600)
>>> detector.threshold < 1.0, detector.digits_flagged <= FLAG_RATE
(True, True)
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab.data.cache import keep_in_cache, made_folder, mark_used
from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    from digitlab.train import HeldOut

__all__ = ["DETECTOR_FILE", "FLAG_RATE", "HIDDEN", "NotDigitCheck", "NotDigitDetector", "entropy", "fit_detector",
           "nondigit_images", "UNLIKE_RATE"]

DETECTOR_FILE = "notdigit.safetensors"
FLAG_RATE = 0.0075
"""The most held-out digits the threshold may flag as "not a digit" (0.75%: two standard errors
under the 1% the issue allows on MNIST's 6,000 held-out digits)."""
UNLIKE_RATE = 0.03
"""A digit answer is marked "might not be a digit" from the score only 3% of held-out digits reach: a triangle read
"0 99.8% sure" scored 0.73 (threshold 0.77), where 97% of digits score under 0.14."""
HIDDEN = 256
"""Units in the detector's hidden layer."""
MAX_DIGITS = 20_000
"""At most this many training digits (a stratified-enough random subset) teach the detector."""
NONDIGIT_SEED = 0
"""Seed of the non-digit pictures: the same pictures for every run, so they are generated once and cached."""
HELD_OUT = 0.2
MAX_WORKERS = 8
"""Processes that draw the non-digits at most (each holds some 150 MB)."""
MLP_CACHE_VERSION = 1
"""Part of the cached MLP's name: raise it when :func:`_fit_mlp` changes what it makes of the same inputs."""
NONDIGITS_VERSION = 9
"""Part of the cached non-digits' file name: raise it when :func:`~digitlab.data.nondigits.make_nondigits`
draws other pictures for the same arguments (2: the ``shade`` kind; 3: the preparation leaves out rules; 4: rules
touching the edge are not mirrored; 5: the lines of ruled and squared paper, a desk round a sheet, a frame round a
digit, a line under it and flecks on the picture's edge are left out; 6: paper's lines cut short by a corner of a
picture turned askew, and lines slanting up to 15°, are left out: 1 of 8,000 pictures changed; 7: the ``written``
kind, letters written with a pen; 8: the train part types every letter but the lookalikes, not half of them; 9: strokes
wider than a fifth of the digit's box are narrowed, as a bold pen's digits are)."""
PATIENCE = 4
"""Epochs without a better validation score before the MLP stops (scikit-learn's default is 10). It keeps
the epoch that scored best either way: on MNIST the same detector as with 10 for seeds 42 and 0, and for
seed 1 an earlier epoch that flags as many unseen non-digits (92.9% vs 92.8%) — in 30-35% less time."""


@dataclass(frozen=True)
class NotDigitDetector:
    """A fitted digit-or-not detector: a one-hidden-layer network and its threshold.

    Attributes
    ----------
    weights, biases : tuple of ndarray
        The MLP's ``coefs_`` and ``intercepts_`` (float32): features → ReLU hidden layer → one logit.
    stack : ndarray
        ``[a, b, c]``: the score is ``sigmoid(a · MLP logit + b · entropy of the classifier's
        probabilities + c)``, fitted by logistic regression on held-out pictures.
    threshold : float
        A score above it means "not a digit".
    digits_flagged, nondigits_flagged : float
        On held-out pictures: the share of digits and of non-digits the threshold flags.
    n_digits, n_nondigits : int
        How many digits and non-digits taught it (held-out ones not counted).
    unlike_from : float or None
        From this score on, a digit answer is marked "might not be a digit" (:data:`UNLIKE_RATE`); None for a
        detector saved before digitlab marked them.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    stack: np.ndarray
    threshold: float
    digits_flagged: float = float("nan")
    nondigits_flagged: float = float("nan")
    n_digits: int = 0
    n_nondigits: int = 0
    unlike_from: float | None = None

    def __repr__(self) -> str:
        """What it does, in one line (the fields' own reprs print every weight)."""
        sizes = "→".join(str(w.shape[0]) for w in self.weights) + "→1"
        return (f"NotDigitDetector(mlp={sizes}, threshold={self.threshold:.3f}, flags {self.digits_flagged:.1%} of "
                f"digits and {self.nondigits_flagged:.1%} of non-digits held out)")

    def scores(self, features: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Probability that each picture is not a digit.

        Parameters
        ----------
        features : ndarray, shape (N, D)
            Pixel features, as the models take them (:func:`~digitlab.preprocess.to_features`).
        proba : ndarray, shape (N, classes)
            The classifier's (calibrated) probabilities for the same pictures.

        Examples
        --------
        >>> d = NotDigitDetector((np.ones((2, 1), np.float32), np.ones((1, 1), np.float32)),
        ...                      (np.zeros(1, np.float32), np.zeros(1, np.float32)), np.array([1.0, 0.0, 0.0]), 0.5)
        >>> sure = np.array([[1.0, 0.0], [1.0, 0.0]])
        >>> d.scores(np.array([[0.0, 0.0], [1.0, 1.0]]), sure).round(3).tolist()
        [0.5, 0.881]
        """
        a, b, c = self.stack
        return 1.0 / (1.0 + np.exp(-(a * self.logits(features) + b * entropy(proba) + c)))

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The MLP's own "not a digit" logit for each row of pixel features."""
        hidden = np.asarray(features, dtype=np.float32)
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            hidden = np.maximum(hidden @ w + b, 0.0)
        return (hidden @ self.weights[-1] + self.biases[-1])[:, 0].astype(np.float64)

    def flags(self, features: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """True for each picture whose score is above the threshold."""
        return self.scores(features, proba) > self.threshold

    def to_tensors(self) -> dict[str, np.ndarray]:
        """The weights as named arrays, for a safetensors file."""
        tensors = {f"weight{i}": w for i, w in enumerate(self.weights)}
        tensors.update({f"bias{i}": b for i, b in enumerate(self.biases)})
        tensors["stack"] = np.asarray(self.stack, dtype=np.float64)
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], threshold: float, n_features: int,
                     where: str = DETECTOR_FILE) -> "NotDigitDetector":
        """Rebuild a detector from :meth:`to_tensors`' arrays, checking every shape; one clear line if wrong."""
        layers = (len(tensors) - 1) // 2
        names = {f"{kind}{i}" for kind in ("weight", "bias") for i in range(layers)} | {"stack"}
        if layers < 1 or set(tensors) != names:
            raise DigitlabError(f"{where}: not a digit detector (unexpected tensors {sorted(tensors)[:4]})")
        weights = tuple(np.asarray(tensors[f"weight{i}"], dtype=np.float32) for i in range(layers))
        biases = tuple(np.asarray(tensors[f"bias{i}"], dtype=np.float32) for i in range(layers))
        width = n_features
        for w, b in zip(weights, biases):
            if (w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],) or not np.isfinite(w).all()
                    or not np.isfinite(b).all()):
                raise DigitlabError(f"{where}: the detector's weights do not fit {n_features} input features")
            width = w.shape[1]
        if width != 1:
            raise DigitlabError(f"{where}: the detector must end in one output, not {width}")
        stack = np.asarray(tensors["stack"], dtype=np.float64)
        if stack.shape != (3,) or not np.isfinite(stack).all():
            raise DigitlabError(f"{where}: the detector's stacking weights are damaged")
        return cls(weights, biases, stack, float(threshold))


@dataclass(frozen=True)
class NotDigitCheck:
    """The model card's ``not_a_digit`` entry: the detector's file, its threshold, and how it did.

    Attributes
    ----------
    file, sha256 : str
        The detector's weights beside the card (:data:`DETECTOR_FILE`) and their SHA-256.
    threshold : float
        A score above it means "not a digit".
    digits_flagged, nondigits_flagged : float
        On pictures held out of the detector's training: the share of digits and of non-digits flagged.
    n_digits, n_nondigits : int
        How many digits and non-digits taught it.
    unlike_from : float or None
        :attr:`NotDigitDetector.unlike_from` (absent from cards written before it).
    """

    file: str
    sha256: str
    threshold: float
    digits_flagged: float
    nondigits_flagged: float
    n_digits: int
    n_nondigits: int
    unlike_from: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for the model card."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any, where: str = "model card") -> "NotDigitCheck":
        """Validate the card's ``not_a_digit`` object; one clear line naming the first bad field."""
        def bad(field: str, expected: str) -> DigitlabError:
            return DigitlabError(f"{where}: not_a_digit field {field!r} must be {expected}; the card is damaged")

        if not isinstance(doc, dict):
            raise bad("not_a_digit", "an object")
        if doc.get("file") != DETECTOR_FILE:
            raise bad("file", repr(DETECTOR_FILE))
        if not (isinstance(doc.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", doc["sha256"])):
            raise bad("sha256", "64 lowercase hex digits")
        for name in ("threshold", "digits_flagged", "nondigits_flagged", "unlike_from"):
            value = doc.get(name)
            if (name != "unlike_from" or value is not None) and (
                    type(value) not in (int, float) or not (math.isfinite(value) and 0.0 <= value <= 1.0)):
                raise bad(name, "a number from 0 to 1")
        for name in ("n_digits", "n_nondigits"):
            if type(doc.get(name)) is not int or doc[name] < 0:
                raise bad(name, "a non-negative integer")
        return cls(**{name: doc.get(name) for name in cls.__dataclass_fields__})


MIN_HELD_DIGITS = math.ceil(1 / FLAG_RATE)
"""Fewer held-out digits than this and a threshold that flags :data:`FLAG_RATE` of them means nothing: no detector."""


def fit_detector(dataset: Dataset, model: Any, held: "HeldOut | None" = None, *, temperature: float = 1.0,
                 seed: int = 42, n_nondigits: int | None = None) -> NotDigitDetector | None:
    """Train a digit-or-not detector for ``model``, a classifier of ``dataset``'s images (MLP cached: :func:`_fit_mlp`).

    Parameters
    ----------
    dataset : Dataset
        Its training digits (up to :data:`MAX_DIGITS`) are the "digit" class; its image shape and
        pixel maximum set the form the non-digits are prepared in.
    model : estimator
        The fitted classifier; its probabilities (after ``temperature``) are the second input of the score.
    held : HeldOut, optional
        The classifier's predictions on images it did not train on (:func:`digitlab.train.held_out_predictions`):
        the score's weights and threshold are fitted on them (a fifth of them when they are out-of-fold,
        the rest teaching the MLP). Without, a fifth of the training digits is held out of the MLP and the
        classifier's own answers on them are used.
    temperature : float
        The classifier's calibration temperature.
    seed : int
        Seed of the digit subset, the held-out split and the network's initial weights.
    n_nondigits : int, optional
        How many non-digit pictures (default: as many as digits), the same each run (:func:`nondigit_images`).

    Returns
    -------
    NotDigitDetector or None
        None when too few digits would be held out to set the threshold (:data:`MIN_HELD_DIGITS`).
    """
    from sklearn.linear_model import LogisticRegression

    from digitlab.calibrate import apply_temperature
    from digitlab.preprocess import to_features

    rng, pixel_max = np.random.default_rng(seed), dataset.pixel_max
    digits, held_images, held_proba = _split_digits(dataset, model, held, rng)
    if len(held_images) < MIN_HELD_DIGITS:
        return None
    if len(digits) > MAX_DIGITS:
        digits = digits[np.sort(rng.choice(len(digits), MAX_DIGITS, replace=False))]
    others = to_features(nondigit_images(n_nondigits or len(digits), dataset.image_shape, pixel_max), pixel_max)
    held_others = _held_out_mask(len(others), rng)
    plain = _fit_mlp(to_features(digits, pixel_max), others[~held_others], seed)
    x_held = to_features(held_images, pixel_max)
    inputs = np.r_[
        np.c_[plain.logits(x_held), entropy(apply_temperature(held_proba, temperature))],
        np.c_[plain.logits(others[held_others]), entropy(apply_temperature(_proba(model, others[held_others]), temperature))],
    ]
    is_other = np.r_[np.zeros(len(x_held), int), np.ones(held_others.sum(), int)]
    stacker = LogisticRegression(class_weight="balanced").fit(inputs, is_other)
    stack = np.r_[stacker.coef_[0], stacker.intercept_]
    scores = stacker.predict_proba(inputs)[:, 1]  # the same sigmoid(a·logit + b·entropy + c) the detector computes
    digit_scores, other_scores = scores[is_other == 0], scores[is_other == 1]
    threshold = float(np.quantile(digit_scores, 1.0 - FLAG_RATE, method="higher"))
    return NotDigitDetector(
        plain.weights, plain.biases, stack, threshold,
        digits_flagged=float((digit_scores > threshold).mean()),
        nondigits_flagged=float((other_scores > threshold).mean()),
        n_digits=len(digits), n_nondigits=int((~held_others).sum()),
        unlike_from=min(threshold, float(np.quantile(digit_scores, 1.0 - UNLIKE_RATE, method="higher"))),
    )


def _split_digits(dataset: Dataset, model: Any, held: "HeldOut | None",
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digits that teach the MLP, and the held-out ones (with the classifier's probabilities) that judge it."""
    from digitlab.preprocess import to_features

    digits = dataset.train_images
    if held is not None and not held.out_of_fold:  # the classifier never saw them: all of them judge the score
        return digits, held.images, held.proba
    mask = _held_out_mask(len(digits), rng)
    held_images = digits[mask]
    held_proba = held.proba[mask] if held is not None else _proba(model, to_features(held_images, dataset.pixel_max))
    return digits[~mask], held_images, held_proba


def _fit_mlp(digits: np.ndarray, others: np.ndarray, seed: int) -> NotDigitDetector:
    """The MLP on pixel features (digits 0, non-digits 1), as a detector whose score is its plain sigmoid.

    The same inputs and settings give the same network, and it does not depend on the classifier, so it is
    kept in the data cache (:func:`mlp_cache_path`): another run on the same digits with the same seed, of
    any model, reads it back instead of fitting it again (10-13 s on MNIST with two cores).
    """
    from sklearn.neural_network import MLPClassifier

    x = np.concatenate([digits, others])
    y = np.r_[np.zeros(len(digits), int), np.ones(len(others), int)]
    mlp = MLPClassifier((HIDDEN,), early_stopping=True, n_iter_no_change=PATIENCE, random_state=seed)
    path = mlp_cache_path(x, y, mlp)
    plain = _read_mlp(path, x.shape[1])
    if plain is None:
        mlp.fit(x, y)
        plain = NotDigitDetector(tuple(w.astype(np.float32) for w in mlp.coefs_),
                                 tuple(b.astype(np.float32) for b in mlp.intercepts_), np.array([1.0, 0.0, 0.0]), 1.0)
        from safetensors.numpy import save

        keep_in_cache(path, save(plain.to_tensors()))
    return plain


def mlp_cache_path(x: np.ndarray, y: np.ndarray, mlp: Any) -> Path:
    """Where the detector's MLP fitted on exactly ``x``, ``y`` with ``mlp``'s settings is kept.

    The name is a hash of the arrays (bytes, dtype, shape), every setting (``get_params``, the seed
    included), scikit-learn's and NumPy's versions, the BLAS libraries' thread counts and
    :data:`MLP_CACHE_VERSION`: a change to any of them is a new file, never a stale network. The threads
    count because the fit's sums come out a few ulps apart with one BLAS thread or two: without them, a
    run read whatever network the first process to fit it wrote (1-thread test workers against a 2-thread
    shell), and its threshold differed from a fresh fit's in the 8th digit.
    """
    import hashlib

    import sklearn
    from threadpoolctl import threadpool_info

    key = hashlib.blake2b(digest_size=20)
    for part in (np.ascontiguousarray(x), np.ascontiguousarray(y)):
        key.update(f"{part.dtype.str}{part.shape}".encode())
        key.update(part.data)
    settings = sorted(mlp.get_params().items())
    threads = sorted((pool["internal_api"], pool["num_threads"]) for pool in threadpool_info()
                     if pool["user_api"] == "blas")
    key.update(f"{settings} {sklearn.__version__} {np.__version__} {threads} {MLP_CACHE_VERSION}".encode())
    return made_folder("detectors") / f"mlp-{key.hexdigest()}.safetensors"


def _read_mlp(path: Path, n_features: int) -> NotDigitDetector | None:
    """The cached MLP, or None when there is none or it does not read back whole (then it is fitted again)."""
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
        if any(t.dtype.kind != "f" for t in tensors.values()):
            return None
        detector = NotDigitDetector.from_tensors(tensors, 1.0, n_features, str(path))
    except Exception:  # a cache: whatever does not read back (OSError, SafetensorError, TypeError...) is refitted
        return None
    mark_used(path)
    return detector


def entropy(proba: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of probabilities: 0 when sure of one class, log(10) when all are equal.

    Examples
    --------
    >>> entropy(np.array([[1.0, 0.0], [0.5, 0.5]])).round(3).tolist()
    [0.0, 0.693]
    """
    proba = np.asarray(proba, dtype=np.float64)
    return 0.0 - (proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1)  # 0.0 - x: no "-0.0" for a sure row


def _proba(model: Any, features: np.ndarray) -> np.ndarray:
    """The classifier's probabilities, or its answers as one-hot rows for a model without them."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(features))
    answers = np.asarray(model.predict(features))
    return (answers[:, None] == np.unique(answers)[None, :]).astype(float)


def _held_out_mask(n: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, max(1, round(n * HELD_OUT)), replace=False)] = True
    return mask


def nondigit_images(n: int, image_shape: tuple[int, int], pixel_max: int, *, split: str = "train",
                    seed: int = NONDIGIT_SEED) -> np.ndarray:
    """``n`` non-digits of ``split`` in the given form, drawn once and then read from the data cache.

    The pictures depend only on the arguments (system fonts are not used, so every machine draws
    the same ones); the cache file is written atomically, so two runs drawing at once both end with
    a whole file. Their kinds are ``make_nondigits(n, seed=seed, split=split)[1]``. They are drawn in a
    process per core this process may use (up to :data:`MAX_WORKERS`): 20,000 of them took 25.7 s in one on
    2 cores, 14.5 s in two (``benchmarks/bench_nondigits.py``, medians).
    """
    from digitlab.data.nondigits import make_nondigits

    name = f"v{NONDIGITS_VERSION}-{split}-{seed}-{n}-{image_shape[0]}x{image_shape[1]}-{pixel_max}.npy"
    path = made_folder("nondigits") / name
    try:
        images = np.load(path, allow_pickle=False)
        if images.shape == (n, *image_shape) and images.dtype == np.uint8:
            mark_used(path)
            return images
    except (OSError, ValueError):
        pass
    images, _ = make_nondigits(n, seed=seed, split=split, system_fonts=False,
                               image_shape=image_shape, pixel_max=pixel_max, workers=draw_workers())
    buffer = io.BytesIO()
    np.save(buffer, images, allow_pickle=False)
    keep_in_cache(path, buffer.getvalue())
    return images


def draw_workers() -> int:
    """Processes that draw the non-digits: the cores this process may run on (:func:`digitlab.cores.usable_cores`),
    at most :data:`MAX_WORKERS`."""
    from digitlab.cores import usable_cores

    return min(MAX_WORKERS, usable_cores())


def detector_path(folder: Path) -> Path:
    """Where a run folder keeps its detector."""
    return Path(folder) / DETECTOR_FILE
