"""`hdhub serve --workers 2`: each worker process opens the deployment and answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import _free_port, hdhub_ok


@pytest.mark.slow
def test_two_workers_serve_the_same_deployment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    hdhub_ok("init", str(home))
    hdhub_ok("--home", str(home), "db", "upgrade")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDHUB_")}
    proc = subprocess.Popen([sys.executable, "-m", "hdhub.cli.main", "--home", str(home), "serve", "--port",
                             str(port), "--workers", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        answered = set()
        deadline = time.monotonic() + 60
        while len(answered) < 1 and time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if r.status_code == 200:
                    answered.add(r.status_code)
            except httpx.TransportError:
                time.sleep(0.2)
        assert answered == {200}
        register = httpx.get(f"http://127.0.0.1:{port}/api/v1/register", timeout=5)
        assert register.status_code == 200 and register.json() == []
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert output.count("Started server process") == 2, output
