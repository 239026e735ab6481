from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_serves_and_printed_credentials_work(tmp_path: Path) -> None:
    """`hdhub demo` as the README runs it: set up, print an account, serve on loopback."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDHUB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hdhub.cli.main", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ""
        deadline = time.monotonic() + 60
        while "serving on" not in output and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output += line
        password = re.search(r"demo-admin\s+password: (\S+)", output).group(1)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        tok = httpx.post(f"{base}/api/v1/auth/token", data={"username": "demo-admin", "password": password})
        assert tok.status_code == 200, tok.text
        users = httpx.get(
            f"{base}/api/v1/users", headers={"Authorization": f"Bearer {tok.json()['access_token']}"}
        )
        assert users.status_code == 200 and users.json()[0]["username"] == "demo-admin"
        assert (tmp_path / "hdhub-demo" / "hdhub.toml").is_file()
        # The demo loaded a synthetic hospital group and checked it.
        loaded = re.search(r"FHIR resources -> ([\d,]+) persons", output)
        assert loaded and int(loaded.group(1).replace(",", "")) > 1900, output
        assert list((tmp_path / "hdhub-demo" / "reports").glob("dq-*.html"))
        # The research story: a project waiting for the committee, one with an open workspace.
        register = {p["project"]: p["status"] for p in httpx.get(f"{base}/api/v1/register").json()}
        assert register == {"demo-diabete": "active", "demo-insuffisance-cardiaque": "submitted"}
        secret = re.search(r"demo-researcher\s+password: (\S+)", output).group(1)
        tok = httpx.post(
            f"{base}/api/v1/auth/token", data={"username": "demo-researcher", "password": secret}
        )
        me = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        project = httpx.post(f"{base}/api/v1/projects/demo-diabete/tokens", json={}, headers=me)
        assert project.status_code == 201, project.text
        workspace = httpx.get(
            f"{base}/api/v1/workspaces/demo-diabete",
            headers={"Authorization": f"Bearer {project.json()['token']}"},
        )
        assert workspace.status_code == 200 and workspace.json()["persons"] > 100
        assert workspace.json()["notes_deidentified"] > 0
        # Remote monitoring: the synthetic home devices' episodes wait as alerts.
        secret = re.search(r"demo-clinician\s+password: (\S+)", output).group(1)
        tok = httpx.post(f"{base}/api/v1/auth/token", data={"username": "demo-clinician", "password": secret})
        alerts = httpx.get(
            f"{base}/api/v1/alerts", headers={"Authorization": f"Bearer {tok.json()['access_token']}"}
        )
        assert alerts.status_code == 200 and {a["rule"] for a in alerts.json()} >= {"bp_grade", "weight_gain"}
    finally:
        proc.terminate()
        proc.wait(15)
    # The demo's provisioning is recorded like any other (the project's page shows it).
    from hdhub.hub import Hub
    from hdhub.workspaces.runs import latest_run

    hub = Hub.open(tmp_path / "hdhub-demo")
    try:
        run = latest_run(hub.catalog, "demo-diabete")
        assert run is not None and run.state == "succeeded" and run.version == 1
    finally:
        hub.close()
