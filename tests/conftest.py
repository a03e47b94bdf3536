"""Shared fixtures: a digitlab command runner and a fast trained run; PNGs written chunk by chunk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# Rich reads these when a console is made, and digitlab makes its own at import: 200 columns, so that no long line
# wraps, and never a terminal's colours, for every command a test runs, here or in a process of its own
os.environ["COLUMNS"] = "200"
os.environ["TTY_COMPATIBLE"] = "0"
# a fixed thread count (as `make test` sets it), so that a seed's CNN repeats to the bit whatever else runs:
# without it digitlab.cores fits the threads to the free cores, and `pytest -n 2`'s other worker is a busy program
os.environ.setdefault("OMP_NUM_THREADS", "1")
# what serves, or starts worker processes whose output goes straight to the process's own stdout and stderr
OWN_PROCESS = {"serve", "sweep"}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
            input: str | None = None, process: bool = False) -> subprocess.CompletedProcess:
    """Run the real ``digitlab`` command line and capture its exit code and output; ``input``: its stdin.

    Most commands run in this test's process, through the function the entry point calls
    (``digitlab.cli.run_command_line``), their output and warnings captured by Click's ``CliRunner``. A fresh
    Python that imports scikit-learn and Matplotlib costs 3-5 s a command: tests/test_cli.py took 183 s with a
    process per command and takes 47 s so. ``python -m digitlab`` itself runs, with ``timeout``, for ``serve``
    and ``sweep``, for ``process=True`` (what only a real process shows: its exit code, start-up, imports), and
    for every call when ``$DIGITLAB_TEST_PROCESSES=1``.
    """
    if process or args[0] in OWN_PROCESS or os.environ.get("DIGITLAB_TEST_PROCESSES") == "1":
        return subprocess.run([sys.executable, "-m", "digitlab", *args], cwd=cwd, env={**os.environ, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, input=input)
    return _run_here(list(args), cwd, env or {}, input)


def run_read_only(folder: Path, *args: str, env: dict | None = None, timeout: float = 120,
                  code: str | None = None) -> subprocess.CompletedProcess:
    """``python -m digitlab ARGS`` (or ``python -c CODE ARGS``) with ``folder`` truly read-only, as on a school's
    share: as root (whom no file mode stops) through a read-only bind mount in a mount namespace of the command's
    own (it goes with the process); otherwise by taking away the write permission, put back after."""
    command = [sys.executable, *(["-c", code] if code else ["-m", "digitlab"]), *args]
    if os.geteuid() == 0 and (shutil.which("unshare") is None
                              or subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode):
        pytest.skip("as root without CAP_SYS_ADMIN (a default Docker container) no folder can be made read-only")
    if os.geteuid() == 0:
        mount = f'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(folder), *command]
    else:
        modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")] if path.is_dir()}
        for path in modes:
            path.chmod(modes[path] & ~0o222)
    try:
        return subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        if os.geteuid() != 0:
            for path, mode in modes.items():
                path.chmod(mode)


def _run_here(args: list[str], cwd: Path | None, env: dict, input: str | None) -> subprocess.CompletedProcess:
    import traceback
    import warnings

    from click.testing import CliRunner

    from digitlab import cli

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with CliRunner().isolation(input=input, env=env) as (out, err, _), warnings.catch_warnings():
            _python_warnings()
            try:
                code = cli.run_command_line(args, prog_name="python -m digitlab")
            except BaseException:  # what a real process would print before it dies with 1
                traceback.print_exc()
                code = 1
            if isinstance(code, str):  # sys.exit("message")
                print(code, file=sys.stderr)
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    finally:
        os.chdir(saved_cwd)
        for key in set(os.environ) - set(saved_env):  # only what changed: other threads may be reading it
            del os.environ[key]
        for key, value in saved_env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
    return subprocess.CompletedProcess([sys.executable, "-m", "digitlab", *args], code or 0, stdout, stderr)


def _python_warnings() -> None:
    """Warnings as a new Python process has them: its default filters, each shown once on (captured) stderr."""
    import warnings

    warnings.resetwarnings()
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.filterwarnings("ignore", category=category, append=True)
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
        warnings.formatwarning(message, category, filename, lineno, line))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and the CRC of type and body."""
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def png_file(width: int, height: int, stream: bytes, ihdr_tail: bytes = b"\x08\x00\x00\x00\x00",
             after: bytes = b"") -> bytes:
    """A PNG with ``stream`` as its one IDAT (``after`` between it and IEND); 8-bit grey unless ``ihdr_tail`` says."""
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + ihdr_tail
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", stream) + after
            + png_chunk(b"IEND", b""))


