"""The tutorial notebooks run headless from top to bottom, show what they claim and leave nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01-lesson-walkthrough.ipynb"


def test_walkthrough_notebook_executes(tmp_path, monkeypatch):
    text, images = _run(NOTEBOOK.name, tmp_path, monkeypatch)
    assert "Test accuracy: 96.67% (12 errors of 360)" in text
    assert images >= 5


def _run(name: str, tmp_path: Path, monkeypatch):
    """Execute a notebook in a fresh kernel; its printed text and how many pictures it showed."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the kernel's temporary folders go here
    notebook = nbformat.read(NOTEBOOK.parent / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert list(scratch.iterdir()) == []  # a learner who runs it ten times keeps nothing of it in /tmp
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    return "".join(out.get("text", "") for out in outputs), sum("image/png" in out.get("data", {}) for out in outputs)


def test_confidence_notebook_executes_and_shows_what_it_claims(tmp_path, monkeypatch):
    import re

    text, images = _run("02-can-i-trust-the-confidence.ipynb", tmp_path, monkeypatch)
    assert images == 3, text  # reliability before/after, risk-coverage, non-digits
    before, after = (float(v) for v in re.search(r"calibration error: ([\d.]+)% before, ([\d.]+)% after", text).groups())
    assert after < before and after <= 2.0, text
    unseen = float(re.search(r"unseen non-digits called 'not a digit': ([\d.]+)%", text).group(1))
    digits = float(re.search(r"test digits called 'not a digit': ([\d.]+)%", text).group(1))
    assert unseen >= 80 and digits <= 3, text


def test_why_notebook_shows_each_view_and_a_saliency_that_passes_its_check(tmp_path, monkeypatch):
    import re

    text, images = _run("04-why-the-model-decides.ipynb", tmp_path, monkeypatch)
    assert images == 6, text  # saliency, rotation, t-SNE, filters, feature maps, learning
    for method in ("Integrated Gradients", "occlusion"):
        salient, random_ink = (int(v) for v in re.search(
            rf"CNN, {method}: accuracy after deleting the most salient ink (\d+)%, random ink (\d+)%", text).groups())
        assert salient < random_ink - 20, text  # the maps point at pixels that matter
    sizes = [float(v) for v in re.findall(r"learning curve: \d+ training images -> ([\d.]+)%", text)]
    assert len(sizes) == 5 and sizes[-1] > sizes[0], text


@pytest.mark.mnist
def test_handwriting_notebook_collects_measures_and_fine_tunes(real_mnist, tmp_path, monkeypatch):
    import re

    text, images = _run("03-your-handwriting.ipynb", tmp_path, monkeypatch)
    assert images == 2, text  # the class's samples, the mistakes beside their originals
    assert "600 samples by 3 writers" in text, text
    name, before, after = re.search(r"(\w+): error on their held-out samples ([\d.]+)% before, ([\d.]+)% after", text).groups()
    assert float(after) <= float(before) / 2, text  # at least halved
    mnist_before, mnist_after = (float(v) for v in re.search(
        r"MNIST test accuracy: ([\d.]+)% before, ([\d.]+)% after", text).groups())
    assert mnist_after >= mnist_before - 0.5, text
    assert float(re.search(r"p = ([\d.e-]+)", text).group(1)) < 0.05, text


def test_each_notebook_says_how_to_open_it_and_make_notebooks_installs_all_it_imports():
    """A learner: the notebooks import IPython, which `make demo` and `make install` do not install, and the first
    cell's advice (`make demo`, then the .venv Python) did not open them. `make notebooks` installs the extras below
    and opens JupyterLab; every module a notebook imports comes with them (requirements followed to the end)."""
    import ast
    import contextlib
    import json
    import re
    import tomllib
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    from packaging.requirements import Requirement

    root = NOTEBOOK.parents[1]
    makefile = (root / "Makefile").read_text()
    recipe = re.search(r"^\$\(VENV\)/\.installed-notebooks:.*\n\t\$\(call install_extras,(.*)\)$", makefile, re.M)
    recipe = recipe.group(1).replace("$(EXTRAS)", re.search(r"^EXTRAS := (.*)$", makefile, re.M).group(1))
    extras = set(recipe.replace("$(comma)", ",").split(","))
    assert "notebooks" in extras and re.search(r"^notebooks: \$\(VENV\)/\.installed-notebooks\n\t\$\(BIN\)/jupyter lab",
                                               makefile, re.M)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    installed = {"digitlab"}
    while wanted:  # the distributions `pip install -e .[extras]` brings, and theirs (as installed here)
        req = Requirement(wanted.pop())
        name = req.name.lower().replace("_", "-")
        if name in installed or req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        installed.add(name)
        if name == "digitlab":  # digitlab[cnn] in an extra
            wanted += [r for e in req.extras for r in project["optional-dependencies"][e]]
            continue
        with contextlib.suppress(PackageNotFoundError):  # not installed (jupyterlab, in make test): not followed
            wanted += requires(name) or []
    providers = packages_distributions()
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert "make notebooks" in "".join(cells[0]["source"]), path.name
        for cell in (c for c in cells if c["cell_type"] == "code"):
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
                for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names):
                    dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
                    assert dists & installed, f"{path.name} imports {top}, which `make notebooks` does not install"
