from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.errors import ValidationError
from hdhub.hub import Hub
from hdhub.ingest.omop_csv import load_omop_csv
from hdhub.warehouse import connect

runner = CliRunner()
CONCEPT = (
    "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\tconcept_code\t"
    "valid_start_date\tvalid_end_date\tinvalid_reason\n"
    "201826\tType 2 diabetes mellitus\tCondition\tSNOMED\tClinical Finding\tS\t44054006\t"
    "19700101\t20991231\t\n"
    '45576876\tType 2 diabetes "mellitus" without complications\tCondition\tICD10CM\t5-char billing code\t\t'
    "E11.9\t20070101\t20991231\t\n"
)
RELATIONSHIP = (
    "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
    "45576876\t201826\tMaps to\t20070101\t20991231\t\n"
)


def athena(tmp_path: Path) -> Path:
    d = tmp_path / "athena"
    d.mkdir(parents=True)
    (d / "CONCEPT.csv").write_text(CONCEPT, encoding="utf-8")
    (d / "CONCEPT_RELATIONSHIP.csv").write_text(RELATIONSHIP, encoding="utf-8")
    (d / "readme.txt").write_text("Athena download")
    return d


def test_athena_tsv_with_quotes_and_compact_dates(tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    report = load_omop_csv(con, athena(tmp_path), replace=True, schema="VOCAB")
    assert report.rows == {"concept": 2, "concept_relationship": 1}
    name, start = con.con.execute(
        "SELECT concept_name, valid_start_date::VARCHAR FROM concept WHERE concept_id = 45576876"
    ).fetchone()
    assert name == 'Type 2 diabetes "mellitus" without complications' and start == "2007-01-01"
    # Loading again replaces, never doubles.
    load_omop_csv(con, athena(tmp_path / "again"), replace=True, schema="VOCAB")
    assert con.con.execute("SELECT count(*) FROM concept").fetchone() == (2,)


def test_tsv_error_names_line_and_column(tmp_path: Path) -> None:
    d = athena(tmp_path)
    (d / "CONCEPT.csv").write_text(CONCEPT + "1\tx\tCondition\tSNOMED\tc\tS\t1\t20201350\t20991231\t\n")
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    with pytest.raises(ValidationError, match=r"CONCEPT.csv, line 4, column valid_start_date: '20201350'"):
        load_omop_csv(con, d, replace=True, schema="VOCAB")


def test_vocab_load_refuses_clinical_tables(tmp_path: Path, local_hub: Hub) -> None:
    d = athena(tmp_path)
    (d / "PERSON.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id\n"
    )
    home = str(local_hub.settings.home)
    local_hub.close()
    r = runner.invoke(app, ["--home", home, "vocab", "load", str(d)])
    assert r.exit_code == 65 and "PERSON.csv: table person is not a VOCAB table" in r.output
    (d / "PERSON.csv").unlink()
    r = runner.invoke(app, ["--home", home, "vocab", "load", str(d)])
    assert r.exit_code == 0, r.output
    assert "concept_relationship" in r.output


@pytest.mark.integration
def test_builtin_vocabulary_maps_the_generators_codes(home: Path, tmp_path: Path) -> None:
    """The demo path: synth + built-in vocabulary, no Athena download."""
    r = runner.invoke(app, ["--home", str(home), "vocab", "load", "--builtin"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["--home", str(home), "vocab", "load"]).exit_code != 0  # neither given
    out = tmp_path / "synth"
    assert (
        runner.invoke(app, ["synth", str(out), "--patients", "60", "--sites", "1", "--seed", "3"]).exit_code
        == 0
    )
    site = next(p.name for p in out.iterdir() if p.is_dir())
    r = runner.invoke(app, ["--home", str(home), "ingest", "fhir", str(out / site), "--site", site])
    assert r.exit_code == 0, r.output
    con = connect(f"duckdb:///{home}/warehouse.duckdb")
    try:
        mapped, total = con.con.execute(
            "SELECT count(*) FILTER (WHERE measurement_concept_id <> 0), count(*) FROM measurement"
        ).fetchone()
        unmapped_units = con.con.execute(
            "SELECT count(*) FROM measurement WHERE unit_source_value IS NOT NULL AND unit_concept_id = 0"
        ).fetchone()[0]
        snomed = con.con.execute(
            # type 2 diabetes, essential hypertension, atrial fibrillation (SNOMED, standard)
            "SELECT count(*) FROM condition_occurrence WHERE condition_concept_id IN (201826, 320128, 313217)"
        ).fetchone()[0]
    finally:
        con.disconnect()
    assert total > 0 and mapped == total and unmapped_units == 0  # every lab and vital: LOINC and UCUM
    assert snomed > 0