def header_only_png(width: int, height: int, rows: bytes = b"\x00" * 64) -> bytes:
    """A 1-bit grey PNG that claims ``width``×``height`` (a decompression bomb's header), with ``rows`` as its data."""
    return png_file(width, height, zlib.compress(rows), bytes([1, 0, 0, 0, 0]))


def seven_png() -> bytes:
    """A drawn 7, black on white, as a PNG: a picture to predict, import or save."""
    import io

    from PIL import Image, ImageDraw

    picture = Image.new("L", (80, 80), 255)
    ImageDraw.Draw(picture).line([(15, 12), (65, 12), (30, 70)], fill=0, width=8)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def lesson_run(tmp_path_factory):
    """One run of the lesson's pipeline (digits, logreg, seed 42), shared by the tests that only read it."""
    from digitlab.pipeline import run_pipeline

    return run_pipeline("digits", "logreg", out=tmp_path_factory.mktemp("runs"))


def mnist_source() -> Path | None:
    """The folder with the four real MNIST files: $DIGITLAB_MNIST_SOURCE, else ../shared/data/mnist."""
    env = os.environ.get("DIGITLAB_MNIST_SOURCE")
    folder = Path(env) if env else REPO.parent / "shared" / "data" / "mnist"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def real_mnist(tmp_path_factory):
    """Real MNIST fetched (with checksums) into a private cache, $DIGITLAB_DATA pointing at it."""
    source = mnist_source()
    if source is None:
        pytest.skip("the real MNIST files are absent (set $DIGITLAB_MNIST_SOURCE or provide ../shared/data/mnist)")
    from digitlab.data.mnist import fetch_mnist

    cache_root = tmp_path_factory.mktemp("digitlab-data")
    fetch_mnist(source, cache=cache_root / "mnist", log=lambda line: None)
    with pytest.MonkeyPatch.context() as patch:  # set for the session, put back after it
        patch.setenv("DIGITLAB_DATA", str(cache_root))
        yield cache_root


@pytest.fixture(scope="session")
def mnist_reader(real_mnist):
    """A logistic regression on 3,000 real MNIST training images, its card, and the dataset (all 10,000 test
    images): for reading numbers made of MNIST test digits."""
    from digitlab.card import ModelCard
    from digitlab.data import load_dataset
    from digitlab.train import train

    dataset = load_dataset("mnist", limit=3000)
    model = train("logreg", dataset, params={"max_iter": 200}).model
    card = ModelCard(id="logreg-mnist-read", model="logreg", dataset="mnist", image_shape=(28, 28), pixel_max=255)
    return model, card, dataset


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright, one per module of browser tests (``test_browser._chromium`` installs
    it with apt when missing; Playwright's own browser download is not used)."""
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    from test_browser import CHROMIUM_ARGS, _chromium

    executable = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def class_set(data: Path, writers: int = 2, per_digit: int = 6) -> None:
    """A small handwriting set "class" by the first ``writers`` synthetic writers, in the data folder ``data`` (a
    cache of its own: a sweep's or torchrun's other "machines" may lack it); $DIGITLAB_DATA put back after."""
    from digitlab.data.handwriting import HandwritingSet
    from digitlab.data.writers import WRITERS, writer_samples

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DIGITLAB_DATA", str(data))
        store = HandwritingSet.open("class", create=True)
        for w in WRITERS[:writers]:
            samples = writer_samples(w, per_digit=per_digit, seed=0)
            for picture, label, image in zip(samples.pictures, samples.labels, samples.images):
                store.add(picture, int(label), writer=w.name, prepared=image)
