"""The CLI's imaging audit events name each patient with its issuer (IssuerOfPatientID), as
DICOMweb's and DIMSE's do: `hdhub ingest dicom` and `hdhub dicom reject`."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.uid import generate_uid
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.hub import Hub
from tests.imaging.test_patient_issuer import IPP, NORD, SUD, instance


def _event(hub: Hub, action: str) -> tuple[str | None, dict]:
    [event] = hub.audit.search(action=action)
    return event.patient_id, json.loads(event.detail)


def test_ingest_and_reject_name_the_patients_with_their_issuers(local_hub: Hub, tmp_path: Path) -> None:
    home = str(local_hub.settings.home)
    folder = tmp_path / "export"
    folder.mkdir()
    nord, sud, unknown = generate_uid(), generate_uid(), generate_uid()
    (folder / "nord").write_bytes(instance(nord, PatientID=IPP, IssuerOfPatientID=NORD))
    (folder / "sud").write_bytes(instance(sud, PatientID=IPP, IssuerOfPatientID=SUD))
    (folder / "unknown").write_bytes(instance(unknown, PatientID=IPP))
    runner = CliRunner()
    r = runner.invoke(app, ["--home", home, "ingest", "dicom", str(folder)])
    assert r.exit_code == 0 and "3 instances stored (3 studies)" in r.output, r.output
    patient_id, detail = _event(local_hub, "imaging.store")
    assert patient_id == IPP and detail["patients"] == [IPP]  # the Patient IDs, as before
    assert detail["patient_issuers"] == [
        {"patient_id": IPP, "issuer": None},
        {"patient_id": IPP, "issuer": SUD},
        {"patient_id": IPP, "issuer": NORD},
    ]

    r = runner.invoke(app, ["--home", home, "dicom", "reject", sud, "--reason", "safety"])
    assert r.exit_code == 0 and "1 instances rejected" in r.output, r.output
    patient_id, detail = _event(local_hub, "imaging.reject")
    assert patient_id == IPP and detail["studies"] == [sud]
    assert detail["patient_issuers"] == [{"patient_id": IPP, "issuer": SUD}]  # the South's patient only
