"""DICOMweb and IssuerOfPatientID: one Patient ID issued by two sites is two patients. QIDO-RS
matches and returns (0010,0021); every audit event names the patients with their issuers."""

from __future__ import annotations

import json

from pydicom.uid import generate_uid

from tests.api.conftest import Api, dicom_instance

NORD, SUD = "https://hdhub.example/chu-nord/ipp", "https://hdhub.example/ch-sud/ipp"
IPP = "0012345678"


def _multipart(*instances: bytes, boundary: str = "hdhub-issuer") -> tuple[str, bytes]:
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
        for data in instances
    )
    return (
        f'multipart/related; type="application/dicom"; boundary={boundary}',
        body + f"--{boundary}--\r\n".encode(),
    )


def _detail(api: Api, action: str) -> dict:
    return json.loads(api.hub.audit.search(action=action, limit=1)[0].detail)


def test_qido_and_the_audit_keep_two_sites_patients_apart(api: Api) -> None:
    c, engineer, clinician = api.client, api.as_role("data_engineer"), api.as_role("clinician")
    nord, sud, unknown = (generate_uid() for _ in range(3))
    series = {uid: generate_uid() for uid in (nord, sud, unknown)}
    ctype, body = _multipart(
        dicom_instance(nord, series[nord], generate_uid(), PatientID=IPP, IssuerOfPatientID=NORD),
        dicom_instance(sud, series[sud], generate_uid(), PatientID=IPP, IssuerOfPatientID=SUD),
        dicom_instance(unknown, series[unknown], generate_uid(), PatientID=IPP),
    )
    assert (
        c.post("/dicomweb/studies", content=body, headers=engineer | {"content-type": ctype}).status_code
        == 200
    )
    stow = api.hub.audit.search(action="POST /dicomweb/studies", limit=1)[0]
    assert stow.patient_id == IPP and json.loads(stow.detail)["patient_issuers"] == [
        {"patient_id": IPP, "issuer": None},
        {"patient_id": IPP, "issuer": SUD},
        {"patient_id": IPP, "issuer": NORD},
    ]

    def found(query: str) -> dict[str, list[str] | None]:
        r = c.get(f"/dicomweb/studies?{query}", headers=clinician)
        assert r.status_code in (200, 204), r.text
        return {
            m["0020000D"]["Value"][0]: m["00100021"].get("Value") for m in (r.json() if r.content else [])
        }

    assert found(f"PatientID={IPP}") == {nord: [NORD], sud: [SUD], unknown: None}
    assert found(f"PatientID={IPP}&IssuerOfPatientID={NORD}") == {nord: [NORD]}
    assert found(f"00100020={IPP}&00100021={SUD}") == {sud: [SUD]}
    assert found(f"PatientID={IPP}&IssuerOfPatientID=") == {nord: [NORD], sud: [SUD], unknown: None}
    assert found(f"PatientID={IPP}&IssuerOfPatientID=https://hdhub.example/ailleurs/ipp") == {}
    assert _detail(api, "GET /dicomweb/studies")["patients"] == []  # nothing found, nobody reached
    found(f"PatientID={IPP}&IssuerOfPatientID={SUD}")
    assert _detail(api, "GET /dicomweb/studies")["patient_issuers"] == [{"patient_id": IPP, "issuer": SUD}]
    r = c.get(f"/dicomweb/studies?IssuerOfPatientID={'x' * 2000}", headers=clinician)
    assert r.status_code == 400  # too long, as any key

    # Retrieve and metadata name the study's patient with its issuer.
    assert c.get(f"/dicomweb/studies/{sud}/metadata", headers=clinician).status_code == 200
    assert _detail(api, "GET /dicomweb/studies/{study}/metadata")["patient_issuers"] == [
        {"patient_id": IPP, "issuer": SUD}
    ]
    # So does a rejection.
    assert c.post(f"/dicomweb/studies/{nord}/reject/113001^DCM", headers=engineer).status_code == 200
    assert _detail(api, "POST /dicomweb/studies/{study}/reject/{code}")["patient_issuers"] == [
        {"patient_id": IPP, "issuer": NORD}
    ]
    assert found(f"PatientID={IPP}") == {sud: [SUD], unknown: None}
