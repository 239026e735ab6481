"""`hdhub project …` and `hdhub workspace …` as a data engineer and a member would run them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.hub import Hub
from tests.conftest import hdhub_ok, live_server


def hdhub(*args: str, env: dict[str, str] | None = None) -> object:
    return CliRunner().invoke(app, list(args), env=env)


def test_provision_then_token_then_release_request(ws_home: Path, tmp_path: Path) -> None:
    out = hdhub_ok("--home", str(ws_home), "project", "provision", "study-a")
    assert "project study-a: extract 1" in out and "notes de-identified" in out
    r = hdhub("--home", str(ws_home), "project", "token", "study-a", "--user", "bob")
    assert r.exit_code != 0 and "not a member of project 'study-a'" in r.output
    token = hdhub_ok("--home", str(ws_home), "project", "token", "study-a", "--user", "alice").split()[0]
    assert token.startswith("hdh_")
    table = tmp_path / "table1.csv"
    table.write_text("sex,n\nF,3\nM,40\n", encoding="utf-8")
    hub = Hub.open(ws_home)
    try:
        with live_server(hub) as url:
            out = hdhub_ok(
                "workspace", "release-request", "study-a", str(table), "--url", url, "--token", token
            )
            out = " ".join(out.split())  # the console wraps long lines
            assert "checks: fail" in out and "two output checkers" in out and "threshold: fail" in out
            r = hdhub("workspace", "release-request", "study-b", str(table), "--url", url, "--token", token)
            assert r.exit_code != 0 and "403" in r.output  # another project's airlock
    finally:
        hub.close()


def test_jupyter_needs_jupyterlab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    r = hdhub("workspace", "jupyter", "study-a", "--token", "hdh_x", "--dir", str(tmp_path / "nb"))
    assert r.exit_code != 0 and "JupyterLab is not installed" in r.output


def test_jupyter_starts_on_loopback_with_the_workspace_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in `jupyter` executable records how it was started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record.txt"
    fake = bin_dir / "jupyter"
    fake.write_text(
        f'#!/bin/sh\necho "$@" > {record}\necho "$HDHUB_PROJECT $HDHUB_TOKEN $HDHUB_URL" >> {record}\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    r = hdhub("workspace", "jupyter", "study-a", "--token", "hdh_secret", "--url", "http://127.0.0.1:9",
              "--dir", str(tmp_path / "nb"), "--port", "8899")  # fmt: skip
    assert r.exit_code == 0, r.output
    args, env = record.read_text().splitlines()
    assert "--ip=127.0.0.1" in args and "--port=8899" in args and "--no-browser" in args
    assert env == "study-a hdh_secret http://127.0.0.1:9"
    assert (tmp_path / "nb" / "study-a.ipynb").is_file()
