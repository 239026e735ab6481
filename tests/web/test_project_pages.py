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
        assert "table1.csv" in page.text and "conforme" in page.text and 'value="approve"' not in page.text
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


# --- the request form, "my projects", editing and the approved perimeter -------------------------


def saved_cohort(site: Site, owner: str, name: str = "hta") -> None:
    from hdhub.cohorts.definition import parse_definition
    from hdhub.cohorts.service import save_definition

    save_definition(
        site.hub.catalog, owner, name, parse_definition({"entry": {"events": [{"domain": "condition"}]}})
    )


def request_form(**changes: object) -> dict[str, object]:
    form: dict[str, object] = {
        "title": "Télésurveillance et réhospitalisations", "slug": "",
        "purpose": "Compter les réhospitalisations.", "legal_basis": "MR-004", "pi": "dr-lambert",
        "members": "alice,\nbob", "externals": "", "cohort": "1:hta",
        "col:person": ["person_id", "year_of_birth"], "just:person": "L'âge des patients décrit la cohorte.",
        "all:death": "1", "just:death": "Le décès est un critère de jugement.",
        "date_from": "2020-01-01", "date_to": "2024-12-31", "duration_months": "18", "action": "draft",
    }  # fmt: skip
    return form | changes


def project_count(site: Site) -> int:
    from sqlalchemy import func, select

    from hdhub.catalog.models import Project

    with Session(site.hub.catalog) as s:
        return s.scalar(select(func.count()).select_from(Project))


def test_the_request_form_needs_a_session_and_a_requester_role(queue: Site) -> None:
    with Session(queue.hub.catalog) as s, s.begin():
        users.create_user(s, "dpo-1", ["dpo"], password=PASSWORD)
        users.create_user(s, "eng-1", ["data_engineer"], password=PASSWORD)
    with client(queue) as c:
        for method in (c.get, c.post):
            r = method("/projects/new", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/login?next=/projects/new"
        for name in ("comite-1", "dpo-1", "eng-1"):
            sign_in(c, name)
            assert c.get("/projects/new").status_code == 403
            assert c.post("/projects/new", data=request_form(slug="refuse")).status_code == 403
            listing = c.get("/projects")
            assert 'href="/projects/new"' not in listing.text
    assert project_count(queue) == 1


def test_a_researcher_requests_submits_and_the_committee_sees_it(queue: Site) -> None:
    saved_cohort(queue, "alice")
    with client(queue) as alice, client(queue) as c1:
        sign_in(alice, "alice")
        listing = alice.get("/projects")
        assert "Mes projets" in listing.text and 'href="/projects/new"' in listing.text
        form = alice.get("/projects/new")
        assert form.status_code == 200 and 'value="1:hta"' in form.text and 'name="col:person"' in form.text
        assert 'for="col-person-person_id"' in form.text and "<legend>" in form.text
        r = alice.post("/projects/new", data=request_form(), follow_redirects=False)
        slug = "telesurveillance-et-rehospitalisations"  # made from the title
        assert r.status_code == 303 and r.headers["location"] == f"/projects/{slug}"
        with Session(queue.hub.catalog) as s:
            p = gov.get_project(s, slug)
            assert p.status == "draft" and p.created_by == "alice" and p.cohort_name == "hta"
            assert gov.members_of(s, p) == {"dr-lambert": "pi", "alice": "member", "bob": "member"}
            data = {d["table"]: d["columns"] for d in __import__("orjson").loads(p.data_request)}
            assert data["person"] == ["person_id", "year_of_birth"] and "death_date" in data["death"]
        page = alice.get(f"/projects/{slug}")
        assert (
            f'action="/projects/{slug}/submit"' in page.text and f'href="/projects/{slug}/edit"' in page.text
        )
        mine = alice.get("/projects?lang=en")
        assert (
            "My projects" in mine.text
            and slug in mine.text
            and "draft" in mine.text
            and "author" in mine.text
        )
        sign_in(c1, "comite-1")
        assert slug not in c1.get("/projects").text  # drafts stay with their authors
        assert alice.post(f"/projects/{slug}/submit", follow_redirects=False).status_code == 303
        queue_page = c1.get("/projects")
        assert slug in queue_page.text and "Projets soumis au comité" in queue_page.text
        assert f'action="/projects/{slug}/review"' in c1.get(f"/projects/{slug}").text
        again = alice.post(f"/projects/{slug}/submit")
        assert again.status_code == 409 and "cannot become submitted" in again.text
        at_once = alice.post("/projects/new", data=request_form(slug="second-study", action="submit"),
                             follow_redirects=False)  # fmt: skip
        assert at_once.status_code == 303
    with Session(queue.hub.catalog) as s:
        assert gov.get_project(s, "second-study").status == "submitted"
    [event] = queue.hub.audit.search(project="second-study", action="POST /projects/new")
    assert event.actor == "alice" and event.outcome == "success"


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"members": "alice, nobody"}, 404, "no user &#39;nobody&#39;"),
        ({"col:person": ["person_id", "shoe_size"]}, 422, "no column shoe_size"),
        (
            {"col:wishes": ["x"], "just:wishes": "A table that does not exist."},
            404,
            "not an OMOP CDM 5.4 table",
        ),
        ({"cohort": "1:bobs"}, 404, "no saved cohort definition &#39;bobs&#39;"),
        ({"slug": "etude-hta"}, 409, "already exists"),
        ({"title": "x" * 301}, 422, "title: String should have at most 300 characters"),
        ({"just:person": "y" * 5001}, 422, "person.justification"),
        ({"duration_months": ""}, 422, "duration_months"),
        ({"pi": "alice"}, 422, "must be an enabled clinician"),
    ],
)
def test_a_refused_request_shows_the_form_again_and_stores_nothing(
    queue: Site, changes: dict[str, object], status: int, message: str
) -> None:
    saved_cohort(queue, "alice")
    saved_cohort(queue, "bob", "bobs")
    title = "<script>alert(1)</script> étude"
    with client(queue) as alice:
        sign_in(alice, "alice")
        r = alice.post("/projects/new", data=request_form(**({"title": title} | changes)))
        assert r.status_code == status, r.text
        assert message in r.text and 'role="alert"' in r.text
        assert "<script>alert(1)" not in r.text
        if "title" not in changes:
            assert 'value="&lt;script&gt;alert(1)&lt;/script&gt; étude"' in r.text  # kept, escaped
        assert "Compter les réhospitalisations.</textarea>" in r.text
        kept = changes.get("just:person", "L'âge des patients décrit la cohorte.")
        assert f"{kept}</textarea>".replace("'", "&#39;") in r.text
        assert 'name="all:death" value="1" checked' in r.text
    assert project_count(queue) == 1


