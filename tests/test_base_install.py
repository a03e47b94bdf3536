"""`make demo` installs digitlab without its extras (no PyTorch, no web server, no ONNX): the lesson's run works
there, and what needs an extra says which one in a line."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

EXTRAS_ONLY = {"torch", "torchgen", "functorch", "click", "fastapi", "starlette", "uvicorn", "multipart",
               "python_multipart", "onnx", "onnxruntime", "skl2onnx", "onnxscript", "captum", "dask", "distributed",
               "orjson", "seaborn"}
"""Packages that only digitlab's extras (and the dev tools) bring."""


@pytest.fixture(scope="module")
def lean_site(tmp_path_factory) -> Path:
    """This environment's packages without :data:`EXTRAS_ONLY`: links to the rest, in a folder of their own."""
    site = Path(sysconfig.get_paths()["purelib"])
    lean = tmp_path_factory.mktemp("site-without-extras")
    for entry in site.iterdir():  # torch/, torch-2.13.0.dist-info/, python_multipart-0.0.20.dist-info/ ...
        if entry.name.split("-")[0].split(".")[0].lower() not in EXTRAS_ONLY and entry.suffix != ".pth":
            (lean / entry.name).symlink_to(entry)
    return lean


def _digitlab(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess:
    """``digitlab ARGS`` in a Python that sees only ``site`` and digitlab's source (``-S``: no site-packages)."""
    code = "import sys; from digitlab.cli import main; sys.argv = ['digitlab', *sys.argv[1:]]; main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "src")])}
    return subprocess.run([sys.executable, "-S", "-c", code, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_the_lessons_run_needs_no_extra(tmp_path, lean_site):
    assert not (lean_site / "torch").exists() and (lean_site / "sklearn").exists()
    done = _digitlab("run", "--out", "runs", cwd=tmp_path, site=lean_site)
    assert done.returncode == 0, done.stderr
    assert "96.67%" in done.stdout and "Traceback" not in done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "report.html").is_file() and (run / "model.safetensors").is_file()


@pytest.mark.parametrize("args, says", [
    (["serve"], "the drawing page and its API needs fastapi, uvicorn, multipart, which are not installed; "
                "run `pip install 'digitlab[serve]'` (in a clone of digitlab: `make install`)"),
    (["run", "--model", "cnn"], "model 'cnn' needs torch, which is not installed; run `pip install 'digitlab[cnn]'`"),
])
def test_what_needs_an_extra_names_it(tmp_path, lean_site, args, says):
    done = _digitlab(*args, cwd=tmp_path, site=lean_site)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: {says}"), done.stderr
    assert list(tmp_path.iterdir()) == []
