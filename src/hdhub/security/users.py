"""Local user accounts and their roles."""

from __future__ import annotations

import math
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hdhub.catalog.db import writer_lock
from hdhub.catalog.models import LoginFailure, User, UserRole, aware
from hdhub.config.settings import SecuritySettings
from hdhub.errors import AuthenticationError, Conflict, NotFound, RateLimited, ValidationError
from hdhub.security.passwords import hash_password, needs_rehash, rehash_password, verify_password
from hdhub.security.principal import Principal
from hdhub.security.roles import ROLES

USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{1,149}")  # fullmatch
DISPLAY_NAME_MAX, EMAIL_MAX = 200, 320  # the catalog's column widths
# Roles a person's account may hold ("device" belongs to patients' devices, with their own tokens).
PERSON_ROLES = tuple(r for r in ROLES if r != "device")
FIRST_DELAY = timedelta(seconds=30)  # after the allowed failures; doubled at each further one
FAILURES_FORGOTTEN_AFTER = timedelta(days=1)  # a failure this long after the previous one counts as the first


def refused_roles(roles: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """The roles a person's account may not hold: unknown names, and "device"."""
    return sorted(set(roles) - set(PERSON_ROLES))


def check_roles(roles: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """The roles of a person's account, sorted, or ValidationError: the one rule of the API, the
    CLI, the administration pages and OIDC sign-in."""
    allowed = f"an account holds one or more of: {', '.join(PERSON_ROLES)}"
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValidationError(f"unknown role(s) {', '.join(unknown)}; {allowed}")
    if refused_roles(roles):
        raise ValidationError(
            "the device role belongs to a patient's device (registered with its own device token), "
            f"not to an account; {allowed}"
        )
    if not roles:
        raise ValidationError("a user needs at least one role")
    return sorted(set(roles))


def create_user(
    session: Session,
    username: str,
    roles: list[str],
    *,
    password: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
) -> User:
    if not USERNAME_RE.fullmatch(username):
        raise ValidationError(
            f"invalid user name {username!r}: 2-150 characters, letters, digits and . _ @ - only"
        )
    if display_name is not None and len(display_name) > DISPLAY_NAME_MAX:
        raise ValidationError(f"display name too long: at most {DISPLAY_NAME_MAX} characters")
    if email is not None and len(email) > EMAIL_MAX:
        raise ValidationError(f"e-mail address too long: at most {EMAIL_MAX} characters")
    roles = check_roles(roles)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(
        username=username,
        display_name=display_name,
        email=email,
        password_hash=hash_password(password) if password is not None else None,
        roles=[UserRole(role=r) for r in roles],
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def set_disabled(session: Session, username: str, disabled: bool) -> User:
    user = get_user(session, username)
    user.disabled = disabled
    return user


def set_roles(session: Session, username: str, roles: list[str]) -> User:
    user = get_user(session, username)
    wanted = check_roles(roles)
    user.roles = [r for r in user.roles if r.role in wanted]
    have = {r.role for r in user.roles}
    user.roles.extend(UserRole(role=r) for r in wanted if r not in have)
    return user


def set_password(session: Session, username: str, password: str) -> User:
    user = get_user(session, username)
    user.password_hash = hash_password(password)
    clear_failures(session, username)
    return user


def generate_password() -> str:
    """A random password (20 URL-safe characters, 120 bits) for an administrator to hand over once."""
    return secrets.token_urlsafe(15)


def update_user(
    session: Session,
    username: str,
    *,
    disabled: bool | None = None,
    roles: list[str] | None = None,
    password: str | None = None,
    actor: str | None = None,
) -> User:
    """Disable or enable, change the roles, set the password (each when given); disabling or a
    new password revokes every token of the user (sessions included). With ``actor``,
    the administrator doing it: they may neither disable their own account nor take their own
    admin role away (no administrator locks the platform's administration out by a slip)."""
    user = get_user(session, username)
    if actor is not None and actor == user.username:
        if disabled:
            raise Conflict("you cannot disable your own account")
        if roles is not None and "admin" in user.role_names and "admin" not in roles:
            raise Conflict("you cannot remove your own admin role")
    if disabled is not None:
        user = set_disabled(session, username, disabled)
    if roles is not None:
        user = set_roles(session, username, roles)
    if password is not None:
        user = set_password(session, username, password)
    if disabled or password is not None:  # re-enabling never revives sessions; a new password ends them
        _revoke_all_tokens(session, user)
    session.flush()
    return user


def _revoke_all_tokens(session: Session, user: User) -> None:
    from sqlalchemy import update

    from hdhub.catalog.models import ApiToken, utcnow

    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def authenticate(
    session: Session, username: str, password: str, policy: SecuritySettings | None = None
) -> User:
    """The user for these credentials, or AuthenticationError (same message whatever failed).

    Guessing is slowed down per user name: after ``policy.sign_in_attempts`` failures in a row
    (none more than a day apart), sign-ins under that name are refused (RateLimited, without
    looking at the password) for 30 s, then twice as long after each further failure, up to
    ``policy.sign_in_max_delay_minutes`` (the deployment's [security] settings), as
    the CNIL's password recommendation (deliberation 2022-100) asks of a password-only sign-in.
    Unknown names are counted alike, so the delay tells nothing about which accounts exist.
    A successful sign-in, or a new password, clears the count."""
    if not USERNAME_RE.fullmatch(username):  # no account can have it: nothing to count or store
        raise AuthenticationError("invalid user name or password")
    policy = policy or SecuritySettings()
    now = datetime.now(UTC)
    failed = session.get(LoginFailure, username)
    if failed is not None and failed.locked_until is not None and aware(failed.locked_until) > now:
        wait = math.ceil((aware(failed.locked_until) - now).total_seconds())
        raise RateLimited(f"too many failed sign-ins under this user name: try again in {wait} s")
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        max_delay = timedelta(minutes=policy.sign_in_max_delay_minutes)
        _count_failure(session.get_bind(), username, now, policy.sign_in_attempts, max_delay)
        raise AuthenticationError("invalid user name or password")
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = rehash_password(password)  # the policy applies to new passwords only
    if failed is not None:
        clear_failures(session, username)  # with the sign-in's own transaction
    return user


def _count_failure(engine: Any, username: str, now: datetime, attempts: int, max_delay: timedelta) -> None:
    """One more failure under ``username``, committed on its own (the sign-in's transaction is
    rolled back); concurrent failures each count (an upsert)."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    fresh = LoginFailure.last_failure_at < now - FAILURES_FORGOTTEN_AFTER
    stmt = (
        insert(LoginFailure)
        .values(username=username, failures=1, last_failure_at=now, locked_until=None)
        .on_conflict_do_update(
            index_elements=[LoginFailure.username],
            set_={"failures": case((fresh, 1), else_=LoginFailure.failures + 1), "last_failure_at": now},
        )
        .returning(LoginFailure.failures)
    )
    with writer_lock(engine), engine.begin() as conn:
        failures = conn.execute(stmt).scalar_one()
        if failures >= attempts:
            delay = min(max_delay, FIRST_DELAY * 2 ** min(failures - attempts, 20))
            conn.execute(
                update(LoginFailure).where(LoginFailure.username == username).values(locked_until=now + delay)
            )


def clear_failures(session: Session, username: str) -> None:
    """Forget the failed sign-ins under ``username`` (a new password was set)."""
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))


def principal_for(
    user: User, kind: str = "user", source: str | None = None, project: str | None = None
) -> Principal:
    """The user as a principal; with ``project``, scoped to that project's workspace."""
    return principal_of(user.username, frozenset(user.role_names), user.id, kind, source, project)


def principal_of(
    username: str, roles: frozenset[str], user_id: int, kind: str, source: str | None, project: str | None
) -> Principal:
    """A user's principal from what their token gave (:func:`principal_for` from the row)."""
    return Principal(
        name=username,
        roles=roles,
        kind=kind,
        user_id=user_id,
        source=source,
        projects=frozenset({project}) if project else frozenset(),
        scope_project=project,
    )
