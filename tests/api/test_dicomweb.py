"""DICOMweb with a real client: dicomweb-client against the API served on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from io import BytesIO

import httpx
import pydicom
import pytest
import uvicorn
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.uid import generate_uid

from hdhub.api.app import create_app
from hdhub.api.routes.dicomweb import split_multipart
from tests.api.conftest import INSTANCE, SERIES, STUDY, Api, dicom_instance


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(api: Api) -> Iterator[str]:
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(api.hub), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _client(api: Api, base: str, role: str) -> DICOMwebClient:
    return DICOMwebClient(f"{base}/dicomweb", headers=api.as_role(role))


def _multipart(*instances: bytes, boundary: str = "hdhub-test") -> tuple[str, bytes]:
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
        for data in instances
    )
    return (
        f'multipart/related; type="application/dicom"; boundary={boundary}',
        body + f"--{boundary}--\r\n".encode(),
    )


def _studies(found: list[dict]) -> set[str]:
    return {s["0020000D"]["Value"][0] for s in found}


def test_round_trip_with_dicomweb_client(api: Api, server: str) -> None:
    """Must show (issue 4): store, search by PatientID, StudyDate range, ModalitiesInStudy and
    PatientName with a wildcard, retrieve, byte-identical."""
    writer, reader = _client(api, server, "data_engineer"), _client(api, server, "clinician")
    studies = {
        "ct": dicom_instance(generate_uid(), generate_uid(), generate_uid(), PatientID="IPP-001",
                             PatientName="Dupont^Marie", StudyDate="20240115", Modality="CT"),
        "mr": dicom_instance(generate_uid(), generate_uid(), generate_uid(), PatientID="IPP-002",
                             PatientName="Durand^Paul", StudyDate="20250620", Modality="MR"),
    }  # fmt: skip
    datasets = [pydicom.dcmread(BytesIO(b)) for b in studies.values()]
    result = writer.store_instances(datasets)
    assert len(result.ReferencedSOPSequence) == 2 and "FailedSOPSequence" not in result
    uid = {k: ds.StudyInstanceUID for k, ds in zip(studies, datasets, strict=True)}

    assert _studies(reader.search_for_studies(search_filters={"PatientID": "IPP-001"})) == {uid["ct"]}
    in_2025 = reader.search_for_studies(search_filters={"StudyDate": "20250101-20251231"})
    assert _studies(in_2025) == {uid["mr"]}
    mr = reader.search_for_studies(search_filters={"ModalitiesInStudy": "MR"})
    assert _studies(mr) == {uid["mr"], STUDY}  # STUDY: the MR every test deployment holds
    assert _studies(reader.search_for_studies(search_filters={"PatientName": "Du*"})) == set(uid.values())
    assert _studies(reader.search_for_studies(search_filters={"PatientName": "Dupont*"})) == {uid["ct"]}
    assert _studies(reader.search_for_studies(search_filters={"PatientName": "D?pont^M*"})) == {uid["ct"]}
    # Without fuzzymatching, matching is case-sensitive (PS3.4 C.2.2.2.4), on SQLite as well.
    assert reader.search_for_studies(search_filters={"PatientName": "dupont*"}) == []
    assert reader.search_for_studies(search_filters={"PatientName": "[D]upont*"}) == []
    # fuzzymatching: any name component, any case.
    assert _studies(
        reader.search_for_studies(search_filters={"PatientName": "paul"}, fuzzymatching=True)
    ) == {uid["mr"]}
    found = reader.search_for_studies(search_filters={"StudyInstanceUID": uid["ct"]})[0]
    assert found["00080061"]["Value"] == ["CT"] and found["00201208"]["Value"] == [1]
    assert found["00100010"]["Value"] == [{"Alphabetic": "Dupont^Marie"}]

    ds = reader.retrieve_instance(uid["ct"], datasets[0].SeriesInstanceUID, datasets[0].SOPInstanceUID)
    assert ds.SOPInstanceUID == datasets[0].SOPInstanceUID and ds.PatientName == "Dupont^Marie"

    # Every store, search and retrieve is an audit event naming the patients it reached.
    audit = api.hub.audit
    stow = audit.search(action="POST /dicomweb/studies")[0]
    assert stow.patient_id == "IPP-001,IPP-002" and json.loads(stow.detail)["patients"] == [
        "IPP-001",
        "IPP-002",
    ]
    by_id = [
        e
        for e in audit.search(action="GET /dicomweb/studies")
        if "PatientID=IPP-001" in json.loads(e.detail)["query"]
    ]
    assert by_id[0].patient_id == "IPP-001" and by_id[0].resource_id == uid["ct"]
    retrieve = audit.search(action="GET /dicomweb/studies/{study}/series/{series}/instances/{instance}")[0]
    assert retrieve.patient_id == "IPP-001" and retrieve.role == "clinician"


def test_series_instances_study_retrieve_and_metadata(api: Api, server: str) -> None:
    writer, reader = _client(api, server, "data_engineer"), _client(api, server, "clinician")
    study, ct, mr = generate_uid(), generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(3)]
    instances = [
        dicom_instance(study, ct, sops[0], Modality="CT", SeriesNumber="1", InstanceNumber="1"),
        dicom_instance(study, ct, sops[1], Modality="CT", SeriesNumber="1", InstanceNumber="2"),
        dicom_instance(study, mr, sops[2], Modality="MR", SeriesNumber="2", InstanceNumber="1"),
    ]
    writer.store_instances([pydicom.dcmread(BytesIO(b)) for b in instances])
    series = reader.search_for_series(study)
    assert {s["0020000E"]["Value"][0]: s["00201209"]["Value"][0] for s in series} == {ct: 2, mr: 1}
    assert [
        s["0020000E"]["Value"][0] for s in reader.search_for_series(search_filters={"Modality": "CT"})
    ] == [ct]
    found = reader.search_for_instances(study, ct)
    assert sorted(i["00080018"]["Value"][0] for i in found) == sorted(sops[:2])
    by_number = reader.search_for_instances(study, search_filters={"InstanceNumber": "2"})
    assert [i["00080018"]["Value"][0] for i in by_number] == [sops[1]]
    assert reader.search_for_instances(search_filters={"SOPInstanceUID": sops[2]})[0]["00080060"][
        "Value"
    ] == ["MR"]
    # The whole study, every instance as stored; its metadata from the index alone.
    got = reader.retrieve_study(study)
    assert sorted(d.SOPInstanceUID for d in got) == sorted(sops)
    assert len(reader.retrieve_series(study, ct)) == 2
    metadata = reader.retrieve_study_metadata(study)
    assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(sops)
    assert all("7FE00010" not in m or "Value" not in m["7FE00010"] for m in metadata)  # no pixel data
    one = reader.retrieve_instance_metadata(study, mr, sops[2])
    assert one["00080060"]["Value"] == ["MR"]
    r = httpx.get(f"{server}/dicomweb/studies/{generate_uid()}/metadata", headers=api.as_role("clinician"))
    assert r.status_code == 404


def test_stored_bytes_come_back_identical(api: Api, server: str) -> None:
    data = dicom_instance(generate_uid(), generate_uid(), generate_uid(), PatientName="Martin^Léa")
    ds = pydicom.dcmread(BytesIO(data))
    ctype, body = _multipart(data)
    headers = api.as_role("data_engineer") | {"content-type": ctype}
    r = httpx.post(f"{server}/dicomweb/studies", content=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom+json"
    assert r.json()["00081199"]["Value"][0]["00081155"]["Value"] == [ds.SOPInstanceUID]
    url = (
        f"{server}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    r = httpx.get(url, headers=api.as_role("clinician"))
    assert r.status_code == 200
    boundary = r.headers["content-type"].split("boundary=")[1]
    ((part_headers, content),) = split_multipart(r.content, boundary)
    assert part_headers.get_content_type() == "application/dicom" and content == data
    # A caret percent-encoded in a name matches (%5E is ^).
    r = httpx.get(f"{server}/dicomweb/studies?PatientName=Martin%5EL*", headers=api.as_role("clinician"))
    assert _studies(r.json()) == {ds.StudyInstanceUID}


def test_partial_failure_and_hostile_requests(api: Api) -> None:
    c, engineer, clinician = api.client, api.as_role("data_engineer"), api.as_role("clinician")
    new = dicom_instance(STUDY, SERIES, generate_uid())
    duplicate = dicom_instance(STUDY, SERIES, INSTANCE)
    ctype, body = _multipart(new, duplicate, b"not DICOM at all")
    r = c.post("/dicomweb/studies", content=body, headers=engineer | {"content-type": ctype})
    assert r.status_code == 202
    failed = r.json()["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0x0111, 0xC000]
    assert len(r.json()["00081199"]["Value"]) == 1
    # Nothing stored: 409.
    ctype, body = _multipart(duplicate)
    assert (
        c.post("/dicomweb/studies", content=body, headers=engineer | {"content-type": ctype}).status_code
        == 409
    )
    # Not multipart/related; type=application/dicom: 415. No boundary, no parts: 400.
    for content_type, content, status in (
        ("application/dicom", duplicate, 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', b"--x--", 415),
        ('multipart/related; type="application/dicom"', b"--x--", 400),
        ('multipart/related; type="application/dicom"; boundary=x', b"garbage", 400),
        # Found by a robustness sweep: a body cut short (no close delimiter) stored its last,
        # truncated instance as complete; 100,000 empty parts took 22 s.
        (ctype, body[: body.rindex(b"--hdhub-test--") - 40], 400),
        (ctype, b"--hdhub-test\r\n\r\n\r\n" * 10_001 + b"--hdhub-test--", 413),
    ):
        r = c.post("/dicomweb/studies", content=content, headers=engineer | {"content-type": content_type})
        assert r.status_code == status, (content_type, r.text)
    # Malformed QIDO queries: 400 with a reason.
    for query in ("StudyDate=2024-01-01", "StudyDate=20240101-2024", "Color=blue", "limit=0",
                  "limit=x", "fuzzymatching=yes", "NumberOfStudyRelatedInstances=3",
                  "PatientID=" + "x" * 2000):  # fmt: skip
        r = c.get(f"/dicomweb/studies?{query}", headers=clinician)
        assert r.status_code == 400, (query, r.text)
    # Wildcards are not SQL: % and _ match themselves.
    assert c.get("/dicomweb/studies?PatientID=%25", headers=clinician).status_code == 204
    # An instance asked for under another study is not found.
    wrong = f"/dicomweb/studies/1.2.3/series/{SERIES}/instances/{INSTANCE}"
    assert c.get(wrong, headers=clinician).status_code == 404


def test_frames_rendered_thumbnails_and_wado_uri(api: Api, server: str) -> None:
    """The seeded MR instance: frames with dicomweb-client, rendered PNG/JPEG, thumbnails at
    the three levels, WADO-URI; bad parameters are 400, impossible ones 404 or 406."""
    reader = _client(api, server, "clinician")
    original = pydicom.dcmread(BytesIO(dicom_instance(STUDY, SERIES, INSTANCE)))
    frames = reader.retrieve_instance_frames(STUDY, SERIES, INSTANCE, frame_numbers=[1])
    assert frames == [original.PixelData]
    png = reader.retrieve_instance_rendered(STUDY, SERIES, INSTANCE, media_types=("image/png",))
    assert Image.open(BytesIO(png)).size == (64, 64)
    headers = api.as_role("clinician")
    base = f"{server}/dicomweb/studies/{STUDY}"
    for path in (f"{base}/thumbnail", f"{base}/series/{SERIES}/thumbnail",
                 f"{base}/series/{SERIES}/instances/{INSTANCE}/thumbnail?viewport=32,32"):  # fmt: skip
        r = httpx.get(path, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", path
        assert max(Image.open(BytesIO(r.content)).size) <= 64
    instance = f"{base}/series/{SERIES}/instances/{INSTANCE}"
    r = httpx.get(f"{instance}/frames/1/rendered?window=600,1200&accept=image/png", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    wado = f"{server}/dicomweb/wado?requestType=WADO&studyUID={STUDY}&seriesUID={SERIES}&objectUID={INSTANCE}"
    r = httpx.get(f"{wado}&contentType=application/dicom", headers=headers)
    assert r.status_code == 200 and r.content == dicom_instance(STUDY, SERIES, INSTANCE)
    r = httpx.get(f"{wado}&windowCenter=600&windowWidth=1200&rows=32", headers=headers)
    assert r.status_code == 200 and Image.open(BytesIO(r.content)).size == (32, 32)
    for path, status in (
        (f"{instance}/frames/2", 404), (f"{instance}/frames/0", 400), (f"{instance}/frames/x", 400),
        (f"{instance}/rendered?window=1", 400), (f"{instance}/rendered?viewport=0,0", 400),
        (f"{instance}/rendered?accept=image/gif", 406), (f"{instance}/frames/1,2/rendered", 400),
        (f"{wado}&contentType=text/html", 406), (f"{wado}&frameNumber=9", 404),
        # found by a robustness sweep: one frame a thousand times (gigabytes), NaN windows
        (f"{instance}/frames/" + ",".join(["1"] * 1000), 400), (f"{instance}/rendered?window=nan,nan", 400),
        (f"{instance}/rendered?window=40,inf", 400), (f"{wado}&windowCenter=nan&windowWidth=nan", 400),
        (f"{server}/dicomweb/wado?requestType=WADO&studyUID={STUDY}", 400),
    ):  # fmt: skip
        assert httpx.get(path, headers=headers).status_code == status, path


def test_reject_over_http(api: Api) -> None:
    """IOCM rejection as dcm4chee does it; the study leaves QIDO-RS at once."""
    headers = api.as_role("data_engineer")
    base = f"/dicomweb/studies/{STUDY}"
    assert api.client.post(f"{base}/reject/113002^DCM", headers=headers).status_code == 400
    assert (
        api.client.post(f"/dicomweb/studies/{generate_uid()}/reject/113001^DCM", headers=headers).status_code
        == 404
    )
    reader = api.as_role("clinician")
    assert api.client.get(f"/dicomweb/studies?StudyInstanceUID={STUDY}", headers=reader).status_code == 200
    r = api.client.post(f"{base}/series/{SERIES}/reject/113037^DCM", headers=headers)
    assert r.status_code == 200 and r.json() == {
        "rejected": 1,
        "reason": "113037^DCM Rejected for Patient Safety Reasons",
    }
    assert api.client.get(f"/dicomweb/studies?StudyInstanceUID={STUDY}", headers=reader).status_code == 204
    assert api.client.get(f"{base}/metadata", headers=reader).status_code == 404
    event = api.hub.audit.search(action="POST /dicomweb/studies/{study}/series/{series}/reject/{code}")[0]
    assert event.resource_id == STUDY and event.outcome == "success"


@pytest.mark.parametrize(
    ("resource", "accept", "status"),
    [
        ("instance", None, 200),
        ("instance", "*/*", 200),
        ("instance", 'multipart/related; type="application/dicom"; transfer-syntax=*', 200),
        ("instance", "multipart/related", 200),
        ("instance", "multipart/*, application/json;q=0.5", 200),
        ("instance", "application/json", 406),
        ("instance", "image/jpeg", 406),
        ("instance", 'multipart/related; type="application/octet-stream"', 406),
        ("instance", 'multipart/related; type="application/dicom"; q=0, image/png', 406),
        ("metadata", None, 200),
        ("metadata", "application/dicom+json", 200),
        ("metadata", "application/json", 200),
        ("metadata", "application/*", 200),
        ("metadata", 'multipart/related; type="application/dicom"', 406),
        ("metadata", "image/jpeg", 406),
        ("metadata?accept=image/jpeg", "application/dicom+json", 406),  # the query parameter decides
    ],
)
def test_a_representation_the_client_excludes_is_406(
    api: Api, resource: str, accept: str | None, status: int
) -> None:
    """PS3.18 §8.7.3: a client is answered what its Accept takes, or 406; it used to get
    application/dicom whatever it asked for."""
    path = f"/dicomweb/studies/{STUDY}/series/{SERIES}/instances/{INSTANCE}"
    path += "" if resource == "instance" else f"/{resource}"
    headers = api.as_role("clinician") | ({"Accept": accept} if accept else {})
    r = api.client.get(path, headers=headers)
    assert r.status_code == status, r.text
    if status == 406:
        assert r.json()["error"]["code"] == "not_acceptable"
    elif resource == "instance":
        assert r.headers["content-type"].startswith('multipart/related; type="application/dicom"')
