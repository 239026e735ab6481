"""A project's workspace from its page: a data engineer provisions it in the background, a
member asks for a release through the airlock."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.api.routes.workspace_pages import provisioning
from hdhub.catalog.models import AuditEvent, Project
from hdhub.hub import Hub
from hdhub.security import users
from hdhub.workspaces import airlock
from hdhub.workspaces.output_checks import MAX_RELEASE_BYTES

PASSWORD = "a long enough password"
TABLE = b"age_band,sex,n\n40-49,F,12\n40-49,M,15\n50-59,F,21\n50-59,M,18\n"


def browser_for(hub: Hub, username: str) -> TestClient:
    with Session(hub.catalog) as s, s.begin():
        users.set_password(s, username, PASSWORD)
    client = TestClient(create_app(hub), base_url="http://hdhub.test")
    r = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303
    return client


def wait_for(slug: str) -> None:
    deadline = time.monotonic() + 120
    while (run := provisioning(slug)) is None or run.finished is None:
        assert time.monotonic() < deadline, "provisioning did not finish"
        time.sleep(0.1)


def test_a_data_engineer_provisions_from_the_page(ws_hub: Hub) -> None:
    outsider = browser_for(ws_hub, "alice")
    assert outsider.post("/projects/study-a/provision", follow_redirects=False).status_code == 403
    engineer = browser_for(ws_hub, "eve")
    cross = engineer.post("/projects/study-a/provision", headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and provisioning("study-a") is None
    assert engineer.post("/projects/no-such/provision", follow_redirects=False).status_code == 404
    started = engineer.post("/projects/study-a/provision", follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == "/projects/study-a"
    wait_for("study-a")
    run = provisioning("study-a")
    assert run is not None and run.error is None and run.version == 1 and run.persons
    page = engineer.get("/projects/study-a?lang=en")
    assert (
        f"Workspace ready: extract 1, {run.persons:,} persons" in page.text
        and "Rebuild the workspace" in page.text
    )
    with Session(ws_hub.catalog) as s:
        assert s.scalar(select(Project.status).where(Project.slug == "study-a")) == "active"
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "project.provision")).all()
        assert [(e.actor, e.outcome, e.project_id) for e in events] == [("eve", "success", "study-a")]


def test_a_member_asks_for_a_release_from_the_page(ws_hub: Hub) -> None:
    from hdhub.workspaces.provision import provision

    provision(ws_hub, "study-a", by="eve")
    alice = browser_for(ws_hub, "alice")
    page = alice.get("/projects/study-a")
    assert 'enctype="multipart/form-data"' in page.text and 'for="release-file"' in page.text
    files = {"file": ("table.csv", TABLE, "text/csv")}
    asked = alice.post("/projects/study-a/releases", files=files, follow_redirects=False)
    assert asked.status_code == 303, asked.text
    [release] = airlock.list_releases(ws_hub, slug="study-a")
    assert (release.name, release.author, release.status) == ("table.csv", "alice", "pending")
    assert "table.csv" in alice.get("/projects/study-a").text
    # Not a member, a project without a workspace, too big, another site: refused, nothing stored.
    bob = browser_for(ws_hub, "bob")
    assert bob.post("/projects/study-a/releases", files=files).status_code == 403
    assert alice.post("/projects/study-b/releases", files=files).status_code == 409
    big = {"file": ("big.csv", b"x" * (MAX_RELEASE_BYTES + 1), "text/csv")}
    assert alice.post("/projects/study-a/releases", files=big).status_code == 413
    assert (
        alice.post(
            "/projects/study-a/releases", files=files, headers={"origin": "https://evil.example"}
        ).status_code
        == 403
    )
    assert len(airlock.list_releases(ws_hub, slug="study-a")) == 1
    assert len(airlock.list_releases(ws_hub, slug="study-b")) == 0


def test_a_data_engineer_reads_approved_projects_only(ws_hub: Hub) -> None:
    from hdhub.governance import projects as gov
    from tests.workspaces.conftest import DATA

    with Session(ws_hub.catalog) as s, s.begin():
        request = gov.ProjectRequest(slug="draft-x", title="A draft", purpose="Not yet decided.",
                                     legal_basis="MR-004", pi="dr-martin", duration_months=6,
                                     data=DATA[:1])  # fmt: skip
        gov.create_project(s, request, created_by="alice")
    engineer = browser_for(ws_hub, "eve")
    listed = engineer.get("/projects")
    assert "study-a" in listed.text and "draft-x" not in listed.text
    assert engineer.get("/projects/draft-x").status_code == 403
    assert engineer.post("/projects/draft-x/provision").status_code == 403  # unseen, nothing started
    assert provisioning("draft-x") is None