def test_a_form_from_another_site_is_refused(queue: Site) -> None:
    saved_cohort(queue, "alice")
    with client(queue) as alice:
        sign_in(alice, "alice")
        r = alice.post("/projects/new", data=request_form(), headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert (
            alice.post("/projects/etude-hta/submit", headers={"Origin": "https://evil.example"}).status_code
            == 403
        )
    assert project_count(queue) == 1


def test_the_author_edits_a_request_sent_back_and_submits_it_again(queue: Site) -> None:
    saved_cohort(queue, "alice")
    with Session(queue.hub.catalog) as s, s.begin():
        p = gov.get_project(s, "etude-hta")
        gov.start_review(s, p, "comite-1")
        gov.review(s, p, "comite-1", vote="changes", text="Ajoutez le décès.")
        gov.decide(s, p, "comite-1", "changes_requested")
    with client(queue) as alice, client(queue) as bob, client(queue) as lambert:
        sign_in(bob, "bob")
        assert bob.get("/projects/etude-hta/edit").status_code == 403
        sign_in(lambert, "dr-lambert")  # the PI may submit, not rewrite the author's request
        page = lambert.get("/projects/etude-hta")
        assert (
            'action="/projects/etude-hta/submit"' in page.text and "/projects/etude-hta/edit" not in page.text
        )
        assert lambert.get("/projects/etude-hta/edit").status_code == 403
        sign_in(alice, "alice")
        form = alice.get("/projects/etude-hta/edit")
        assert form.status_code == 200 and 'value="person_id" checked' in form.text
        bad = alice.post("/projects/etude-hta/edit", data=request_form(members="ghost"))
        assert bad.status_code == 404 and "no user" in bad.text
        r = alice.post("/projects/etude-hta/edit", data=request_form(members="bob", action="submit"),
                       follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/projects/etude-hta"
        assert alice.get("/projects/etude-hta/edit").status_code == 409  # submitted: no more edits
    with Session(queue.hub.catalog) as s:
        p = gov.get_project(s, "etude-hta")
        assert p.status == "submitted" and p.title == "Télésurveillance et réhospitalisations"
        assert gov.members_of(s, p) == {"dr-lambert": "pi", "bob": "member"}  # alice stays the author
        assert p.cohort_name == "hta" and len(gov.votes(s, p)) == 1  # the reviews are kept


def test_the_approved_perimeter_on_the_project_page(queue: Site) -> None:
    with Session(queue.hub.catalog) as s, s.begin():
        p = gov.get_project(s, "etude-hta")
        gov.start_review(s, p, "comite-1")
        gov.review(s, p, "comite-1", vote="approve")
        gov.decide(s, p, "comite-1", "approved", keep_dates=True)
    with client(queue) as alice:
        sign_in(alice, "alice")
        page = alice.get("/projects/etude-hta?lang=en")
        assert "Approved perimeter" in page.text and "Real dates" in page.text and "kept" in page.text
        assert (
            "person_id, year_of_birth" in page.text and 'action="/projects/etude-hta/submit"' not in page.text
        )
        assert alice.get("/projects/etude-hta/edit").status_code == 409
