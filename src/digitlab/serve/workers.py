"""Several server processes on one port: ``digitlab serve --workers N``.

Python runs one request's CPU work at a time per process, so a machine with N cores answers up to N
times as many predictions with N processes. The app is stateless (every request carries its whole
picture), so the processes share nothing but the port. On Linux each worker listens on its own socket,
all of them in one ``SO_REUSEPORT`` group, and the kernel spreads new connections among them; with one
shared socket the first worker to wake accepted a whole burst (uvloop accepts until the queue is
empty), so a class opening the page at once all landed on one worker and stayed there on keep-alive
(40 of 40 connections in the test; 71 to 29 of the benchmark's 100 drawers), one core saturated while
the other idled. The kernel spreads connections by a hash of their addresses, not by load (100 drawers:
42/58 to 59/41 measured), and each worker has its own queue: connections still queued at a worker that dies
are reset, not taken over. Elsewhere the N - 1 workers inherit this process's socket. Each worker builds its
own app with :func:`~digitlab.serve.app.create_app`, and listens once it has: the first one, here, exports
the ONNX file, so the others only reuse it. This process's socket is opened before its model is read
(:func:`listen`), so a second server started meanwhile is refused the port.

A worker that finds its parent gone (killed, not stopped) stops too; stopping this process (Ctrl-C,
SIGTERM) stops the others. A worker that dies while the server runs is replaced (:class:`_Keeper`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from digitlab.serve.budget import ServeLimits
from digitlab.serve.collect import COLLECT_ID_ENV

__all__ = ["default_workers", "listen", "probe_port", "run_workers"]

log = logging.getLogger("digitlab.serve")
_FD_ENV = "DIGITLAB_SERVE_FD"
_BIND_ENV = "DIGITLAB_SERVE_BIND"
_PARENT_ENV = "DIGITLAB_SERVE_PARENT"
_ACCESS_ENV = "DIGITLAB_SERVE_ACCESS_LOG"
REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Each worker its own listening socket in one ``SO_REUSEPORT`` group (Linux balances connections among them;
macOS and the BSDs would hand them all to one)."""


def default_workers() -> int:
    """The cores this process may use (:func:`digitlab.cores.usable_cores`)."""
    from digitlab.cores import usable_cores

    return usable_cores()


def run_workers(application: Any, sock: socket.socket, model: Path, runs: Path, limits: ServeLimits,
                workers: int, collect: str | None = None, access_log: bool = False) -> None:
    """Serve ``application`` here and in ``workers - 1`` more processes, all on the address of ``sock``.

    Parameters
    ----------
    application : FastAPI
        This process's app (:func:`~digitlab.serve.app.create_app`), already built: the model is read
        and its ONNX export made before any other worker starts.
    model : Path
        The model file the app serves; every worker serves the same.
    runs : Path
        The runs folder (``GET /api/models``).
    sock : socket.socket
        This process's listening socket, from :func:`listen`.
    limits : ServeLimits
        This process's bounds (each worker has the same).
    workers : int
        Processes in all, this one included.
    collect : str, optional
        The handwriting set every worker saves the page's samples into (``--collect NAME``); None: off. Each
        worker holds the very set this process opened: deleted and made anew, it is gone for all (409).
    access_log : bool
        Every worker logs a line for each request it answers (``--access-log``).
    """
    import uvicorn

    from digitlab.serve.connections import raise_open_file_limit, uvicorn_settings

    store = application.state.collect
    identity = None if store is None else store.identity

    def start() -> subprocess.Popen:
        return _start_worker(sock, model, runs, collect, access_log, identity)

    server = uvicorn.Server(uvicorn.Config(application, log_level="info", **uvicorn_settings(limits, access_log)))
    children = [start() for _ in range(workers - 1)]
    log.info("started %d worker process(es) beside this one: pids %s", len(children),
             ", ".join(str(c.pid) for c in children) or "none")
    keeper = _Keeper(children, start, lambda: server.should_exit)  # Ctrl-C reaches the workers too: not replaced
    keeper.start()
    raise_open_file_limit()
    gc.collect()
    gc.freeze()
    try:
        server.run(sockets=[sock])
    finally:
        keeper.stop()  # from here on no worker is started, so each one gets its SIGTERM below
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        sock.close()


