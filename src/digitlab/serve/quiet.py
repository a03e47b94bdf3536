"""Lines a server would log again and again, said once (a soak test: weeks of a school's server, its log growing).

With the access log off, a request costs no log line. Two kinds still did, without bound:

- uvicorn's own warnings of a connection that is not HTTP ("Invalid HTTP request received.": a browser trying
  https:// on the http port, a network scanner) and of an upgrade request (a WebSocket, which this server does not
  speak): :class:`OncePerMinute` passes each at most once a minute, with how many it held back;
- a model chosen on the page beyond the few a process keeps loaded (:data:`~digitlab.serve.choice.CACHED`) is loaded
  again at each turn, and said so in two lines: 4,361 times in two minutes with nine runs chosen at random.
  :class:`OncePerModel` lets each such line through once a minute, with how often it was held back;
- a class's set with a damaged or missing sample: each GET of its counts warned of every one, 200 lines for 10 GETs
  with 20 files gone. :func:`say_once` says each problem once per process.
"""

from __future__ import annotations

import logging
import time

__all__ = ["OncePerMinute", "OncePerModel", "quiet_logs", "say_once"]

UVICORN_REPEATS = frozenset({"Invalid HTTP request received.", "Unsupported upgrade request."})
NOT_FOR_US = "No supported WebSocket library detected."  # uvicorn's advice to install one: no route speaks it
LOADING_WORDS = ("loaded %s from ", "serving %s on ")  # choice.py's and engine.py's lines of a model's loading
_SAID_AT_MOST = 10_000  # distinct problems remembered; past it, nothing more is said (the log is not the place)


class OncePerMinute(logging.Filter):
    """Pass a record whose message is one of ``messages`` at most once a minute, saying how many were held back
    since the last; none that advises installing a WebSocket library (:data:`NOT_FOR_US`)."""

    def __init__(self, messages: frozenset[str] = UVICORN_REPEATS, every: float = 60.0):
        super().__init__()
        self.messages, self.every = messages, every
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def key(self, record: logging.LogRecord) -> str | None:
        """What ``record`` is counted under, or None for a record always logged."""
        return record.msg if record.msg in self.messages else None

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged: always, unless one like it (:meth:`key`) passed within ``every`` s."""
        if isinstance(record.msg, str) and record.msg.startswith(NOT_FOR_US):
            return False
        key = self.key(record)
        if key is None or (key not in self.last and len(self.last) >= _SAID_AT_MOST):
            return True
        now = time.monotonic()
        if now - self.last.get(key, -self.every) < self.every:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        self.last[key], held = now, self.held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (and {held:,} more like it since the last such line, not logged)"
        return True


class OncePerModel(OncePerMinute):
    """Pass each of a model's loading lines (:data:`LOADING_WORDS`) once a minute, as it reads, with how many times
    it was held back: a model loaded again and again, its cache too small for the models chosen, still shows."""

    def key(self, record: logging.LogRecord) -> str | None:
        """The loading line as it reads; None for any other record."""
        loading = isinstance(record.msg, str) and record.msg.startswith(LOADING_WORDS) and record.args
        return record.getMessage() if loading else None


def quiet_logs() -> None:
    """Hold uvicorn's repeated warnings (:class:`OncePerMinute`) and models' repeated loading lines
    (:class:`OncePerModel`), once per process."""
    for name, kind in (("uvicorn.error", OncePerMinute), ("digitlab.serve", OncePerModel)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


_said: set[tuple[str, str]] = set()


def say_once(log: logging.Logger, subject: str, problem: object) -> None:
    """Warn ``"{subject}: {problem}"`` the first time this process meets it, and never again."""
    key = (subject, str(problem))
    if key not in _said and len(_said) < _SAID_AT_MOST:
        _said.add(key)
        log.warning("%s: %s", subject, problem)
