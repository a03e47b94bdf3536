"""The command line in the shells people have: closed streams, an ASCII terminal, ``COLUMNS=0``, ``FORCE_COLOR``, a
quoted ``~``, a deleted working folder, a long file name
(a shell-environment audit found each ending in a traceback, in silence, or in JSON no parser could read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli


def _shell(command: str, cwd=None, **env: str) -> subprocess.CompletedProcess:
    """``python -m digitlab`` in a shell line (``>&-`` closes a stream as a daemon's wrapper does)."""
    return subprocess.run(["bash", "-c", command.replace("digitlab", f"{sys.executable} -m digitlab", 1)], cwd=cwd,
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


def test_a_long_legal_picture_name_is_saved_prepared_and_the_batch_goes_on(lesson_run, tmp_path):
    """A 246-character name (a file system takes 255) stopped `predict --save-prepared`'s whole batch: its temporary
    file's name, 28 characters longer, was too long."""
    from PIL import Image

    picture = Image.new("L", (64, 64), 255)
    picture.paste(0, (28, 8, 36, 56))
    long_name, short = tmp_path / ("a" * 246 + ".png"), tmp_path / "one.png"
    for path in (long_name, short):
        picture.save(path)
    done = run_cli("predict", "--model", str(lesson_run.folder), "--save-prepared", str(tmp_path / "prep"),
                   str(short), str(long_name), str(short), "--json")
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert len(answers) == 3 and all("error" not in answer for answer in answers)
    saved = sorted(path.name for path in (tmp_path / "prep").iterdir())
    assert len(saved) == 3 and max(len(name.encode()) for name in saved) <= 255 and saved[-1].endswith("-prepared.png")


def test_a_delete_with_stdin_closed_deletes_nothing_in_one_line(tmp_path):
    from conftest import class_set

    class_set(tmp_path / "data", writers=1, per_digit=1)
    done = _shell("digitlab data remove class --all <&-", DIGITLAB_DATA=str(tmp_path / "data"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr  # RuntimeError: lost sys.stdin
    assert "nothing was deleted" in done.stderr and (tmp_path / "data" / "handwriting" / "class").is_dir()


@pytest.mark.slow
def test_a_sweep_from_a_deleted_folder_says_so_in_one_line(tmp_path):
    pytest.importorskip("distributed")
    done = _shell(f"mkdir gone && cd gone && rmdir ../gone && digitlab sweep --models logreg --seeds 0 --workers 1 "
                  f"--out '{tmp_path / 'sweeps'}'", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-600:]  # 138 lines of Dask's
    assert "the current folder no longer exists" in done.stderr


def test_a_home_folder_typed_quoted_or_after_an_equals_sign_is_the_home_folder(lesson_run, tmp_path):
    home, here = tmp_path / "home", tmp_path / "here"
    here.mkdir()
    done = run_cli("data", "show", "digits", "--out=~/figures", cwd=here, env={"HOME": str(home)}, process=True)
    assert done.returncode == 0, done.stderr
    assert not (here / "~").exists() and any((home / "figures").iterdir())  # it made a folder named "~" here


def test_a_narrow_pane_shows_the_leaderboards_numbers_whole(tmp_path):
    done = run_cli("compare", "--models", "logreg,knn", "--out", str(tmp_path), env={"COLUMNS": "60"}, process=True)
    assert done.returncode == 0, done.stderr
    board = done.stdout[done.stdout.index("Leaderboard on"):done.stdout.index("McNemar")]
    assert "…" not in board, board  # "96.6…", "logr…"
    assert max(len(line) for line in board.splitlines()) <= 60, board  # no column cut off at the edge (a reviewer)
    assert "96.67%" in board and "logreg" in board and "kB" in board, board  # every column, the last one too


@pytest.mark.parametrize("width", [40, 50, 60, 61, 70, 89, 120])
def test_a_leaderboard_is_never_wider_than_its_terminal(width):
    """CI's machine predicted 1,037,111 images a second: Rich's widths then overshot 60 columns by one."""
    import io

    from digitlab.terminal import console, uncut_table

    out = io.StringIO()
    rows = [("1", "knn", "98.33%", "96.41% – 99.23%", "6", "0.00", "42,786", "389.9 kB"),
            ("2", "logreg", "96.67%", "94.26% – 98.08%", "12", "0.04", "1,037,111", "4.7 kB")]
    console(file=out, width=width).print(uncut_table(("#", "model", "accuracy", "95% CI", "errors", "train s",
                                                      "predict img/s", "size"), rows, "Leaderboard", width))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width and "…" not in out.getvalue()
    if width >= 50:  # room for every column's longest word: each value on its lines, whole
        assert all(any(word in line for line in lines) for row in rows for cell in row for word in cell.split())


def test_control_characters_in_a_file_name_are_shown_as_escapes(lesson_run, tmp_path):
    """A picture named with an ESC sequence turned the terminal red for every later line, and one with a newline
    printed its answer as two lines; a missing one's error too."""
    from PIL import Image, ImageDraw

    picture, image = tmp_path / "a\x1b[31mRED\nb.png", Image.new("L", (28, 28), 255)
    ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=0, width=3)
    image.save(picture)
    for command in ("predict", "read"):
        said = run_cli(command, "--model", str(lesson_run.folder), str(picture))
        assert "\x1b" not in said.stdout and "a\\x1b[31mRED\\nb.png: " in said.stdout, said.stdout
        assert len(said.stdout.splitlines()) == 1, said.stdout  # one line for the one picture
    missing = run_cli("predict", "--model", str(lesson_run.folder), str(tmp_path / "x\x1b[2Jy.png"))
    assert missing.returncode == 1 and "\x1b" not in missing.stderr and "x\\x1b[2Jy.png" in missing.stderr


def test_no_matplotlib_folder_is_left_in_tmp_without_a_writable_home(tmp_path):
    """With no writable home Matplotlib keeps its cache in a /tmp/matplotlib-* folder it removes at exit, which the
    command's quick exit skipped: a school's audit found one left by every command that drew a figure."""
    (tmp_path / "home").write_text("a file, not a folder: no ~/.config can be made")
    (tmp_path / "tmp").mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME")}
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"))
    done = subprocess.run([sys.executable, "-m", "digitlab", "run", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and "Matplotlib created a temporary cache directory" in done.stderr, done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_control_characters_in_an_imported_file_name_are_shown_as_escapes(tmp_path):
    """A reviewer: `data import`'s "skipped" line printed a file's name raw: an ESC sequence recoloured the terminal
    and a newline split the line."""
    (tmp_path / "imp" / "1").mkdir(parents=True)
    (tmp_path / "imp" / "1" / "bad\x1b[31mRED\nx.png").write_bytes(b"not a picture")
    said = run_cli("data", "import", "esc", str(tmp_path / "imp"), env={"DIGITLAB_DATA": str(tmp_path / "data")})
    skipped = [line for line in said.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and "bad\\x1b[31mRED\\nx.png: " in skipped[0] and "\x1b" not in said.stderr, said.stderr
