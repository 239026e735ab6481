from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.config.keys import KEK_FILE

runner = CliRunner()
PASSWORD = "correct horse battery staple"


def hd(home: Path, *args: str, input: str | None = None) -> object:
    return runner.invoke(app, ["--home", str(home), *args], input=input)


def _command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    click_group = typer.main.get_command(group) if not hasattr(group, "commands") else group
    paths = []
    for name, cmd in click_group.commands.items():
        paths.append((*prefix, name))
        if hasattr(cmd, "commands"):
            paths += _command_paths(cmd, (*prefix, name))
    return paths


def test_every_command_has_help() -> None:
    paths = _command_paths(app)
    assert len(paths) >= 25, paths
    for path in paths:
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert "Usage" in r.output, path


def test_init_then_upgrade_then_users_and_tokens(tmp_path: Path) -> None:
    home = tmp_path / "site"
    r = runner.invoke(app, ["init", str(home)])
    assert r.exit_code == 0, r.output
    assert hd(home, "db", "upgrade").exit_code == 0
    r = hd(
        home,
        "users",
        "add",
        "alice",
        "--role",
        "dpo",
        "--role",
        "researcher",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    r = hd(home, "users", "list")
    assert "alice" in r.output and "dpo, researcher" in r.output
    r = hd(home, "tokens", "issue", "alice", "--days", "2")
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    assert secret.startswith("hdh_")
    assert hd(home, "tokens", "revoke", secret[:12]).exit_code == 0
    assert "revoked" in hd(home, "tokens", "list").output
    assert hd(home, "users", "disable", "alice").exit_code == 0
    # Each of those CLI commands left an audit event naming the operating-system user.
    from hdhub.hub import Hub

    hub = Hub.open(home)
    actions = [e.action for e in hub.audit.search(limit=100)]
    hub.close()
    assert {"users.add", "users.list", "tokens.issue", "tokens.revoke", "users.disable"} <= set(actions)


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["users", "add", "bob", "--role", "wizard", "--no-password"], "unknown role(s) wizard", 65),
        (["users", "disable", "nobody"], "no user 'nobody'", 66),
        (["tokens", "issue", "nobody"], "no user 'nobody'", 66),
        (["tokens", "revoke", "hdh_zzzz"], "no token", 66),
        (["monitoring", "mqtt", "--client-id", "two words"], "--client-id: 1 to 23 letters", 65),
        (["monitoring", "mqtt", "--client-id", "x" * 24], "--client-id: 1 to 23 letters", 65),
    ],
)
def test_errors_are_one_line_and_nonzero(home: Path, args: list[str], message: str, code: int) -> None:
    r = hd(home, *args)
    assert r.exit_code == code, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_missing_deployment_is_a_clear_error(tmp_path: Path) -> None:
    r = hd(tmp_path / "nowhere", "users", "list")
    assert r.exit_code == 78
    assert "run `hdhub init" in r.output


def test_world_readable_secret_refuses_to_start(tmp_path: Path) -> None:
    home = tmp_path / "site"
    runner.invoke(app, ["init", str(home)])
    os.chmod(home / "secrets" / KEK_FILE, 0o644)
    r = hd(home, "db", "upgrade")
    assert r.exit_code == 78 and "chmod 600" in r.output


def test_serve_refuses_unmigrated_catalog_and_open_bind_without_admin(tmp_path: Path) -> None:
    home = tmp_path / "site"
    runner.invoke(app, ["init", str(home)])
    r = hd(home, "serve", "--port", "1")
    assert r.exit_code == 78 and "hdhub db upgrade" in r.output
    hd(home, "db", "upgrade")
    r = hd(home, "serve", "--host", "0.0.0.0", "--port", "1")  # noqa: S104
    assert r.exit_code == 78 and "no enabled admin" in r.output


def test_installed_entry_point_runs() -> None:
    exe = Path(sys.executable).with_name("hdhub")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hdhub.cli.main"]
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("hdhub ")
