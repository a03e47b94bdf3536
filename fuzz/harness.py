"""What every fuzz target shares: the contract it checks and the libFuzzer set-up.

The contract is the one digitlab promises for untrusted input (DESIGN.md, "Habits"): an answer,
or a :class:`~digitlab.errors.DigitlabError` whose message is one line. Any other exception,
a multi-line message, or an answer of the wrong shape is a crash: libFuzzer stops, saves the
input as ``crash-<sha1>`` and prints the traceback. Replay one with
``python fuzz/fuzz_X.py path/to/crash-<sha1>``.

A target module does::

    import harness
    with harness.instrumented("digitlab"):   # coverage feedback from these packages
        from digitlab... import entry_point

    def test_one_input(data: bytes) -> None:
        harness.answers_or_refuses(entry_point, data)

    if __name__ == "__main__":
        harness.main(test_one_input)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import atheris

T = TypeVar("T")


def instrumented(*packages: str):
    """Instrument the code imported inside the ``with`` block (only ``packages`` and their submodules)."""
    return atheris.instrument_imports(include=list(packages))


def answers_or_refuses(call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``call(*args, **kwargs)``; ``None`` when it refused with the clear error, which is expected.

    A refusal whose message is empty or spans lines breaks the contract and is a crash too.
    """
    from digitlab.errors import DigitlabError  # here, so that the target's instrumented import comes first

    try:
        return call(*args, **kwargs)
    except DigitlabError as error:
        message = str(error)
        if not message or "\n" in message:
            raise AssertionError(f"a DigitlabError must be one non-empty line, got {message!r}") from error
        return None


def main(test_one_input: Callable[[bytes], None], argv: Iterable[str] | None = None) -> None:
    """Hand ``test_one_input`` to libFuzzer with the command line (``-max_total_time=N corpus ...``)."""
    atheris.Setup(list(argv if argv is not None else sys.argv), test_one_input)
    atheris.Fuzz()
