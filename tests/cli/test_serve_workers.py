"""`hdhub serve --workers 2`: each worker process opens the deployment, listens on its own
socket, and takes its share of the connections."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from hdhub.cli.serve_workers import Workers, listening_sockets
from hdhub.errors import ConfigError
from tests.conftest import _free_port, hdhub_ok


@contextmanager
def two_workers(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """A server of two workers, its port and an admin's token."""
    home = tmp_path / "home"
    hdhub_ok("init", str(home))
    hdhub_ok("--home", str(home), "db", "upgrade")
    hdhub_ok("--home", str(home), "users", "add", "root", "--role", "admin", "--no-password")
    token = hdhub_ok("--home", str(home), "tokens", "issue", "root").strip().splitlines()[-1]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDHUB_")}
    proc = subprocess.Popen([sys.executable, "-m", "hdhub.cli.main", "--home", str(home), "serve", "--port",
                             str(port), "--workers", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # A long read timeout: a request queued at a worker still starting is never given
                # up on, to be answered (and counted) later behind the test's back.
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield proc, port, token
    finally:
        proc.terminate()
        proc.output = proc.communicate(timeout=60)[0]  # type: ignore[attr-defined]


def healthz_count(port: int, headers: dict[str, str]) -> float:
    """What ``/metrics`` counts of successful ``GET /healthz`` (on a new connection each time)."""
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5)
    assert metrics.status_code == 200, metrics.text
    sample = r'hdhub_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)'
    found = re.search(sample, metrics.text)
    return float(found.group(1)) if found else 0.0


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _sockets(pid: int, port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets on local ``port`` in ``state`` (01 established, 0A listening)
    that process ``pid`` holds (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state and fields[9] in inodes:
            found.add(fields[9])
    return found


@pytest.mark.slow
def test_two_workers_share_connections_and_count_each_others_requests(tmp_path: Path) -> None:
    with two_workers(tmp_path) as (proc, port, token):
        admin = {"Authorization": f"Bearer {token}"}
        register = httpx.get(f"http://127.0.0.1:{port}/api/v1/register", headers=admin, timeout=5)
        assert register.status_code == 200 and register.json() == []
        # Each worker listens on a socket of its own (with one shared socket, the worker that
        # woke first accepted every waiting connection: 4 of 4, 26 of 32), and the kernel
        # spreads 32 keep-alive connections opened at once over both.
        before = healthz_count(port, admin)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        try:
            for c in clients:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            for c in clients:
                assert c.recv(4096).startswith(b"HTTP/1.1 200")
            workers = [p for p in _children(proc.pid) if _sockets(p, port, "0A")]
            listening = [_sockets(p, port, "0A") for p in workers]
            shares = [len(_sockets(p, port, "01")) for p in workers]
        finally:
            for c in clients:
                c.close()
        # /metrics counts every worker's requests, whichever worker answers (each call below
        # is a new connection: both workers answer some).
        after = {healthz_count(port, admin) for _ in range(6)}
    assert after == {before + 32}, (before, after)
    assert proc.output.count("Started server process") == 2, proc.output  # type: ignore[attr-defined]
    assert len(listening) == 2 and all(len(x) == 1 for x in listening), listening
    assert listening[0] != listening[1]
    assert sum(shares) == 32 and min(shares) >= 1, shares  # none on one side: 1 run in 2 billion


def test_a_port_in_use_is_refused_never_shared() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            listening_sockets("127.0.0.1", port, 2)
    finally:
        taken.close()
    group = listening_sockets("127.0.0.1", 0, 2)  # another hdhub's SO_REUSEPORT group
    try:
        port = group[0].getsockname()[1]
        assert {s.getsockname()[1] for s in group} == {port}
        with pytest.raises(ConfigError, match="cannot listen on"):
            listening_sockets("127.0.0.1", port, 2)
    finally:
        for s in group:
            s.close()


def _fails_to_start(home: str, sock: socket.socket) -> None:
    sys.exit(3)  # uvicorn's exit status when the app cannot start


def _dies_once(home: str, sock: socket.socket) -> None:
    starts = Path(home) / "starts"
    with starts.open("a") as f:
        f.write("x")
    if len(starts.read_text()) == 1:
        os._exit(1)  # the first start dies (a crash); the next one runs until told to stop
    time.sleep(600)


def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    sockets = listening_sockets("127.0.0.1", 0, 2)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="could not start"):
        Workers(str(tmp_path), sockets, target=_fails_to_start).run()
    assert time.monotonic() - started < 30
    assert all(s.fileno() == -1 for s in sockets)  # closed


def test_a_worker_that_dies_is_started_again_on_its_socket(tmp_path: Path) -> None:
    sockets = listening_sockets("127.0.0.1", 0, 1)
    workers = Workers(str(tmp_path), sockets, target=_dies_once)
    runner = threading.Thread(target=workers.run)
    runner.start()
    try:
        starts, deadline = tmp_path / "starts", time.monotonic() + 60
        while not (starts.exists() and len(starts.read_text()) >= 2):
            assert time.monotonic() < deadline, "the worker was not started again"
            time.sleep(0.1)
        assert workers.processes[0].is_alive()
    finally:
        workers.stop.set()
        runner.join(60)
    assert not runner.is_alive() and not workers.processes[0].is_alive()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_only_trusted_proxies_make_the_session_cookie_secure(tmp_path: Path, workers: str) -> None:
    """Found by a review: the cookie was Secure only when the TLS proxy ran on the same host
    (uvicorn believes X-Forwarded-Proto from 127.0.0.1 alone); server.trusted_proxies names them."""
    from hdhub.catalog.migrate import upgrade
    from hdhub.hub import Hub
    from hdhub.security import users

    def login_cookie(trusted: str) -> str:
        home = tmp_path / trusted.replace(".", "-")
        hdhub_ok("init", str(home))
        toml = home / "hdhub.toml"
        setting = f'[server]\ntrusted_proxies = ["{trusted}"]\n'
        toml.write_text(toml.read_text().replace("[server]\n", setting, 1))
        hub = Hub.open(home)
        upgrade(hub.catalog)
        with Session(hub.catalog) as s, s.begin():
            users.create_user(s, "dr-lambert", ["clinician"], password="a long enough password")
        hub.close()
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HDHUB_")}
        command = [sys.executable, "-m", "hdhub.cli.main", "--home", str(home), "serve", "--port", str(port)]
        proc = subprocess.Popen([*command, "--workers", workers], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            r = httpx.post(f"http://127.0.0.1:{port}/login", headers={"X-Forwarded-Proto": "https"},
                           data={"username": "dr-lambert", "password": "a long enough password"},
                           timeout=60)  # fmt: skip
            assert r.status_code == 303, r.text
            return r.headers["set-cookie"]
        finally:
            proc.terminate()
            proc.wait(60)

    assert "secure" in login_cookie("127.0.0.1").lower()  # the proxy is on this host: believed
    assert "secure" not in login_cookie("192.0.2.1").lower()  # a request from elsewhere: not believed
