"""The identity store through the API: found by identifier, audited with the patient, hostile input."""

from __future__ import annotations

from tests.api.conftest import INS, PERSON_KEY, Api


def test_api_reads_are_audited_with_the_patient(api: Api) -> None:
    r = api.client.get(f"/api/v1/identities?identifier={INS[0]}|{INS[1]}", headers=api.as_role("clinician"))
    assert r.status_code == 200 and r.json()[0]["name"][0]["family"] == "Martin"
    event = api.hub.audit.search(patient=PERSON_KEY, limit=1)[0]
    assert event.role == "clinician" and event.outcome == "success"
    bad = api.client.get("/api/v1/identities?identifier=nopipe", headers=api.as_role("clinician"))
    assert bad.status_code == 422
    assert api.client.get("/api/v1/identities/../../etc", headers=api.as_role("clinician")).status_code == 404
    assert (
        api.client.get("/api/v1/identities/" + "z" * 40, headers=api.as_role("clinician")).status_code == 422
    )
