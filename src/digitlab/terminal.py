"""What the command line's modules share: Rich consoles, and numbers read from options.

Rich wraps text at 80 columns when its output is not a terminal, so ``digitlab predict *.png | grep 7``
would cut a long file name in two. Out of a terminal, text is printed as one line (Rich's ``soft_wrap``);
tables still take their width.

Click's number ranges take ``nan`` and ``inf`` as numbers (``--min-confidence nan`` was refused as "should be
less than or equal to 1"); :func:`number` reads an option that must be a finite number in a range.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> console(file=out).print("x" * 100)
>>> out.getvalue().count("\\n")
1
>>> number(0, 1)("0.9"), number(0.1)("30")
(0.9, 30.0)
>>> try:
...     number(0, 1)("nan")
... except Exception as error:  # typer.BadParameter: click's usage error, exit code 2
...     print(error)
'nan' is not a number from 0 to 1
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import typer
from rich.console import Console

__all__ = ["Terminated", "console", "escape", "folder_named", "home_expanded", "interrupt_of",
           "matplotlib_cache_removed", "no_empty", "number", "printable", "say_stopped", "spinner", "steady_streams",
           "uncut_table", "unwind_on_sigterm"]


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (``digitlab predict ... | head``): Rich's own answer is exit code 1, which means
        "a picture failed" here; raise on, so the command ends quietly with 141, as a shell's commands do."""
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.file.fileno())  # nothing more to write to the closed pipe, the flush at exit included
        raise BrokenPipeError


_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]} | {0x0A: "\\n", 0x09: "\\t"}


def escape(text: str) -> str:
    r"""``text`` (a file name, a set's name, a message naming them) ready for a Rich console: its markup escaped, and
    its control characters shown as escapes — a picture named with an ESC sequence recoloured or hid the lines after
    it, and one with a newline printed as two lines.

    >>> print(escape("a[b]\x1b[31mRED\nc.png"))
    a\[b]\x1b[31mRED\nc.png
    """
    from rich.markup import escape as markup_escape

    return markup_escape(printable(text))


def printable(text: str) -> str:
    r"""``text`` with its control characters shown as escapes, for a line printed without Rich (``typer.echo``).

    >>> print(printable("skipped bad\x1b[31m\n.png"))
    skipped bad\x1b[31m\n.png
    """
    return text.translate(_CONTROL)


def console(stderr: bool = False, **kwargs: Any) -> Console:
    """A Rich console on stdout (or ``stderr``) that leaves line breaks to a terminal or to nobody. ``COLUMNS=0``
    (Emacs' shell, some CI runners) made Rich's width 0, and every line it printed vanished: the terminal's own
    width then, as :func:`shutil.get_terminal_size` gives it."""
    import shutil

    made = _Console(stderr=stderr, **kwargs)
    made.soft_wrap = not made.is_terminal
    if made.width <= 0:
        made.width = shutil.get_terminal_size().columns
    return made


