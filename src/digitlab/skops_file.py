"""skops files: the SVM, forest, k-NN and MLP models, whose learned state holds objects, not only arrays.

Loading refuses a file that is not a zip (a pickle in disguise), a zip bomb, and any type outside skops'
trusted set and :data:`TRUSTED_SKLEARN_TYPES`, before anything in the file is run; the decision trees of a
loaded forest are bounds-checked (:func:`check_trees`). :func:`skops_io` imports skops without the seconds
of PyTorch that scikit-learn's package walk would add.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from digitlab.errors import DigitlabError

# scikit-learn's own helper types that the zoo's models hold, beyond skops' default trusted set.
# They are plain data holders; anything else a skops file names is refused.
TRUSTED_SKLEARN_TYPES = frozenset({
    "sklearn.calibration._CalibratedClassifier",  # svm: the calibrated SVC
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # mlp
    "sklearn.tree._tree.Tree",  # forest
})

MAX_INFLATION = 100
"""A skops member may unpack to at most this many times its packed size (plus 1 MiB): skops stores
arrays uncompressed, so only a zip bomb comes near."""
MAX_UNPACKED_BYTES = 4 << 30


def dump(model: Any, path: Path) -> None:
    """Write ``model`` to ``path`` as a skops file, the same bytes for the same model (:func:`canonical`)."""
    Path(path).write_bytes(canonical(skops_io().dumps(model)))


def canonical(packed: bytes) -> bytes:
    """A skops file's bytes with what changes from one save to the next taken out: skops names each object by its
    Python ``id()`` (members ``140657884205904.npy``, ``"__id__"`` in ``schema.json``), and stamps each member with
    the time; a reproducibility audit found two identical models with two SHA-256s, so two model ids. Here the ids
    are numbered in order of first appearance (one object keeps one number, so skops' shared references hold) and
    every member dated 1980-01-01, zip's earliest.

    >>> import io, zipfile
    >>> def made(id_, when):
    ...     buffer = io.BytesIO()
    ...     with zipfile.ZipFile(buffer, "w") as archive:
    ...         archive.writestr(zipfile.ZipInfo("schema.json", when), f'{{"file": "{id_}.npy", "__id__": {id_}}}')
    ...         archive.writestr(zipfile.ZipInfo(f"{id_}.npy", when), b"array")
    ...     return buffer.getvalue()
    >>> first = canonical(made(140657884205904, (2026, 1, 2, 3, 4, 6)))
    >>> first == canonical(made(140657868121424, (2026, 5, 6, 0, 0, 0)))
    True
    >>> zipfile.ZipFile(io.BytesIO(first)).namelist()
    ['schema.json', '1.npy']
    """
    import io
    import re
    import zipfile

    numbers: dict[str, str] = {}

    def number(old: str) -> str:  # an object's id(), as its first appearance's place
        return numbers.setdefault(old, str(len(numbers) + 1))

    pattern = re.compile(r'("__id__": |"file": ")(\d+)(\.npy"|\b)')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(packed)) as source, zipfile.ZipFile(out, "w") as target:
        schema = pattern.sub(lambda m: m.group(1) + number(m.group(2)) + m.group(3),
                             source.read("schema.json").decode("utf-8"))
        for member in source.infolist():
            stem = member.filename.removesuffix(".npy")
            name = number(stem) + ".npy" if stem.isdigit() else member.filename
            data = schema.encode("utf-8") if member.filename == "schema.json" else source.read(member)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = member.compress_type, 0o644 << 16
            target.writestr(info, data)
    return out.getvalue()


def skops_io() -> Any:
    """``skops.io``, imported without importing PyTorch or Dask on the way.

    At import skops lists scikit-learn's estimators (``all_estimators``), which imports every scikit-learn
    package to look inside, and ``sklearn.externals.array_api_compat.torch`` imports PyTorch: 3 of the 8 s
    the import took on a 2-core Zen 3. The walk passes over a package that will not import, and it ignores
    ``externals`` anyway, so skops trusts the same types (a shorter list would only refuse more files).
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    skipped = [f"sklearn.externals.array_api_compat.{n}" for n in ("torch", "dask")]
    skipped = [name for name in skipped if name not in sys.modules]
    try:  # None in sys.modules: "this import fails" to Python's import system, for the import's length only
        sys.modules.update(dict.fromkeys(skipped))
        import skops.io
    finally:
        for name in skipped:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return skops.io


def load(weights: Path) -> Any:
    """The model in the skops file ``weights``, or one line saying why it is refused."""
    _check_zip_sizes(weights)  # before the seconds of importing skops: a pickle or zip bomb is refused at once
    sio = skops_io()
    try:
        untrusted = sio.get_untrusted_types(file=weights)
    except Exception as exc:  # skops raises several kinds on a malformed archive
        raise DigitlabError(f"{weights}: not a valid skops file ({exc.__class__.__name__})") from None
    refused = [name for name in untrusted if name not in TRUSTED_SKLEARN_TYPES]
    if refused:
        raise DigitlabError(
            f"{weights}: refusing to load types that are not trusted: {', '.join(refused)}"
        )
    try:
        return sio.load(weights, trusted=list(untrusted))
    except Exception as exc:
        raise DigitlabError(f"{weights}: could not load the model ({exc.__class__.__name__}: {exc})") from None


def _check_zip_sizes(weights: Path) -> None:
    """Refuse a file that is not a zip, or whose members would unpack far beyond their packed size.

    Reads only the zip's directory; Python's zipfile then stops any member at its declared size.
    """
    import zipfile

    if not zipfile.is_zipfile(weights):
        raise DigitlabError(f"{weights}: not a skops file (refusing to load it: it may be a pickle)")
    try:
        with zipfile.ZipFile(weights) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DigitlabError(f"{weights}: not a valid skops file ({exc.__class__.__name__})") from None
    for member in members:
        if member.file_size > MAX_INFLATION * member.compress_size + (1 << 20):
            raise DigitlabError(f"{weights}: member {member.filename!r} would unpack from "
                                f"{member.compress_size:,} to {member.file_size:,} bytes; refusing a zip bomb")
    if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
        raise DigitlabError(f"{weights}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; refusing it")


def check_trees(model: Any, weights: Path) -> None:
    """Bounds-check every decision tree's node arrays: scikit-learn follows them without checks at predict.

    skops does not trust ``sklearn.tree._tree.Tree`` by default for exactly this reason; digitlab trusts it
    only after this check.
    """
    import numpy as np

    estimators = [model, *getattr(model, "estimators_", [])]
    n_features = getattr(model, "n_features_in_", None)
    for estimator in estimators:
        tree = getattr(estimator, "tree_", None)
        if tree is None:
            continue
        n = int(tree.node_count)
        left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
        feature = np.asarray(tree.feature)
        leaf = left == -1
        sound = (
            len(left) == len(right) == len(feature) == n
            and np.array_equal(leaf, right == -1)
            and np.all((left[~leaf] > 0) & (left[~leaf] < n) & (right[~leaf] > 0) & (right[~leaf] < n))
            and (n_features is None or np.all((feature[~leaf] >= 0) & (feature[~leaf] < n_features)))
            and np.asarray(tree.value).shape[0] == n
        )
        if not sound:
            raise DigitlabError(f"{weights}: a decision tree in the file has node indices out of range; refusing it")
