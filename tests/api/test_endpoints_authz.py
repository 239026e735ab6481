"""Every endpoint: refused without credentials, refused to every wrong role, allowed to the right one."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta

import httpx
import orjson
import pytest
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from hdhub.cohorts.definition import parse_definition
from hdhub.cohorts.service import save_definition
from hdhub.governance import projects as gov
from hdhub.imaging import media
from hdhub.monitoring.devices import register_device
from hdhub.security import tokens, users
from hdhub.security.roles import POLICY, ROLES
from tests.api.conftest import INS, INSTANCE, PERSON_KEY, SERIES, STUDY, Api, dicom_instance


def stow_body() -> tuple[str, bytes]:
    """A STOW-RS request storing one new instance (a fresh SOP Instance UID each time)."""
    data = dicom_instance(STUDY, SERIES, generate_uid())
    return 'multipart/related; type="application/dicom"; boundary=b0', (
        b"--b0\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--b0--\r\n"
    )


def vitals_body() -> tuple[str, bytes]:
    """One heart-rate Observation, at a new time each call."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC) - dt.timedelta(microseconds=secrets.randbelow(10**9))
    quantity = {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    code = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
    obs = {"resourceType": "Observation", "status": "final", "effectiveDateTime": now.isoformat(),
           "code": code, "valueQuantity": quantity}  # fmt: skip
    return "application/json", orjson.dumps(obs)


def fresh_alert(api: Api) -> str:
    from hdhub.catalog.models import Alert

    with Session(api.hub.catalog) as s, s.begin():
        at = "2026-01-01T00:00:00.000000Z"
        alert = Alert(person_key=PERSON_KEY, rule="tachycardia", severity="medium", status="open",
                      message="heart rate 140/min", dedup_key=secrets.token_hex(8), value_ids="[]",
                      first_at=at, last_at=at)  # fmt: skip
        s.add(alert)
        s.flush()
        return str(alert.id)


def tus_chunk() -> tuple[str, bytes]:
    return "application/offset+octet-stream", b"x"


def project_request() -> tuple[str, bytes]:
    """A valid request for a new project (a fresh slug each time)."""
    body = {
        "slug": "p-" + secrets.token_hex(4), "title": "t", "purpose": "p", "legal_basis": "MR-004",
        "principal_investigator": "user-clinician", "duration_months": 6,
        "data": [{"table": "person", "columns": ["person_id"], "justification": "counting persons"}],
    }  # fmt: skip
    return "application/json", orjson.dumps(body)


def fresh_project(api: Api, status: str) -> str:
    """A project of user-researcher (PI user-clinician) in ``status``: draft, submitted,
    under_review or approved (its cohort: every visit)."""
    slug = "p-" + secrets.token_hex(4)
    save_definition(api.hub.catalog, "user-researcher", "c", parse_definition(VISITS))
    item = gov.DataItem("person", ("person_id",), "counting persons")
    request = gov.ProjectRequest(
        slug, "t", "p", "MR-004", "user-clinician", 6, (item,), ("user-researcher",), cohort=("c", 1)
    )
    steps = ("draft", "submitted", "under_review", "approved")
    with Session(api.hub.catalog) as s, s.begin():
        project = gov.create_project(s, request, created_by="user-researcher")
        if steps.index(status) >= 1:
            gov.submit(s, project, by="user-researcher")
        if steps.index(status) >= 2:
            gov.start_review(s, project, "committee-colleague")
        if status == "approved":
            gov.review(s, project, "committee-colleague", vote="approve")
            gov.decide(s, project, "committee-colleague", "approved")
    return slug


VISITS = {"entry": {"events": [{"domain": "visit"}]}}


def active_project(api: Api) -> str:
    """An approved project of user-researcher, provisioned (its workspace is open)."""
    from hdhub.workspaces.provision import provision

    slug = fresh_project(api, "approved")
    provision(api.hub, slug, by="test")
    return slug


def fresh_release(api: Api, released: bool) -> str:
    """A release request of user-researcher (a passing table), released by two checkers or not."""
    from hdhub.workspaces import airlock

    release = airlock.request_release(api.hub, active_project(api), "user-researcher", "t.csv", b"n\n12\n")
    if released:
        for checker in ("committee-colleague", "committee-other"):
            airlock.review_release(api.hub, release.id, checker, "approve")
    return str(release.id)


def fresh_token(api: Api, headers: dict[str, str], own: bool) -> str:
    """The id of a new token: of the caller's account when ``own`` (user-clinician's for a caller
    without one), else of user-clinician."""
    owner = "user-clinician"
    for role, secret in api.tokens.items():
        if own and role in users.PERSON_ROLES and headers.get("Authorization") == f"Bearer {secret}":
            owner = f"user-{role.replace('_', '-')}"
    with Session(api.hub.catalog) as s, s.begin():
        _, row = tokens.issue_token(s, users.get_user(s, owner), name="to revoke", ttl=timedelta(hours=1))
        return str(row.id)


def fresh_device(api: Api) -> str:
    """A new device of PERSON_KEY (revoking it leaves the test deployment's own device working)."""
    device = "cuff-" + secrets.token_hex(4)
    with Session(api.hub.catalog) as s, s.begin():
        register_device(s, device, PERSON_KEY, "test cuff")
    return device


def send(
    api: Api, method: str, path: str, body: dict | Callable | None, headers: dict[str, str]
) -> httpx.Response:
    path = path.replace("MEDIA", api.media_id)
    if path.endswith("/TOKEN"):
        path = path.replace("TOKEN", fresh_token(api, headers, own="/mine/" in path))
    if path.endswith("/DEVICE"):
        path = path.replace("DEVICE", fresh_device(api))
    if "PROJECT" in path:
        ending = path.rsplit("/", 1)[-1]
        status = {
            "reviews": "submitted",
            "decision": "under_review",
            "count": "approved",
            "close": "approved",
            "PROJECT": "approved",  # reading: data engineers and admins read approved projects only
        }.get(ending, "draft")
        slug = active_project(api) if ending == "tokens" else fresh_project(api, status)
        path = path.replace("PROJECT", slug)
    if "ALERT" in path:
        path = path.replace("ALERT", fresh_alert(api))
    if "RELEASE" in path:
        path = path.replace("RELEASE", fresh_release(api, released=path.endswith("/file")))
    if path.endswith("/cohorts/SAVED"):  # the caller's own saved definition
        path = path.replace("SAVED", "c")
        api.client.post(
            "/api/v1/cohorts",
            json={"name": "c", "definition": {"entry": {"events": [{"domain": "visit"}]}}},
            headers=headers,
        )
    if "UPLOAD" in path:  # a fresh upload of 10 bytes for each request
        upload = media.create_upload(api.hub, size=10, category="video", patient_id="4MR1", created_by="t")
        path = path.replace("UPLOAD", upload.id)
    if "/api/v1/media/uploads" in path:
        headers = headers | {"Tus-Resumable": "1.0.0", "Upload-Offset": "0"}
        if method == "POST":
            metadata = "category dmlkZW8=,patient NE1SMQ=="  # video, 4MR1
            headers = headers | {"Upload-Length": "10", "Upload-Metadata": metadata}
    if callable(body):
        content_type, content = body()
        return api.client.request(
            method, path, content=content, headers=headers | {"content-type": content_type}
        )
    return api.client.request(method, path, json=body, headers=headers)


# (method, path, action, body)
ENDPOINTS = [
    ("GET", "/api/v1/users", "users:read", None),
    ("POST", "/api/v1/users", "users:manage", {"username": "zed", "roles": ["clinician"]}),
    ("PATCH", "/api/v1/users/user-clinician", "users:manage", {"disabled": False}),
    ("GET", "/api/v1/tokens", "tokens:manage", None),
    ("DELETE", "/api/v1/tokens/TOKEN", "tokens:manage", None),
    ("GET", "/api/v1/tokens/mine", "tokens:self", None),
    ("DELETE", "/api/v1/tokens/mine/TOKEN", "tokens:self", None),
    ("GET", "/api/v1/devices", "monitoring:manage", None),
    ("DELETE", "/api/v1/devices/DEVICE", "monitoring:manage", None),
    ("GET", "/api/v1/concepts?q=diabetes&limit=5", "cohorts:count", None),
    ("GET", "/api/v1/audit", "audit:read", None),
    ("GET", "/metrics", "metrics:read", None),
    ("GET", f"/api/v1/identities?identifier={INS[0]}|{INS[1]}", "identities:read", None),
    ("GET", f"/api/v1/identities/{PERSON_KEY}", "identities:read", None),
    (
        "POST",
        "/api/v1/cohorts/count",
        "cohorts:count",
        {"definition": {"entry": {"events": [{"domain": "visit"}]}}},
    ),
    (
        "POST",
        "/api/v1/cohorts",
        "cohorts:define",
        {"name": "c", "definition": {"entry": {"events": [{"domain": "visit"}]}}},
    ),
    ("GET", "/api/v1/cohorts", "cohorts:define", None),
    ("GET", "/api/v1/cohorts/SAVED", "cohorts:define", None),
    ("POST", "/api/v1/projects", "projects:request", project_request),
    ("GET", "/api/v1/projects/PROJECT", "projects:read", None),
    ("POST", "/api/v1/projects/PROJECT/submit", "projects:request", None),
    ("POST", "/api/v1/projects/PROJECT/reviews", "projects:review", {"text": "a comment"}),
    ("POST", "/api/v1/projects/PROJECT/decision", "projects:review", {"outcome": "changes_requested"}),
    ("POST", "/api/v1/projects/PROJECT/count", "projects:count", None),
    ("POST", "/api/v1/projects/PROJECT/tokens", "workspaces:token", {"days": 1}),
    ("POST", "/api/v1/projects/PROJECT/close", "projects:request", None),
    ("GET", "/api/v1/releases", "releases:review", None),
    ("POST", "/api/v1/vitals", "vitals:write", vitals_body),
    ("GET", "/api/v1/alerts", "alerts:read", None),
    ("GET", "/api/v1/alerts/stream?seconds=0.1", "alerts:read", None),
    ("GET", "/api/v1/alerts/ALERT", "alerts:read", None),
    ("POST", "/api/v1/alerts/ALERT/ack", "alerts:ack", None),
    ("GET", "/api/v1/monitoring/rejections", "monitoring:manage", None),
    ("POST", "/api/v1/releases/RELEASE/reviews", "releases:review", {"vote": "approve"}),
    ("GET", "/api/v1/releases/RELEASE/file", "releases:read", None),
    ("POST", "/dicomweb/studies", "imaging:write", stow_body),
    ("GET", "/dicomweb/studies?PatientID=*", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}", "imaging:read", None),
    ("GET", "/dicomweb/series", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series", "imaging:read", None),
    ("GET", "/dicomweb/instances", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/instances", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/metadata", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}/metadata", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/metadata", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/frames/1", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/rendered", "imaging:read", None),
    (
        "GET",
        f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/frames/1/rendered",
        "imaging:read",
        None,
    ),
    (
        "GET",
        f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/thumbnail",
        "imaging:read",
        None,
    ),
    ("GET", f"/dicomweb/studies/{STUDY}/series/{SERIES}/thumbnail", "imaging:read", None),
    ("GET", f"/dicomweb/studies/{STUDY}/thumbnail", "imaging:read", None),
    (
        "GET",
        f"/dicomweb/wado?requestType=WADO&studyUID={STUDY}&seriesUID={SERIES}&objectUID={INSTANCE}",
        "imaging:read",
        None,
    ),
    ("POST", f"/dicomweb/studies/{STUDY}/reject/113001^DCM", "imaging:write", None),
    ("OPTIONS", "/api/v1/media/uploads", "imaging:write", None),
    ("POST", "/api/v1/media/uploads", "imaging:write", None),
    ("PATCH", "/api/v1/media/uploads/UPLOAD", "imaging:write", tus_chunk),
    ("DELETE", "/api/v1/media/uploads/UPLOAD", "imaging:write", None),
    ("GET", "/api/v1/media?patient=4MR1", "imaging:read", None),
    ("GET", "/api/v1/media/MEDIA", "imaging:read", None),
    ("GET", "/api/v1/media/MEDIA/content", "imaging:read", None),
    ("POST", f"/dicomweb/studies/{STUDY}/series/{SERIES}/reject/113001^DCM", "imaging:write", None),
    (
        "POST",
        f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}/reject/113001^DCM",
        "imaging:write",
        None,
    ),
]


