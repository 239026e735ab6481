"""`hdhub serve --workers N`: N server processes, each listening on a socket of its own.

uvicorn's own workers share one listening socket, and the worker that wakes first accepts
every connection waiting. A few long-lived connections (a reverse proxy's keep-alive pool, a
device gateway, a load generator) then all land on one worker while the others idle: with
two workers under `benchmarks/vitals.py`, one process ran at 99 % of a core and the other at
4 %. Here each worker has its own socket, all bound to the address with SO_REUSEPORT, and the
kernel spreads new connections across them by a hash of the client's address and port.

A worker that dies is started again on its socket (connections that arrive meanwhile wait in
that socket's queue); one that fails while starting (exit status 3: the deployment cannot be
opened) stops the server. SIGINT and SIGTERM stop every worker, as uvicorn's supervisor does.
``/metrics`` counts the requests of every worker (see :func:`serve_workers`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from hdhub.errors import ConfigError

STARTUP_FAILURE = 3  # uvicorn's exit status when the app or its socket cannot start
BACKLOG = 2048  # uvicorn's default
STOP_TIMEOUT = 30.0  # seconds a worker has to finish its requests once told to stop


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` as one SO_REUSEPORT group.

    The address is first bound without SO_REUSEPORT, so a port already in use — by another
    server, or by another hdhub serving with its own SO_REUSEPORT group — is an error here,
    never a port quietly shared with it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = probe.getsockname()[1]  # port 0: the one the system chose, for every worker
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sockets


def _worker(home: str, sock: socket.socket) -> None:  # pragma: no cover (runs in a child process)
    import uvicorn

    from hdhub.config.settings import load_settings

    os.environ["HDHUB_HOME"] = home
    config = uvicorn.Config(
        "hdhub.api.app:app_from_environment", factory=True, log_level="info", proxy_headers=True,
        forwarded_allow_ips=load_settings(home).server.trusted_proxies,
    )  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])


class Workers:
    """The worker processes of one ``hdhub serve``, one per socket."""

    def __init__(
        self, home: str, sockets: list[socket.socket], target: Callable[[str, socket.socket], None] = _worker
    ) -> None:
        self.home, self.sockets, self.target = home, sockets, target
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.stop = threading.Event()

    def _start(self, sock: socket.socket) -> BaseProcess:
        process = self.context.Process(target=self.target, args=(self.home, sock), name="hdhub-worker")
        process.start()
        return process

    def run(self) -> None:
        """Start the workers, keep them running until SIGINT or SIGTERM, then stop them."""
        previous = {}
        if threading.current_thread() is threading.main_thread():  # else the caller sets ``stop``
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: self.stop.set())
        failed = False
        try:
            self.processes = [self._start(sock) for sock in self.sockets]
            while not self.stop.wait(0.5):
                for k, process in enumerate(self.processes):
                    if process.is_alive() or self.stop.is_set():
                        continue
                    process.join()
                    if process.exitcode == STARTUP_FAILURE:
                        failed = True
                        self.stop.set()
                        break
                    self.processes[k] = self._start(self.sockets[k])
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
        if failed:
            raise ConfigError("a server worker could not start (see its log above)")

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # uvicorn finishes the requests under way
        for process in self.processes:
            process.join(STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()


def serve_workers(home: str, host: str, port: int, workers: int) -> None:
    """Serve the deployment at ``home`` with ``workers`` processes; see the module docstring.

    The workers keep their Prometheus samples in files of one directory (prometheus_client's
    multiprocess mode), so ``/metrics``, whichever worker answers, counts every worker's
    requests; the directory lives as long as the server."""
    sockets = listening_sockets(host, port, workers)
    with tempfile.TemporaryDirectory(prefix="hdhub-metrics-") as samples:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = samples  # read by the workers as they start
        try:
            Workers(home, sockets).run()
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
