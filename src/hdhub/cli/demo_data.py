"""The demo's data: a synthetic hospital group, loaded as a data team would load it."""

from __future__ import annotations

import time
from typing import Any

from hdhub.cli.context import CliState, console


def load_demo_data(st: CliState, patients: int, seed: int = 1) -> None:
    """On an empty warehouse: the built-in vocabulary, ``hdhub synth`` (3 sites), one FHIR
    load per site and a data-quality report; each step audited like its own command."""
    from hdhub.cli.dq import check_warehouse
    from hdhub.cli.ingest import load_site
    from hdhub.cli.vocab import load_vocabulary
    from hdhub.synth import generate
    from hdhub.synth.devices import write_device_streams
    from hdhub.warehouse import BUILTIN_VOCABULARY

    hub: Any = st.hub
    db = hub.warehouse.con
    if db.execute("SELECT count(*) FROM person").fetchone()[0]:
        console.print("demo data already loaded (the warehouse has persons)")
        hub.close_warehouse()
        return
    started = time.perf_counter()
    load_vocabulary(st, BUILTIN_VOCABULARY)
    out = hub.settings.home / "synth"
    synth = generate(out, patients=patients, sites=3, seed=seed)
    write_device_streams(out, share=0.05, seed=seed)  # home devices for 5 % of one site's patients
    loaded: dict[str, int] = {}
    for site in synth.sites:
        report = load_site(st, [out / site], site)
        for table, n in report.tables.items():
            loaded[table] = loaded.get(table, 0) + n
    persons = db.execute("SELECT count(*) FROM person").fetchone()[0]
    console.print(
        f"demo data: {patients:,} synthetic patients at {len(synth.sites)} sites ({', '.join(synth.sites)}), "
        f"{synth.total:,} FHIR resources -> {persons:,} persons, "
        f"{sum(loaded.values()):,} OMOP rows in {time.perf_counter() - started:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    dq, _, html_path = check_warehouse(st)
    hub.close_warehouse()  # the server and provisioning read it read-only
    counts = dq.status_counts
    console.print(
        f"data quality: {counts['pass']} checks passed, {counts['fail']} failed: {html_path}",
        highlight=False,
        soft_wrap=True,
    )


# Demo accounts besides demo-admin: one per role a person holds (the device role is a device's).
DEMO_ACCOUNTS = (
    ("demo-clinician", ["clinician"], "Dr Claire Martin (principal investigator)"),
    ("demo-researcher", ["researcher"], "Alice Bernard (researcher)"),
    ("demo-committee", ["committee"], "Comité scientifique et éthique, 1"),
    ("demo-committee-2", ["committee"], "Comité scientifique et éthique, 2"),
    ("demo-dpo", ["dpo"], "Délégué à la protection des données"),
)
T2DM_COHORT = {
    "entry": {"events": [{"domain": "condition", "concept_set": "t2dm"}]},
    "concept_sets": {"t2dm": {"items": [{"concept_id": 201826, "descendants": True}]}},
}


def demo_accounts(st: CliState) -> list[tuple[str, str, list[str]]]:
    """Create (or reset the password of) one account per role; returns (name, password, roles)."""
    import secrets

    from sqlalchemy.orm import Session

    from hdhub.errors import NotFound
    from hdhub.security import users

    out = []
    with Session(st.hub.catalog) as s, s.begin():
        for name, roles, display in DEMO_ACCOUNTS:
            password = secrets.token_urlsafe(12)
            try:
                users.set_password(s, name, password)
                users.set_disabled(s, name, False)
            except NotFound:
                users.create_user(s, name, roles, password=password, display_name=display)
            out.append((name, password, roles))
    return out


def demo_projects(st: CliState) -> None:
    """Two research projects: one approved and provisioned (its workspace open), one waiting
    for the committee. Done once per deployment."""
    import datetime as dt

    from sqlalchemy.orm import Session

    from hdhub.cohorts.definition import parse_definition
    from hdhub.cohorts.service import save_definition
    from hdhub.errors import NotFound
    from hdhub.governance import projects as gov
    from hdhub.workspaces.runs import provision_recorded

    hub: Any = st.hub
    with Session(hub.catalog) as s:
        try:
            gov.get_project(s, "demo-diabete")
            return
        except NotFound:
            pass
    researcher, pi, c1, c2 = "demo-researcher", "demo-clinician", "demo-committee", "demo-committee-2"
    save_definition(hub.catalog, researcher, "diabete-type-2", parse_definition(T2DM_COHORT))
    data = (
        gov.DataItem("person", ("person_id", "gender_concept_id", "year_of_birth"), "Age and sex."),
        gov.DataItem("measurement", ("person_id", "measurement_concept_id", "measurement_date",
                                     "value_as_number", "unit_concept_id"), "HbA1c and creatinine."),
        gov.DataItem("condition_occurrence", ("person_id", "condition_concept_id", "condition_start_date"),
                     "Comorbidities at diagnosis."),
        gov.DataItem("note", ("person_id", "note_date", "note_title", "note_text"),
                     "Free-text follow-up, de-identified."),
    )  # fmt: skip
    requests = (
        gov.ProjectRequest(
            slug="demo-diabete", title="Équilibre glycémique des patients diabétiques de type 2",
            purpose="Décrire l'évolution de l'HbA1c après le diagnostic, par site et par âge.",
            legal_basis="MR-004", pi=pi, duration_months=12, data=data, members=(researcher,),
            cohort=("diabete-type-2", 1), date_from=dt.date(2010, 1, 1),
        ),
        gov.ProjectRequest(
            slug="demo-insuffisance-cardiaque", title="Réhospitalisations après insuffisance cardiaque",
            purpose="Mesurer les réhospitalisations à 30 jours après une insuffisance cardiaque.",
            legal_basis="MR-004", pi=pi, duration_months=18, data=data[:3], members=(researcher,),
        ),
    )  # fmt: skip
    with Session(hub.catalog) as s, s.begin():
        approved, waiting = (gov.create_project(s, r, created_by=researcher) for r in requests)
        for project in (approved, waiting):
            gov.submit(s, project, by=researcher)
        gov.start_review(s, approved, c1)
        gov.review(s, approved, c1, text="Périmètre proportionné ; merci pour les justifications.")
        gov.review(s, approved, c1, vote="approve")
        gov.review(s, approved, c2, vote="approve")
        gov.decide(s, approved, c1, "approved")
    result = provision_recorded(hub, "demo-diabete", st.principal.name)
    detail = {"persons": result.persons, "tables": result.tables}
    st.audit("demo.projects", None, resource_type="project", resource_id="demo-diabete",
             project_id="demo-diabete", detail=detail)  # fmt: skip
    console.print(
        f"research: project demo-diabete approved and provisioned ({result.persons:,} persons, "
        f"{result.notes:,} notes de-identified); demo-insuffisance-cardiaque waiting for the committee",
        highlight=False,
        soft_wrap=True,
    )


def demo_monitoring(st: CliState) -> None:
    """The synthetic home devices registered and their streams sent (first run only)."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from hdhub.catalog.models import MonitoringDevice
    from hdhub.monitoring.replay import replay_streams

    hub: Any = st.hub
    directory = hub.settings.home / "synth" / "devices"
    with Session(hub.catalog) as s:
        if s.scalar(select(func.count()).select_from(MonitoringDevice)) or not directory.is_dir():
            return
    result = replay_streams(hub, directory)
    from hdhub.monitoring.omop import flush

    flushed = flush(hub.catalog, hub.warehouse)  # the values into OMOP measurement, as a cron job would
    hub.close_warehouse()
    st.audit("demo.monitoring", None, resource_type="device-streams", detail={"devices": result.devices,
             "accepted": result.accepted, "alerts": len(result.alerts)})  # fmt: skip
    console.print(
        f"monitoring: {result.devices} home devices sent {result.accepted:,} values "
        f"({flushed.measurements:,} now OMOP measurements); "
        f"{len(result.alerts)} alerts are waiting for a clinician",
        highlight=False,
        soft_wrap=True,
    )
