"""``digitlab serve``: the drawing page and the REST API, in one process or several.

The main CLI registers :func:`serve` as a command and turns a :class:`~digitlab.errors.DigitlabError`
into one line and exit code 2 (a bare ``--collect`` is rewritten to ``--collect=mine`` there). Heavy
imports stay inside the command so that ``digitlab --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from digitlab.errors import DigitlabError, require_extra


SERVE_MODULES = ("fastapi", "fastapi_offline", "uvicorn", "python_multipart")
"""What ``digitlab serve`` imports from its extra (``digitlab[serve]``)."""


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A run folder or model file (default: newest in runs/)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Where the newest model is found."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", min=1, max=256,
        help="Server processes sharing the port (default: this machine's cores); each answers requests on its own core."),
    collect: Optional[str] = typer.Option(
        None, "--collect", metavar="[NAME]",
        help="Let the page save labelled drawings into the handwriting set NAME (created if new; "
             "'mine' when the name is left out), for training on your class's own handwriting."),
    allow_host: Optional[List[str]] = typer.Option(
        None, "--allow-host", metavar="NAME",
        help="With --collect: also take saves addressed to this server as NAME (repeatable); an IP address, "
             "localhost and this machine's own name are always taken."),
    access_log: bool = typer.Option(
        False, "--access-log", help="Log a line for every request (off by default: a class drawing at once sends "
                                    "over a thousand a second)."),
) -> None:
    """Serve the drawing page and the REST API (POST /api/predict, GET /api/models, /docs).

    The model runs on ONNX Runtime where it is installed (its model.onnx is exported beside it once, or
    reused); set DIGITLAB_SERVE_ONNX=0 to serve the estimator itself. With --collect, the page also saves
    each drawing with its true digit (POST /api/samples) into a handwriting set under $DIGITLAB_DATA.
    """
    require_extra("serve", SERVE_MODULES, "the drawing page and its API")  # one line, before the imports need it
    from digitlab.serve.app import create_app
    from digitlab.serve.budget import ServeLimits
    from digitlab.serve.connections import run_server
    from digitlab.serve.workers import default_workers, listen, probe_port, run_workers

    if collect is not None:
        from digitlab.data.handwriting import check_set_name

        check_set_name(collect)  # a bad name is one line and exit 2, before the port or the model
    _allow_hosts(allow_host or [], collect)
    workers = workers or default_workers()
    try:  # a bad address or a busy port is one clear line, before any model work
        if workers > 1:
            listener = listen(host, port)  # held from now on: no other server can take the port meanwhile
        else:  # uvicorn binds it itself
            probe_port(host, port)
    except OSError as exc:
        raise DigitlabError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                            "choose another --port or --host") from None
    limits = ServeLimits()  # how much it decodes, reads and keeps open at once: sized for a laptop
    application = create_app(model, runs, limits, collect=collect)  # reads the model (and exports it to ONNX) once
    _say_where(host, port, workers)
    # "collecting samples into handwriting set ..." is logged as the set is opened: said once (a teacher saw it twice)
    if workers == 1:
        run_server(application, host, port, limits, access_log)
    else:
        run_workers(application, listener, _served_path(application), runs, limits, workers,
                    collect=collect, access_log=access_log)


def _say_where(host: str, port: int, workers: int) -> None:
    """The address to open, and, listening on every address, that the whole network can open it."""
    from digitlab.cli import console

    shown = _address_for_others(host)
    console.print(f"digitlab is serving on http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs)"
                  f"  with {workers} worker process{'es (press Ctrl+C to stop)' if workers > 1 else ''}")
    if shown != host:  # every address: the network sees it, and a student cannot open "http://0.0.0.0:8000/"
        console.print("anyone on this network can open it: digitlab asks for no password (--host 127.0.0.1 keeps it "
                      "to this machine)")


def _address_for_others(host: str) -> str:
    """The address others reach a server listening on every address by (``0.0.0.0``, ``::``): this machine's own on
    its network, else its name; any other ``host`` as it is (a security audit: "http://0.0.0.0:8853/" opened nothing
    on a student's laptop, and nothing said the page was open to the whole network)."""
    import socket

    if host not in ("0.0.0.0", "::", ""):
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # a UDP "connection" sends nothing: it only picks the outgoing address
            return probe.getsockname()[0]
    except OSError:  # no network route at all
        return socket.gethostname()


def _served_path(application) -> Path:
    """What each worker serves: the model file, or the folder when shipped with model.onnx alone (each worker had
    been handed the model file the folder lacks, refused it, and been started again and again)."""
    served = application.state.served.loaded.path
    return served if served.exists() else served.parent


def _allow_hosts(names: list[str], collect: str | None) -> None:
    """``--allow-host``: added to the environment, which every worker's app reads
    (:func:`~digitlab.serve.collect.foreign_host`)."""
    import os

    from digitlab.serve.collect import ALLOW_HOSTS_ENV, check_allowed_host

    allowed = [check_allowed_host(name) for name in names]  # a URL or a port is one line and exit 2
    if names and collect is None:  # it had been taken in silence: a teacher thought it let the class in
        typer.echo("note: --allow-host admits saves of drawings addressed to that name, and only --collect turns "
                   "saving on: without it, --allow-host changes nothing (the page and predictions answer any name)",
                   err=True)
    if allowed:
        os.environ[ALLOW_HOSTS_ENV] = ",".join(filter(None, [os.environ.get(ALLOW_HOSTS_ENV, ""), *allowed]))
