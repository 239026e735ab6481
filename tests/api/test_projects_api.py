"""Projects over HTTP: request, review, decision, the public register, who may see what."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hdhub.security import tokens, users
from tests.api.conftest import Api

REQUEST: dict[str, Any] = {
    "slug": "diabete-hba1c",
    "title": "HbA1c after metformin",
    "purpose": "Describe glycaemic control after metformin.",
    "legal_basis": "MR-004",
    "principal_investigator": "user-clinician",
    "members": ["user-researcher"],
    "data": [
        {"table": "measurement", "columns": ["value_as_number"], "justification": "HbA1c is the outcome."}
    ],
    "duration_months": 12,
}


def committee_token(api: Api, name: str) -> dict[str, str]:
    from datetime import timedelta

    with Session(api.hub.catalog) as s, s.begin():
        user = users.create_user(s, name, ["committee"])
        secret, _ = tokens.issue_token(s, user, name="t", ttl=timedelta(hours=1))
    return {"Authorization": f"Bearer {secret}"}


def test_request_review_decide_and_the_public_register(api: Api) -> None:
    researcher = api.as_role("researcher")
    r = api.client.post("/api/v1/projects", json=REQUEST, headers=researcher)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft" and r.json()["members"]["user-clinician"] == "pi"
    assert api.client.get("/api/v1/register").json() == []  # no login, and drafts stay private
    assert "Aucun projet" in api.client.get("/register").text
    assert (
        api.client.post("/api/v1/projects/diabete-hba1c/submit", headers=researcher).json()["status"]
        == "submitted"
    )
    c1, c2 = committee_token(api, "c1"), committee_token(api, "c2")
    r = api.client.post("/api/v1/projects/diabete-hba1c/reviews", json={"vote": "approve"}, headers=c1)
    assert r.status_code == 201 and r.json()["status"] == "under_review"
    r = api.client.post("/api/v1/projects/diabete-hba1c/decision", json={"outcome": "approved"}, headers=c2)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["perimeter"]["data"][0]["table"] == "measurement"
    page = api.client.get("/register")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "HbA1c after metformin" in page.text and "user-clinician" in page.text and "approved" in page.text
    [entry] = api.client.get("/api/v1/register").json()
    assert entry["project"] == "diabete-hba1c" and entry["status"] == "approved" and entry["decided"]
    trail = [(e.action, e.actor) for e in reversed(api.hub.audit.search(project="diabete-hba1c"))]
    assert trail == [
        ("POST /api/v1/projects", "user-researcher"),
        ("POST /api/v1/projects/{slug}/submit", "user-researcher"),
        ("POST /api/v1/projects/{slug}/reviews", "c1"),
        ("POST /api/v1/projects/{slug}/decision", "c2"),
    ]


def test_members_cannot_review_and_outsiders_cannot_read(api: Api) -> None:
    researcher = api.as_role("researcher")
    api.client.post("/api/v1/projects", json=REQUEST, headers=researcher)
    api.client.post("/api/v1/projects/diabete-hba1c/submit", headers=researcher)
    # a committee member who is also in the project may not review it
    with Session(api.hub.catalog) as s, s.begin():
        users.set_roles(s, "user-committee", ["committee"])
    member_committee = {**REQUEST, "slug": "other-one", "members": ["user-committee"]}
    assert api.client.post("/api/v1/projects", json=member_committee, headers=researcher).status_code == 201
    api.client.post("/api/v1/projects/other-one/submit", headers=researcher)
    r = api.client.post(
        "/api/v1/projects/other-one/reviews", json={"vote": "approve"}, headers=api.as_role("committee")
    )
    assert r.status_code == 403 and "may not review" in r.json()["error"]["message"]
    # another researcher, not a member, reads nothing of it
    stranger = committee_token(api, "tmp")  # placeholder to create a second researcher below
    with Session(api.hub.catalog) as s, s.begin():
        users.set_roles(s, "tmp", ["researcher"])
    r = api.client.get("/api/v1/projects/diabete-hba1c", headers=stranger)
    assert r.status_code == 403 and "not a member" in r.json()["error"]["message"]
    assert api.client.get("/api/v1/projects/diabete-hba1c", headers=researcher).status_code == 200
    assert api.client.get("/api/v1/projects/nope", headers=researcher).status_code == 404


def test_bad_requests_are_4xx(api: Api) -> None:
    researcher = api.as_role("researcher")
    bad_pi = {**REQUEST, "principal_investigator": "user-researcher"}
    r = api.client.post("/api/v1/projects", json=bad_pi, headers=researcher)
    assert r.status_code == 422 and "enabled clinician" in r.json()["error"]["message"]
    r = api.client.post("/api/v1/projects", json={**REQUEST, "extra": 1}, headers=researcher)
    assert r.status_code == 422
    api.client.post("/api/v1/projects", json=REQUEST, headers=researcher)
    assert api.client.post("/api/v1/projects", json=REQUEST, headers=researcher).status_code == 409
    r = api.client.post("/api/v1/projects/diabete-hba1c/decision", json={"outcome": "approved"},
                        headers=api.as_role("committee"))  # fmt: skip
    assert r.status_code == 409 and "is draft" in r.json()["error"]["message"]


def test_members_of_an_approved_project_get_its_exact_counts_and_exclusions(api: Api) -> None:
    from hdhub.cohorts.service import record_opposition
    from tests.api.conftest import PERSON_KEYS, T2DM

    researcher = api.as_role("researcher")
    definition = {"concept_sets": {"t2dm": {"items": [{"concept_id": T2DM}]}},
                  "entry": {"events": [{"domain": "condition", "concept_set": "t2dm"}]}}  # fmt: skip
    api.client.post("/api/v1/cohorts", json={"name": "t2dm", "definition": definition}, headers=researcher)
    api.client.post(
        "/api/v1/projects", json={**REQUEST, "cohort": {"name": "t2dm", "version": 1}}, headers=researcher
    )
    r = api.client.post("/api/v1/projects/diabete-hba1c/count", headers=researcher)
    assert r.status_code == 409 and "is draft" in r.json()["error"]["message"]
    api.client.post("/api/v1/projects/diabete-hba1c/submit", headers=researcher)
    c1 = committee_token(api, "c1")
    api.client.post("/api/v1/projects/diabete-hba1c/reviews", json={"vote": "approve"}, headers=c1)
    api.client.post("/api/v1/projects/diabete-hba1c/decision", json={"outcome": "approved"}, headers=c1)
    r = api.client.post("/api/v1/projects/diabete-hba1c/count", headers=researcher)
    assert r.status_code == 200, r.text
    assert (r.json()["persons"], r.json()["exact"], r.json()["excluded_by_opposition"]) == (25, True, 0)
    for key in PERSON_KEYS[:3]:
        record_opposition(api.hub.catalog, key, "dpo")
    r = api.client.post("/api/v1/projects/diabete-hba1c/count", headers=api.as_role("clinician"))  # the PI
    assert (r.json()["persons"], r.json()["excluded_by_opposition"]) == (22, 3)
    outsider = committee_token(api, "someone")
    with Session(api.hub.catalog) as s, s.begin():
        users.set_roles(s, "someone", ["researcher"])
    r = api.client.post("/api/v1/projects/diabete-hba1c/count", headers=outsider)
    assert r.status_code == 403 and "not a member" in r.json()["error"]["message"]


def test_the_register_page_escapes_what_requesters_typed(api: Api) -> None:
    researcher = api.as_role("researcher")
    hostile = {**REQUEST, "title": "<script>alert(1)</script>", "purpose": '"><img src=x onerror=alert(1)>'}
    assert api.client.post("/api/v1/projects", json=hostile, headers=researcher).status_code == 201
    api.client.post("/api/v1/projects/diabete-hba1c/submit", headers=researcher)
    page = api.client.get("/register").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page
