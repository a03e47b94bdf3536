"""Shared fixtures: a digitlab command runner and a fast trained run; PNGs written chunk by chunk."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real ``digitlab`` command (``python -m digitlab``) and capture its output; ``input``: its stdin."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "digitlab", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, input=input,
    )


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
