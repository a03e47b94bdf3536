"""The command line in the shells people have: closed streams, an ASCII terminal, ``COLUMNS=0``, ``FORCE_COLOR``
(a shell-environment audit found each ending in a traceback, in silence, or in JSON no parser could read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli


def _shell(command: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m digitlab`` in a shell line (``>&-`` closes a stream as a daemon's wrapper does)."""
    return subprocess.run(["bash", "-c", command.replace("digitlab", f"{sys.executable} -m digitlab", 1)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_columns_zero_still_prints_the_answer_and_the_error(lesson_run):
    said = run_cli("evaluate", "--model", str(lesson_run.folder), env={"COLUMNS": "0"}, process=True)
    assert said.returncode == 0 and "accuracy 96.67%" in said.stdout, said  # it printed nothing at all
    refused = run_cli("run", "--model", "nosuch", env={"COLUMNS": "0"}, process=True)
    assert refused.returncode == 2 and "unknown model 'nosuch'" in refused.stderr, refused


def test_an_ascii_terminal_gets_escapes_not_a_traceback(lesson_run):
    said = run_cli("evaluate", "--model", str(lesson_run.folder), env={"PYTHONIOENCODING": "ascii"}, process=True)
    assert said.returncode == 0 and "Traceback" not in said.stderr, said.stderr  # exit 1 read as "metrics differ"
    assert "94.26% \\u2013 98.08%" in said.stdout and "Matches the run's metrics.json exactly" in said.stdout


@pytest.mark.parametrize("closed", [">&-", "2>&-"])
def test_a_closed_stream_is_no_failure(lesson_run, closed):
    done = _shell(f"digitlab evaluate --model '{lesson_run.folder}' {closed}")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done  # the work done, then exit 1


def test_json_stays_json_when_colour_is_forced(lesson_run):
    forced = {"FORCE_COLOR": "1", "TERM": "xterm", "TTY_COMPATIBLE": ""}  # conftest's TTY_COMPATIBLE=0 hid it
    done = run_cli("evaluate", "--model", str(lesson_run.folder), "--json", env=forced, process=True)
    assert done.returncode == 0 and json.loads(done.stdout)["matches"] is True, done.stdout[:200]  # spinner frames
