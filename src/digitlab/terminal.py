"""The command line's Rich consoles: wrapped to the width in a terminal, a line per line in a pipe.

Rich wraps text at 80 columns when its output is not a terminal, so ``digitlab predict *.png | grep 7``
would cut a long file name in two. Out of a terminal, text is printed as one line (Rich's ``soft_wrap``);
tables still take their width.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> console(file=out).print("x" * 100)
>>> out.getvalue().count("\\n")
1
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

__all__ = ["console"]


def console(stderr: bool = False, **kwargs: Any) -> Console:
    """A Rich console on stdout (or ``stderr``) that leaves line breaks to a terminal or to nobody."""
    made = Console(stderr=stderr, **kwargs)
    made.soft_wrap = not made.is_terminal
    return made
