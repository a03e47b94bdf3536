"""Self-contained HTML pages from the templates in ``digitlab/templates/``.

Reports open from disk with no server and no network, so every figure is embedded in the page
as a ``data:`` URI. :func:`render` and :func:`embed_png` are the one place that builds the Jinja
environment and embeds images, for ``report.html`` and ``compare.html`` alike.

Examples
--------
>>> embed_png.__name__, render.__name__
('embed_png', 'render')
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from digitlab.fileio import atomic_path

__all__ = ["docstring_coverage", "embed_png", "render"]


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader

    # every template is HTML (``*.html.j2``): escape every value, so a run folder named
    # ``x"><script>…`` shows as text; markup we build ourselves (the t-SNE SVG) is marked ``|safe``
    return Environment(loader=PackageLoader("digitlab", "templates"), autoescape=True)


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context`` (autoescaped HTML)."""
    return _environment().get_template(template).render(**context)


def embed_png(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


@lru_cache(maxsize=1)
def docstring_coverage() -> tuple[int, int]:
    """``(documented, total)`` public functions, classes and their methods in the installed digitlab source.

    Read from the source with :mod:`ast` (nothing is imported), so the report states it as a fact. Parsing
    takes 0.1 s, so the count is kept in ``__pycache__`` under a key made of every source file's path,
    size and modification time: any change to the source counts again.
    """
    sources = sorted(Path(__file__).parent.rglob("*.py"))
    key = hashlib.sha256(repr([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sources]).encode())
    cached = Path(__file__).parent / "__pycache__" / f"docstrings-{key.hexdigest()[:16]}.json"
    try:
        documented, total = json.loads(cached.read_text())
        if type(documented) is int and type(total) is int:
            return documented, total
    except (OSError, ValueError, TypeError):
        pass
    documented = total = 0
    for path in sources:
        for node in _public_definitions(ast.parse(path.read_text(encoding="utf-8"))):
            total += 1
            documented += ast.get_docstring(node) is not None
    try:
        cached.parent.mkdir(exist_ok=True)
        with atomic_path(cached) as tmp:
            tmp.write_text(json.dumps([documented, total]))
    except OSError:  # a read-only install: count again next time
        pass
    return documented, total


def _public_definitions(tree: ast.Module) -> list[ast.AST]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    found = []
    for node in tree.body:
        if isinstance(node, kinds) and not node.name.startswith("_"):
            found.append(node)
            if isinstance(node, ast.ClassDef):
                found += [m for m in node.body if isinstance(m, kinds) and not m.name.startswith("_")]
    return found
