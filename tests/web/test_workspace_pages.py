"""A project's workspace from its page: a data engineer provisions it in the background (its
status in the catalog: every worker, every restart), a member asks for a release through the
airlock."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.catalog.models import AuditEvent, Project, ProvisioningRun
from hdhub.hub import Hub
from hdhub.security import users
from hdhub.workspaces import airlock, runs
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


def wait_for(hub: Hub, slug: str) -> runs.RunStatus:
    deadline = time.monotonic() + 120
    while (run := runs.latest_run(hub.catalog, slug)) is None or run.state == "running":
        assert time.monotonic() < deadline, "provisioning did not finish"
        time.sleep(0.1)
    return run


def run_rows(hub: Hub) -> int:
    with Session(hub.catalog) as s:
        return s.scalar(select(func.count()).select_from(ProvisioningRun)) or 0


def test_a_data_engineer_provisions_from_the_page(ws_hub: Hub) -> None:
    outsider = browser_for(ws_hub, "alice")
    assert outsider.post("/projects/study-a/provision", follow_redirects=False).status_code == 403
    engineer = browser_for(ws_hub, "eve")
    cross = engineer.post("/projects/study-a/provision", headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and run_rows(ws_hub) == 0
    assert engineer.post("/projects/no-such/provision", follow_redirects=False).status_code == 404
    started = engineer.post("/projects/study-a/provision", follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"] == "/projects/study-a"
    run = wait_for(ws_hub, "study-a")
    assert (run.state, run.by, run.origin, run.error, run.version) == ("succeeded", "eve", "web", None, 1)
    assert run.persons and run.finished is not None
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
    assert runs.latest_run(ws_hub.catalog, "draft-x") is None and run_rows(ws_hub) == 0


def age(hub: Hub, run_id: int, minutes: int) -> None:
    """Make a run look as if its process had stopped ``minutes`` ago (no heartbeat since)."""
    then = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    with Session(hub.catalog) as s, s.begin():
        s.execute(
            update(ProvisioningRun)
            .where(ProvisioningRun.id == run_id)
            .values(started_at=then, heartbeat_at=then)
        )


def test_no_session_or_another_role_starts_nothing(ws_hub: Hub) -> None:
    anonymous = TestClient(create_app(ws_hub), base_url="http://hdhub.test")
    r = anonymous.post("/projects/study-a/provision", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/projects/study-a/provision"
    for name in ("alice", "c1", "dr-martin"):  # a member, the committee, the PI: none provisions
        assert browser_for(ws_hub, name).post("/projects/study-a/provision").status_code == 403
    assert run_rows(ws_hub) == 0
    assert "Provision the workspace" not in browser_for(ws_hub, "c1").get("/projects/study-a?lang=en").text


def test_the_status_survives_a_new_app_on_the_same_home(ws_hub: Hub, ws_home: Path) -> None:
    """Another worker, or the server after a restart: a new Hub and app on the same home."""
    engineer = browser_for(ws_hub, "eve")
    assert engineer.post("/projects/study-a/provision", follow_redirects=False).status_code == 303
    run = wait_for(ws_hub, "study-a")
    other = Hub.open(ws_home)
    try:
        page = browser_for(other, "eve").get("/projects/study-a?lang=en")
        assert f"Workspace ready: extract 1, {run.persons:,} persons" in page.text
        assert "Rebuild the workspace" in page.text
    finally:
        other.close()


def test_a_second_start_while_one_runs_is_refused(ws_hub: Hub, ws_home: Path) -> None:
    """A run in progress on another worker (its row, beating): this worker shows it and
    refuses a second start, with who started it and when."""
    run_id = runs.start_run(ws_hub, "study-a", "eve", "web")
    other = Hub.open(ws_home)
    try:
        engineer = browser_for(other, "eve")
        page = engineer.get("/projects/study-a?lang=en")
        assert "Provisioning since" in page.text and "(eve), last sign of life at" in page.text
        assert 'action="/projects/study-a/provision"' not in page.text  # no button while it runs
        refused = engineer.post("/projects/study-a/provision")
        assert refused.status_code == 409
        assert "is being provisioned already: started by eve at" in refused.text
        assert run_rows(ws_hub) == 1
        runs.finish_run(ws_hub.catalog, run_id, "failed", error="stopped by the test")
        assert engineer.post("/projects/study-a/provision", follow_redirects=False).status_code == 303
        assert wait_for(other, "study-a").state == "succeeded" and run_rows(ws_hub) == 2
    finally:
        other.close()


def test_a_run_left_by_a_stopped_process_is_interrupted_and_can_start_again(ws_hub: Hub) -> None:
    from hdhub.cli.serve import _interrupt_stale_runs

    dead = runs.start_run(ws_hub, "study-a", "eve", "web")
    age(ws_hub, dead, minutes=10)
    beating = runs.start_run(ws_hub, "study-b", "eve", "cli")  # its process lives: left alone
    engineer = browser_for(ws_hub, "eve")
    page = engineer.get("/projects/study-a?lang=en")
    assert "Provisioning was interrupted: the process running it stopped before the end" in page.text
    assert 'action="/projects/study-a/provision"' in page.text
    _interrupt_stale_runs(ws_hub)  # what `hdhub serve` does when it starts
    with Session(ws_hub.catalog) as s:
        assert s.get(ProvisioningRun, dead).state == "interrupted"  # type: ignore[union-attr]
        assert s.get(ProvisioningRun, beating).state == "running"  # type: ignore[union-attr]
    page = engineer.get("/projects/study-b?lang=en")
    assert "(eve, from the command line), last sign of life at" in page.text
    assert engineer.post("/projects/study-a/provision", follow_redirects=False).status_code == 303
    run = wait_for(ws_hub, "study-a")
    assert run.state == "succeeded" and run.id != dead and run.version == 2  # 1 stays the dead run's


def test_a_failed_run_shows_its_error(ws_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(hub: Hub, slug: str, by: str, run: int | None = None) -> None:
        raise RuntimeError("object store unreachable " + "x" * 5_000)

    monkeypatch.setattr("hdhub.workspaces.provision.provision", broken)
    engineer = browser_for(ws_hub, "eve")
    assert engineer.post("/projects/study-a/provision", follow_redirects=False).status_code == 303
    run = wait_for(ws_hub, "study-a")
    assert run.state == "failed" and run.version is None and run.finished is not None
    assert run.error is not None and run.error.startswith("RuntimeError: object store unreachable")
    assert len(run.error) <= runs.ERROR_CHARS
    page = engineer.get("/projects/study-a?lang=en")
    assert "Provisioning failed: RuntimeError: object store unreachable" in page.text
    assert "Provision the workspace" in page.text  # a failed run blocks nothing
    with Session(ws_hub.catalog) as s:
        assert s.scalar(select(Project.status).where(Project.slug == "study-a")) == "approved"
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "project.provision")).all()
        assert [(e.actor, e.outcome) for e in events] == [("eve", "failure")]
