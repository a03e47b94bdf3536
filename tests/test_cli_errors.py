"""Errors from the operating system reach a person as one line and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import textwrap

import pytest

from digitlab.errors import describe_os_error

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
    assert not (tmp_path / "runs").exists()  # nothing partial is left, nor the --out folder the run made


def test_a_full_disk_in_data_export_names_its_folder_argument(tmp_path):
    """`data export NAME FOLDER` has no --out: the advice names FOLDER (it named --out and $DIGITLAB_DATA)."""
    script = textwrap.dedent("""
        import errno, sys
        import digitlab.data, digitlab.data.idx_export as io
        digitlab.data.load_dataset = lambda *args, **kwargs: None
        def full_disk(data, folder, gzip=False):
            raise OSError(errno.ENOSPC, "raw message", f"{folder}/train-images-idx3-ubyte")
        io.write_idx_files = full_disk
        from digitlab.cli import main
        sys.argv = ["digitlab", "data", "export", "mine", sys.argv[1]]
        main()
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().endswith("the disk is full; free some space or choose another folder (FOLDER)")
    assert not (tmp_path / "out").exists()  # the folder the export made is not left behind, empty


@pytest.mark.parametrize("args, filename, named", [
    (["run", "--dataset", "mnist"], "runs/x/report.html", "--out"),
    (["data", "export", "mine", "out"], "out/train-labels-idx1-ubyte", "FOLDER"),
    (["data", "show", "mine"], "reports/figures/x.png", "--out"),
    (["data", "import", "mine", "a.png"], "{cache}/handwriting/mine/index.json", "$DIGITLAB_DATA"),
    (["run", "--out", "{cache}/runs"], "{cache}/runs/x/report.html", "--out"),  # the folder given, in the cache
    (["predict", "a.png"], "a.png", None),
    (["nonsense"], "x", None),
])
def test_the_folder_a_command_writes_to_is_named_as_it_is_typed(tmp_path, monkeypatch, args, filename, named):
    import typer

    from digitlab.cli import app
    from digitlab.terminal import folder_named

    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "cache"))
    filename = filename.format(cache=tmp_path / "cache")
    assert folder_named(typer.main.get_command(app), args, filename) == named


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


def _damaged(lesson_run, tmp_path, text_change) -> str:
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(lesson_run.folder, folder)
    card = folder / "model.json"
    card.write_text(text_change(card.read_text()))
    return str(folder)


DAMAGE = {
    "infinite shape": lambda text: text.replace('"image_shape": [\n    8,', '"image_shape": [\n    Infinity,'),
    "nested card": lambda text: text[:-2] + ', "metrics": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "file outside": lambda text: text.replace('"file": "model.safetensors"', '"file": "../../etc/passwd"'),
    "not json": lambda text: text[:20],
}


@pytest.mark.parametrize("command, damage, message", [
    ("evaluate", "infinite shape", "not a readable model card"), ("evaluate", "nested card", "nested too deeply"),
    ("evaluate", "file outside", "field 'file'"), ("predict", "not json", "not a readable model card"),
    ("predict", "nested card", "nested too deeply"),
])
def test_a_damaged_card_is_one_line(lesson_run, tmp_path, command, damage, message):
    from conftest import run_cli

    folder = _damaged(lesson_run, tmp_path, DAMAGE[damage])
    args = ["evaluate", "--model", folder] if command == "evaluate" else ["predict", "--model", folder, "x.png"]
    result = run_cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr


