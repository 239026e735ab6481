"""The committee's work in the browser: the review queue, comments and votes, the decision."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.governance import projects as gov
from hdhub.security import users
from tests.web.conftest import PASSWORD, Site
from tests.web.test_pages import sign_in


@pytest.fixture
def queue(site: Site) -> Site:
    with Session(site.hub.catalog) as s, s.begin():
        users.create_user(s, "comite-1", ["committee"], password=PASSWORD)
        users.create_user(s, "comite-2", ["committee"], password=PASSWORD)
        users.create_user(s, "bob", ["researcher"], password=PASSWORD)
        item = gov.DataItem("person", ("person_id", "year_of_birth"), "Age of the patients.")
        request = gov.ProjectRequest("etude-hta", "Hypertension à domicile", "Mesurer <l'effet> des alertes.",
                                     "MR-004", "dr-lambert", 12, (item,), members=("alice",))  # fmt: skip
        p = gov.create_project(s, request, created_by="alice")
        gov.submit(s, p, by="alice")
    return site


def client(site: Site) -> TestClient:
    return TestClient(create_app(site.hub), base_url="http://hdhub.test")


def test_the_committee_reviews_votes_and_decides(queue: Site) -> None:
    with client(queue) as c1, client(queue) as c2:
        sign_in(c1, "comite-1")
        listing = c1.get("/projects")
        assert listing.status_code == 200 and "etude-hta" in listing.text and "submitted" in listing.text
        page = c1.get("/projects/etude-hta")
        assert "Mesurer &lt;l&#39;effet&gt; des alertes." in page.text  # escaped
        assert c1.post("/projects/etude-hta/review", data={"text": "Période ?", "vote": "approve"},
                       follow_redirects=False).status_code == 303  # fmt: skip
        sign_in(c2, "comite-2")
        c2.post("/projects/etude-hta/review", data={"vote": "approve"})
        decided = c2.post(
            "/projects/etude-hta/decision", data={"outcome": "approved"}, follow_redirects=False
        )
        assert decided.status_code == 303
    with Session(queue.hub.catalog) as s:
        p = gov.get_project(s, "etude-hta")
        assert p.status == "approved" and gov.votes(s, p) == {"comite-1": "approve", "comite-2": "approve"}


def test_members_see_their_projects_only_and_cannot_review(queue: Site) -> None:
    with client(queue) as alice, client(queue) as bob:
        sign_in(alice, "alice")
        assert "etude-hta" in alice.get("/projects").text
        page = alice.get("/projects/etude-hta")
        assert page.status_code == 200 and 'action="/projects/etude-hta/review"' not in page.text
        assert alice.post("/projects/etude-hta/review", data={"vote": "approve"}).status_code == 403
        sign_in(bob, "bob")
        assert "etude-hta" not in bob.get("/projects").text
        assert bob.get("/projects/etude-hta").status_code == 403


def test_a_refused_decision_is_shown_not_raised(queue: Site) -> None:
    with client(queue) as c1:
        sign_in(c1, "comite-1")
        c1.post("/projects/etude-hta/review", data={"vote": "reject"})
        r = c1.post("/projects/etude-hta/decision", data={"outcome": "approved"})
        assert r.status_code == 409 and "majority of approving votes" in r.text


def test_the_workspace_and_the_airlock_on_the_project_page(queue: Site) -> None:
    from hdhub.workspaces import airlock
    from hdhub.workspaces.provision import provision

    with Session(queue.hub.catalog) as s, s.begin():
        p = gov.get_project(s, "etude-hta")
        gov.start_review(s, p, "comite-1")
        gov.review(s, p, "comite-1", vote="approve")
        gov.decide(s, p, "comite-1", "approved")
    from hdhub.warehouse import connect

    connect(queue.hub.settings.warehouse_url_resolved).disconnect()  # an empty warehouse: no persons
    provision(queue.hub, "etude-hta", by="test")
    release = airlock.request_release(queue.hub, "etude-hta", "alice", "table1.csv", b"sex,n\nF,30\nM,41\n")
    with client(queue) as alice, client(queue) as c1, client(queue) as c2:
        sign_in(alice, "alice")
        page = alice.get("/projects/etude-hta")
        assert "table1.csv" in page.text and "pass" in page.text and 'value="approve"' not in page.text
        shown = alice.post("/projects/etude-hta/token")
        assert shown.status_code == 200 and 'ws.connect("etude-hta", "hdh_' in shown.text
        assert shown.headers["cache-control"] == "no-store"
        for checker, name in ((c1, "comite-1"), (c2, "comite-2")):
            sign_in(checker, name)
            assert checker.post(f"/releases/{release.id}/review", data={"vote": "approve"},
                                follow_redirects=False).status_code == 303  # fmt: skip
        assert airlock.get_release(queue.hub, release.id).status == "released"
        sign_in(c1, "comite-1")
        assert c1.post("/projects/etude-hta/token").status_code == 403  # the committee has no workspace
