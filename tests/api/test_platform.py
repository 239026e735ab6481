from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import LoginFailure, User, aware
from tests.api.conftest import PASSWORD, Api


def test_healthz_needs_no_login(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_openapi_docs_served(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/auth/token", "/api/v1/users", "/api/v1/audit", "/healthz", "/metrics"} <= set(paths)


def test_password_flow_issues_a_working_token(api: Api) -> None:
    r = api.client.post("/api/v1/auth/token", data={"username": "user-admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 12 * 3600
    me = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {"name": "user-admin", "kind": "token", "roles": ["admin"]}
    login = api.hub.audit.search(action="POST /api/v1/auth/token", limit=1)[0]
    assert (login.actor, login.outcome) == ("user-admin", "success")


def test_bad_password_is_401_and_audited_as_denied(api: Api) -> None:
    r = api.client.post("/api/v1/auth/token", data={"username": "user-admin", "password": "nope" * 4})
    assert r.status_code == 401
    assert r.json() == {
        "error": {"code": "unauthenticated", "message": "invalid user name or password", "status": 401}
    }
    ev = api.hub.audit.search(limit=1)[0]
    assert ev.outcome == "denied" and ev.action == "POST /api/v1/auth/token"
    assert ev.resource_id == "user-admin" and ev.source == "10.1.2.3"


def test_user_admin_round_trip_never_exposes_hash(api: Api) -> None:
    h = api.as_role("admin")
    r = api.client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "nurse.joy", "roles": ["clinician"], "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    assert "password_hash" not in r.text and PASSWORD not in r.text
    r = api.client.patch(
        "/api/v1/users/nurse.joy", headers=h, json={"disabled": True, "roles": ["researcher"]}
    )
    assert r.json()["disabled"] is True and r.json()["roles"] == ["researcher"]
    listing = api.client.get("/api/v1/users", headers=h).json()
    assert "nurse.joy" in {u["username"] for u in listing}
    assert all("password" not in k for u in listing for k in u)


def test_invalid_user_bodies_store_nothing(api: Api) -> None:
    h = api.as_role("admin")
    bad = [
        {"username": "a", "roles": ["clinician"]},
        {"username": "ok.name", "roles": ["god"]},
        {"username": "ok.name", "roles": []},
        {"username": "ok.name", "roles": ["clinician"], "password": "short"},
        {"username": "<script>", "roles": ["clinician"]},
        {"username": "x" * 10_000, "roles": ["clinician"]},
    ]
    for body in bad:
        r = api.client.post("/api/v1/users", headers=h, json=body)
        assert r.status_code == 422, (body, r.text)
        assert set(r.json()["error"]) == {"code", "message", "status"}
    r = api.client.post(
        "/api/v1/users",
        headers=h,
        content=b"\x00\xff not json",
    )
    assert r.status_code == 422
    with Session(api.hub.catalog) as s:
        assert s.scalar(select(User).where(User.username == "ok.name")) is None


def test_duplicate_user_is_409(api: Api) -> None:
    h = api.as_role("admin")
    r = api.client.post("/api/v1/users", headers=h, json={"username": "user-dpo", "roles": ["dpo"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_unknown_route_has_same_error_shape(api: Api) -> None:
    r = api.client.get("/api/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_metrics_exposes_prometheus_text(api: Api) -> None:
    api.client.get("/healthz")
    r = api.client.get("/metrics", headers=api.as_role("admin"))
    assert r.headers["content-type"].startswith("text/plain")
    assert 'hdhub_http_requests_total{method="GET",route="/healthz",status="200"}' in r.text


def test_every_api_request_is_audited_with_role_and_source(api: Api) -> None:
    before = api.hub.audit.count()
    api.client.get("/api/v1/users", headers=api.as_role("admin"))
    api.client.get("/api/v1/users", headers=api.as_role("researcher"))
    api.client.get("/healthz")
    events = api.hub.audit.search(limit=2)
    assert api.hub.audit.count() == before + 2
    denied, ok = events[0], events[1]
    assert (ok.actor, ok.role, ok.outcome, ok.action) == (
        "user-admin",
        "admin",
        "success",
        "GET /api/v1/users",
    )
    assert (denied.actor, denied.outcome) == ("user-researcher", "denied")
    assert ok.source == "10.1.2.3"


def test_repeated_failed_sign_ins_slow_guessing_down(api: Api) -> None:
    def sign_in(name: str, password: str) -> Response:
        return api.client.post("/api/v1/auth/token", data={"username": name, "password": password})

    for _ in range(5):
        assert sign_in("user-clinician", "wrong guess!").status_code == 401
    # The sixth try is refused before the password is looked at: even the right one.
    r = sign_in("user-clinician", PASSWORD)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited" and "try again in 30 s" in r.json()["error"]["message"]
    # A user name no account has answers alike: the delay reveals no account.
    for _ in range(5):
        assert sign_in("nobody.here", "wrong guess!").status_code == 401
    assert sign_in("nobody.here", "wrong guess!").status_code == 429
    assert sign_in("user-dpo", PASSWORD).status_code == 200  # other names are not delayed

    def failures() -> LoginFailure | None:
        with Session(api.hub.catalog) as s:
            return s.get(LoginFailure, "user-clinician")

    def delay_over() -> None:
        with Session(api.hub.catalog) as s, s.begin():
            s.get(LoginFailure, "user-clinician").locked_until = datetime.now(UTC) - timedelta(seconds=1)

    delay_over()
    assert sign_in("user-clinician", "wrong again!").status_code == 401
    row = failures()
    assert row is not None and row.failures == 6
    assert 55 <= (aware(row.locked_until) - datetime.now(UTC)).total_seconds() <= 60  # doubled
    delay_over()
    assert sign_in("user-clinician", PASSWORD).status_code == 200  # and the count is cleared
    assert failures() is None
    denied = api.hub.audit.search(action="POST /api/v1/auth/token", limit=50)
    assert any(e.resource_id == "user-clinician" and e.outcome == "failure" for e in denied)  # the 429


def test_failures_are_counted_when_they_come_at_once(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def fail(_: int) -> int:
        form = {"username": "user-researcher", "password": "wrong guess!"}
        return api.client.post("/api/v1/auth/token", data=form).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(fail, range(8)))
    assert set(codes) <= {401, 429} and codes.count(401) >= 5, codes
    with Session(api.hub.catalog) as s:
        row = s.get(LoginFailure, "user-researcher")
    assert row is not None and row.failures == codes.count(401) and row.locked_until is not None


def test_an_unexpected_error_is_a_json_500_and_audited(api: Api) -> None:
    """Found by an API sweep (schemathesis): a route failing with an unexpected exception went
    out as Starlette's plain-text 500, past the audit middleware: no event, no metric."""

    def broken() -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    api.client.app.add_api_route("/api/v1/broken-on-purpose", broken)  # type: ignore[attr-defined]
    before = api.hub.audit.count()
    r = api.client.get("/api/v1/broken-on-purpose", headers=api.as_role("clinician"))
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    assert "OverflowError" not in r.text
    event = api.hub.audit.search(limit=1)[0]
    assert api.hub.audit.count() == before + 1
    assert (event.actor, event.outcome) == ("user-clinician", "failure")
    assert json.loads(event.detail)["status"] == 500
    metrics = api.client.get("/metrics", headers=api.as_role("admin")).text
    assert 'route="/api/v1/broken-on-purpose",status="500"' in metrics


def test_a_user_name_no_account_can_have_is_refused_without_being_stored(api: Api) -> None:
    """Found by an API sweep: a 100,000-character user name was stored in login_failures (the
    catalog grew at an anonymous caller's will; on PostgreSQL, varchar(150) would refuse it)."""
    for name in ["u" * 100_000, "user-clinician\n", "", "x"]:
        r = api.client.post("/api/v1/auth/token", data={"username": name, "password": "wrong guess!"})
        assert r.status_code in (401, 422), name[:20]
    with Session(api.hub.catalog) as s:
        assert s.scalars(select(LoginFailure)).all() == []


def test_a_405_names_the_allowed_methods_and_users_carry_their_offset(api: Api) -> None:
    """Found by an API sweep: the 405 lost its Allow header (RFC 9110), and GET /users gave
    created_at without a UTC offset where POST gave one."""
    r = api.client.put("/api/v1/auth/me", headers=api.as_role("admin"))
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    users = api.client.get("/api/v1/users", headers=api.as_role("admin")).json()
    assert users and all(datetime.fromisoformat(u["created_at"]).tzinfo is not None for u in users)
