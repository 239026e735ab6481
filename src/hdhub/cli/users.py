"""`hdhub users …` and `hdhub tokens …`."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from hdhub.cli.context import console, new_app, state
from hdhub.errors import ValidationError
from hdhub.security import tokens as token_service
from hdhub.security import users as user_service
from hdhub.security.users import PERSON_ROLES

users_app = new_app("Local user accounts.")
tokens_app = new_app("API bearer tokens.")

ROLE_HELP = "Role (repeatable): " + ", ".join(PERSON_ROLES)


def _read_password(password_stdin: bool) -> str | None:
    if password_stdin:
        import sys

        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="User name."),
    role: list[str] = typer.Option(..., "--role", "-r", help=ROLE_HELP),
    display_name: str | None = typer.Option(None, help="Full name."),
    email: str | None = typer.Option(None, help="E-mail address."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    no_password: bool = typer.Option(False, "--no-password", help="OIDC-only account (no local password)."),
) -> None:
    """Create a local user (a password of 12 to 1024 characters)."""
    st = state(ctx)
    decision = st.authorize("users:manage")
    user_service.check_roles(role)
    password = None if no_password else _read_password(password_stdin)
    with Session(st.hub.catalog) as session, session.begin():
        user = user_service.create_user(
            session, username, role, password=password, display_name=display_name, email=email
        )
        roles = user.role_names
    st.audit("users.add", decision, resource_type="user", resource_id=username, detail={"roles": roles})
    console.print(f"created user {username} with role(s) {', '.join(roles)}")


@users_app.command("list")
def list_(ctx: typer.Context) -> None:
    """List users."""
    st = state(ctx)
    decision = st.authorize("users:read")
    table = Table("user", "roles", "status", "created")
    with Session(st.hub.catalog) as session:
        for u in user_service.list_users(session):
            status = "disabled" if u.disabled else "active"
            table.add_row(u.username, ", ".join(u.role_names), status, f"{u.created_at:%Y-%m-%d}")
    st.audit("users.list", decision, resource_type="user")
    console.print(table)


def _set_disabled(ctx: typer.Context, username: str, disabled: bool) -> None:
    st = state(ctx)
    decision = st.authorize("users:manage")
    with Session(st.hub.catalog) as session, session.begin():
        user_service.update_user(session, username, disabled=disabled)
    action = "users.disable" if disabled else "users.enable"
    st.audit(action, decision, resource_type="user", resource_id=username)
    console.print(f"{username} {'disabled' if disabled else 'enabled'}")


@users_app.command("disable")
def disable(ctx: typer.Context, username: str = typer.Argument(..., help="User name.")) -> None:
    """Disable a user: their tokens stop working at once."""
    _set_disabled(ctx, username, True)


@users_app.command("enable")
def enable(ctx: typer.Context, username: str = typer.Argument(..., help="User name.")) -> None:
    """Re-enable a disabled user."""
    _set_disabled(ctx, username, False)


@users_app.command("passwd")
def passwd(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="User name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    generate: bool = typer.Option(False, "--generate", help="Make a random password and print it once."),
) -> None:
    """Give a user a new password (12 to 1024 characters): their tokens and sessions are revoked."""
    st = state(ctx)
    decision = st.authorize("users:manage")
    password = user_service.generate_password() if generate else _read_password(password_stdin)
    if not password:
        raise ValidationError("no password given")
    with Session(st.hub.catalog) as session, session.begin():
        user_service.update_user(session, username, password=password)
    st.audit("users.passwd", decision, resource_type="user", resource_id=username)
    console.print(f"new password set for {username}; their tokens and sessions are revoked")
    if generate:
        console.print(f"password (shown once): {password}", highlight=False)


@tokens_app.command("issue")
def issue(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Owner of the token."),
    name: str = typer.Option("cli", help="What the token is for."),
    days: float = typer.Option(30.0, help="Lifetime in days."),
) -> None:
    """Issue an API token for a user; the secret is printed once."""
    st = state(ctx)
    decision = st.authorize("tokens:manage")
    if days > st.hub.settings.security.max_token_ttl_days:
        raise ValidationError(f"--days may not exceed {st.hub.settings.security.max_token_ttl_days:g}")
    with Session(st.hub.catalog) as session, session.begin():
        user = user_service.get_user(session, username)
        secret, row = token_service.issue_token(session, user, name=name, ttl=timedelta(days=days))
        token_id, expires = row.id, row.expires_at
    st.audit(
        "tokens.issue",
        decision,
        resource_type="api_token",
        resource_id=str(token_id),
        detail={"user": username, "expires": expires.isoformat()},
    )
    console.print(f"token {token_id} for {username}, expires {expires:%Y-%m-%d %H:%M} UTC:", highlight=False)
    typer.echo(secret)


@tokens_app.command("list")
def list_tokens(
    ctx: typer.Context, username: str | None = typer.Argument(None, help="Only this user.")
) -> None:
    """List tokens (never their secrets)."""
    st = state(ctx)
    decision = st.authorize("tokens:manage")
    table = Table("id", "user", "name", "prefix", "expires", "status")
    with Session(st.hub.catalog) as session:
        for t in token_service.list_tokens(session, username):
            status = "revoked" if t.revoked_at else "active"
            table.add_row(str(t.id), t.user.username, t.name, t.prefix, f"{t.expires_at:%Y-%m-%d}", status)
    st.audit("tokens.list", decision, resource_type="api_token")
    console.print(table)


@tokens_app.command("revoke")
def revoke(ctx: typer.Context, token: str = typer.Argument(..., help="Token id, prefix or secret.")) -> None:
    """Revoke a token: it stops working at once."""
    st = state(ctx)
    decision = st.authorize("tokens:manage")
    with Session(st.hub.catalog) as session, session.begin():
        row = token_service.revoke_token(session, token)
        token_id = row.id
    st.audit("tokens.revoke", decision, resource_type="api_token", resource_id=str(token_id))
    console.print(f"token {token_id} revoked")
