"""The account rules in one place: the password policy (12 to 1024 characters, for new passwords
only) and the roles a person's account may hold (never "device")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from hdhub.catalog.models import User, UserRole
from hdhub.errors import NotFound, ValidationError
from hdhub.hub import Hub
from hdhub.security import tokens, users
from hdhub.security.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    check_password_policy,
    hash_password,
    verify_password,
)
from hdhub.security.roles import ROLES

PASSWORD = "correct horse battery staple"


def test_the_policy_bounds() -> None:
    assert (MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH) == (12, 1024)
    for ok in ("x" * 12, "é" * 12, "🔑" * 12, "x" * 1024):
        check_password_policy(ok)
    for short in ("", "x" * 11, "é" * 11):
        with pytest.raises(ValidationError, match="at least 12 characters"):
            check_password_policy(short)
    with pytest.raises(ValidationError, match="at most 1024 characters"):
        check_password_policy("x" * 1025)
    with pytest.raises(ValidationError, match="at least 12"):
        hash_password("x" * 11)


def test_generated_passwords_pass_the_policy() -> None:
    for _ in range(50):
        check_password_policy(users.generate_password())


def test_an_oversized_password_never_reaches_the_hasher() -> None:
    assert not verify_password(hash_password(PASSWORD), PASSWORD + "x" * MAX_PASSWORD_LENGTH)


def test_setting_or_changing_a_short_password_stores_nothing(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        users.create_user(s, "alice", ["researcher"], password=PASSWORD)
    for change in (
        lambda s: users.set_password(s, "alice", "x" * 11),
        lambda s: users.update_user(s, "alice", password="x" * 11),
        lambda s: users.create_user(s, "bob", ["dpo"], password="x" * 11),
    ):
        with Session(hub.catalog) as s, s.begin(), pytest.raises(ValidationError, match="at least 12"):
            change(s)
    with Session(hub.catalog) as s, s.begin():
        assert users.authenticate(s, "alice", PASSWORD).username == "alice"


def test_a_short_password_set_before_the_rule_still_signs_in_and_is_rehashed(hub: Hub) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192)  # parameters older than argon2-cffi's defaults
    with Session(hub.catalog) as s, s.begin():
        s.add(User(username="old-timer", password_hash=weak.hash("short"), roles=[UserRole(role="dpo")]))
    with Session(hub.catalog) as s, s.begin():
        assert users.authenticate(s, "old-timer", "short").username == "old-timer"
    with Session(hub.catalog) as s:
        renewed = users.get_user(s, "old-timer").password_hash
    assert renewed.startswith("$argon2id$") and "m=8192" not in renewed
    with Session(hub.catalog) as s, s.begin():
        assert users.authenticate(s, "old-timer", "short").username == "old-timer"


def test_person_roles_are_every_role_but_device() -> None:
    assert set(users.PERSON_ROLES) == set(ROLES) - {"device"}
    assert users.refused_roles(["device", "wizard", "dpo"]) == ["device", "wizard"]
    assert users.refused_roles(["dpo", "admin"]) == []


@pytest.mark.parametrize(("roles", "message"), [
    (["device"], "device role belongs to a patient's device"),
    (["admin", "device"], "device role belongs to a patient's device"),
    (["device", "wizard"], "unknown role"),
    ([], "at least one role"),
])  # fmt: skip
def test_no_account_gets_the_device_role(hub: Hub, roles: list[str], message: str) -> None:
    with Session(hub.catalog) as s, s.begin():
        users.create_user(s, "alice", ["researcher"], password=PASSWORD)
    with Session(hub.catalog) as s, s.begin():
        with pytest.raises(ValidationError, match=message):
            users.create_user(s, "cuff", roles, password=PASSWORD)
        with pytest.raises(ValidationError, match=message):
            users.set_roles(s, "alice", roles)
        with pytest.raises(ValidationError, match=message):
            users.update_user(s, "alice", roles=roles)
    with Session(hub.catalog) as s:
        assert users.get_user(s, "alice").role_names == ["researcher"]


def test_revoking_ones_own_token_only(hub: Hub) -> None:
    with Session(hub.catalog) as s, s.begin():
        alice = users.create_user(s, "alice", ["researcher"], password=PASSWORD)
        bob = users.create_user(s, "bob", ["researcher"], password=PASSWORD)
        _, mine = tokens.issue_token(s, alice, name="a", ttl=timedelta(hours=1))
        _, theirs = tokens.issue_token(s, bob, name="b", ttl=timedelta(hours=1))
        mine_id, theirs_id = mine.id, theirs.id
    with Session(hub.catalog) as s, s.begin():
        with pytest.raises(NotFound, match=f"no token {theirs_id}"):
            tokens.revoke_token_id(s, theirs_id, owner="alice")
        assert tokens.revoke_token_id(s, mine_id, owner="alice").revoked_at is not None
    with Session(hub.catalog) as s:
        assert [t.id for t in tokens.token_overview(s, username="bob")] == [theirs_id]
        assert tokens.token_overview(s, username="alice") == []
        assert [t.id for t in tokens.token_overview(s, username="alice", include_inactive=True)] == [mine_id]
        info = tokens.token_info(s, mine_id)
        assert (info.user, info.status, info.kind) == ("alice", "revoked", "api")
