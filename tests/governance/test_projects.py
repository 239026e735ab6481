"""The project lifecycle, the committee's review and the public register (catalog only)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from hdhub.cohorts.definition import parse_definition
from hdhub.cohorts.service import save_definition
from hdhub.errors import Conflict, Forbidden, NotFound, ValidationError
from hdhub.governance import projects as gov
from hdhub.hub import Hub
from hdhub.security.users import create_user

DATA = (
    gov.DataItem(
        "person", ("person_id", "year_of_birth", "gender_concept_id"), "Age and sex for the description."
    ),
    gov.DataItem(
        "measurement", ("measurement_concept_id", "value_as_number"), "HbA1c values are the outcome."
    ),
)


def request(**changes: object) -> gov.ProjectRequest:
    base = dict(
        slug="diabete-hba1c", title="HbA1c after metformin", purpose="Describe glycaemic control.",
        legal_basis="MR-004", pi="dr-martin", duration_months=24, data=DATA, members=("alice",),
        externals=("partner-inserm",), cohort=("t2dm", 1),
        date_from=dt.date(2015, 1, 1), date_to=dt.date(2024, 12, 31),
    )  # fmt: skip
    return gov.ProjectRequest(**{**base, **changes})


@pytest.fixture
def s(hub: Hub) -> Session:
    with Session(hub.catalog) as session, session.begin():
        create_user(session, "dr-martin", ["clinician"])
        create_user(session, "alice", ["researcher"])
        create_user(session, "bob", ["researcher"])
        for name in ("c1", "c2", "c3"):
            create_user(session, name, ["committee"])
    d = parse_definition({"entry": {"events": [{"domain": "condition"}]}})
    save_definition(hub.catalog, "alice", "t2dm", d)
    with Session(hub.catalog) as session, session.begin():
        yield session


def test_the_whole_lifecycle_and_the_register(s: Session) -> None:
    p = gov.create_project(s, request(), created_by="alice")
    assert p.status == "draft" and gov.members_of(s, p) == {
        "dr-martin": "pi",
        "alice": "member",
        "partner-inserm": "external",
    }
    assert gov.register(s) == []  # drafts are private
    gov.submit(s, p, by="alice")
    gov.start_review(s, p, "c1")
    gov.review(s, p, "c1", text="Why 2015?")
    gov.review(s, p, "c1", vote="approve")
    gov.review(s, p, "c2", vote="changes", text="Justify the notes.")
    with pytest.raises(Conflict, match="majority of approving votes \\(1 of 2\\)"):
        gov.decide(s, p, "c3", "approved")
    gov.decide(s, p, "c3", "changes_requested")
    gov.submit(s, p, by="dr-martin")
    gov.start_review(s, p, "c2")
    gov.review(s, p, "c2", vote="approve")  # the latest vote counts
    gov.decide(s, p, "c3", "approved")
    assert p.status == "approved" and p.expires_at is not None
    perimeter = __import__("orjson").loads(p.perimeter)
    assert perimeter["cohort"] == {"owner": "alice", "name": "t2dm", "version": 1}
    assert [d["table"] for d in perimeter["data"]] == ["person", "measurement"]
    assert (perimeter["date_from"], perimeter["date_to"]) == ("2015-01-01", "2024-12-31")
    [entry] = gov.register(s)
    assert entry["project"] == "diabete-hba1c" and entry["status"] == "approved"
    assert entry["principal_investigator"] == "dr-martin" and entry["decided"] is not None


def test_nobody_reviews_a_project_they_belong_to(s: Session) -> None:
    p = gov.create_project(s, request(), created_by="alice")
    gov.submit(s, p, by="alice")
    for member in ("alice", "dr-martin", "partner-inserm"):
        with pytest.raises(Forbidden, match="may not review"):
            gov.start_review(s, p, member)
    gov.start_review(s, p, "c1")
    with pytest.raises(Forbidden):
        gov.review(s, p, "dr-martin", vote="approve")
    with pytest.raises(Forbidden):
        gov.decide(s, p, "alice", "approved")


def test_transitions_outside_the_lifecycle_are_refused(s: Session) -> None:
    p = gov.create_project(s, request(), created_by="alice")
    with pytest.raises(Conflict, match="is draft: it cannot become under_review"):
        gov.start_review(s, p, "c1")
    with pytest.raises(Forbidden, match="only the principal investigator or the author"):
        gov.submit(s, p, by="bob")
    gov.submit(s, p, by="alice")
    with pytest.raises(Conflict, match="not under review"):
        gov.review(s, p, "c1", vote="approve")
    gov.start_review(s, p, "c1")
    gov.review(s, p, "c1", vote="reject")
    gov.decide(s, p, "c2", "rejected")
    with pytest.raises(Conflict, match="is rejected"):
        gov.submit(s, p, by="alice")


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"pi": "alice"}, ValidationError, "must be an enabled clinician"),
        ({"pi": "nobody"}, NotFound, "no user 'nobody'"),
        ({"slug": "A B"}, ValidationError, "slug"),
        ({"data": ()}, ValidationError, "names no data"),
        ({"data": (gov.DataItem("measurment", ("x",), "because it is needed"),)}, NotFound,
         "not an OMOP CDM 5.4 table"),
        ({"data": (gov.DataItem("person", ("shoe_size",), "because it is needed"),)}, ValidationError,
         "no column shoe_size"),
        ({"data": (gov.DataItem("person", ("person_id",), "x"),)}, ValidationError, "justify"),
        ({"cohort": ("t2dm", 9)}, NotFound, "version 9"),
        ({"duration_months": 0}, ValidationError, "duration_months"),
        ({"date_from": dt.date(2025, 1, 1)}, ValidationError, "ends before it starts"),
    ],
)  # fmt: skip
def test_incomplete_requests_are_refused(s: Session, changes: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        gov.create_project(s, request(**changes), created_by="alice")
