from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.errors import ValidationError
from hdhub.ingest.fhir import load_fhir
from hdhub.synth import generate
from hdhub.synth.identifiers import INS_SYSTEM, nir_is_valid
from hdhub.warehouse import connect

runner = CliRunner()


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.ndjson")):
        h.update(f.relative_to(folder).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


def read(folder: Path, rtype: str) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.rglob(f"{rtype}.ndjson")) for line in f.open()]


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", patients=200, sites=3, seed=42)
    generate(tmp_path / "b", patients=200, sites=3, seed=42)
    generate(tmp_path / "c", patients=200, sites=3, seed=43)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert a.resources["Patient"] >= 200 and a.total > 5000


def test_identifiers_sites_and_content(tmp_path: Path) -> None:
    generate(tmp_path, patients=500, sites=3, seed=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ch-sud", "chu-nord", "clinique-est"]
    patients = read(tmp_path, "Patient")
    ins = [i["value"] for p in patients for i in p["identifier"] if i["system"] == INS_SYSTEM]
    assert ins and all(nir_is_valid(v) for v in ins)
    shared = {v for v in ins if ins.count(v) > 1}
    assert 0.03 < len(shared) / 500 < 0.2  # some patients seen at two sites, same INS
    labs = [o for o in read(tmp_path, "Observation") if o["category"][0]["coding"][0]["code"] == "laboratory"]
    abnormal = [
        o
        for o in labs
        if not o["referenceRange"][0]["low"]["value"]
        <= o["valueQuantity"]["value"]
        <= o["referenceRange"][0]["high"]["value"]
    ]
    assert 0.05 < len(abnormal) / len(labs) < 0.6
    note = base64.b64decode(
        read(tmp_path, "DocumentReference")[0]["content"][0]["attachment"]["data"]
    ).decode()
    assert "né(e) le" in note and "NIR" in note and "Tél." in note and "@exemple.fr" in note
    systems = {c["code"]["coding"][0]["system"] for c in read(tmp_path, "Condition")}
    assert {"http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10"} <= systems


def test_generated_sites_load_and_merge_through_the_ins(tmp_path: Path) -> None:
    generate(tmp_path / "out", patients=300, sites=2, seed=9)
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    reports = [
        load_fhir(con, [tmp_path / "out" / s], site=s, secret=b"s" * 32) for s in ("chu-nord", "ch-sud")
    ]
    assert all(not r.errors for r in reports)
    patient_lines = sum(r.types["Patient"].read for r in reports)
    persons = con.con.execute("SELECT count(*) FROM person").fetchone()[0]
    patients = read(tmp_path / "out", "Patient")
    ins = [next((i["value"] for i in p["identifier"] if i["system"] == INS_SYSTEM), None) for p in patients]
    duplicates = sum(1 for v in ins if v is not None) - len({v for v in ins if v is not None})
    assert persons == patient_lines - duplicates  # the same INS at two sites is one person


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        generate(tmp_path, patients=0)
    r = runner.invoke(app, ["synth", str(tmp_path), "--sites", "20"])
    assert r.exit_code == 65 and "between 1 and 8" in r.output


def test_cli_gzip(tmp_path: Path) -> None:
    r = runner.invoke(app, ["synth", str(tmp_path), "--patients", "20", "--sites", "1", "--gzip"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "chu-nord" / "Patient.ndjson.gz").is_file()