# Readable without login; every other /api/v1 route is in the matrix.
PUBLIC = ("/api/v1/auth", "/api/v1/register")
# Reached with project tokens only: the isolation test (tests/workspaces) enumerates them;
# here, every role's own token is refused.
WORKSPACE = "/api/v1/workspaces/"


def test_public_routes_answer_anonymous_callers(api: Api) -> None:
    assert api.client.get("/api/v1/register").status_code == 200


def openapi_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path) of every route, from the OpenAPI schema."""
    paths = api.client.get("/openapi.json").json()["paths"]
    return [(m.upper(), p) for p, ops in paths.items() for m in ops]


def test_every_route_is_in_the_matrix(api: Api) -> None:
    """A new endpoint cannot ship without its authorisation test."""
    listed = {(m, p.split("?")[0]) for m, p, _, _ in ENDPOINTS}
    routes = openapi_routes(api)
    assert len(routes) > 60  # the schema lists every route (FastAPI >= 0.16x nests app.routes)
    missing = []
    for method, path in routes:
        if not path.startswith(("/api/v1/", "/dicomweb", "/metrics")) or path.startswith(
            (*PUBLIC, WORKSPACE)
        ):
            continue
        if method == "HEAD":  # as before: HEAD answers carry no error body to check
            continue
        concrete = (
            path.replace("{study}", STUDY).replace("{series}", SERIES).replace("{instance}", INSTANCE)
            .replace("{person_key}", PERSON_KEY).replace("{username}", "user-clinician")
            .replace("{code}", "113001^DCM").replace("{upload_id}", "UPLOAD").replace("{media_id}", "MEDIA")
            .replace("{name}", "SAVED").replace("{slug}", "PROJECT").replace("{release_id}", "RELEASE")
            .replace("{frames}", "1").replace("{alert_id}", "ALERT").replace("{token_id}", "TOKEN")
            .replace("{device_id}", "DEVICE")
        )  # fmt: skip
        if (method, concrete) not in listed:
            missing.append((method, path))
    assert not missing


@pytest.mark.parametrize(("method", "path", "action", "body"), ENDPOINTS)
def test_anonymous_is_refused_with_401(
    api: Api, method: str, path: str, action: str, body: dict | None
) -> None:
    r = send(api, method, path, body, {})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(("method", "path", "action", "body"), ENDPOINTS)
def test_each_role_gets_exactly_its_policy(
    api: Api, method: str, path: str, action: str, body: dict | None
) -> None:
    for role in ROLES:
        r = send(api, method, path, body, api.as_role(role))
        if role in POLICY[action]:
            assert r.status_code < 400, (role, r.text)
        else:
            assert r.status_code == 403, (role, r.text)
            assert r.json()["error"]["code"] == "forbidden"


def test_user_tokens_never_open_a_workspace(api: Api) -> None:
    slug = active_project(api)
    routes = [(m, p) for m, p in openapi_routes(api) if p.startswith(WORKSPACE)]
    assert len(routes) >= 4
    for method, path in routes:
        concrete = path.replace("{slug}", slug).replace("{name}", "person.parquet") + (
            "?name=t.csv" if method == "POST" else ""
        )
        for role in ROLES:
            r = api.client.request(method, concrete, headers=api.as_role(role))
            assert r.status_code == 403, (method, path, role, r.text)
        assert api.client.request(method, concrete).status_code == 401


def test_malformed_authorization_headers(api: Api) -> None:
    for header in [
        "Basic dXNlcjpwdw==",
        "Bearer",
        "Bearer hdh_nope",
        "Bearer a.b.c",
        "Bearer " + "x" * 10000,
    ]:
        r = api.client.get("/api/v1/users", headers={"Authorization": header})
        assert r.status_code == 401, header