@pytest.mark.parametrize("args, message", [
    (["data", "fetch", "nope"], "unknown dataset 'nope'"),
    (["data", "fetch", "mnist", "--from", "/nonexistent/folder"], "/nonexistent/folder"),
    (["data", "show", "nope"], "unknown dataset 'nope'"),
    (["compare", "--models", ","], "--models is empty"),
    (["compare", "--models", "logreg", "--param", "svm.C=1"], "MODEL.NAME=VALUE"),
    (["run", "--limit", "5"], "--limit must be at least 10"),
])
def test_more_bad_commands_are_one_line(tmp_path, args, message):
    from conftest import run_cli

    result = run_cli(*args, env={"DIGITLAB_DATA": str(tmp_path / "data")}, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and message in lines[-1], result.stderr
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["predict", "x.png", "--min-confidence", "nan"], "'--min-confidence': 'nan' is not a number from 0 to 1"),
    (["read", "x.png", "--min-confidence", "inf"], "'--min-confidence': 'inf' is not a number from 0 to 1"),
    (["predict", "x.png", "--min-confidence", "1.5"], "'1.5' is not a number from 0 to 1"),
    (["run", "--model", "cnn", "--time-budget", "inf"], "'--time-budget': 'inf' is not a number of at least 0.1"),
    (["run", "--model", "cnn", "--time-budget", "0.01"], "'0.01' is not a number of at least 0.1"),
    (["run", "--model", "cnn", "--target-accuracy", "nan"], "'--target-accuracy': 'nan' is not a number from 0 to 1"),
    (["data", "fetch", "mnist", "--timeout", "nan"], "'--timeout': 'nan' is not a number of at least 0.1"),
])
def test_a_number_option_refuses_what_is_not_a_finite_number_in_its_range(tmp_path, args, message):
    """Click's ranges let nan and inf through: nan was refused as "should be less than or equal to 1", and
    ``--time-budget inf`` reached the card's check after the data had loaded."""
    from conftest import run_cli

    result = run_cli(*args, env={"DIGITLAB_DATA": str(tmp_path / "data")}, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr.splitlines()[-1], result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_probe_that_fails_after_the_out_folders_were_made_leaves_none(tmp_path, monkeypatch):
    """A reviewer: check_writable makes --out, then its probe file fails (a full disk, a quota): the folders it made
    for the run stayed behind, empty."""
    import digitlab.runs as runs
    from digitlab.errors import DigitlabError

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.tempfile, "NamedTemporaryFile", full_disk)
    with pytest.raises(DigitlabError, match="cannot write there"):
        with runs.made_for_run(tmp_path / "a" / "b" / "runs"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_data_info_lists_every_set_beside_one_it_cannot_read(tmp_path):
    """A folder where a set's lock file goes (made by hand, or by a copy tool) stopped `data info` at that set:
    exit 2, no set listed. The others are listed, and that one's row says why."""
    from conftest import run_cli, seven_png

    env = {"DIGITLAB_DATA": str(tmp_path / "data")}
    (tmp_path / "7-a.png").write_bytes(seven_png())
    assert run_cli("data", "import", "good", str(tmp_path / "7-a.png"), "--writer", "a", env=env).returncode == 0
    (tmp_path / "data" / "handwriting" / "zz" / ".lock").mkdir(parents=True)
    listed = run_cli("data", "info", "--no-verify", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "good writers: a 1" in listed.stdout and "zz: cannot read" in listed.stdout and ".lock" in listed.stdout


@pytest.mark.parametrize("command, said", [
    ("explain", ": cannot write there (Read-only file system); choose a writable one with --out DIR"),
    ("export", "--out's folder {run}: cannot write there (Read-only file system); choose a writable place with --out "
               "FILE.onnx"),
])
def test_a_run_on_a_read_only_share_names_the_option_that_writes_elsewhere(lesson_run, tmp_path, command, said):
    """A school's audit: `explain` and `export` of a run on a read-only share said "choose a writable folder" without
    the option that chooses one (export's takes a file name)."""
    from conftest import run_read_only

    run = tmp_path / "run"
    shutil.copytree(lesson_run.folder, run)
    done = run_read_only(run, command, "--model", str(run))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and last.startswith("error: ") and last.endswith(said.format(run=run)), done.stderr


def test_an_out_that_is_a_dangling_link_says_where_it_points(tmp_path):
    """A shell audit: `--out` a link to a folder that is gone said "cannot write there (File exists)"."""
    from conftest import run_cli

    (tmp_path / "runs").symlink_to(tmp_path / "gone" / "runs")
    done = run_cli("run", "--out", str(tmp_path / "runs"))
    assert done.returncode == 2 and done.stderr.strip() == (f"error: --out {tmp_path / 'runs'}: a link to "
                                                            f"{tmp_path / 'gone' / 'runs'}, which does not exist; "
                                                            "create that folder or choose another"), done.stderr


def test_a_data_cache_whose_folder_cannot_be_made_names_digitlab_data(tmp_path):
    """A school's audit: with a read-only home, the first `data import` said "~/.cache: the file system is read-only;
    choose another folder", naming no way to choose one."""
    from conftest import run_read_only
    from PIL import Image, ImageDraw

    home, picture = tmp_path / "home", tmp_path / "3-a.png"
    home.mkdir()
    image = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(image).line([(8, 6), (20, 14), (8, 22)], fill=0, width=3)
    image.save(picture)
    done = run_read_only(home, "data", "import", "class", str(picture), "--writer", "ada",
                         env={"HOME": str(home), "DIGITLAB_DATA": str(home / ".cache" / "digitlab")})
    assert done.returncode == 2 and done.stderr.strip().endswith("($DIGITLAB_DATA)"), done.stderr
