"""The tutorial notebook runs headless from top to bottom."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01-lesson-walkthrough.ipynb"


def test_walkthrough_notebook_executes(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "Test accuracy: 96.67% (12 errors of 360)" in outputs
    images = sum("image/png" in out.get("data", {}) for cell in notebook.cells
                 if cell.cell_type == "code" for out in cell.get("outputs", []))
    assert images >= 5
