"""The drawing page's own files (``/static``), served whole."""

from __future__ import annotations

from fastapi.staticfiles import StaticFiles

__all__ = ["WholeFiles"]


class WholeFiles(StaticFiles):
    """The page's own files, always whole: a ``Range`` header is ignored (HTTP lets a server do so), so a bad or
    unsatisfiable one gets the file rather than Starlette's plain-text 400 or 416 (the files are a few kB)."""

    async def __call__(self, scope, receive, send) -> None:
        """Serve the file, leaving out any Range header."""
        if scope["type"] == "http":
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]}
        await super().__call__(scope, receive, send)
