"""The Dask side of a sweep that is about the cluster, not the cells: a local cluster made right for PyTorch and
Ctrl-C, and whether a scheduler serves its dashboard (:mod:`digitlab.sweep` runs the cells on either)."""

from __future__ import annotations

import logging
import signal
from typing import Any

__all__ = ["local_cluster", "serves_dashboard"]


def local_cluster(workers: int) -> Any:
    """A LocalCluster of single-threaded worker processes, without Dask's ``MALLOC_TRIM_THRESHOLD_=65536``.

    Dask's nanny sets that variable in its workers so that they hand freed memory back to the operating
    system sooner. Setting it (to any value) also freezes glibc's mmap threshold at 128 KiB, so every PyTorch
    buffer above that is mapped and unmapped on every training step: a CNN cell trains ≈ 1.6× slower (0.62 s
    instead of 0.38 s on the 8×8 digits). A value already in this process's environment is kept. (The CNN
    now also sets glibc's thresholds itself when it trains, whatever the environment says: :mod:`digitlab.memory`.)
    """
    import dask
    from distributed import LocalCluster

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
    """Whether the scheduler behind ``link`` (``http://HOST:PORT/status``) lists that page in its sitemap, within
    2 s. Not the page itself: fetching it starts a Bokeh session in the scheduler, which with a local cluster is
    this process, and its callbacks then swallowed Ctrl-C most times under load."""
    import json
    from urllib.request import urlopen

    base, _, page = link.rpartition("/")
    try:
        with urlopen(f"{base}/sitemap.json", timeout=2) as response:
            return f"/{page}" in json.load(response).get("paths", [])
    except (OSError, ValueError, AttributeError):  # URLError and HTTPError are OSErrors; JSON errors ValueErrors
        return False
