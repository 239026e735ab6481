"""The monitoring API: device-authenticated vitals, alerts for clinicians, hostile bodies."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.monitoring.devices import revoke_device
from tests.monitoring.conftest import Monitored, at, bearer, blood_pressure, heart_rate


@pytest.fixture
def client(monitored: Monitored) -> TestClient:
    with TestClient(create_app(monitored.hub)) as c:
        yield c


def test_a_device_posts_and_a_clinician_acknowledges(client: TestClient, monitored: Monitored) -> None:
    device = {"Authorization": f"Bearer {monitored.token}"}
    entries = [{"resource": blood_pressure(172, 104, at(1))}, {"resource": heart_rate(900)}]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    r = client.post("/api/v1/vitals", content=orjson.dumps(bundle), headers=device)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2 and body["rejected"] == {"out_of_range": 1} and len(body["alerts"]) == 1
    clinician = bearer(monitored, "clinician")
    [alert] = client.get("/api/v1/alerts", params={"status": "open"}, headers=clinician).json()
    assert (alert["rule"], alert["severity"]) == ("bp_grade", "medium")
    full = client.get(f"/api/v1/alerts/{alert['id']}", headers=clinician).json()
    assert (
        sorted(v["value"] for v in full["values"]) == [104, 172]
        and full["values"][0]["device"] == monitored.device
    )
    acked = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=clinician).json()
    assert acked["status"] == "acknowledged"
    assert client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=clinician).status_code == 409
    assert client.get("/api/v1/alerts", params={"status": "open"}, headers=clinician).json() == []
    # a new reading after acknowledgement opens a new alert
    client.post("/api/v1/vitals", content=orjson.dumps(blood_pressure(175, 101, at(0))), headers=device)
    assert len(client.get("/api/v1/alerts", params={"status": "open"}, headers=clinician).json()) == 1


def test_only_devices_post_vitals(client: TestClient, monitored: Monitored) -> None:
    body = orjson.dumps(heart_rate(70))
    assert client.post("/api/v1/vitals", content=body).status_code == 401
    assert (
        client.post("/api/v1/vitals", content=body, headers=bearer(monitored, "clinician")).status_code == 403
    )
    device_user = bearer(monitored, "device")  # a user account with the role, not a device
    assert client.post("/api/v1/vitals", content=body, headers=device_user).status_code == 403
    bad = {"Authorization": "Bearer hdd_" + "x" * 43}
    assert client.post("/api/v1/vitals", content=body, headers=bad).status_code == 401
    with Session(monitored.hub.catalog) as s, s.begin():
        revoke_device(s, monitored.device)
    device = {"Authorization": f"Bearer {monitored.token}"}
    assert client.post("/api/v1/vitals", content=body, headers=device).status_code == 401


HOSTILE = {
    "not-json": (lambda: b"{not json", 422),
    "a-string": (lambda: b'"a string"', 422),
    "a-number": (lambda: b"42", 422),
    "too-many-observations": (lambda: orjson.dumps([heart_rate(70)] * 20_001), 422),
    "too-large": (lambda: b"[" + b" " * (9 * 1024 * 1024) + b"]", 413),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))  # stable ids: bodies are built in the test
def test_hostile_bodies(client: TestClient, monitored: Monitored, case: str) -> None:
    make, status = HOSTILE[case]
    r = client.post("/api/v1/vitals", content=make(), headers={"Authorization": f"Bearer {monitored.token}"})
    assert r.status_code == status and r.json()["error"]["message"]
    assert client.get("/api/v1/monitoring/rejections").status_code == 401


def test_wrong_json_types_are_refused_per_observation(client: TestClient, monitored: Monitored) -> None:
    """Found by fuzzing: an 'entry' that is not a list, and a status that is a list, were 500s."""
    device = {"Authorization": f"Bearer {monitored.token}"}
    r = client.post("/api/v1/vitals", content=b'{"resourceType":"Observation","entry":5}', headers=device)
    assert r.status_code == 200 and r.json()["rejected"] == {"malformed": 1}
    body = orjson.dumps([{**heart_rate(70), "status": ["final"]}, heart_rate(71)])
    r = client.post("/api/v1/vitals", content=body, headers=device)
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["rejected"] == {"malformed": 1}
