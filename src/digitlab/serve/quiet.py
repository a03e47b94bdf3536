"""Lines a server would log again and again, said once (a soak test: weeks of a school's server, its log growing).

With the access log off, a request costs no log line. Two kinds still did, without bound:

- uvicorn's own warnings of a connection that is not HTTP ("Invalid HTTP request received.": a browser trying
  https:// on the http port, a network scanner) and of an upgrade request (a WebSocket, which this server does not
  speak): :class:`OncePerMinute` passes each at most once a minute, with how many it held back;
- a model chosen on the page beyond the few a process keeps loaded (:data:`~digitlab.serve.choice.CACHED`) is loaded
  again at each turn, and said so in two lines: 4,361 times in two minutes with nine runs chosen at random.
  :class:`OncePerModel` lets each such line through once (a model id names its files' content);
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
    """Pass a record whose message is one of ``messages`` at most once a minute, saying how many were held back;
    none that advises installing a WebSocket library (:data:`NOT_FOR_US`)."""

    def __init__(self, messages: frozenset[str] = UVICORN_REPEATS, every: float = 60.0):
        super().__init__()
        self.messages, self.every = messages, every
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged: always, unless one of ``messages`` already passed within ``every`` s."""
        message = record.msg
        if isinstance(message, str) and message.startswith(NOT_FOR_US):
            return False
        if message not in self.messages:
            return True
        now = time.monotonic()
        if now - self.last.get(message, -self.every) < self.every:
            self.held[message] = self.held.get(message, 0) + 1
            return False
        self.last[message], held = now, self.held.pop(message, 0)
        if held:
            record.msg = f"{message} ({held:,} more like it in the last minute or so, not logged)"
        return True


class OncePerModel(logging.Filter):
    """Pass each of a model's loading lines (:data:`LOADING_WORDS`) once, as it reads; every other record."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged: always, unless it is a loading line this process has logged already."""
        if not (isinstance(record.msg, str) and record.msg.startswith(LOADING_WORDS) and record.args):
            return True
        key = record.getMessage()  # the same model loaded the same way again: another way (an export) is said
        if key in self.seen:
            return False
        if len(self.seen) < _SAID_AT_MOST:
            self.seen.add(key)
        return True


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
