"""A deployment with a loaded population and two approved projects, built once per session
and copied for each test (tests change catalogs, extracts and oppositions)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from hdhub.cohorts.definition import parse_definition
from hdhub.cohorts.service import save_definition
from hdhub.governance import projects as gov
from hdhub.hub import Hub
from hdhub.security.users import create_user
from tests.conftest import build_population

PATIENTS = 120
T2DM = {"entry": {"events": [{"domain": "condition", "concept_set": "t2dm"}]},
        "concept_sets": {"t2dm": {"items": [{"concept_id": 201826, "descendants": True}]}}}  # fmt: skip
DATA = (
    gov.DataItem("person", ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth",
                            "day_of_birth", "birth_datetime", "person_source_value"), "Age and sex."),
    gov.DataItem("condition_occurrence", ("condition_occurrence_id", "person_id", "condition_concept_id",
                                          "condition_start_date", "visit_occurrence_id"), "Comorbidities."),
    gov.DataItem("visit_occurrence", ("visit_occurrence_id", "person_id", "visit_concept_id",
                                      "visit_start_date", "visit_start_datetime"), "Stays around diagnoses."),
    gov.DataItem("measurement", ("person_id", "measurement_concept_id", "measurement_date",
                                 "value_as_number"), "HbA1c values are the outcome."),
    gov.DataItem("note", ("note_id", "person_id", "note_date", "note_title", "note_text"),
                 "Free-text follow-up of the patients."),
)  # fmt: skip


def approve(
    s: Session,
    slug: str,
    *,
    members: tuple[str, ...] = ("alice",),
    keep_dates: bool = False,
    cohort: tuple[str, int] | None = ("t2dm", 1),
    date_from: dt.date | None = None,
) -> None:
    p = gov.create_project(
        s,
        gov.ProjectRequest(
            slug=slug, title=f"Study {slug}", purpose="Describe glycaemic control.", legal_basis="MR-004",
            pi="dr-martin", duration_months=12, data=DATA, members=members, cohort=cohort,
            date_from=date_from,
        ),
        created_by="alice",
    )  # fmt: skip
    gov.submit(s, p, by="alice")
    gov.start_review(s, p, "c1")
    gov.review(s, p, "c1", vote="approve")
    gov.decide(s, p, "c1", "approved", keep_dates=keep_dates)


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = build_population(tmp_path_factory.mktemp("workspaces"), PATIENTS, seed=11)
    hub = Hub.open(home)
    try:
        with Session(hub.catalog) as s, s.begin():
            create_user(s, "dr-martin", ["clinician"])
            create_user(s, "alice", ["researcher"])
            create_user(s, "bob", ["researcher"])
            create_user(s, "eve", ["data_engineer"])
            for name in ("c1", "c2", "c3"):
                create_user(s, name, ["committee"])
        save_definition(hub.catalog, "alice", "t2dm", parse_definition(T2DM))
        with Session(hub.catalog) as s, s.begin():
            approve(s, "study-a")
            approve(s, "study-b", members=("alice", "bob"))
    finally:
        hub.close()
    return home


@pytest.fixture
def ws_home(workspace_template: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(workspace_template, home)
    return home


@pytest.fixture
def ws_hub(ws_home: Path) -> Iterator[Hub]:
    hub = Hub.open(ws_home)
    try:
        yield hub
    finally:
        hub.close()
