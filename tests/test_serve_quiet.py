"""The server's repeated log lines, said once (digitlab.serve.quiet): a soak test's weeks-long log."""

from __future__ import annotations

import logging

import pytest

from digitlab.serve.quiet import OncePerMinute, OncePerModel


def _records(filter_: logging.Filter, *calls: tuple) -> list[str]:
    passed = []
    for msg, *args in calls:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, tuple(args) or None, None)
        if filter_.filter(record):
            passed.append(record.getMessage())
    return passed


def test_a_repeated_uvicorn_warning_passes_once_a_minute_with_the_count_it_held(monkeypatch):
    import digitlab.serve.quiet as quiet

    clock = [1000.0]
    monkeypatch.setattr(quiet.time, "monotonic", lambda: clock[0])
    once = OncePerMinute()
    bad = ("Invalid HTTP request received.",)
    assert _records(once, bad, bad, bad, ("something else",)) == ["Invalid HTTP request received.", "something else"]
    clock[0] += 61
    assert _records(once, bad) == ["Invalid HTTP request received. (and 2 more like it since the last such line, "
                                   "not logged)"]
    assert _records(once, ("No supported WebSocket library detected. Please use ...",)) == []  # wrong advice here


def test_a_models_loading_lines_pass_once_a_minute_per_model(monkeypatch):
    """Nine runs chosen at random on the page, four kept loaded: 4,361 'loaded' lines in two minutes. A reload is
    still said once a minute, with its count: a cache too small for the models chosen shows (a reviewer)."""
    import digitlab.serve.quiet as quiet

    clock = [1000.0]
    monkeypatch.setattr(quiet.time, "monotonic", lambda: clock[0])
    once = OncePerModel()
    loaded = "loaded %s from %s for requests that choose it (%s)"
    serving = "serving %s on ONNX Runtime (%s %s%s)"
    said = _records(once, (loaded, "a", "/r/a", "onnx"), (serving, "a", "x", "y", ""), (loaded, "a", "/r/a", "onnx"),
                    (serving, "a", "x", "y", ""), (loaded, "b", "/r/b", "onnx"), ("started %d workers", 2))
    assert said == ["loaded a from /r/a for requests that choose it (onnx)", "serving a on ONNX Runtime (x y)",
                    "loaded b from /r/b for requests that choose it (onnx)", "started 2 workers"]
    clock[0] += 61
    assert _records(once, (loaded, "a", "/r/a", "onnx")) == [
        "loaded a from /r/a for requests that choose it (onnx) (and 1 more like it since the last such line, not "
        "logged)"]


def test_the_server_settings_put_the_filters_on_once():
    pytest.importorskip("uvicorn")
    from digitlab.serve.budget import ServeLimits
    from digitlab.serve.connections import uvicorn_settings

    loggers = {logging.getLogger("uvicorn.error"): OncePerMinute, logging.getLogger("digitlab.serve"): OncePerModel}
    before = {logger: list(logger.filters) for logger in loggers}
    try:
        uvicorn_settings(ServeLimits())
        uvicorn_settings(ServeLimits())
        for logger, kind in loggers.items():
            assert [type(f) for f in logger.filters].count(kind) == 1, logger.name
    finally:  # the rest of this test process logs as it did
        for logger, filters in before.items():
            logger.filters[:] = filters