def matplotlib_cache_removed() -> None:
    """With no writable home, Matplotlib keeps its cache in a ``/tmp/matplotlib-*`` folder that it removes at exit,
    which a command's quick exit (``os._exit``) skips: remove it then (a school's audit found one left by every
    command that drew a figure)."""
    import shutil
    import sys
    import tempfile

    if "matplotlib" in sys.modules:
        made = Path(sys.modules["matplotlib"].get_configdir())
        if made.parent == Path(tempfile.gettempdir()) and made.name.startswith("matplotlib-"):
            shutil.rmtree(made, ignore_errors=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, as :func:`unwind_on_sigterm` raises it: every clean-up that Ctrl-C runs runs for it too."""


def unwind_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a scheduler's or a service manager's stop) unwind the command as Ctrl-C does, as
    :class:`Terminated`: Python's default ended the process on the spot, and a run's, a fine-tune's or a pictures
    export's staging folder (``.tmp-<name>``, with a student's pictures in it) stayed (a crash audit). Not in a
    process of torchrun's, whose agent stops with SIGTERM ranks that may wait in a collective, not in Python."""
    import signal

    def stop(number: int, frame: object) -> None:
        raise Terminated()

    if "LOCAL_RANK" not in os.environ:
        signal.signal(signal.SIGTERM, stop)


def interrupt_of(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (Ctrl-C, or SIGTERM: :class:`Terminated`) ``exc`` was raised while handling, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def say_stopped(on: Console, interrupt: KeyboardInterrupt) -> int:
    """Say on ``on`` that Ctrl-C or SIGTERM stopped the command, with its own words on what it kept (a sweep's);
    the exit code a shell gives for it (130, 143)."""
    said = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
    on.print(f"{said}: {escape(str(interrupt))}" if str(interrupt) else said, soft_wrap=True)
    return 143 if said == "terminated" else 130


def steady_streams() -> None:
    """Standard output and error that any text can be written to: a closed one (``>&-``, a daemon's) is
    ``os.devnull`` (Python leaves it None: the first print was a traceback, after the work was done), and one whose
    encoding cannot write "…" or "José" (``PYTHONIOENCODING=ascii``) writes them as ``\\u2026`` escapes, as
    Python's own standard error does, instead of ending in UnicodeEncodeError."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - for the process's life
        elif "utf" not in (getattr(stream, "encoding", None) or "utf").lower().replace("-", ""):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError):  # not a text file of io's (a test's capture): left as it is
                pass


class _Lines:
    """A spinner off a terminal: each step it is told, a line on its console (a spinner there shows nothing). Not
    on stderr, which keeps to the one line of an error."""

    def __init__(self, on: Console | None) -> None:
        self._on = on

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, text: str) -> None:
        if self._on is not None:
            self._on.print(text, soft_wrap=True)


def uncut_table(headers: tuple[str, ...], rows: list[tuple[str, ...]], title: str, width: int) -> Any:
    """A Rich table for a terminal ``width`` wide whose values are never cut short (a 60-column pane cut the
    leaderboard's "98.61%" to "98.6…" and "logreg" to "logr…"). Where it fits, Rich's own boxed table; else one space
    between columns, each given its longest word and the room left shared out to the columns needing least more, the
    rest of a value on the next line; narrower still, values folded over lines. Never wider than ``width``: Rich's
    own widths overshot it by a character or more, and a table wider than the terminal lost its last column."""
    from rich import box
    from rich.table import Table

    columns = [[header, *(row[i] for row in rows)] for i, header in enumerate(headers)]
    whole = [max(len(cell) for cell in column) for column in columns]
    if sum(whole) + 3 * len(whole) + 1 <= width:  # side lines and a space each side of every value
        table, widths = Table(title=title, title_justify="left"), [None] * len(whole)
    else:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0),
                      width=width)
        widths = [max((len(word) for cell in column[1:] for word in cell.split()), default=1) for column in columns]
        spare = width - (len(widths) - 1) - sum(widths)
        if spare < 0:  # not even the longest words fit: Rich folds them
            widths = [None] * len(whole)
        for i in sorted(range(len(widths)), key=lambda i: whole[i] - widths[i]) if spare >= 0 else ():
            more = min(spare, whole[i] - widths[i])
            widths[i], spare = widths[i] + more, spare - more
    for header, fixed in zip(headers, widths):
        table.add_column(header, width=fixed, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def count_lines(on: Console, what: str, total: int, done: int = 0) -> Callable[[int], None]:
    """A progress bar's ``advance(n)`` off a terminal: a line on ``on`` each twentieth of the way and at the end,
    "cells: 5 of 20 done (12 s)" (a sweep in a log said nothing until it ended)."""
    import time

    start, step, count = time.monotonic(), max(1, -(-total // 20)), done

    def advance(n: int) -> None:
        nonlocal count
        before, count = count, count + n
        if count == total or count // step > before // step:
            on.print(f"{what}: {count:,} of {total:,} done ({time.monotonic() - start:.0f} s)")
    return advance


def spinner(on: Console, message: str, lines: bool = True) -> Any:
    """A Rich status spinner on ``on`` when it is a terminal, with ``update(text)``; elsewhere (a log, a notebook's
    ``!digitlab``) each update is a line on ``on`` instead (a teacher's log of ``explain`` had 60 s of nothing),
    or nothing with ``lines=False`` (output for machines: ``--json``)."""
    if not lines:  # nothing on stdout but the JSON: FORCE_COLOR=1 made a pipe a "terminal", its spinner's frames too
        return _Lines(None)
    return on.status(message, spinner="dots") if on.is_terminal else _Lines(on)


def no_empty(args: list[str]) -> list[str]:
    """``args``, when none is empty; else one line on the first. An empty word is most often an unset shell variable
    (``digitlab data import class "$DIR"``), and taken as a path it meant the current folder: a chaos tester's
    ``data import`` took in every picture under it, and ``data export SET ''`` wrote beside it.

    >>> no_empty(["predict", "a.png", "--min-confidence=0.9"])
    ['predict', 'a.png', '--min-confidence=0.9']
    >>> try:
    ...     no_empty(["data", "import", "class", ""])
    ... except Exception as error:
    ...     print(error)
    the command line's 4th word is empty (an unset shell variable?), after 'class'; give it a value or leave it out
    """
    from digitlab.errors import DigitlabError

    for i, arg in enumerate(args):
        option, equals, value = arg.partition("=")
        if arg.startswith("--") and equals and not value:
            raise DigitlabError(f"{arg} gives {option} an empty value (an unset shell variable?); give it a value or "
                                "leave it out")
        if arg == "":
            nth = {1: "st", 2: "nd", 3: "rd"}.get((i + 1) % 10 if (i + 1) % 100 not in (11, 12, 13) else 0, "th")
            where = f", after {args[i - 1]!r}" if i else ""
            raise DigitlabError(f"the command line's {i + 1}{nth} word is empty (an unset shell variable?){where}; "
                                "give it a value or leave it out")
    return args


def home_expanded(args: list[str]) -> list[str]:
    """``args`` with a leading ``~/`` expanded, in a word or after an option's ``=``, and a lone ``~`` after an
    option's ``=``, as the shell would have: quoted, or in ``--out=~/runs``, it had made a folder named ``~`` here
    and printed ``~/runs/...``. A lone quoted ``~`` word is left as it is (a writer's or a sweep's name, say).

    >>> home = str(Path.home())
    >>> home_expanded(["run", "--out=~/runs", "--out=~", "~", "a~b"]) == ["run", f"--out={home}/runs", f"--out={home}",
    ...                                                                  "~", "a~b"]
    True
    """
    def expanded(word: str, lone: bool = False) -> str:
        return os.path.expanduser(word) if word.startswith("~/") or (lone and word == "~") else word

    return [f"{option}={expanded(value, lone=True)}" if word.startswith("--") and equals else expanded(word)
            for word in args for option, equals, value in [word.partition("=")]]


def number(low: float, high: float = math.inf) -> Callable[[Any], float]:
    """An option's parser (``typer.Option(parser=...)``): a finite number from ``low`` to ``high``."""
    span = f"from {low:g} to {high:g}" if math.isfinite(high) else f"of at least {low:g}"

    def parse(text: Any) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise typer.BadParameter(f"{str(text)!r} is not a number {span}")
        return value

    return parse


def folder_named(command: Any, args: list[str], filename: Any) -> str | None:
    """How the command line ``args`` names the folder where writing ``filename`` failed: the (sub)command's
    ``--out`` option or ``FOLDER`` argument, else ``$DIGITLAB_DATA`` for a file in the data cache; None when
    neither. ``command`` is the click command Typer makes of the app (``typer.main.get_command``)."""
    from digitlab.data.cache import data_root

    for word in args:
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            break
        command = sub
    for param in command.params:
        if "--out" in param.opts or param.name == "folder":
            return "--out" if "--out" in param.opts else param.name.upper()
    try:
        failed, root = Path(filename).resolve() if filename is not None else None, data_root().resolve()
        if failed is not None and (failed.is_relative_to(root) or root.is_relative_to(failed)):  # or a folder above
            return "$DIGITLAB_DATA"  # it, which the first import into a new cache makes (a read-only home: no hint)
    except (OSError, ValueError, TypeError):  # a file name that is not a path
        pass
    return None