class _Keeper(threading.Thread):
    """Replaces a worker that dies while the server runs (killed, out of memory), with a log line each time.

    Not while the server shuts down (``shutting_down()``, or after :meth:`stop`). After more than ``most``
    deaths within ``within_s`` seconds something is wrong with every start (its run folder moved, say): none is
    started for ``within_s`` seconds, the log says so, and then replacing starts again.
    """

    def __init__(self, children: list[subprocess.Popen], start: Any, shutting_down: Any,
                 most: int = 5, within_s: float = 60.0) -> None:
        super().__init__(daemon=True, name="digitlab-workers")
        self.children, self.start_worker, self.shutting_down = children, start, shutting_down
        self.most, self.within_s = most, within_s
        self.lock, self.stopped = threading.Lock(), threading.Event()

    def stop(self) -> None:
        """No worker is started after this returns (one being started now is in ``children`` by then)."""
        with self.lock:
            self.stopped.set()

    def run(self) -> None:
        deaths: list[float] = []
        paused_until = 0.0
        while not self.stopped.wait(0.5):
            for i, child in enumerate(self.children):
                code = child.poll()
                if code is None or time.monotonic() < paused_until:
                    continue
                with self.lock:
                    if self.stopped.is_set() or self.shutting_down():
                        return
                    now = time.monotonic()
                    deaths = [t for t in deaths if now - t < self.within_s] + [now]
                    if len(deaths) > self.most:
                        log.error("worker process %d exited (code %s): %d workers died within %g s, so none is "
                                  "started for %g s", child.pid, code, len(deaths), self.within_s, self.within_s)
                        deaths, paused_until = [], now + self.within_s
                        continue
                    try:
                        self.children[i] = self.start_worker()
                    except OSError as exc:  # no memory or file descriptors for a process now: tried again later
                        log.error("worker process %d exited (code %s); starting another failed (%s)", child.pid, code,
                                  exc.strerror or exc)
                        continue
                log.warning("worker process %d exited (code %s); started %d in its place", child.pid, code,
                            self.children[i].pid)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``: the first of the port's ``SO_REUSEPORT`` group where
    :data:`REUSE_PORT`, else one the workers inherit. ``OSError`` when the port is taken — also by another
    server's ``SO_REUSEPORT`` group, which a plain bind, tried first, does not join."""
    family = probe_port(host, port) if REUSE_PORT else socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return _listen_at(family, (host, port))


def probe_port(host: str, port: int) -> int:
    """Bind ``host:port`` once and let go (``OSError`` when another socket holds it, even in an ``SO_REUSEPORT``
    group); the address family. ``SO_REUSEADDR`` as uvicorn and the workers' sockets: a restart's TIME_WAIT is fine."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    return family


def _listen_at(family: int, address: Any) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if REUSE_PORT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(not REUSE_PORT)
    return sock


def _start_worker(sock: socket.socket, model: Path, runs: Path, collect: str | None = None,
                  access_log: bool = False, identity: str | None = None) -> subprocess.Popen:
    env = {**os.environ, _PARENT_ENV: str(os.getpid()), "DIGITLAB_MODEL": str(Path(model).resolve()),
           "DIGITLAB_RUNS": str(runs), "DIGITLAB_COLLECT": collect or "", _ACCESS_ENV: "1" if access_log else ""}
    env.pop(COLLECT_ID_ENV, None)
    if identity is not None:
        env[COLLECT_ID_ENV] = identity
    if REUSE_PORT:  # the worker opens its own socket, at the very address of this one, once its model is read
        env[_BIND_ENV] = json.dumps([int(sock.family), list(sock.getsockname())])
        env.pop(_FD_ENV, None)
    else:
        env[_FD_ENV] = str(sock.fileno())
    code = "from digitlab.serve.workers import _worker_main; _worker_main()"
    return subprocess.Popen([sys.executable, "-c", code], env=env, pass_fds=() if REUSE_PORT else (sock.fileno(),))


def _first_for_the_oom_killer() -> None:
    """Out of memory, Linux kills a worker before the first process, which replaces it (an engineer: the first
    process, the larger, would have gone first, and the whole server with it). Raising one's own score needs no
    privilege; elsewhere nothing is done."""
    try:
        with open("/proc/self/oom_score_adj", "r+") as handle:
            score = int(handle.read().strip() or 0)  # a container may have set it high already: never lowered
            handle.seek(0)
            handle.write(str(max(score, min(1000, score + 500))))
    except (OSError, ValueError):
        pass


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def _worker_main() -> None:
    """A worker process: build the app from the environment, then serve on its own socket in the port's
    ``SO_REUSEPORT`` group, or on the inherited one."""
    import uvicorn

    from digitlab.serve.app import app_from_env
    from digitlab.serve.connections import raise_open_file_limit, uvicorn_settings

    from digitlab.errors import DigitlabError

    parent = int(os.environ[_PARENT_ENV])
    _first_for_the_oom_killer()
    log.addFilter(_warnings_only)  # the first process has said which model it serves, and how: once is enough
    try:
        application = app_from_env()
    except DigitlabError as exc:  # its run moved or deleted since the server started: one line, not a traceback
        log.error("worker process %d cannot start: %s", os.getpid(), (str(exc).splitlines() or [""])[0])
        sys.exit(2)
    finally:
        log.removeFilter(_warnings_only)
    log.info("worker process %d is serving too", os.getpid())
    if _BIND_ENV in os.environ:
        if os.getppid() != parent:
            return  # the server stopped while this worker read its model: no socket to join any more
        family, address = json.loads(os.environ[_BIND_ENV])
        try:
            sock = _listen_at(family, tuple(address))
        except OSError as exc:
            log.error("worker %d cannot listen on %s (%s); the others serve without it", os.getpid(), address[:2],
                      exc.strerror or exc)
            sys.exit(1)
    else:
        sock = socket.socket(fileno=int(os.environ[_FD_ENV]))
    raise_open_file_limit()
    gc.collect()
    gc.freeze()
    access_log = os.environ.get(_ACCESS_ENV) == "1"
    config = uvicorn.Config(application, log_level="info" if access_log else "warning",
                            **uvicorn_settings(ServeLimits(), access_log))
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # the first process alone says it started
    server = uvicorn.Server(config)

    def watch_parent() -> None:
        while not server.should_exit:
            if os.getppid() != parent:
                server.should_exit = True
            time.sleep(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    server.run(sockets=[sock])
