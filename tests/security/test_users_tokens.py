from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import ApiToken, User
from hdhub.errors import AuthenticationError, Conflict, ValidationError
from hdhub.hub import Hub
from hdhub.security import tokens, users

PASSWORD = "correct horse battery staple"


def test_user_lifecycle_and_authentication(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        u = users.create_user(s, "alice", ["researcher", "clinician"], password=PASSWORD)
        assert u.password_hash.startswith("$argon2id$")
        assert PASSWORD not in u.password_hash
    with Session(hub.catalog) as s, s.begin():
        assert users.authenticate(s, "alice", PASSWORD).role_names == ["clinician", "researcher"]
        for name, pw in [("alice", "wrong password!!"), ("nobody", PASSWORD)]:
            with pytest.raises(AuthenticationError, match="invalid user name or password"):
                users.authenticate(s, name, pw)
        users.set_disabled(s, "alice", True)
    with Session(hub.catalog) as s, pytest.raises(AuthenticationError):
        users.authenticate(s, "alice", PASSWORD)


@pytest.mark.parametrize(
    ("username", "roles", "password", "message"),
    [
        ("bob", ["wizard"], PASSWORD, "unknown role"),
        ("bob", [], PASSWORD, "at least one role"),
        ("../etc", ["admin"], PASSWORD, "invalid user name"),
        ("x" * 200, ["admin"], PASSWORD, "invalid user name"),
        ("bob", ["admin"], "short", "at least 12"),
    ],
)
def test_create_user_rejects_bad_input(
    hub: Hub, username: str, roles: list[str], password: str, message: str
) -> None:
    with Session(hub.catalog) as s, s.begin():
        with pytest.raises(ValidationError, match=message):
            users.create_user(s, username, roles, password=password)
        assert s.scalar(select(User).where(User.username == username)) is None


def test_duplicate_user_is_conflict(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        users.create_user(s, "carol", ["dpo"], password=PASSWORD)
    with Session(hub.catalog) as s, s.begin(), pytest.raises(Conflict):
        users.create_user(s, "carol", ["dpo"], password=PASSWORD)


def test_tokens_are_hashed_expire_and_revoke(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        u = users.create_user(s, "dave", ["data_engineer"], password=PASSWORD)
        secret, row = tokens.issue_token(s, u, name="t", ttl=timedelta(hours=1))
        expired, _ = tokens.issue_token(s, u, name="old", ttl=timedelta(seconds=1))
        row_id = row.id
    with Session(hub.catalog) as s:
        stored = [t.token_hash for t in s.scalars(select(ApiToken))]
        assert secret not in stored and all(len(h) == 64 for h in stored)
    with Session(hub.catalog) as s, s.begin():
        assert tokens.resolve_token(s, secret).user.username == "dave"
        past = datetime.now(UTC) - timedelta(days=1)
        s.execute(ApiToken.__table__.update().where(ApiToken.name == "old").values(expires_at=past))
    with Session(hub.catalog) as s, s.begin(), pytest.raises(AuthenticationError, match="expired"):
        tokens.resolve_token(s, expired)
    with Session(hub.catalog) as s, s.begin():
        tokens.revoke_token(s, str(row_id))
    with Session(hub.catalog) as s, s.begin(), pytest.raises(AuthenticationError, match="revoked"):
        tokens.resolve_token(s, secret)


@pytest.mark.parametrize("bad", ["", "hdh_", "hdh_" + "A" * 43, "Bearer x", "hdh_" + "x" * 5000, "\x00"])
def test_garbage_tokens_are_refused(hub: Hub, bad: str) -> None:
    with Session(hub.catalog) as s, pytest.raises(AuthenticationError):
        tokens.resolve_token(s, bad)


def test_disabled_user_token_stops_working(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        u = users.create_user(s, "erin", ["clinician"], password=PASSWORD)
        secret, _ = tokens.issue_token(s, u, name="t", ttl=timedelta(hours=1))
        users.set_disabled(s, "erin", True)
    with Session(hub.catalog) as s, pytest.raises(AuthenticationError, match="disabled"):
        tokens.resolve_token(s, secret)


def test_disabling_or_a_new_password_ends_every_session_for_good(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        user = users.create_user(s, "dr-roux", ["clinician"], password="first password, long")
        first, _ = tokens.issue_token(s, user, name="web session", ttl=timedelta(hours=1))
        users.update_user(s, "dr-roux", disabled=True)
    with Session(hub.catalog) as s, s.begin():
        users.update_user(s, "dr-roux", disabled=False)  # re-enabled: the old session stays dead
        with pytest.raises(AuthenticationError):
            tokens.resolve_token(s, first)
        second, _ = tokens.issue_token(
            s, users.get_user(s, "dr-roux"), name="web session", ttl=timedelta(hours=1)
        )
        users.update_user(s, "dr-roux", roles=["clinician", "researcher"])  # a role change keeps it
        assert tokens.resolve_token(s, second).user.username == "dr-roux"
        users.update_user(s, "dr-roux", password="second password, long")
        with pytest.raises(AuthenticationError):
            tokens.resolve_token(s, second)
        users.create_user(s, "root-admin", ["admin"], password="x" * 20)
        with pytest.raises(Conflict):
            users.update_user(s, "root-admin", disabled=True, actor="root-admin")
        with pytest.raises(Conflict):
            users.update_user(s, "root-admin", roles=["dpo"], actor="root-admin")


def test_a_checked_token_gives_its_roles_and_notes_its_use_once_a_minute(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        u = users.create_user(s, "erin", ["researcher", "clinician"], password=PASSWORD)
        secret, row = tokens.issue_token(s, u, name="t", ttl=timedelta(hours=1))
        row_id = row.id
    with Session(hub.catalog) as s, s.begin():
        live = tokens.check_token(s, secret)
    assert (live.username, live.roles, live.project) == ("erin", frozenset({"researcher", "clinician"}), None)
    with Session(hub.catalog) as s:
        first_use = s.get(ApiToken, row_id).last_used_at
    assert first_use is not None
    with Session(hub.catalog) as s, s.begin():
        tokens.check_token(s, secret)  # within the minute: not written again
    with Session(hub.catalog) as s, s.begin():
        assert s.get(ApiToken, row_id).last_used_at == first_use
        s.get(ApiToken, row_id).last_used_at = first_use - timedelta(minutes=2)
    with Session(hub.catalog) as s, s.begin():
        tokens.check_token(s, secret)
    with Session(hub.catalog) as s:
        assert s.get(ApiToken, row_id).last_used_at > first_use - timedelta(minutes=2)
    with Session(hub.catalog) as s, s.begin():
        users.set_roles(s, "erin", ["dpo"])
    with Session(hub.catalog) as s, s.begin():
        assert tokens.check_token(s, secret).roles == frozenset({"dpo"})  # roles are read at each request
