from __future__ import annotations

import orjson
from typer.testing import CliRunner

from hdhub.audit.ecs import to_ecs
from hdhub.audit.fhir import fhir_action, to_audit_event, to_bundle
from hdhub.cli.main import app
from hdhub.hub import Hub
from hdhub.security.principal import Principal

runner = CliRunner()
ALICE = Principal(name="alice", roles=frozenset({"clinician"}), kind="user", source="10.0.0.5")


def test_fhir_audit_event_shape(local_hub: Hub) -> None:
    local_hub.audit.record(
        ALICE,
        "GET /fhir/r4/Patient/{id}",
        role="clinician",
        resource_type="Patient",
        resource_id="42",
        patient_id="42",
        project_id="P7",
        detail={"status": 200},
    )
    local_hub.audit.record(ALICE, "POST /api/v1/users", outcome="denied")
    ok, denied = sorted(local_hub.audit.search(), key=lambda e: e.seq)
    ev = to_audit_event(ok)
    assert ev["resourceType"] == "AuditEvent" and ev["id"] == "1"
    assert ev["type"]["code"] == "rest" and ev["action"] == "R" and ev["outcome"] == "0"
    assert ev["recorded"] == ok.ts
    agent = ev["agent"][0]
    assert agent["who"]["display"] == "alice" and agent["requestor"] is True
    assert agent["network"] == {"address": "10.0.0.5", "type": "2"}
    assert agent["role"][0]["coding"][0]["code"] == "clinician"
    refs = [e.get("what", {}).get("reference") for e in ev["entity"]]
    assert "Patient/42" in refs
    assert to_audit_event(denied)["outcome"] == "4" and to_audit_event(denied)["action"] == "C"
    bundle = to_bundle([ok], total=1, base_url="http://h")
    assert bundle["entry"][0]["fullUrl"] == "http://h/api/v1/audit/1"


def test_fhir_action_codes() -> None:
    assert [
        fhir_action(a) for a in ("users.add", "audit.export", "tokens.revoke", "objects.rm", "demo.x")
    ] == ["C", "R", "U", "D", "E"]


def test_ecs_shape(local_hub: Hub) -> None:
    local_hub.audit.record(ALICE, "POST /api/v1/auth/token", outcome="denied", patient_id=None)
    doc = to_ecs(local_hub.audit.search(limit=1)[0])
    assert doc["ecs"]["version"].startswith("8.")
    assert doc["event"]["kind"] == "event" and doc["event"]["outcome"] == "failure"
    assert doc["event"]["category"] == ["authentication"]
    assert doc["user"] == {"name": "alice", "roles": ["clinician"]} and doc["source"] == {"ip": "10.0.0.5"}
    assert doc["@timestamp"].endswith("Z") and doc["hdhub"]["audit"]["seq"] == 1


def test_cli_export_ecs_lines_and_fhir_bundle(local_hub: Hub, tmp_path) -> None:
    for i in range(3):
        local_hub.audit.record(ALICE, "fhir.read", patient_id=str(i))
    home = str(local_hub.settings.home)
    out = tmp_path / "audit.ndjson"
    r = runner.invoke(app, ["--home", home, "audit", "export", "--format", "ecs", "-o", str(out)])
    assert r.exit_code == 0, r.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [d["event"]["sequence"] for d in lines] == [1, 2, 3]
    r = runner.invoke(app, ["--home", home, "audit", "export", "--format", "fhir"])
    assert orjson.loads(r.stdout)["resourceType"] == "Bundle"


def test_cli_verify_names_the_edited_row(hub: Hub) -> None:
    """Must show: editing one audit row in the database makes `hdhub audit verify` exit non-zero naming it."""
    from sqlalchemy import text

    for i in range(20):
        hub.audit.record(ALICE, "fhir.read", patient_id=str(i))
    home = str(hub.settings.home)
    r = runner.invoke(app, ["--home", home, "audit", "verify"])
    assert r.exit_code == 0 and "audit chain intact: 20 entries" in r.output
    with hub.catalog.begin() as conn:
        conn.execute(text("UPDATE audit_events SET patient_id = '999' WHERE seq = 13"))
    r = runner.invoke(app, ["--home", home, "audit", "verify"])
    assert r.exit_code == 2
    assert "audit chain broken at entry 13" in r.output and "Traceback" not in r.output


def test_cli_checkpoint(local_hub: Hub) -> None:
    local_hub.audit.record(ALICE, "x")
    r = runner.invoke(app, ["--home", str(local_hub.settings.home), "audit", "checkpoint"])
    assert r.exit_code == 0 and "signed checkpoint at entry 1" in r.output
