"""The Dask side of a sweep that is about the cluster, not the cells: a local cluster made right for PyTorch and
Ctrl-C, whether a scheduler serves its dashboard, and the results as they finish until the scheduler goes away
(:mod:`digitlab.sweep` runs the cells on either kind of cluster)."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any, Iterator

__all__ = ["as_finished", "local_cluster", "scatter_to_all", "serves_dashboard"]


def local_cluster(workers: int) -> Any:
    """A LocalCluster of single-threaded worker processes, without Dask's ``MALLOC_TRIM_THRESHOLD_=65536``.

    Dask's nanny sets that variable in its workers so that they hand freed memory back to the operating
    system sooner. Setting it (to any value) also freezes glibc's mmap threshold at 128 KiB, so every PyTorch
    buffer above that is mapped and unmapped on every training step: a CNN cell trains ≈ 1.6× slower (0.62 s
    instead of 0.38 s on the 8×8 digits). A value already in this process's environment is kept. (The CNN
    now also sets glibc's thresholds itself when it trains, whatever the environment says: :mod:`digitlab.memory`.)
    """
    import os

    import dask
    from distributed import LocalCluster

    from digitlab.errors import DigitlabError

    try:
        os.getcwd()  # a worker process starts in it: from a deleted one, 138 lines of Dask's traceback
    except FileNotFoundError:
        raise DigitlabError("the current folder no longer exists (removed while this shell was in it); `cd` into "
                            "one that does and run the sweep again") from None

    # Ctrl-C reaches every process of the terminal's group: the workers ignore it (they inherit that), and this
    # process cancels their tasks and closes the cluster, instead of each worker printing a traceback
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                silence_logs=logging.CRITICAL)  # a worker that lost the scheduler at Ctrl-C logs
                                # an ERROR with a traceback (seen on a loaded machine); its cell's failure is said here
    finally:
        signal.signal(signal.SIGINT, interrupt)


def serves_dashboard(link: str) -> bool:
    """Whether the scheduler behind ``link`` (``http://HOST:PORT/status``) serves Bokeh's dashboard, within 2 s: asks
    for Bokeh's own script (a HEAD), not the page. Without Bokeh a scheduler serves a ``/status`` saying that it
    needs Bokeh (a packaging audit: the link the sweep printed led there), and its sitemap, read before, lists that
    page too (with Bokeh 3.9 the sitemap fails). Fetching the page itself starts a Bokeh session in the scheduler,
    which with a local cluster is this process, and its callbacks then swallowed Ctrl-C most times under load."""
    from urllib.request import Request, urlopen

    base = link.rpartition("/")[0]
    try:
        with urlopen(Request(f"{base}/static/js/bokeh.min.js", method="HEAD"), timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):  # URLError and HTTPError (404: no Bokeh) are OSErrors; a malformed link
        return False


def as_finished(client: Any, futures: list[Any], grace: float = 1.0) -> Iterator[tuple[Any, Any]]:
    """``(future, result)`` as each of ``futures`` finishes (an error's ``(type, error, traceback)``, a cancelled
    one's ``CancelledError``), until all have, or ``grace`` seconds after ``client`` first lost its scheduler: those
    not yielded then are lost with it (Dask cancels every future when the connection goes, even if it comes back).

    Dask's own ``as_completed(with_results=True)`` waits for ever on a future that had finished and whose result
    was being fetched as the scheduler went away (the fetch's ``CommClosedError`` is dropped on the client's loop):
    a sweep whose scheduler was killed hung in 2 of 7 tries on a loaded machine; and so did one whose scheduler came
    back at the same address (a reviewer's)."""
    from distributed import as_completed

    finished = as_completed(futures, with_results=True, raise_errors=False)
    lost_at = None
    while not finished.is_empty():
        if finished.has_ready():
            yield next(finished)
            continue
        if lost_at is None and client.status != "running":
            lost_at = time.monotonic()
        if lost_at is not None and time.monotonic() - lost_at > grace:
            return
        time.sleep(0.05)


def scatter_to_all(client: Any, data: Any, stopped: type[Exception] | None = None, tries: int = 3) -> Any:
    """``client.scatter(data, broadcast=True)``, tried again when it fails: a worker killed while the data went out
    broke the send on the client's loop (tornado's own ``AssertionError`` in its write buffer, seen once in CI after a
    sweep's worker was killed), and the cluster's other workers, or the killed one's replacement, take it a moment
    later. Raises the last failure as ``stopped`` (a :class:`~digitlab.errors.DigitlabError` by default): one line.
    """
    from digitlab.errors import DigitlabError

    for attempt in range(tries):
        try:
            return client.scatter(data, broadcast=True, hash=False)
        except Exception as exc:  # noqa: BLE001 - whatever Dask or tornado raise on a broken send
            if attempt == tries - 1:
                said = f"could not send the dataset to the Dask workers ({type(exc).__name__}: {exc})"
                raise (stopped or DigitlabError)(said) from None
            time.sleep(1.0)
    raise AssertionError("unreachable")


def check_speaks_dask(address: str, wait: float = 5.0) -> None:
    """Refuse in one line a ``tcp://`` address whose server says nothing on connecting, as a Dask scheduler does at
    once (its handshake): a scale-out audit gave its dashboard's port, and the sweep hung in silence for minutes,
    the client's 10-s timeout notwithstanding. Other schemes, and an address that cannot be reached, are left to
    Dask, which says so in time."""
    import socket
    from urllib.parse import urlsplit

    from digitlab.errors import DigitlabError

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is no number: Dask's own parsing says so
        return
    if parts.scheme != "tcp" or host is None or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=wait) as probe:
            if probe.recv(1):
                return
            why = "it closed the connection at once"
    except TimeoutError:  # socket.timeout
        why = f"it said nothing in {wait:g} s"
    except OSError:  # refused, unreachable: the client's own timeout says so
        return
    raise DigitlabError(f"{address} is not a Dask scheduler ({why}); give the scheduler's own address, "
                        "tcp://HOST:8786 by default, not its dashboard's")
