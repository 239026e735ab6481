"""`hdhub cohort …` on a deployment holding the synthetic population."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.warehouse import connect

pytestmark = pytest.mark.slow

T2DM = {
    "name": "diabetes",
    "concept_sets": {
        "t2dm": {"items": [{"concept_id": 201826}]},
        "a1c": {"items": [{"concept_id": 3004410}]},
    },
    "entry": {"events": [{"domain": "condition", "concept_set": "t2dm"}]},
    "inclusion_rules": [
        {
            "name": "an HbA1c measured",
            "criteria": {"items": [{"event": {"domain": "measurement", "concept_set": "a1c"}}]},
        }
    ],
}


def hdhub(home: Path, *args: str) -> object:
    return CliRunner().invoke(app, ["--home", str(home), *args])


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "cohort.json"
    path.write_text(json.dumps(data))
    return path


def test_count_prints_attrition_and_breakdowns(population_home: Path, tmp_path: Path) -> None:
    r = hdhub(population_home, "cohort", "count", str(write(tmp_path, T2DM)), "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["exact"] is True  # the operator at the server acts as admin
    assert 0 < result["persons"] <= result["entry"]
    assert result["attrition"][0]["remaining"] == result["persons"]
    assert {c["site"] for c in result["breakdowns"]["site"]} <= {"chu-nord", "ch-sud", "clinique-est"}
    assert sum(c["persons"] for c in result["breakdowns"]["sex_age"]) == result["persons"]
    table = hdhub(population_home, "cohort", "count", str(write(tmp_path, T2DM)))
    assert "diabetes:" in table.output and "an HbA1c measured" in table.output and "By site" in table.output


def test_materialise_writes_merged_rows_to_the_cohort_table(population_home: Path, tmp_path: Path) -> None:
    definition = {
        **T2DM,
        "entry": {**T2DM["entry"], "occurrence": "all"},
        "exit": {"type": "fixed_offset", "days": 30},
    }
    r = hdhub(population_home, "cohort", "materialise", str(write(tmp_path, definition)), "--cohort-id", "7")
    assert r.exit_code == 0, r.output
    con = connect(f"duckdb:///{population_home}/warehouse.duckdb")
    try:
        rows = con.con.execute(
            "SELECT subject_id, cohort_start_date, cohort_end_date FROM cohort "
            "WHERE cohort_definition_id = 7 ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.disconnect()
    assert rows and f"{len(rows):,} rows" in r.output
    for (p1, _, end1), (p2, start2, _) in itertools.pairwise(rows):
        assert p1 != p2 or start2 > end1  # one person's periods never overlap once merged


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**T2DM, "concept_sets": {**T2DM["concept_sets"], "t2dm": {"items": [{"concept_id": 4}]}}},
         "concept 4 is"),
        ({**T2DM, "inclusion_rules": [{"name": "x", "criteria": {"items": [
            {"event": {"domain": "drug"}, "window": {"start": {"days": -1}}}]}}]}, "window.start.days"),
        ("{not json", "not valid JSON"),
        ({"ConceptSets": [], "PrimaryCriteria": {"CriteriaList": [
            {"ConditionOccurrence": {"OccurrenceStartDate": {"Op": "gt", "Value": "9999-12-31"}}}]}},
         "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.OccurrenceStartDate.Value"),
        ({"ConceptSets": [1], "PrimaryCriteria": {}}, "ConceptSets[0] must be an object"),
    ],
)  # fmt: skip
def test_bad_definitions_are_one_line_and_exit_65(
    population_home: Path, tmp_path: Path, data: object, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    r = hdhub(population_home, "cohort", "count", str(path))
    assert r.exit_code == 65, r.output
    assert message in r.output and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_missing_file_and_schema(population_home: Path, tmp_path: Path) -> None:
    r = hdhub(population_home, "cohort", "count", str(tmp_path / "none.json"))
    assert r.exit_code == 65 and "cannot read" in r.output
    schema = json.loads(hdhub(population_home, "cohort", "schema").output)
    assert schema["title"] == "CohortDefinition" and "entry" in schema["required"]


def test_sql_for_each_engine(population_home: Path, tmp_path: Path) -> None:
    path = write(tmp_path, T2DM)
    pg = hdhub(population_home, "cohort", "sql", str(path), "--dialect", "postgres").output
    spark = hdhub(population_home, "cohort", "sql", str(path), "--dialect", "pyspark").output
    assert '"condition_occurrence"' in pg and "`condition_occurrence`" in spark
    assert hdhub(population_home, "cohort", "sql", str(path), "--dialect", "oracle").exit_code == 2


def test_opposition_by_identifier_takes_effect_at_once(population_home: Path, tmp_path: Path) -> None:
    """A patient objects (found by an identifier through the identity store): every later
    count leaves them out; withdrawing brings them back."""
    from hdhub.hub import Hub

    hub = Hub.open(population_home)
    try:
        con = connect(f"duckdb:///{population_home}/warehouse.duckdb")
        key = con.con.execute(
            "SELECT p.person_source_value FROM person p JOIN condition_occurrence c USING (person_id) "
            "WHERE c.condition_concept_id = 201826 LIMIT 1"
        ).fetchone()[0]
        con.disconnect()
        ident = hub.identities.by_person(key)[0]["identifier"][0]
        identifier = f"{ident['system']}|{ident['value']}"
    finally:
        hub.close()
    path = write(tmp_path, {**T2DM, "inclusion_rules": []})
    before = json.loads(hdhub(population_home, "cohort", "count", str(path), "--json").output)["persons"]
    r = hdhub(population_home, "opposition", "add", identifier)
    assert r.exit_code == 0 and "objection recorded" in r.output, r.output
    assert "1 persons object" in hdhub(population_home, "opposition", "count").output
    after = json.loads(hdhub(population_home, "cohort", "count", str(path), "--json").output)["persons"]
    assert after == before - 1
    r = hdhub(population_home, "opposition", "withdraw", identifier)
    assert r.exit_code == 0 and "1 objection(s) withdrawn" in r.output
    again = json.loads(hdhub(population_home, "cohort", "count", str(path), "--json").output)["persons"]
    assert again == before
    unknown = hdhub(population_home, "opposition", "add", "urn:oid:1.2.250.1.213.1.4.8|000")
    assert unknown.exit_code == 66 and "no patient holds this identifier" in unknown.output
