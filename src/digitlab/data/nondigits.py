"""Pictures that are not one digit, made offline from a seed: the data for "that's not a digit".

:func:`make_nondigits` draws each picture as a person would draw it -- dark ink on white paper,
112×112 -- and then sends it through :func:`~digitlab.data.images.prepare_digit`, the very step a
person's drawing goes through, so the result is in MNIST form (light ink 0..255 on black, 28×28,
the ink's longer side 20 px, its centre of mass at the centre). Eight kinds:

``letter``
    A Latin letter rendered from a TrueType font, at a random size, weight (stroke width), slant
    and position. Letters that a reader could take for a digit are never drawn; see
    :data:`LOOKALIKE_LETTERS`.
``symbol``
    A typed symbol (``+ # % = $ ? ÷ ± €`` ...) or a drawn one: a face, an arrow (near-horizontal
    only; an upright arrow is a 1 with a hat), a star, a heart.
``scribble``
    One to four smooth random strokes, 12-18 turns in all, crossing themselves and each other
    at least five times, laid on their side when taller than wide (a tall tangle can pass for
    an 8): a tangle, never a lone curve that could be a 2, 6, 7 or 9.
``shape``
    Geometric figures: filled boxes, boxes with diagonals, triangles, discs, crosses, spirals,
    grids, hatching (train); checkerboards, nested squares, zigzags, blobs, waves (test).
``noise``
    Blank-ish paper: sparse salt, faint smudges, a few dots (and scratches in the test part).
    The preparation stretches whatever ink there is, as it would for a person's near-blank page.
``pair``
    Two digits side by side, typed ("47") or two of scikit-learn's bundled 8×8 handwritten
    digits enlarged: a picture of two digits is not one digit.
``shade``
    Empty paper under uneven light (:mod:`digitlab.data.paper`): a shadow's edge, hard or spread
    into a gradient, which the preparation stretches into a solid block (a gradient read as a
    confident 1 before this kind was drawn). Train: straight edges; test: round shadows,
    vignettes and out-of-focus photos.
``written``
    A Latin letter written with a round pen (:mod:`digitlab.data.written`): a person trying the
    page with a letter writes it. Every letter that is no digit's lookalike, in two hands.

The ``"test"`` part is kept unseen by the ``"train"`` part in every kind, so that a threshold
chosen on ``"train"`` is measured on pictures it has never met:

- fonts: train uses sans-serif and monospaced faces (matplotlib's DejaVu Sans, DejaVu Sans
  Mono, Computer Modern Sans and Typewriter, plus any font under ``/usr/share/fonts`` whose
  file name does not say serif or math); test uses only serif faces shipped inside matplotlib
  (DejaVu Serif, STIX General, Computer Modern Roman / Italic / Bold), so the test part is the
  same on every machine and never shares a font file with train (:func:`font_files`);
- typed letters: the same letters (:data:`LETTERS`) in other fonts; typed symbols: disjoint sets (:data:`SYMBOLS`);
- written letters: the same letters in another hand (other shapes), not other letters;
- drawn symbols: train draws smiling faces, single arrows, five-pointed stars and hearts; test
  draws frowning, winking and surprised faces, double arrows, six- to eight-pointed stars and
  hearts;
- shapes: disjoint sets of figures (listed above); noise: test adds scratches; shade: straight
  edges for train, curved edges and blurred photos for test;
- pairs: typed in the split's own fonts; handwritten 8×8 digits from even indices of
  scikit-learn's set for train, odd for test;
- every picture's random numbers come from ``(seed, split, kind, index)``, so the two parts
  never share a stream, and a picture does not change when ``n`` or ``kinds`` change its
  neighbours (only its place in the shuffled order does).

Fonts are found offline: matplotlib ships its TrueType files inside the package
(``matplotlib.get_data_path()/fonts/ttf``), so every machine with digitlab installed has them.
Fonts under ``/usr/share/fonts`` add variety to the train part where they exist; pass
``system_fonts=False`` for a train part that is the same on every machine.

Examples
--------
>>> images, kinds = make_nondigits(12, seed=0)
>>> images.shape, images.dtype, sorted(set(kinds)) == sorted(ALL_KINDS)
((12, 28, 28), dtype('uint8'), True)
>>> again, _ = make_nondigits(12, seed=0)
>>> bool((images == again).all())
True
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np

from digitlab.data import paper
from digitlab.data.doodles import CANVAS, DRAWERS, LETTERS, LOOKALIKE_LETTERS, SYMBOLS
from digitlab.data.fonts import fonts
from digitlab.data.images import prepare_digit
from digitlab.data.written import written_letter
from digitlab.errors import DigitlabError, InvalidValueError

__all__ = ["ALL_KINDS", "CANVAS", "SPLITS", "LOOKALIKE_LETTERS", "LETTERS", "SYMBOLS", "make_nondigits",
           "nondigit_kinds", "font_files"]

ALL_KINDS: tuple[str, ...] = ("letter", "symbol", "scribble", "shape", "noise", "pair", "shade", "written")
"""Every kind of non-digit :func:`make_nondigits` draws."""

SPLITS: tuple[str, ...] = ("train", "test")
_MAX_TRIES = 50
PER_WORKER = 1_000
"""Pictures per worker process at least: a worker takes about a second to start (scikit-learn's import, for
the pairs' handwritten digits), as long as some 600 pictures take to draw."""
_DRAWERS = {**DRAWERS, "noise": paper.noise, "shade": paper.shade, "written": written_letter}


# ---------------------------------------------------------------------------------------------
# The public function


def make_nondigits(
    n: int,
    *,
    seed: int,
    kinds: tuple[str, ...] = ALL_KINDS,
    split: str = "train",
    system_fonts: bool = True,
    image_shape: tuple[int, int] = (28, 28),
    pixel_max: int = 255,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` pictures that are not one digit, in MNIST form (or another dataset's).

    Parameters
    ----------
    n : int
        How many pictures; shared out among ``kinds`` as evenly as possible (the first kinds
        get one more when ``n`` does not divide), then shuffled.
    seed : int
        Non-negative; the same seed, split and arguments give identical arrays.
    kinds : tuple of str
        Any of :data:`ALL_KINDS`.
    split : {"train", "test"}
        Which part: the test part uses other fonts, letters, symbols, figures and random
        streams than the train part (see the module's notes), so it stays unseen.
    system_fonts : bool
        Let the train part also use fonts under ``/usr/share/fonts`` (ignored for test).
    image_shape, pixel_max
        The form to prepare each picture in, as :func:`~digitlab.data.images.prepare_digit` takes
        them: ``(28, 28), 255`` for MNIST, ``(8, 8), 16`` for scikit-learn's 8×8 digits.
    workers : int
        Processes to draw in, at most one per :data:`PER_WORKER` pictures (:func:`_in_workers`). Each picture
        has its own random stream, so the pictures are the same for any number.

    Returns
    -------
    images : ndarray of uint8, shape (n, *image_shape)
        Light ink (max ``pixel_max``) on black, prepared by :func:`~digitlab.data.images.prepare_digit`.
    kinds : ndarray of str, shape (n,)
        The kind of each picture.

    Examples
    --------
    >>> images, kinds = make_nondigits(6, seed=1, kinds=("letter", "shape"), split="test")
    >>> images.shape, sorted(set(kinds.tolist()))
    ((6, 28, 28), ['letter', 'shape'])
    >>> small, _ = make_nondigits(2, seed=1, image_shape=(8, 8), pixel_max=16)
    >>> small.shape, int(small.max())
    ((2, 8, 8), 16)
    """
    n, seed, kinds = _check(n, seed, kinds, split)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InvalidValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    spec = {"n": n, "seed": seed, "kinds": list(kinds), "split": split, "system_fonts": bool(system_fonts),
            "image_shape": [int(side) for side in image_shape], "pixel_max": int(pixel_max)}  # JSON for the workers
    images = _in_workers(spec, min(int(workers), n // PER_WORKER)) if workers > 1 else None
    if images is None:
        images = _draw(spec, part=0, parts=1)
    order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(n)
    return images[order], nondigit_kinds(n, seed=seed, kinds=kinds, split=split)


def nondigit_kinds(n: int, *, seed: int, kinds: tuple[str, ...] = ALL_KINDS, split: str = "train") -> np.ndarray:
    """The kinds :func:`make_nondigits` returns for the same arguments, without drawing anything.

    Examples
    --------
    >>> nondigit_kinds(12, seed=0).tolist() == make_nondigits(12, seed=0)[1].tolist()
    True
    """
    n, seed, kinds = _check(n, seed, kinds, split)
    labels = np.repeat(np.array(kinds, dtype="<U8"), _counts(n, kinds))
    return labels[np.random.default_rng([seed, SPLITS.index(split)]).permutation(n)]


def _counts(n: int, kinds: tuple[str, ...]) -> list[int]:
    """``n`` shared among ``kinds`` as evenly as possible, the first kinds one more when it does not divide."""
    return [n // len(kinds) + (i < n % len(kinds)) for i in range(len(kinds))]


def font_files(split: str, *, system_fonts: bool = True) -> tuple[Path, ...]:
    """The TrueType files the ``split`` part renders letters and typed pairs from.

    Examples
    --------
    >>> sorted(p.name for p in font_files("test"))[:3]
    ['DejaVuSerif-Bold.ttf', 'DejaVuSerif-BoldItalic.ttf', 'DejaVuSerif-Italic.ttf']
    >>> set(font_files("train")) & set(font_files("test"))
    set()
    """
    if split not in SPLITS:
        raise InvalidValueError(f"split must be 'train' or 'test', got {split!r}")
    return fonts(split, symbols=False, system=system_fonts)


def _check(n: object, seed: object, kinds: object, split: object) -> tuple[int, int, tuple[str, ...]]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)  # type: ignore[arg-type]
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise InvalidValueError(f"kinds must be distinct names from {', '.join(ALL_KINDS)}; got {kinds!r}")
    if split not in SPLITS:
        raise InvalidValueError(f"split must be 'train' or 'test', got {split!r}")
    return int(n), int(seed), kinds


def _draw(spec: dict, *, part: int, parts: int) -> np.ndarray:
    """Every ``parts``-th of the pictures ``spec`` (:func:`make_nondigits`'s arguments) names, from ``part`` on,
    in the order of the kinds, unshuffled."""
    kinds, split = spec["kinds"], spec["split"]
    jobs = [(kind, index) for kind, count in zip(kinds, _counts(spec["n"], kinds)) for index in range(count)]
    jobs = jobs[part::parts]
    images = np.empty((len(jobs), *spec["image_shape"]), dtype=np.uint8)
    for at, (kind, index) in enumerate(jobs):
        rng = np.random.default_rng([spec["seed"], SPLITS.index(split), ALL_KINDS.index(kind), index])
        images[at] = _prepared(_DRAWERS[kind], rng, split, spec["system_fonts"], tuple(spec["image_shape"]),
                               spec["pixel_max"])
    return images


def _in_workers(spec: dict, workers: int) -> np.ndarray | None:
    """The pictures :func:`_draw` gives for ``spec``, drawn by ``workers`` Python processes at once, or None.

    Each worker is this Python running :data:`_WORKER` with ``SPEC PART PARTS CALLER``: it imports this very digitlab
    (the files this process runs, wherever they lie; the current folder is not searched, ``-P``, so a learner's own
    ``json.py`` is not imported) and writes its part as a ``.npy`` to its standard output. They are plain
    subprocesses rather than :mod:`multiprocessing`'s, which would run the caller's own script again in each (a
    learner's script without ``if __name__ == "__main__"`` included), or fork a process whose PyTorch threads may
    hold locks. None (draw them here, the same pictures) when a worker cannot start or fails, or in an app bundled
    without a Python to start (PyInstaller's ``sys.frozen``). Ctrl+C stops the workers quietly; a worker whose
    caller is killed outright stops within a second (:func:`_worker`).
    """
    import json
    import os
    import subprocess
    import sys

    if workers < 2 or getattr(sys, "frozen", False) or not sys.executable:
        return None  # a bundled app's executable is no Python to start
    package = str(Path(__file__).resolve().parents[1])  # this digitlab's folder
    command = [sys.executable, "-P", "-c", _WORKER, package, json.dumps(spec)]
    procs: list[subprocess.Popen] = []
    try:
        for part in range(workers):
            procs.append(subprocess.Popen([*command, str(part), str(workers), str(os.getpid())],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        outputs = [proc.communicate()[0] for proc in procs]
        if any(proc.returncode for proc in procs):
            return None
        images = np.empty((spec["n"], *spec["image_shape"]), dtype=np.uint8)
        for part, out in enumerate(outputs):
            images[part::workers] = np.load(io.BytesIO(out), allow_pickle=False)
        return images
    except Exception:  # noqa: BLE001 -- whatever went wrong in the workers, the same pictures are drawn here
        return None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


_WORKER = """import importlib.util, sys
folder = sys.argv[1]
spec = importlib.util.spec_from_file_location("digitlab", folder + "/__init__.py", submodule_search_locations=[folder])
sys.modules["digitlab"] = package = importlib.util.module_from_spec(spec)
spec.loader.exec_module(package)
from digitlab.data.nondigits import _worker
sys.exit(_worker(sys.argv[2:]))
"""
"""What a worker of :func:`_in_workers` runs (``python -P -c``): the caller's own digitlab, then :func:`_worker`."""


def _prepared(draw: Callable, rng: np.random.Generator, split: str, system: bool,
              image_shape: tuple[int, int], pixel_max: int) -> np.ndarray:
    """Draw until the preparation finds ink (a near-blank noise page can be refused), then prepare."""
    for _ in range(_MAX_TRIES):
        picture = draw(rng, split, system)
        try:
            return prepare_digit(np.asarray(picture), image_shape, pixel_max)
        except DigitlabError:
            continue
    raise RuntimeError(f"{draw.__name__} drew {_MAX_TRIES} blank pictures in a row")  # a bug, not bad input


def _worker(argv: list[str]) -> int:
    """A worker of :func:`_in_workers`: draw its part, write it to standard output as a ``.npy``.

    It stops (exit 1) within a second of its caller's end, should the caller be killed before it can stop it. The
    caller names itself (``argv[3]``): a caller killed while the worker was still importing has already handed it
    to another parent, which the worker must not take for its caller.
    """
    import json
    import os
    import sys
    import threading
    import time

    caller = int(argv[3]) if len(argv) > 3 else os.getppid()

    def watch() -> None:
        while os.getppid() == caller:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    try:
        spec, part, parts = json.loads(argv[0]), int(argv[1]), int(argv[2])
        buffer = io.BytesIO()
        np.save(buffer, _draw(spec, part=part, parts=parts), allow_pickle=False)
        sys.stdout.buffer.write(buffer.getvalue())
    except KeyboardInterrupt:  # Ctrl+C reaches the whole terminal's process group; the caller handles it
        return 130
    return 0
