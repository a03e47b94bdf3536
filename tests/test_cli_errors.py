"""Errors from the operating system reach a person as one line and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import pytest

from digitlab.cli import describe_os_error

FAIL_WRITING = textwrap.dedent("""
    import errno, sys
    import digitlab.report
    def full_disk(*args, **kwargs):
        raise OSError(errno.{name}, "raw message", "runs/20260101T000000Z-digits-logreg/report.html")
    digitlab.report.write_text_atomic = full_disk
    from digitlab.cli import main
    sys.argv = ["digitlab", "run", "--out", sys.argv[1]]
    main()
""")


@pytest.mark.parametrize("name, says", [
    ("ENOSPC", "the disk is full; free some space or choose another folder (--out)"),
    ("EROFS", "the file system is read-only"),
    ("EACCES", "permission denied"),
])
def test_an_os_error_during_a_run_is_one_line(tmp_path, name, says):
    result = subprocess.run([sys.executable, "-c", FAIL_WRITING.format(name=name), str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and says in lines[0] and "report.html" in lines[0]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == []  # nothing partial is left


def test_an_impossible_network_size_is_one_line(tmp_path):
    pytest.importorskip("torch")
    from conftest import run_cli

    result = run_cli("run", "--model", "cnn", "--param", "width=100000", "--limit", "100", "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "more memory than this machine has" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_describe_os_error_without_a_file():
    assert describe_os_error(OSError(errno.EMFILE, "Too many open files")) == (
        "too many open files; close some programs and try again")
    assert describe_os_error(OSError(errno.ENOTCONN, "Transport endpoint is not connected")) == (
        "transport endpoint is not connected")
