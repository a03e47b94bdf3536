"""Shared fixtures: a digitlab command runner and a fast trained run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``digitlab`` command (``python -m digitlab``) and capture its output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "digitlab", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def lesson_run(tmp_path_factory):
    """One run of the lesson's pipeline (digits, logreg, seed 42), shared by the tests that only read it."""
    from digitlab.pipeline import run_pipeline

    return run_pipeline("digits", "logreg", out=tmp_path_factory.mktemp("runs"))
