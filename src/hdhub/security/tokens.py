"""API bearer tokens: random, stored as SHA-256, expiring, revocable.

A project token (``project``) reads that project's workspace and nothing else; it lives
no longer than the project's approval and dies as soon as the project stops being active
(expired, frozen, closed) or its user leaves the project.

A token's ``last_used_at`` is updated at most once a minute: recording every request would
make each read a catalog write.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from hdhub.catalog.db import is_row_id
from hdhub.catalog.models import ApiToken, Project, ProjectMember, User, UserRole, aware
from hdhub.errors import AuthenticationError, Conflict, Forbidden, NotFound, ValidationError

TOKEN_PREFIX = "hdh_"  # noqa: S105 (public prefix, not a secret)
LAST_USED_RESOLUTION = timedelta(minutes=1)
WEB_SESSION_NAME = "web session"  # the name /login gives a browser's session token


def _digest(token: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast hash is the right tool (no brute force).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session, user: User, *, name: str, ttl: timedelta, project: Project | None = None
) -> tuple[str, ApiToken]:
    """Create a token; the secret is returned once and never stored. With ``project``, a
    project token for one of its members, expiring with the project at the latest."""
    if ttl <= timedelta(0):
        raise ValidationError("token lifetime must be positive")
    if user.disabled:
        raise ValidationError(f"user {user.username!r} is disabled")
    expires = datetime.now(UTC) + ttl
    if project is not None:
        _check_project_token(session, project, user.username)
        if project.expires_at is not None:
            expires = min(expires, aware(project.expires_at))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name[:100],
        token_hash=_digest(secret),
        prefix=secret[:12],
        expires_at=expires,
        project_id=project.id if project is not None else None,
    )
    session.add(row)
    session.flush()
    return secret, row


def _check_project_token(session: Session, project: Project, username: str) -> None:
    """A project token needs an active, unfrozen project and a member holding it."""
    member = session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == project.id, ProjectMember.username == username
        )
    )
    if member is None:
        raise Forbidden(f"{username}: not a member of project {project.slug!r}")
    expired = project.expires_at is not None and aware(project.expires_at) <= datetime.now(UTC)
    if project.status != "active" or project.frozen_at is not None or expired:
        raise Conflict(f"project {project.slug!r} has no open workspace (it is {project.status})")


@dataclass(frozen=True)
class LiveToken:
    """What a request needs of its bearer token: whose it is, their roles, its project."""

    id: int
    user_id: int
    username: str
    roles: frozenset[str]
    project: str | None  # the project's slug, for a project token


# The token, its user and the user's roles in one statement (a row per role): every API
# request runs it. Through the ORM (the token, then its user, then the roles) it took 1 ms,
# ten times as long, a tenth of a QIDO-RS search.
_LIVE_TOKEN = (
    select(
        ApiToken.id.label("token_id"),
        ApiToken.expires_at,
        ApiToken.revoked_at,
        ApiToken.last_used_at,
        ApiToken.project_id,
        User.id.label("user_id"),
        User.username,
        User.disabled,
        UserRole.role,
    )
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(UserRole, UserRole.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def check_token(session: Session, secret: str) -> LiveToken:
    """The live token of a bearer secret, or AuthenticationError: unknown, revoked, expired,
    a disabled account, or a project token whose project or membership ended."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        raise AuthenticationError("invalid token")
    rows = session.execute(_LIVE_TOKEN, {"token_hash": _digest(secret)}).all()
    now = datetime.now(UTC)
    if not rows or rows[0].revoked_at is not None:
        raise AuthenticationError("invalid or revoked token")
    row = rows[0]
    if aware(row.expires_at) <= now:
        raise AuthenticationError("token expired")
    if row.disabled:
        raise AuthenticationError("account disabled")
    slug = None
    if row.project_id is not None:
        project = session.get(Project, row.project_id)
        try:
            _check_project_token(session, project, row.username)  # type: ignore[arg-type]
        except (Conflict, Forbidden) as exc:
            raise AuthenticationError(f"project token no longer valid: {exc}") from None
        slug = project.slug  # type: ignore[union-attr]
    if row.last_used_at is None or now - aware(row.last_used_at) >= LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.token_id).values(last_used_at=now))
    roles = frozenset(r.role for r in rows if r.role is not None)
    return LiveToken(row.token_id, row.user_id, row.username, roles, slug)


