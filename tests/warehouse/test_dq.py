"""Data-quality checks: a clean warehouse passes, each planted defect is found and counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.hub import Hub
from hdhub.ingest.omop_csv import load_omop_csv
from hdhub.warehouse import BUILTIN_VOCABULARY, connect
from hdhub.warehouse.dq import ERROR, FAIL, PASS, all_checks, render_html, run_checks, write_report

runner = CliRunner()

CLEAN = [
    "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id, "
    "person_source_value) VALUES (1, 8507, 1970, 0, 0, 'a'), (2, 8532, 1980, 0, 0, 'b')",
    "INSERT INTO death (person_id, death_date, death_type_concept_id) VALUES (2, DATE '2020-06-01', 32817)",
    "INSERT INTO observation_period VALUES (1, 1, DATE '2019-01-01', DATE '2020-12-31', 32817), "
    "(2, 2, DATE '2019-01-01', DATE '2020-06-01', 32817)",
    "INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, visit_start_date, "
    "visit_end_date, visit_type_concept_id) VALUES "
    "(1, 1, 9202, DATE '2019-03-01', DATE '2019-03-01', 32817), "
    "(2, 2, 9201, DATE '2020-01-10', DATE '2020-01-15', 32817)",
    "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, "
    "condition_start_date, condition_type_concept_id, visit_occurrence_id) VALUES "
    "(1, 1, 201826, DATE '2019-03-01', 32817, 1), (2, 2, 316139, DATE '2020-01-11', 32817, 2)",
    "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, "
    "measurement_type_concept_id, value_as_number, unit_concept_id, visit_occurrence_id) VALUES "
    "(1, 1, 3027018, DATE '2019-03-01', 32817, 72, 8541, 1), "
    "(2, 2, 3027018, DATE '2020-01-12', 32817, 88, 8541, 2), "
    "(3, 2, 3020891, DATE '2020-01-12', 32817, 37.2, 586323, 2)",
]

# Each defect, and the checks (with violated rows) it must make fail.
DEFECTS = [
    "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, "
    "measurement_type_concept_id, value_as_number, unit_concept_id) VALUES "
    "(10, 1, 3027018, DATE '2020-02-01', 32817, 400, 8541), "  # heart rate 400/min
    "(11, 1, 3027018, DATE '2020-02-01', 32817, 80, 9529), "  # heart rate in kg
    "(12, 1, 3027018, DATE '2023-05-01', 32817, 70, 8541), "  # outside the observation period
    "(3, 1, 3027018, DATE '2020-02-01', 32817, 70, 8541)",  # measurement_id 3 again
    "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, "
    "condition_start_date, condition_type_concept_id) VALUES "
    "(10, 1, 3027018, DATE '2019-06-01', 32817), "  # a Measurement concept as a condition
    "(11, 2, 201826, DATE '2020-12-01', 32817), "  # six months after death
    "(12, 1, 201826, DATE '1965-01-01', 32817)",  # before birth
    "INSERT INTO visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, visit_start_date, "
    "visit_end_date, visit_type_concept_id) VALUES (3, 1, 9202, DATE '2019-05-02', DATE '2019-05-01', 32817)",
    "INSERT INTO drug_exposure (drug_exposure_id, person_id, drug_concept_id, drug_exposure_start_date, "
    "drug_exposure_end_date, drug_type_concept_id) VALUES "
    "(1, 77, 0, DATE '2019-02-01', DATE '2019-02-01', 32817)",
    "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id) "
    "VALUES (3, 8507, 1990, 0, 0)",  # no observation period
    "ALTER TABLE person ALTER COLUMN year_of_birth DROP NOT NULL",
    "UPDATE person SET year_of_birth = NULL WHERE person_id = 3",
    "DROP TABLE note_nlp",
]
EXPECTED_FAILURES = {
    "plausibleValueHigh.measurement.value_as_number.3027018.8541": 1,
    "plausibleUnitConceptIds.measurement.unit_concept_id.3027018": 1,
    "withinObservationPeriod.measurement.measurement_date": 1,
    "isPrimaryKey.measurement.measurement_id": 2,
    "fkDomain.condition_occurrence.condition_concept_id": 1,
    "plausibleBeforeDeath.condition_occurrence.condition_start_date": 1,
    "withinObservationPeriod.condition_occurrence.condition_start_date": 2,  # after death; 1965
    "plausibleAfterBirth.condition_occurrence.condition_start_date": 1,
    "plausibleStartBeforeEnd.visit_occurrence.visit_end_date": 1,
    "isForeignKey.drug_exposure.person_id": 1,
    "withinObservationPeriod.drug_exposure.drug_exposure_start_date": 1,
    "standardConceptRecordCompleteness.drug_exposure.drug_concept_id": 1,
    "isRequired.person.year_of_birth": 1,
    "measurePersonCompleteness.observation_period": 1,
    "cdmTable.note_nlp": 1,
}


def _warehouse(tmp_path: Path) -> Any:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    load_omop_csv(con, BUILTIN_VOCABULARY, replace=True, schema="VOCAB")
    for sql in CLEAN:
        con.con.execute(sql)
    return con


def _by_id(report: Any) -> dict[str, Any]:
    return {r.check.id: r for r in report.results}


def test_check_ids_are_unique_and_cover_every_kind() -> None:
    checks = all_checks()
    assert len({c.id for c in checks}) == len(checks)
    names = {c.name for c in checks}
    assert {
        "cdmTable", "isRequired", "isPrimaryKey", "isForeignKey", "fkDomain", "fkClass",
        "isStandardValidConcept", "standardConceptRecordCompleteness", "plausibleValueLow",
        "plausibleValueHigh", "plausibleUnitConceptIds", "plausibleStartBeforeEnd", "plausibleAfterBirth",
        "plausibleBeforeDeath", "withinObservationPeriod", "withinVisitDates", "measurePersonCompleteness",
    } <= names  # fmt: skip


def test_clean_warehouse_passes_every_applicable_check(tmp_path: Path) -> None:
    con = _warehouse(tmp_path)
    report = run_checks(con.con)
    bad = [(r.check.id, r.status, r.violated_rows, r.note) for r in report.results]
    assert [b for b in bad if b[1] in (FAIL, ERROR)] == []
    results = _by_id(report)
    # Applicable checks really ran on the rows: 3 measurements, 2 with a heart-rate unit.
    assert results["isForeignKey.measurement.person_id"].denominator_rows == 3
    assert results["plausibleUnitConceptIds.measurement.unit_concept_id.3027018"].denominator_rows == 2
    assert results["fkDomain.condition_occurrence.condition_concept_id"].status == PASS
    assert results["withinVisitDates.measurement.measurement_date"].denominator_rows == 3
    assert report.status_counts[PASS] > 100


def test_each_planted_defect_fails_its_check_and_nothing_else(tmp_path: Path) -> None:
    con = _warehouse(tmp_path)
    for sql in DEFECTS:
        con.con.execute(sql)
    report = run_checks(con.con)
    failures = {r.check.id: r.violated_rows for r in report.results if r.status == FAIL}
    assert [r.check.id for r in report.results if r.status == ERROR] == []
    assert failures == EXPECTED_FAILURES
    results = _by_id(report)
    assert results["isRequired.note_nlp.note_nlp_id"].note == "no table note_nlp"
    # The listed query returns exactly the violating rows.
    high_heart_rate = results["plausibleValueHigh.measurement.value_as_number.3027018.8541"]
    rows = con.con.execute(high_heart_rate.check.rows_sql)
    assert [r[0] for r in rows.fetchall()] == [10]


def test_report_files(tmp_path: Path) -> None:
    con = _warehouse(tmp_path)
    con.con.execute(DEFECTS[0])
    report = run_checks(con.con)
    json_path, html_path = write_report(report, tmp_path / "reports")
    data = json.loads(json_path.read_text())
    assert data["cdm_version"] == "5.4" and data["overview"]["checks"] == len(report.results)
    assert data["overview"]["fail"] == sum(1 for c in data["checks"] if c["status"] == "fail") >= 3
    failed = next(c for c in data["checks"] if c["id"] == "isPrimaryKey.measurement.measurement_id")
    assert (failed["violated_rows"], failed["denominator_rows"], failed["violated_pct"]) == (2, 7, 28.5714)
    html = html_path.read_text()
    assert html.startswith("<!doctype html>") and "isPrimaryKey" in html
    # Failures come first; SQL is escaped, not injected.
    assert html.index('class="status fail"') < html.index('class="status pass"')
    assert "t._copies &gt; 1" in html and "t._copies > 1" not in html
    assert render_html(report) == html


@pytest.mark.integration
def test_dq_command_on_an_ingested_synthetic_population(local_hub: Hub, tmp_path: Path) -> None:
    home = str(local_hub.settings.home)
    local_hub.close()
    assert runner.invoke(app, ["--home", home, "vocab", "load", "--builtin"]).exit_code == 0
    out = tmp_path / "synth"
    r = runner.invoke(app, ["synth", str(out), "--patients", "150", "--sites", "2", "--seed", "7"])
    assert r.exit_code == 0, r.output
    site = sorted(p for p in out.iterdir() if p.is_dir())[0]
    r = runner.invoke(app, ["--home", home, "ingest", "fhir", str(site), "--site", site.name])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["--home", home, "dq", "--output", str(tmp_path / "dq")])
    assert r.exit_code == 0, r.output
    assert "checks in" in r.output and "reports:" in r.output
    (json_path,) = (tmp_path / "dq").glob("dq-*.json")
    data = json.loads(json_path.read_text())
    by_id = {c["id"]: c for c in data["checks"]}
    assert data["overview"]["error"] == 0
    # What hdhub's own loader guarantees holds on its output.
    for check_id in (
        "isRequired.person.person_id",
        "isPrimaryKey.measurement.measurement_id",
        "isForeignKey.measurement.person_id",
        "isForeignKey.measurement.visit_occurrence_id",
        "plausibleStartBeforeEnd.visit_occurrence.visit_end_date",
        "withinObservationPeriod.measurement.measurement_date",
        "measurePersonCompleteness.observation_period",
        "plausibleUnitConceptIds.measurement.unit_concept_id.3027018",
    ):
        assert by_id[check_id]["status"] == "pass", by_id[check_id]
    assert by_id["isForeignKey.measurement.person_id"]["denominator_rows"] > 1000
    # --strict turns failures into exit status 1, and the run is audited.
    r = runner.invoke(app, ["--home", home, "dq", "--strict", "--output", str(tmp_path / "dq2")])
    assert r.exit_code == (1 if data["overview"]["fail"] else 0), r.output
    hub = Hub.open(home)
    try:
        assert hub.audit.count(action="warehouse.dq") == 2
    finally:
        hub.close()


def test_dq_on_the_eunomia_sample(shared_data: Path, tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    load_omop_csv(con, shared_data / "omop-synthea27nj")
    results = _by_id(run_checks(con.con))
    assert [i for i, r in results.items() if r.status == ERROR] == []
    # Real findings in that sample: its vocabulary subset has no gender concepts, and
    # every drug_exposure.quantity is 0.
    gender = results["isForeignKey.person.gender_concept_id"]
    assert (gender.status, gender.violated_rows, gender.denominator_rows) == (FAIL, 28, 28)
    quantity = results["plausibleValueLow.drug_exposure.quantity"]
    assert (quantity.status, quantity.violated_rows) == (FAIL, 883)
    assert results["isPrimaryKey.person.person_id"].status == PASS
