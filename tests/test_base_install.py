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

def base_distributions() -> set[str]:
    """digitlab and what it needs without extras, and what those need, as installed here (normalised names)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    needed, todo = set(), ["digitlab"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in needed:
            continue
        needed.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:  # a dependency for another platform or Python
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return needed


@pytest.fixture(scope="module")
def lean_site(tmp_path_factory) -> Path:
    """This environment's packages as a fresh `pip install digitlab` would have them: links to the files of
    :func:`base_distributions` only, in a folder of their own."""
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    lean = tmp_path_factory.mktemp("site-without-extras")
    base = base_distributions()
    for dist in distributions(path=[str(site)]):
        if canonicalize_name(dist.metadata["Name"]) not in base:
            continue
        for top in {Path(str(file)).parts[0] for file in dist.files or []}:  # sklearn/, scikit_learn-1.x.dist-info/
            if (site / top).exists() and not (lean / top).exists() and not top.endswith(".pth") and top != "..":
                (lean / top).symlink_to(site / top)
    return lean


def _digitlab(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess:
    """``digitlab ARGS`` in a Python that sees only ``site`` and digitlab's source (``-S``: no site-packages)."""
    code = "import sys; from digitlab.cli import main; sys.argv = ['digitlab', *sys.argv[1:]]; main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "src")])}
    return subprocess.run([sys.executable, "-S", "-c", code, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_the_lessons_run_needs_no_extra(tmp_path, lean_site, monkeypatch):
    assert not (lean_site / "torch").exists() and not (lean_site / "fastapi").exists()
    assert (lean_site / "sklearn").exists() and (lean_site / "typer").exists()
    done = _digitlab("run", "--out", "runs", cwd=tmp_path, site=lean_site)
    assert done.returncode == 0, done.stderr
    assert "96.67%" in done.stdout and "Traceback" not in done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "report.html").is_file() and (run / "model.safetensors").is_file()
    from PIL import Image, ImageDraw

    seven = Image.new("L", (112, 112), 255)
    ImageDraw.Draw(seven).line([(25, 25), (85, 25), (45, 95)], fill=0, width=9)
    seven.save(tmp_path / "seven.png")
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "no-data-yet"))
    answered = _digitlab("predict", "seven.png", cwd=tmp_path, site=lean_site)
    assert answered.returncode == 0, answered.stderr
    steps = ("`pip install 'digitlab[cnn]'` (in a clone: `make install`), then `digitlab data fetch mnist`, then "
             "`digitlab run --dataset mnist --model cnn` trains one for your own pictures")
    assert steps in " ".join(answered.stderr.split()), answered.stderr  # each step the 8×8 note's advice needs


@pytest.mark.parametrize("args, says", [
    (["serve"], "the drawing page and its API needs fastapi, fastapi_offline, uvicorn, python_multipart, which are "
                "not installed; "
                "run `pip install 'digitlab[serve]'` (in a clone of digitlab: `make install`)"),
    (["run", "--model", "cnn"], "model 'cnn' needs torch, which is not installed; run `pip install 'digitlab[cnn]'`"),
])
def test_what_needs_an_extra_names_it(tmp_path, lean_site, args, says):
    done = _digitlab(*args, cwd=tmp_path, site=lean_site)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: {says}"), done.stderr
    assert list(tmp_path.iterdir()) == []