def resolve_token(session: Session, secret: str) -> ApiToken:
    """The live token row for a bearer secret, or AuthenticationError (see :func:`check_token`)."""
    row = session.get(ApiToken, check_token(session, secret).id)
    assert row is not None  # checked a moment ago, in this transaction
    return row


def list_tokens(session: Session, username: str | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).join(User).order_by(ApiToken.created_at)
    if username:
        stmt = stmt.where(User.username == username)
    return list(session.scalars(stmt))


def revoke_token(session: Session, ident: str) -> ApiToken:
    """Revoke by numeric id, by displayed prefix, or by the secret itself."""
    stmt = select(ApiToken)
    if ident.isdecimal():
        stmt = stmt.where(ApiToken.id == int(ident))
    elif ident.startswith(TOKEN_PREFIX) and len(ident) > 20:
        stmt = stmt.where(ApiToken.token_hash == _digest(ident))
    else:
        stmt = stmt.where(ApiToken.prefix == ident)
    rows = list(session.scalars(stmt))
    if not rows:
        raise NotFound(f"no token {ident!r}")
    if len(rows) > 1:
        raise ValidationError(f"{ident!r} matches several tokens; use the numeric id")
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


def revoke_token_id(session: Session, token_id: int, *, owner: str | None = None) -> ApiToken:
    """Revoke the token with this numeric id (already revoked: unchanged). With ``owner``, only
    a token of that user: someone else's is NotFound, like one that does not exist."""
    row = session.get(ApiToken, token_id) if is_row_id(token_id) else None
    if row is None or (owner is not None and row.user.username != owner):
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


@dataclass(frozen=True)
class TokenInfo:
    """What an administrator sees of a token: never its secret nor its hash."""

    id: int
    user: str
    name: str
    kind: str  # web (a browser's session) | project (a project token) | api
    prefix: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    project: str | None  # the project's slug, for a project token

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= datetime.now(UTC) else "active"


def _live(now: datetime) -> list[ColumnElement[bool]]:
    return [ApiToken.revoked_at.is_(None), ApiToken.expires_at > now]


def _info_stmt() -> Select[tuple[ApiToken, str, str | None]]:
    return (
        select(ApiToken, User.username, Project.slug)
        .join(User, ApiToken.user_id == User.id)
        .outerjoin(Project, ApiToken.project_id == Project.id)
    )


def _info(row: ApiToken, username: str, slug: str | None) -> TokenInfo:
    kind = "project" if row.project_id is not None else "web" if row.name == WEB_SESSION_NAME else "api"
    return TokenInfo(
        id=row.id, user=username, name=row.name, kind=kind, prefix=row.prefix,
        created_at=aware(row.created_at), expires_at=aware(row.expires_at),
        last_used_at=aware(row.last_used_at) if row.last_used_at else None,
        revoked_at=aware(row.revoked_at) if row.revoked_at else None, project=slug,
    )  # fmt: skip


def token_overview(
    session: Session, *, include_inactive: bool = False, limit: int = 500, username: str | None = None
) -> list[TokenInfo]:
    """The newest tokens first, with their user and project; by default only the live ones
    (neither revoked nor expired); with ``username``, only that user's."""
    stmt = _info_stmt().order_by(ApiToken.created_at.desc(), ApiToken.id.desc()).limit(limit)
    if not include_inactive:
        stmt = stmt.where(*_live(datetime.now(UTC)))
    if username is not None:
        stmt = stmt.where(User.username == username)
    return [_info(row, name, slug) for row, name, slug in session.execute(stmt)]


def token_info(session: Session, token_id: int) -> TokenInfo:
    """What an administrator sees of one token (NotFound if there is none)."""
    found = session.execute(_info_stmt().where(ApiToken.id == token_id)).first()
    if found is None:
        raise NotFound(f"no token {token_id}")
    return _info(*found)


def count_live_tokens(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiToken).where(*_live(datetime.now(UTC)))) or 0
