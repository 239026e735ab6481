"""FHIR R4 bulk into OMOP: counts from the files themselves, idempotency, atomicity, hostile input."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdhub.catalog.migrate import upgrade
from hdhub.cli.main import app
from hdhub.config.deployment import init_deployment
from hdhub.errors import ValidationError
from hdhub.hub import Hub
from hdhub.ingest.fhir import load_fhir
from hdhub.ingest.fhir.load import keyed
from hdhub.ingest.omop_csv import load_omop_csv
from hdhub.warehouse import BUILTIN_VOCABULARY, connect

runner = CliRunner()
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SECRET = b"k" * 32
EVENT_TABLES = [
    "condition_occurrence",
    "procedure_occurrence",
    "drug_exposure",
    "measurement",
    "observation",
    "device_exposure",
]
DOMAIN_OF = {
    "condition_occurrence": "Condition",
    "procedure_occurrence": "Procedure",
    "drug_exposure": "Drug",
    "measurement": "Measurement",
    "observation": "Observation",
    "device_exposure": "Device",
}


def lines_by_type(directory: Path) -> Counter[str]:
    out: Counter[str] = Counter()
    for f in directory.glob("*.ndjson.gz"):
        if f.name.startswith("log."):
            continue
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    out[json.loads(line)["resourceType"]] += 1
    return out


def counts(con: object, tables: list[str]) -> dict[str, int]:
    return {t: con.con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[attr-defined]


ALL_TABLES = [
    "person",
    "death",
    "observation_period",
    "visit_occurrence",
    *EVENT_TABLES,
    "note",
    "care_site",
    "location",
    "provider",
]


@pytest.fixture
def warehouse(tmp_path: Path, shared_data: Path) -> object:
    """A warehouse with the vocabulary subset of the OMOP sample (for 'Maps to' and domains)."""
    vocab = tmp_path / "vocab"
    vocab.mkdir()
    for name in ("CONCEPT", "CONCEPT_RELATIONSHIP", "VOCABULARY"):
        shutil.copy(shared_data / "omop-synthea27nj" / f"{name}.csv.gz", vocab)
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    load_omop_csv(con, vocab, replace=True, schema="VOCAB")
    yield con
    con.disconnect()


@pytest.mark.integration
def test_synthea_sample_one_row_per_line_in_its_domain_table(warehouse: object, shared_data: Path) -> None:
    """Must show: one person per Patient line; every clinical line becomes exactly one OMOP row."""
    src = shared_data / "fhir-bulk-synthea-10"
    expected = lines_by_type(src)
    report = load_fhir(warehouse, [src], site="nord", secret=SECRET)
    got = counts(warehouse, ALL_TABLES)
    assert got["person"] == expected["Patient"]
    assert got["visit_occurrence"] == expected["Encounter"]
    assert got["note"] == expected["DocumentReference"]
    clinical = ("Condition", "Procedure", "MedicationRequest", "Immunization", "AllergyIntolerance", "Device")
    assert sum(got[t] for t in EVENT_TABLES) == sum(expected[t] for t in clinical)
    entities = ("Organization", "Location", "Practitioner")
    for rtype in (*clinical, *entities, "Encounter", "DocumentReference", "Patient"):
        c = report.types[rtype]
        assert (c.read, c.loaded, c.rejected) == (expected[rtype], expected[rtype], 0), rtype
    assert report.types["PractitionerRole"].not_mapped_yet == expected["PractitionerRole"]
    assert report.errors == []
    # Who and where: one care_site per Organization (with a location for its address), one
    # location per Location, one provider per Practitioner, without their names or NPI.
    db = warehouse.con  # type: ignore[attr-defined]
    sites = counts(warehouse, ["care_site", "location", "provider"])
    assert sites == {
        "care_site": expected["Organization"],
        "location": expected["Location"] + expected["Organization"],
        "provider": expected["Practitioner"],
    }
    assert (
        db.execute("SELECT count(*) FROM device_exposure WHERE unique_device_id IS NOT NULL").fetchone()[0]
        == (expected["Device"])
    )
    # Synthea's encounters point to both through conditional references (?identifier=…|value).
    linked = db.execute(
        "SELECT count(care_site_id), count(provider_id), count(*) FROM visit_occurrence v "
        "WHERE care_site_id IN (SELECT care_site_id FROM care_site) "
        "AND provider_id IN (SELECT provider_id FROM provider)"
    ).fetchone()
    assert linked == (expected["Encounter"],) * 3
    with gzip.open(src / "Practitioner.000.ndjson.gz", "rt") as fh:
        first = json.loads(fh.readline())
    dump = " ".join(str(r) for r in db.execute("SELECT * FROM provider").fetchall())
    assert first["name"][0]["family"] not in dump and first["identifier"][0]["value"] not in dump
    # Each row sits in the table its standard concept's domain dictates (concept 0 = unmapped, default table).
    for table, domain in DOMAIN_OF.items():
        col = {"drug_exposure": "drug_concept_id", "device_exposure": "device_concept_id"}.get(
            table, table.replace("_occurrence", "") + "_concept_id"
        )
        wrong = db.execute(
            f"SELECT count(*) FROM {table} t JOIN concept c ON c.concept_id = t.{col} "
            f"WHERE t.{col} <> 0 AND c.domain_id <> '{domain}'"
        ).fetchone()[0]
        assert wrong == 0, table
    # Some SNOMED conditions are Observation-domain findings: routed there, not to condition_occurrence.
    assert got["condition_occurrence"] < expected["Condition"]
    # Unmapped codes are counted and get concept 0.
    assert (
        report.types["Immunization"].unmapped == expected["Immunization"]
    )  # CVX is not in this vocabulary shard
    # Notes keep their decoded text; persons are known only by keyed hashes.
    text = db.execute("SELECT note_text FROM note WHERE length(note_text) > 100 LIMIT 1").fetchone()[0]
    assert text.isprintable() or "\n" in text
    values = {r[0] for r in db.execute("SELECT person_source_value FROM person").fetchall()}
    with gzip.open(src / "Patient.000.ndjson.gz", "rt") as fh:
        patient_ids = {json.loads(line)["id"] for line in fh}
    assert not values & patient_ids and all(len(v) == 40 for v in values)
    # Every person has an observation period covering their events.
    assert (
        got["observation_period"]
        == got["person"]
        - db.execute(
            "SELECT count(*) FROM person WHERE person_id NOT IN (SELECT person_id FROM visit_occurrence)"
        ).fetchone()[0]
    )


@pytest.mark.integration
def test_reloading_changes_nothing(warehouse: object, shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "fhir-bulk-synthea-10"
    load_fhir(warehouse, [src], site="nord", secret=SECRET)
    before = counts(warehouse, ALL_TABLES)
    again = load_fhir(warehouse, [src], site="nord", secret=SECRET)
    assert again.files == 0 and again.files_skipped == 13
    # The same resources in other files (decompressed: other checksums) are recognised row by row.
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in src.glob("*.ndjson.gz"):
        (copy / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    third = load_fhir(warehouse, [copy], site="nord", secret=SECRET)
    assert third.files == 13 and third.types["Condition"].already == 555
    assert counts(warehouse, ALL_TABLES) == before


def test_two_sites_share_a_person_only_through_the_ins(tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    ins = {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "2800175123456"}

    def patient(pid: str, identifiers: list[dict]) -> str:
        return json.dumps(
            {
                "resourceType": "Patient",
                "id": pid,
                "gender": "female",
                "birthDate": "1980-01-01",
                "identifier": identifiers,
            }
        )

    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    a.write_text(patient("ipp-1", [ins]) + "\n" + patient("ipp-2", []) + "\n")
    b.write_text(patient("x-77", [ins]) + "\n" + patient("ipp-2", []) + "\n")
    load_fhir(con, [a], site="nord", secret=SECRET)
    load_fhir(con, [b], site="sud", secret=SECRET)
    # ipp-1@nord and x-77@sud share the INS: one person. ipp-2 at two sites: two persons.
    assert con.con.execute("SELECT count(*) FROM person").fetchone()[0] == 3
    assert con.con.execute("SELECT count(DISTINCT person_id) FROM _hdhub_patients").fetchone()[0] == 3
    assert keyed(SECRET, "x") == keyed(SECRET, "x") != keyed(b"z" * 32, "x")


def test_reports_imaging_studies_and_literal_references(tmp_path: Path) -> None:
    """DiagnosticReport with text -> note, without -> by domain (measurement when unmapped);
    ImagingStudy -> procedure_occurrence; Encounter.serviceProvider / participant as plain
    references (Organization/id) -> care_site_id / provider_id."""
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    note = "Compte rendu : radiographie thoracique normale."
    resources = [
        {"resourceType": "Organization", "id": "chu", "name": "CHU Nord",
         "address": [{"line": ["1 rue Michel Polonovski"], "city": "Lille", "postalCode": "59000"}]},
        {"resourceType": "Practitioner", "id": "dr1", "gender": "female",
         "name": [{"family": "Martin", "given": ["Claire"]}],
         "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "10101010101"}]},
        {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-06-01"},
        {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"},
         "class": {"code": "AMB"}, "period": {"start": "2024-01-02T10:00:00", "end": "2024-01-02T11:00:00"},
         "serviceProvider": {"reference": "Organization/chu"},
         "participant": [{"individual": {"reference": "Practitioner/dr1"}}]},
        {"resourceType": "DiagnosticReport", "id": "r1", "subject": {"reference": "Patient/p1"},
         "encounter": {"reference": "Encounter/e1"}, "effectiveDateTime": "2024-01-02T10:30:00",
         "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}], "text": "RX thorax"},
         "presentedForm": [{"contentType": "text/plain", "data": base64.b64encode(note.encode()).decode()}]},
        {"resourceType": "DiagnosticReport", "id": "r2", "subject": {"reference": "Patient/p1"},
         "effectiveDateTime": "2024-01-02T10:30:00",
         "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8"}]}},
        {"resourceType": "Observation", "id": "bp", "subject": {"reference": "Patient/p1"},
         "effectiveDateTime": "2024-01-02T10:20:00", "category": [{"coding": [{"code": "vital-signs"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
         "component": [
             {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
              "valueQuantity": {"value": 128, "unit": "mm[Hg]", "code": "mm[Hg]"}},
             {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
              "valueQuantity": {"value": 79, "unit": "mm[Hg]", "code": "mm[Hg]"}}]},
        {"resourceType": "Medication", "id": "m1",
         "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "314076"}]}},
        {"resourceType": "MedicationRequest", "id": "mr1", "subject": {"reference": "Patient/p1"},
         "authoredOn": "2024-01-02", "medicationReference": {"reference": "Medication/m1"}},
        {"resourceType": "Observation", "id": "o-int", "subject": {"reference": "Patient/p1"},
         "effectiveDateTime": "2024-01-02", "category": [{"coding": [{"code": "survey"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]}, "valueInteger": 7},
        {"resourceType": "Observation", "id": "o-bool", "subject": {"reference": "Patient/p1"},
         "effectiveDateTime": "2024-01-02", "category": [{"coding": [{"code": "social-history"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "63586-2"}]}, "valueBoolean": True},
        {"resourceType": "ImagingStudy", "id": "i1", "subject": {"reference": "Patient/p1"},
         "encounter": {"reference": "Encounter/e1"}, "started": "2024-01-02T10:15:00",
         "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.250.1.59.1"}],
         "procedureCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "399208008"}]}],
         "series": [{"uid": "1.2.250.1.59.1.1", "modality": {"system": DCM, "code": "DX"},
                     "bodySite": {"system": "http://snomed.info/sct", "code": "51185008"}},
                    {"uid": "1.2.250.1.59.1.2", "modality": {"system": DCM, "code": "DX"}}]},
        {"resourceType": "ImagingStudy", "id": "i2", "subject": {"reference": "Patient/p1"},
         "started": "2024-01-03T09:00:00",
         "series": [{"uid": "9.9", "modality": {"system": DCM, "code": "CT"}}],
         "procedureCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "77477000"}]}]},
    ]  # fmt: skip
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps(r) + "\n" for r in resources))
    report = load_fhir(con, [src], site="nord", secret=SECRET)
    # i2 has no DICOM study UID: its procedure loads, its series is rejected with a reason.
    assert [(e["id"], e["reason"]) for e in report.errors] == [
        ("i2", "no DICOM study UID (identifier urn:dicom:uid) or series UID")
    ]
    db = con.con
    assert db.execute(
        "SELECT i.image_study_uid, i.image_series_uid, i.image_occurrence_date::VARCHAR, "
        "p.procedure_source_value, "
        "i.person_id = p.person_id, i.visit_occurrence_id IS NOT NULL FROM image_occurrence i "
        "JOIN procedure_occurrence p USING (procedure_occurrence_id) ORDER BY 2"
    ).fetchall() == [
        ("1.2.250.1.59.1", "1.2.250.1.59.1.1", "2024-01-02", "399208008", True, True),
        ("1.2.250.1.59.1", "1.2.250.1.59.1.2", "2024-01-02", "399208008", True, True),
    ]
    c = report.types["ImagingStudy.series"]
    assert (c.read, c.loaded, c.rejected) == (3, 2, 1)
    assert db.execute("SELECT note_title, note_text, note_source_value FROM note").fetchall() == [
        ("RX thorax", note, "36643-5")
    ]
    # The panel is a row; each of its components is a row with its own code and value.
    assert db.execute(
        "SELECT measurement_source_value, value_as_number, unit_source_value FROM measurement ORDER BY 1"
    ).fetchall() == [
        ("24323-8", None, None),
        ("8462-4", 79, "mm[Hg]"),
        ("8480-6", 128, "mm[Hg]"),
        ("85354-9", None, None),
    ]
    assert report.types["Observation.component"].loaded == 2
    # A MedicationRequest naming a Medication takes its code.
    assert db.execute(
        "SELECT drug_source_value, drug_exposure_start_date::VARCHAR FROM drug_exposure"
    ).fetchall() == [("314076", "2024-01-02")]
    assert report.types["Medication"].loaded == 1
    # Surveys and social history: integer and boolean values are kept.
    assert db.execute(
        "SELECT observation_source_value, value_as_number, value_as_string FROM observation ORDER BY 1"
    ).fetchall() == [("44261-6", 7, None), ("63586-2", None, "true")]
    assert db.execute(
        "SELECT procedure_source_value, procedure_date::VARCHAR FROM procedure_occurrence ORDER BY 1"
    ).fetchall() == [("399208008", "2024-01-02"), ("77477000", "2024-01-03")]
    visit = db.execute(
        "SELECT c.care_site_name, l.city, p.gender_concept_id, p.provider_source_value "
        "FROM visit_occurrence v "
        "JOIN care_site c USING (care_site_id) JOIN location l ON l.location_id = c.location_id "
        "JOIN provider p ON p.provider_id = v.provider_id"
    ).fetchall()
    assert visit == [("CHU Nord", "Lille", 8532, "dr1")]
    # Reloading the same resources from another file adds nothing.
    copy = tmp_path / "again.ndjson"
    copy.write_text(src.read_text() + "\n")
    again = load_fhir(con, [copy], site="nord", secret=SECRET)
    assert again.types["Organization"].already == 1 and again.types["DiagnosticReport"].already == 2
    assert again.types["Observation.component"].already == 2
    assert again.types["ImagingStudy.series"].already == 2
    assert db.execute("SELECT count(*) FROM image_occurrence").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM care_site").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM location").fetchone()[0] == 1


def test_a_later_coding_is_used_when_the_first_maps_to_nothing(tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    load_omop_csv(con, BUILTIN_VOCABULARY, replace=True, schema="VOCAB")
    local = {"system": "https://chu-nord.example/codes", "code": "DIAB2"}
    snomed = {"system": "http://snomed.info/sct", "code": "44054006"}  # type 2 diabetes -> 201826
    heart_failure = {"system": "http://snomed.info/sct", "code": "84114007"}
    pat = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-06-01"}
    conds = [
        {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p1"},
         "code": {"coding": codings}, "onsetDateTime": "2020-03-01"}
        for cid, codings in (("c1", [local, snomed]), ("c2", [snomed, heart_failure]), ("c3", [local]))
    ]  # fmt: skip
    src = tmp_path / "in.ndjson"
    src.write_text("".join(json.dumps(r) + "\n" for r in [pat, *conds]))
    report = load_fhir(con, [src], site="nord", secret=SECRET)
    rows = con.con.execute(
        "SELECT condition_source_value, condition_concept_id, condition_source_concept_id "
        "FROM condition_occurrence ORDER BY condition_occurrence_id"
    ).fetchall()
    # c1: the local code maps to nothing, SNOMED does; c2: the first coding maps, it wins;
    # c3: nothing maps: concept 0, the code kept as source value.
    assert rows == [("44054006", 201826, 201826), ("44054006", 201826, 201826), ("DIAB2", 0, 0)]
    assert report.types["Condition"].unmapped == 1


def test_a_file_named_after_one_type_may_hold_others(tmp_path: Path) -> None:
    """Condition.ndjson is read with Condition's fields only; a Patient inside makes it
    read again with every field, so nothing of the Patient is lost."""
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    pat = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-06-01"}
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetDateTime": "2020-03-01",
    }
    (tmp_path / "Condition.000.ndjson").write_text(json.dumps(pat) + "\n" + json.dumps(cond) + "\n")
    report = load_fhir(con, [tmp_path / "Condition.000.ndjson"], site="nord", secret=SECRET)
    assert report.errors == [] and report.types["Patient"].loaded == report.types["Condition"].loaded == 1
    assert con.con.execute("SELECT gender_concept_id, year_of_birth FROM person").fetchall() == [(8532, 1950)]
    assert con.con.execute("SELECT condition_start_date::VARCHAR FROM condition_occurrence").fetchall() == [
        ("2020-03-01",)
    ]


@pytest.mark.parametrize(("systems", "persons"), [(None, 1), ("[]", 2)])
def test_merge_identifier_systems_setting(
    local_hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systems: str | None, persons: int
) -> None:
    """`ingest.merge_identifier_systems` (default: the INS) decides which identifiers merge sites."""
    home = str(local_hub.settings.home)
    local_hub.close()
    if systems is not None:
        monkeypatch.setenv("HDHUB_INGEST_MERGE_IDENTIFIER_SYSTEMS", systems)
    ins = {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "2800175123456"}
    for site, pid in (("nord", "a1"), ("sud", "b7")):
        d = tmp_path / site
        d.mkdir()
        patient = {"resourceType": "Patient", "id": pid, "birthDate": "1980-01-01", "identifier": [ins]}
        (d / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
        r = runner.invoke(app, ["--home", home, "ingest", "fhir", str(d), "--site", site])
        assert r.exit_code == 0, r.output
    hub = Hub.open(home)
    try:
        assert hub.warehouse.con.execute("SELECT count(*) FROM person").fetchone()[0] == persons
    finally:
        hub.close()


def test_hostile_input_is_reported_and_the_rest_loads(tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    d = tmp_path / "in"
    d.mkdir()
    pat = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-06-01"}
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetDateTime": "2020-03-01T10:00:00+01:00",
    }
    lines = [
        pat,
        cond,
        "not json {",
        {**cond, "id": "c2", "subject": None},
        {"resourceType": "Starship", "id": "s"},
        {**cond, "id": "c3", "onsetDateTime": "2020-02-30"},
        {**cond, "id": "c4", "subject": {"reference": "Patient/zz"}},
    ]
    (d / "mixed.ndjson").write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    )
    # A truncated gzip: the complete lines before the damage load.
    good = "".join(json.dumps({**cond, "id": f"g{i}"}) + "\n" for i in range(2000)).encode()
    (d / "trunc.ndjson.gz").write_bytes(gzip.compress(good)[:-4000])
    # A single 70 MB line (over the 64 MB limit) between two good ones.
    big = {**cond, "id": "big", "note": [{"text": "x" * (70 << 20)}]}
    (d / "big.ndjson").write_text(
        json.dumps({**cond, "id": "b1"})
        + "\n"
        + json.dumps(big)
        + "\n"
        + json.dumps({**cond, "id": "b2"})
        + "\n"
    )
    report = load_fhir(con, [d], site="nord", secret=SECRET)
    reasons = [(e["file"], e["line"], e["reason"]) for e in report.errors]
    assert ("mixed.ndjson", 3, "not valid JSON") in reasons
    assert ("mixed.ndjson", 4, "no patient reference (subject)") in reasons
    assert ("mixed.ndjson", 5, "unsupported resource type Starship") in reasons
    assert ("mixed.ndjson", 6, "impossible date 2020-02-30 ") in reasons
    assert ("mixed.ndjson", 7, "unknown patient zz") in reasons
    assert any(f == "big.ndjson" and line == 2 and "longer than 64 MB" in r for f, line, r in reasons)
    assert any(f == "trunc.ndjson.gz" and "damaged" in r for f, line, r in reasons)
    loaded = (
        con.con.execute("SELECT count(*) FROM condition_occurrence").fetchone()[0]
        + con.con.execute("SELECT count(*) FROM observation").fetchone()[0]
    )
    truncated_ok = report.types["Condition"].loaded - 3  # c1, b1, b2
    assert 0 < truncated_ok < 2000 and loaded == report.types["Condition"].loaded


def test_bundle_with_100000_entries(tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    entries = [{"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1970"}}]
    entries += [
        {
            "resource": {
                "resourceType": "Procedure",
                "id": f"pr{i}",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "430193006"}]},
                "performedDateTime": "2021-05-04",
            }
        }
        for i in range(100_000)
    ]
    (tmp_path / "bundle.json").write_text(
        json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    )
    calls: list[tuple[str, int, int]] = []
    report = load_fhir(
        con, [tmp_path / "bundle.json"], site="nord", secret=SECRET, progress=lambda *c: calls.append(c)
    )
    assert report.types["Procedure"].loaded == 100_000 and report.errors == []
    size = (tmp_path / "bundle.json").stat().st_size
    assert ("read", 0, size) in calls and ("read", size, size) in calls  # progress, in bytes then steps
    assert calls[-1][0] == "map" and calls[-1][1] == calls[-1][2] > 0
    assert con.con.execute("SELECT count(*) FROM procedure_occurrence").fetchone()[0] == 100_000
    assert con.con.execute("SELECT year_of_birth, month_of_birth FROM person").fetchone() == (1970, None)


def test_bad_site_and_missing_files(tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    with pytest.raises(ValidationError, match="site code"):
        load_fhir(con, [tmp_path], site="../etc", secret=SECRET)
    with pytest.raises(ValidationError, match="no FHIR files"):
        load_fhir(con, [tmp_path], site="nord", secret=SECRET)


@pytest.mark.integration
def test_cli_archives_landing_zone_and_reports(home: Path, shared_data: Path) -> None:
    src = shared_data / "fhir-bulk-synthea-10"
    r = runner.invoke(app, ["--home", str(home), "ingest", "fhir", str(src), "--site", "nord"])
    assert r.exit_code == 0, r.output
    assert "13 files loaded" in r.output
    hub = Hub.open(home)
    landed = [i.key for i in hub.objects.list("landing/fhir/nord/")]
    assert len(landed) == 13 and all(k.endswith(".ndjson.gz") for k in landed)
    original = (src / "Patient.000.ndjson.gz").read_bytes()
    patient_key = next(k for k in landed if k.endswith("Patient.000.ndjson.gz"))
    assert hub.objects.get_bytes(patient_key) == original  # archived unchanged (and encrypted at rest)
    assert hub.audit.search(action="warehouse.load-fhir", limit=1)[0].outcome == "success"
    # Identity apart: every Patient's name and identifiers are in the encrypted identity
    # store, found by identifier; the warehouse file never holds them.
    with gzip.open(src / "Patient.000.ndjson.gz", "rt") as fh:
        patients = [json.loads(line) for line in fh if line.strip()]
    first = patients[0]
    ident = next(i for i in first["identifier"] if i.get("system") and i.get("value"))
    found = hub.identities.by_identifier(ident["system"], ident["value"])
    assert found[0]["name"][0]["family"] == first["name"][0]["family"]
    assert found[0]["birthDate"] == first["birthDate"]
    with hub.catalog.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM patient_identities").scalar() == len(patients)
    hub.close()
    warehouse = (home / "warehouse.duckdb").read_bytes()
    assert all(p["name"][0]["family"].encode() not in warehouse for p in patients)


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_mid_load_then_rerun_gives_a_clean_result(
    local_hub: Hub, shared_data: Path, tmp_path: Path
) -> None:
    """Must show: a kill -9 half-way, then a re-run, gives the same final counts as one clean load."""
    src = tmp_path / "big"
    src.mkdir()
    for i in range(4):  # four sites' worth of files
        for f in (shared_data / "fhir-bulk-synthea-10").glob("[A-Z]*.ndjson.gz"):
            data = gzip.decompress(f.read_bytes()).decode().replace('"id":"', f'"id":"s{i}-')
            data = data.replace('"reference":"Patient/', f'"reference":"Patient/s{i}-')
            data = data.replace('"reference":"Encounter/', f'"reference":"Encounter/s{i}-')
            (src / f"{i}-{f.name.removesuffix('.gz')}").write_text(data)
    home = str(local_hub.settings.home)
    local_hub.close()
    cmd = [
        sys.executable,
        "-m",
        "hdhub.cli.main",
        "--home",
        home,
        "ingest",
        "fhir",
        str(src),
        "--site",
        "nord",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDHUB_")}
    # Time one whole run in a scratch deployment, then kill at fractions of that time.
    scratch = tmp_path / "timing"
    init_deployment(scratch)
    hub = Hub.open(scratch)
    upgrade(hub.catalog)
    hub.close()
    started = time.monotonic()
    subprocess.run([*cmd[:4], str(scratch), *cmd[5:]], env=env, check=True, capture_output=True)
    whole = time.monotonic() - started
    shutil.rmtree(scratch)
    observed = set()
    interrupted = 0
    for delay in (whole * 0.3, whole * 0.5, whole * 0.7):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        interrupted += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        con = connect(f"duckdb:///{home}/warehouse.duckdb")
        observed.add(tuple(counts(con, ALL_TABLES).values()))
        con.disconnect()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    con = connect(f"duckdb:///{home}/warehouse.duckdb")
    final = tuple(counts(con, ALL_TABLES).values())
    con.disconnect()
    empty = tuple(0 for _ in ALL_TABLES)
    assert interrupted >= 1  # at least one kill landed while the load was running
    assert observed <= {empty, final}  # never a partial load
    # One clean load elsewhere gives the same counts.
    clean = connect(f"duckdb:///{tmp_path}/clean.duckdb")
    load_fhir(clean, [src], site="nord", secret=SECRET)
    assert tuple(counts(clean, ALL_TABLES).values()) == final


def test_dates_fhir_does_not_allow_and_numbers_that_are_not_finite_are_refused(tmp_path: Path) -> None:
    """Found by fuzzing: DuckDB's cast took "infinity", "epoch", years 0000 and 99999 and 24:00
    as dates (a death in year 99999, observation periods from 1 BC), its JSON reader took NaN
    and Infinity, and a birthDate of "Infinity" aborted the whole load."""
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    d = tmp_path / "in"
    d.mkdir()
    pat = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-06-01"}
    cond = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
    }
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "effectiveDateTime": "2020-03-01T10:00:00Z",
    }
    bad_dates = ["infinity", "-infinity", "epoch", "0000-01-01", "99999-01-01", "-0001-01-01",
                 "2020-01-01T24:00:00Z", "2020-01-01T10:00:00+25:00", "2020-13-01"]  # fmt: skip
    lines = [json.dumps(pat), json.dumps({**pat, "id": "p2", "birthDate": "Infinity"})]
    lines += [json.dumps({**pat, "id": "p3", "deceasedDateTime": "99999-01-01T00:00:00Z"})]
    lines += [json.dumps({**cond, "id": f"c{i}", "onsetDateTime": when}) for i, when in enumerate(bad_dates)]
    lines += [json.dumps({**cond, "id": "ok", "onsetDateTime": "2020-03-01T10:00:00.123+14:00"})]
    qty = '{"value": %s, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}'
    for i, number in enumerate(["NaN", "Infinity", "-Infinity", "1e400", "120"]):
        lines.append(json.dumps({**obs, "id": f"o{i}"})[:-1] + f', "valueQuantity": {qty % number}}}')
    (d / "hostile.ndjson").write_text("\n".join(lines) + "\n")
    report = load_fhir(con, [d], site="nord", secret=SECRET)
    reasons = {e["line"]: e["reason"] for e in report.errors}
    assert reasons == {
        2: "impossible birthDate Infinity",
        3: "impossible deceasedDateTime 99999-01-01T00:00:00Z",
        **{4 + i: f"impossible date {when} " for i, when in enumerate(bad_dates)},
        **{14 + i: "not a finite number (value or reference range)" for i in range(4)},
    }
    assert con.con.execute("SELECT count(*) FROM person").fetchone()[0] == 1
    assert con.con.execute("SELECT count(*) FROM death").fetchone()[0] == 0
    assert con.con.execute("SELECT count(*) FROM condition_occurrence").fetchone()[0] == 1
    values = "SELECT value_as_number FROM measurement UNION ALL SELECT value_as_number FROM observation"
    assert con.con.execute(values).fetchall() == [(120.0,)]
    period = con.con.execute(
        "SELECT observation_period_start_date, observation_period_end_date FROM observation_period"
    ).fetchall()
    assert [(str(a), str(b)) for a, b in period] == [("2020-03-01", "2020-03-01")]
