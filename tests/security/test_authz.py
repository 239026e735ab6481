from __future__ import annotations

import pytest

from hdhub.errors import AuthenticationError, Forbidden
from hdhub.security.authz import authorize, decide
from hdhub.security.principal import Principal
from hdhub.security.roles import POLICY, ROLES


def who(*roles: str) -> Principal:
    return Principal(name="u", roles=frozenset(roles), kind="user")


def test_unknown_action_is_denied_even_to_admin() -> None:
    assert not decide(who(*ROLES), "no-such:action").allowed


def test_anonymous_is_denied_everything() -> None:
    for action in POLICY:
        assert not decide(Principal.anonymous(), action).allowed
    with pytest.raises(AuthenticationError):
        authorize(Principal.anonymous(), "users:read")


@pytest.mark.parametrize("action", sorted(POLICY))
def test_every_action_denied_to_roles_outside_its_policy(action: str) -> None:
    for role in ROLES:
        assert decide(who(role), action).allowed == (role in POLICY[action])


def test_wrong_role_raises_forbidden_with_reason() -> None:
    with pytest.raises(Forbidden, match="may not audit:read"):
        authorize(who("researcher"), "audit:read")


def test_decision_names_granting_role() -> None:
    assert decide(who("dpo", "researcher"), "audit:read").role == "dpo"


def test_project_scope_requires_membership() -> None:
    member = Principal(name="r", roles=frozenset({"admin"}), kind="user", projects=frozenset({"p1"}))
    assert decide(member, "users:read", project="p1").allowed
    assert not decide(member, "users:read", project="p2").allowed
