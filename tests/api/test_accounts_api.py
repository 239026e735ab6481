"""Accounts over the JSON API: the password rule, no device role for a person, listing and
revoking API and device tokens, the concept search (real catalog, real app)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.audit.log import AuditEvent
from hdhub.catalog.models import ApiToken, User, UserRole
from hdhub.cohorts.concepts import MAX_QUERY_LENGTH, search_concepts
from hdhub.security import tokens, users
from hdhub.security.passwords import needs_rehash
from hdhub.warehouse.connection import read_only
from tests.api.conftest import DEVICE, PASSWORD, PERSON_KEY, T2DM, Api

TWELVE = "twelve chars"  # exactly the minimum
ELEVEN = "eleven char"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def stored(api: Api, username: str) -> User | None:
    with Session(api.hub.catalog) as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is not None:
            _ = user.role_names
        return user


def sign_in(api: Api, username: str, password: str) -> int:
    r = api.client.post("/api/v1/auth/token", data={"username": username, "password": password})
    return r.status_code


def new_token(api: Api, username: str) -> tuple[str, int]:
    with Session(api.hub.catalog) as s, s.begin():
        secret, row = tokens.issue_token(s, users.get_user(s, username), name="cli", ttl=timedelta(hours=1))
        return secret, row.id


def last_event(api: Api) -> AuditEvent:
    return api.hub.audit.search(limit=1)[0]


# ----------------------------------------------------------------------------------- passwords


@pytest.mark.parametrize(
    ("password", "message"),
    [(ELEVEN, "at least 12 characters"), ("", "at least 12 characters"), ("p" * 1025, "1024")],
)
def test_creating_a_user_with_a_password_out_of_bounds_is_422(api: Api, password: str, message: str) -> None:
    body = {"username": "nurse.joy", "roles": ["clinician"], "password": password}
    r = api.client.post("/api/v1/users", json=body, headers=api.as_role("admin"))
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]
    assert stored(api, "nurse.joy") is None


@pytest.mark.parametrize("password", [TWELVE, "é" * 12, "p" * 1024, None])
def test_a_password_within_bounds_or_none_creates_the_user(api: Api, password: str | None) -> None:
    body = {"username": "nurse.joy", "roles": ["clinician"], "password": password}
    r = api.client.post("/api/v1/users", json=body, headers=api.as_role("admin"))
    assert r.status_code == 201, r.text
    if password is not None:
        assert sign_in(api, "nurse.joy", password) == 200


def test_changing_a_password_to_a_short_one_changes_nothing(api: Api) -> None:
    secret, _ = new_token(api, "user-clinician")
    r = api.client.patch(
        "/api/v1/users/user-clinician",
        json={"disabled": True, "password": ELEVEN},
        headers=api.as_role("admin"),
    )
    assert r.status_code == 422 and "at least 12" in r.json()["error"]["message"]
    assert not stored(api, "user-clinician").disabled  # the whole change was rolled back
    assert sign_in(api, "user-clinician", PASSWORD) == 200 and sign_in(api, "user-clinician", ELEVEN) == 401
    assert api.client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 200  # not revoked
    r = api.client.patch(
        "/api/v1/users/user-clinician", json={"password": TWELVE}, headers=api.as_role("admin")
    )
    assert r.status_code == 200 and sign_in(api, "user-clinician", TWELVE) == 200


@pytest.mark.parametrize("hasher", [PasswordHasher(), PasswordHasher(time_cost=1, memory_cost=8192)])
def test_an_account_made_before_the_rule_still_signs_in(api: Api, hasher: PasswordHasher) -> None:
    """Also when its hash is renewed with current parameters at sign-in (the second hasher)."""
    with Session(api.hub.catalog) as s, s.begin():
        s.add(User(username="old-timer", password_hash=hasher.hash("short"), roles=[UserRole(role="dpo")]))
    assert sign_in(api, "old-timer", "short") == 200
    assert sign_in(api, "old-timer", "shorter") == 401
    assert not needs_rehash(stored(api, "old-timer").password_hash)


# ------------------------------------------------------------------------- no device role for persons


@pytest.mark.parametrize("roles", [["device"], ["clinician", "device"]])
def test_the_api_gives_no_account_the_device_role(api: Api, roles: list[str]) -> None:
    body = {"username": "cuff.user", "roles": roles, "password": PASSWORD}
    r = api.client.post("/api/v1/users", json=body, headers=api.as_role("admin"))
    assert r.status_code == 422, r.text
    assert "device role belongs to a patient's device" in r.json()["error"]["message"]
    assert stored(api, "cuff.user") is None
    r = api.client.patch("/api/v1/users/user-clinician", json={"roles": roles}, headers=api.as_role("admin"))
    assert r.status_code == 422 and "device role" in r.json()["error"]["message"]
    assert stored(api, "user-clinician").role_names == ["clinician"]


def test_unknown_roles_are_still_refused_with_the_roles_an_account_may_hold(api: Api) -> None:
    r = api.client.post(
        "/api/v1/users", json={"username": "x.y", "roles": ["wizard"]}, headers=api.as_role("admin")
    )
    message = r.json()["error"]["message"]
    assert r.status_code == 422 and "unknown role(s) wizard" in message
    assert "researcher" in message and "device" not in message


# ------------------------------------------------------------------------------------ tokens


def test_an_admin_lists_tokens_without_their_secrets(api: Api) -> None:
    secret, token_id = new_token(api, "user-researcher")
    r = api.client.get("/api/v1/tokens", headers=api.as_role("admin"))
    assert r.status_code == 200
    listed = r.json()
    assert {t["user"] for t in listed} >= {"user-admin", "user-researcher", "user-clinician"}
    mine = next(t for t in listed if t["id"] == token_id)
    assert mine["prefix"] == secret[:12] and mine["status"] == "active" and mine["kind"] == "api"
    assert secret not in r.text and "hash" not in r.text
    for value in api.tokens.values():
        assert value not in r.text
    only = api.client.get("/api/v1/tokens?user=user-researcher", headers=api.as_role("admin")).json()
    assert {t["user"] for t in only} == {"user-researcher"} and len(only) == 2
    assert len(api.client.get("/api/v1/tokens?limit=1", headers=api.as_role("admin")).json()) == 1
    for bad in ("limit=0", "limit=501", "user=" + "u" * 151):
        assert api.client.get(f"/api/v1/tokens?{bad}", headers=api.as_role("admin")).status_code == 422


def test_an_admin_revokes_someone_elses_token_audited_like_the_page(api: Api) -> None:
    secret, token_id = new_token(api, "user-researcher")
    r = api.client.delete(f"/api/v1/tokens/{token_id}", headers=api.as_role("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked" and r.json()["user"] == "user-researcher"
    event = last_event(api)
    assert (event.action, event.outcome, event.actor) == (
        "DELETE /api/v1/tokens/{token_id}",
        "success",
        "user-admin",
    )
    assert (event.resource_type, event.resource_id) == ("api_token", str(token_id))
    assert json.loads(event.detail)["user"] == "user-researcher"
    assert api.client.get("/api/v1/auth/me", headers=bearer(secret)).status_code == 401
    assert api.client.get("/api/v1/tokens", headers=api.as_role("admin")).json()  # the others live on
    listed = api.client.get("/api/v1/tokens?all=true", headers=api.as_role("admin")).json()
    assert next(t for t in listed if t["id"] == token_id)["status"] == "revoked"
    assert token_id not in {
        t["id"] for t in api.client.get("/api/v1/tokens", headers=api.as_role("admin")).json()
    }
    again = api.client.delete(f"/api/v1/tokens/{token_id}", headers=api.as_role("admin"))
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]


@pytest.mark.parametrize("ident", ["0", "999999", str(2**63), str(10**30), "-1"])
def test_revoking_an_unknown_token_is_404(api: Api, ident: str) -> None:
    r = api.client.delete(f"/api/v1/tokens/{ident}", headers=api.as_role("admin"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert api.client.delete(f"/api/v1/tokens/mine/{ident}", headers=api.as_role("dpo")).status_code == 404


def test_a_token_id_that_is_no_number_is_422(api: Api) -> None:
    assert api.client.delete("/api/v1/tokens/hdh_abc", headers=api.as_role("admin")).status_code == 422


def test_token_routes_need_a_token_and_the_right_role(api: Api) -> None:
    _, token_id = new_token(api, "user-researcher")
    for method, path in (
        ("GET", "/api/v1/tokens"),
        ("DELETE", f"/api/v1/tokens/{token_id}"),
        ("GET", "/api/v1/tokens/mine"),
        ("DELETE", f"/api/v1/tokens/mine/{token_id}"),
        ("GET", "/api/v1/devices"),
        ("DELETE", f"/api/v1/devices/{DEVICE}"),
    ):
        assert api.client.request(method, path).status_code == 401, path
        assert api.client.request(method, path, headers=api.as_role("device")).status_code == 403, path
    for role in ("clinician", "researcher", "dpo", "committee", "data_engineer"):
        r = api.client.delete(f"/api/v1/tokens/{token_id}", headers=api.as_role(role))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert api.client.get("/api/v1/tokens", headers=api.as_role(role)).status_code == 403
    assert api.client.get("/api/v1/devices", headers=api.as_role("clinician")).status_code == 403
    assert api.client.delete(f"/api/v1/devices/{DEVICE}", headers=api.as_role("clinician")).status_code == 403
    with Session(api.hub.catalog) as s:
        assert s.get(ApiToken, token_id).revoked_at is None


def test_users_list_and_revoke_their_own_tokens_only(api: Api) -> None:
    own_secret, own_id = new_token(api, "user-clinician")
    other_secret, other_id = new_token(api, "user-researcher")
    r = api.client.get("/api/v1/tokens/mine", headers=api.as_role("clinician"))
    assert r.status_code == 200
    assert {t["user"] for t in r.json()} == {"user-clinician"} and own_id in {t["id"] for t in r.json()}
    assert own_secret not in r.text and api.tokens["clinician"] not in r.text
    # Someone else's token: not found, as if it did not exist; it keeps working.
    r = api.client.delete(f"/api/v1/tokens/mine/{other_id}", headers=api.as_role("clinician"))
    assert r.status_code == 404
    assert api.client.get("/api/v1/auth/me", headers=bearer(other_secret)).status_code == 200
    r = api.client.delete(f"/api/v1/tokens/mine/{own_id}", headers=api.as_role("clinician"))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    event = last_event(api)
    assert (event.action, event.resource_type, event.resource_id, event.outcome) == (
        "DELETE /api/v1/tokens/mine/{token_id}", "api_token", str(own_id), "success"
    )  # fmt: skip
    assert api.client.get("/api/v1/auth/me", headers=bearer(own_secret)).status_code == 401
    # Revoking the token in use signs out.
    current = next(t["id"] for t in api.client.get("/api/v1/tokens/mine", headers=api.as_role("dpo")).json())
    assert api.client.delete(f"/api/v1/tokens/mine/{current}", headers=api.as_role("dpo")).status_code == 200
    assert api.client.get("/api/v1/tokens/mine", headers=api.as_role("dpo")).status_code == 401


def test_an_admin_lists_and_revokes_devices(api: Api) -> None:
    from hdhub.monitoring.devices import register_device

    with Session(api.hub.catalog) as s, s.begin():
        secret = register_device(s, "scale-0002", PERSON_KEY, "scale")
    r = api.client.get("/api/v1/devices", headers=api.as_role("admin"))
    assert r.status_code == 200
    assert {d["device_id"] for d in r.json()} == {DEVICE, "scale-0002"}
    assert secret not in r.text and api.tokens["device"] not in r.text and PERSON_KEY not in r.text
    r = api.client.delete("/api/v1/devices/scale-0002", headers=api.as_role("data_engineer"))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    event = last_event(api)
    assert (event.action, event.resource_type, event.resource_id, event.patient_id, event.outcome) == (
        "DELETE /api/v1/devices/{device_id}", "device", "scale-0002", PERSON_KEY, "success"
    )  # fmt: skip
    assert api.client.post("/api/v1/vitals", content=b"{}", headers=bearer(secret)).status_code == 401
    assert {
        d["device_id"] for d in api.client.get("/api/v1/devices", headers=api.as_role("admin")).json()
    } == {DEVICE}
    every = api.client.get("/api/v1/devices?all=true", headers=api.as_role("admin")).json()
    assert {d["device_id"]: d["status"] for d in every} == {DEVICE: "active", "scale-0002": "revoked"}
    assert api.client.delete("/api/v1/devices/nope", headers=api.as_role("admin")).status_code == 404
    assert api.client.delete("/api/v1/devices/" + "x" * 65, headers=api.as_role("admin")).status_code == 422


# ------------------------------------------------------------------------------ concept search


def test_concept_search_answers_what_the_explorer_page_shows(api: Api) -> None:
    for role in ("researcher", "data_engineer", "admin"):
        r = api.client.get("/api/v1/concepts?q=diabetes", headers=api.as_role(role))
        assert r.status_code == 200, r.text
        assert [c["concept_id"] for c in r.json()] == [T2DM]
    with read_only(api.hub.settings.warehouse_url_resolved) as con:
        assert r.json() == search_concepts(con, "diabetes")
    found = api.client.get(
        f"/api/v1/concepts?q={T2DM}&domain=condition&limit=1", headers=api.as_role("admin")
    )
    assert found.json()[0]["concept_name"] == "Type 2 diabetes mellitus"
    none = api.client.get("/api/v1/concepts?q=diabetes&domain=drug", headers=api.as_role("admin"))
    assert none.status_code == 200 and none.json() == []
    event = last_event(api)
    assert (event.action, event.resource_type, event.outcome) == (
        "GET /api/v1/concepts",
        "concept",
        "success",
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("q=" + "d" * (MAX_QUERY_LENGTH + 1), f"at most {MAX_QUERY_LENGTH} characters"),
        ("q=d", "at least 2 characters"),
        ("q=diabetes&limit=101", "less than or equal to 100"),
        ("q=diabetes&limit=0", "greater than or equal to 1"),
        ("q=diabetes&domain=wizardry", "unknown domain"),
        ("", "q"),
    ],
)
def test_concept_search_refuses_oversized_or_bad_queries(api: Api, query: str, message: str) -> None:
    r = api.client.get(f"/api/v1/concepts?{query}", headers=api.as_role("researcher"))
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]


def test_concept_search_needs_a_token_and_a_cohort_role(api: Api) -> None:
    assert api.client.get("/api/v1/concepts?q=diabetes").status_code == 401
    for role in ("clinician", "committee", "dpo", "device"):
        r = api.client.get("/api/v1/concepts?q=diabetes", headers=api.as_role(role))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
