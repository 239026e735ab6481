"""`hdhub users add` and `hdhub demo` under the account rules: passwords of 12 to 1024
characters, no account with the device role."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from hdhub.catalog.models import User
from hdhub.cli.main import app
from hdhub.errors import AuthenticationError
from hdhub.hub import Hub
from hdhub.security.passwords import check_password_policy

runner = CliRunner()


def users_in(home: Path) -> list[str]:
    hub = Hub.open(home)
    try:
        with Session(hub.catalog) as s:
            return list(s.scalars(select(User.username)))
    finally:
        hub.close()


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["--role", "dpo"], "x" * 11, "password must have at least 12 characters"),
        (["--role", "dpo"], "x" * 1025, "password must have at most 1024 characters"),
        (["--role", "device"], "x" * 20, "device role belongs to a patient's device"),
        (["--role", "dpo", "--role", "device"], "x" * 20, "device role belongs to a patient's device"),
    ],
)
def test_users_add_refuses_with_one_line(home: Path, args: list[str], password: str, message: str) -> None:
    r = runner.invoke(
        app, ["--home", str(home), "users", "add", "bob", *args, "--password-stdin"], input=password + "\n"
    )
    assert r.exit_code == 65, r.output
    assert message in r.output and "Traceback" not in r.output
    assert "bob" not in users_in(home)


def test_users_add_accepts_twelve_characters_and_help_omits_device(home: Path) -> None:
    r = runner.invoke(
        app, ["--home", str(home), "users", "add", "bob", "--role", "dpo", "--password-stdin"],
        input="x" * 12 + "\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "bob" in users_in(home)
    help_text = runner.invoke(app, ["users", "add", "--help"]).output
    assert "researcher" in help_text and "device" not in help_text


def test_demo_passwords_pass_the_policy(tmp_path: Path) -> None:
    """`hdhub demo` without data nor server: every account it prints has a valid password."""
    r = runner.invoke(app, ["--home", str(tmp_path / "demo"), "demo", "--no-serve", "--patients", "0"])
    assert r.exit_code == 0, r.output
    printed = dict(re.findall(r"^\s+(demo-[\w-]+)\s+password: (\S+)", r.output, re.M))
    assert {"demo-admin", "demo-clinician", "demo-researcher", "demo-dpo"} <= set(printed), r.output
    for password in printed.values():
        check_password_policy(password)


def test_users_passwd_sets_a_new_password_and_revokes_tokens(home: Path) -> None:
    from hdhub.security import tokens, users

    add = ["--home", str(home), "users", "add", "bob", "--role", "dpo", "--password-stdin"]
    assert runner.invoke(app, add, input="first-password-1\n").exit_code == 0
    hub = Hub.open(home)
    try:
        with Session(hub.catalog) as s, s.begin():
            secret, _ = tokens.issue_token(s, users.get_user(s, "bob"), name="t", ttl=timedelta(hours=1))
    finally:
        hub.close()
    passwd = ["--home", str(home), "users", "passwd", "bob", "--password-stdin"]
    short = runner.invoke(app, passwd, input="short\n")
    assert short.exit_code == 65 and "at least 12 characters" in short.output
    r = runner.invoke(app, passwd, input="second-password-2\n")
    assert r.exit_code == 0, r.output
    generated = runner.invoke(app, ["--home", str(home), "users", "passwd", "bob", "--generate"])
    assert generated.exit_code == 0, generated.output
    password = re.search(r"password \(shown once\): (\S+)", generated.output)
    assert password is not None
    hub = Hub.open(home)
    try:
        with Session(hub.catalog) as s:
            assert users.authenticate(s, "bob", password.group(1)).username == "bob"
            with pytest.raises(AuthenticationError, match="revoked"):
                tokens.resolve_token(s, secret)
    finally:
        hub.close()
    missing = runner.invoke(app, ["--home", str(home), "users", "passwd", "nobody", "--generate"])
    assert missing.exit_code == 66 and "no user 'nobody'" in missing.output
