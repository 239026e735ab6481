"""Non-DICOM objects over HTTP: a real tus client uploads with a resume, ranges are read back."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import pytest
from sqlalchemy import update
from tusclient import client as tus

from hdhub.catalog.models import MediaObject
from hdhub.errors import Conflict, NotFound, ObjectLocked, ValidationError
from hdhub.imaging import media
from hdhub.imaging.store import store_instance
from tests.api.conftest import STUDY, Api, dicom_instance
from tests.api.test_dicomweb import server  # noqa: F401 (the API on loopback)

MIB = 1 << 20


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def test_resumable_upload_listing_and_ranges(api: Api, server: str) -> None:  # noqa: F811
    data = os.urandom(2 * MIB + 12345)  # a short "surgical video"
    headers = api.as_role("data_engineer")
    client = tus.TusClient(f"{server}/api/v1/media/uploads", headers=headers)
    metadata = {"category": "video", "patient": "4MR1", "study": STUDY, "filename": "colectomie.mp4",
                "filetype": "video/mp4", "title": "Colectomie gauche", "date": "20250314"}  # fmt: skip
    first = client.uploader(file_stream=io.BytesIO(data), chunk_size=512 * 1024, metadata=metadata)
    first.upload_chunk()
    first.upload_chunk()  # the connection drops here; a new client resumes from the server's offset
    resumed = client.uploader(file_stream=io.BytesIO(data), chunk_size=512 * 1024, url=first.url)
    assert resumed.get_offset() == MIB
    resumed.upload()
    media_id = first.url.rsplit("/", 1)[1]
    row = media.get(api.hub, media_id)
    assert row.status == "available" and row.sha256 == hashlib.sha256(data).hexdigest()
    assert list(api.hub.objects.list(f"uploads/{media_id}/")) == []  # the parts are gone
    with pytest.raises(ObjectLocked):  # locked by the video policy (20 years after 2025-03-14)
        api.hub.objects.delete(row.object_key, api.hub.objects.head(row.object_key).version_id)

    reader = api.as_role("clinician")
    bundle = httpx.get(f"{server}/api/v1/media", params={"study": STUDY}, headers=reader).json()
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == 1
    doc = bundle["entry"][0]["resource"]
    attachment = doc["content"][0]["attachment"]
    assert doc["resourceType"] == "DocumentReference" and doc["subject"]["identifier"] == {"value": "4MR1"}
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
    assert attachment["size"] == len(data) and attachment["contentType"] == "video/mp4"
    assert doc["context"]["related"][0]["identifier"]["value"] == f"urn:oid:{STUDY}"
    assert doc["context"]["period"] == {"start": "2025-03-14"} and doc["description"] == "Colectomie gauche"

    url = attachment["url"]
    whole = httpx.get(url, headers=reader)
    assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
    for asked, start, end in [
        (f"bytes={MIB - 6}-{MIB + 9}", MIB - 6, MIB + 9),  # across two encryption segments
        ("bytes=-10", len(data) - 10, len(data) - 1),
        (f"bytes={2 * MIB}-", 2 * MIB, len(data) - 1),
    ]:
        r = httpx.get(url, headers=reader | {"Range": asked})
        assert r.status_code == 206 and r.content == data[start : end + 1], asked
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    r = httpx.get(url, headers=reader | {"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
    event = api.hub.audit.search(action="GET /api/v1/media/{media_id}/content")[0]
    assert event.patient_id == "4MR1" and event.resource_id == media_id
    assert json.loads(event.detail)["patient_issuers"] == [{"patient_id": "4MR1", "issuer": None}]


def test_tus_protocol_errors(api: Api) -> None:
    headers = api.as_role("data_engineer") | {"Tus-Resumable": "1.0.0"}
    uploads = "/api/v1/media/uploads"

    def create(**extra: str) -> httpx.Response:
        meta = _meta(category="pathology", patient="IPP-002", filetype="image/tiff")
        return api.client.post(
            uploads, headers=headers | {"Upload-Length": "10", "Upload-Metadata": meta} | extra
        )

    assert (
        api.client.post(uploads, headers=api.as_role("data_engineer")).status_code == 412
    )  # no Tus-Resumable
    assert create(**{"Upload-Length": "x"}).status_code == 400
    assert create(**{"Upload-Metadata": _meta(category="x-ray", patient="P")}).status_code == 400
    assert create(**{"Upload-Metadata": _meta(category="video")}).status_code == 400  # no patient
    assert create(**{"Upload-Metadata": "category ***"}).status_code == 400
    r = create()
    assert r.status_code == 201 and r.headers["upload-offset"] == "0"
    path = "/api/v1/media/uploads/" + r.headers["location"].rsplit("/", 1)[1]
    chunk = headers | {"Content-Type": "application/offset+octet-stream"}
    assert api.client.patch(path, content=b"abc", headers=chunk | {"Upload-Offset": "3"}).status_code == 409
    assert api.client.patch(path, content=b"abc", headers=headers | {"Upload-Offset": "0"}).status_code == 415
    assert (
        api.client.patch(path, content=b"x" * 11, headers=chunk | {"Upload-Offset": "0"}).status_code == 400
    )
    r = api.client.patch(path, content=b"abc", headers=chunk | {"Upload-Offset": "0"})
    assert r.status_code == 204 and r.headers["upload-offset"] == "3"
    assert api.client.head(path, headers=headers).headers["upload-offset"] == "3"
    assert (
        api.client.head(path, headers=api.as_role("researcher") | {"Tus-Resumable": "1.0.0"}).status_code
        == 403
    )
    assert api.client.delete(path, headers=headers).status_code == 204  # abandoned: parts and row go
    assert api.client.head(path, headers=headers).status_code == 404
    assert list(api.hub.objects.list("uploads/")) == []
    done = f"/api/v1/media/uploads/{api.media_id}"
    assert api.client.delete(done, headers=headers).status_code == 409  # complete objects stay
    assert api.client.get("/api/v1/media", headers=api.as_role("clinician")).status_code == 422  # no link


def test_uploaded_bytes_never_run_as_a_page_of_the_api(api: Api) -> None:
    """An HTML "document" is served as an attachment, sandboxed, never sniffed."""
    html = b"<script>fetch('/api/v1/users')</script>"
    row = media.create_upload(
        api.hub, size=len(html), category="document", patient_id="IPP-3", created_by="t",
        content_type="text/html", filename='cr"<x>.html',
    )  # fmt: skip
    media.append(api.hub, row.id, 0, html)
    r = api.client.get(f"/api/v1/media/{row.id}/content", headers=api.as_role("clinician"))
    assert r.status_code == 200 and r.content == html
    assert r.headers["content-disposition"] == 'attachment; filename="cr__x_.html"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"].startswith("sandbox")
    video = media.get(api.hub, api.media_id)
    assert video.content_type == "application/octet-stream"
    r = api.client.get(f"/api/v1/media/{api.media_id}/content", headers=api.as_role("clinician"))
    assert r.headers["content-disposition"].startswith("attachment")


def test_an_object_is_a_patient_of_one_issuer_and_its_study_must_be_that_patients(api: Api) -> None:
    """One Patient ID may be two people of two sites: an object carries the issuer (given, or
    its study's), a study of another patient is refused, and the issuer shows in the
    DocumentReference, the search and the audit event."""
    study = "1.2.826.0.1.3680043.10.77"
    stored = store_instance(api.hub.catalog, api.hub.objects, dicom_instance(
        study, study + ".1", study + ".1.1", PatientID="IPP-9", IssuerOfPatientID="CHU-NORD"))  # fmt: skip
    assert stored.status == "stored"

    def upload(**kw: str) -> media.MediaObject:
        return media.create_upload(api.hub, size=0, category="document", created_by="t", **kw)

    inherited = upload(patient_id="IPP-9", study_uid=study)
    assert inherited.issuer_of_patient_id == "CHU-NORD"
    for wrong in ({"patient_id": "IPP-8"}, {"patient_id": "IPP-9", "issuer": "CHU-SUD"}):
        with pytest.raises(ValidationError, match="is not a study of patient"):
            upload(study_uid=study, **wrong)
    with pytest.raises(ValidationError, match="is not a study of patient"):
        upload(patient_id="IPP-8", study_uid=STUDY)  # the archive's study of patient 4MR1
    unlinked = upload(patient_id="IPP-9")  # issuer unknown
    other = upload(patient_id="IPP-9", issuer="1.2.250.1.71.4.2.7")  # another site, an OID issuer

    reader = api.as_role("clinician")
    r = api.client.get("/api/v1/media", params={"patient": "IPP-9", "issuer": "CHU-NORD"}, headers=reader)
    subjects = {e["resource"]["id"]: e["resource"]["subject"]["identifier"] for e in r.json()["entry"]}
    assert subjects == {
        inherited.id: {"value": "IPP-9", "assigner": {"display": "CHU-NORD"}},
        unlinked.id: {"value": "IPP-9"},  # may be that patient: listed, without an issuer
    }
    event = api.hub.audit.search(action="GET /api/v1/media")[0]
    assert json.loads(event.detail)["patient_issuers"] == [
        {"patient_id": "IPP-9", "issuer": None}, {"patient_id": "IPP-9", "issuer": "CHU-NORD"}]  # fmt: skip
    doc = api.client.get(f"/api/v1/media/{other.id}", headers=reader).json()
    assert doc["subject"]["identifier"] == {"value": "IPP-9", "system": "urn:oid:1.2.250.1.71.4.2.7"}


@pytest.mark.parametrize("issuer", ["A\\B", "A\x00B", "x" * 65, "\n"])
def test_a_hostile_issuer_is_refused_before_anything_is_stored(api: Api, issuer: str) -> None:
    headers = api.as_role("data_engineer") | {"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
    meta = _meta(category="document", patient="IPP-10", issuer=issuer)
    r = api.client.post("/api/v1/media/uploads", headers=headers | {"Upload-Metadata": meta})
    assert r.status_code == 400 and "issuer" in r.text
    assert media.search(api.hub, patient_id="IPP-10") == []
    found = api.client.get("/api/v1/media", params={"patient": "IPP-10", "issuer": issuer},
                           headers=api.as_role("clinician"))  # fmt: skip
    assert found.status_code == 422 and "issuer" in found.text


def test_one_request_assembles_an_upload_and_a_dead_assembly_is_taken_over(api: Api) -> None:
    """Found by a robustness sweep: a tus client polling HEAD while the last PATCH assembled the
    object started a full assembly at every poll (up to nine locked copies, and a false 404 for
    the PATCH), and a DELETE meanwhile left a locked orphan object."""
    hub = api.hub
    row = media.create_upload(hub, size=6, category="document", patient_id="4MR1", created_by="test")
    media.append(hub, row.id, 0, b"abc")
    # The last chunk is in and a request has just claimed the assembly (as append does).
    hub.objects.put(f"{media._part_prefix(row.id)}{3:020d}", b"def", content_type="application/octet-stream")
    with hub.catalog.begin() as conn:
        conn.execute(update(MediaObject).where(MediaObject.id == row.id).values(received=6))
    assert media._claim(hub, row.id) and not media._claim(hub, row.id)
    assert media.upload(hub, row.id).status == media.ASSEMBLING  # a HEAD meanwhile assembles nothing
    with pytest.raises(Conflict, match="being assembled"):
        media.terminate(hub, row.id)
    assert list(hub.objects.versions(row.object_key)) == []
    # The claiming process died: once the claim is stale, the next request assembles, once.
    with hub.catalog.begin() as conn:
        stale = datetime.now(UTC) - media.ASSEMBLY_STALE - timedelta(minutes=1)
        conn.execute(update(MediaObject).where(MediaObject.id == row.id).values(completed_at=stale))
    assert media.upload(hub, row.id).status == media.AVAILABLE
    assert media.upload(hub, row.id).status == media.AVAILABLE
    assert len(list(hub.objects.versions(row.object_key))) == 1
    assert b"".join(hub.objects.get(row.object_key)) == b"abcdef"


def test_unfinished_uploads_expire_a_week_after_they_began(api: Api) -> None:
    """tus expiration: a client that gave up never sends its DELETE; its parts must not stay
    (up to 4 TiB declared) for ever."""
    hub, headers = api.hub, api.as_role("data_engineer") | {"Tus-Resumable": "1.0.0"}
    options = api.client.options("/api/v1/media/uploads", headers=headers)
    assert "expiration" in options.headers["tus-extension"].split(",")
    meta = _meta(category="document", patient="4MR1", filetype="application/pdf")
    r = api.client.post(
        "/api/v1/media/uploads", headers=headers | {"Upload-Length": "9", "Upload-Metadata": meta}
    )
    expires = parsedate_to_datetime(r.headers["upload-expires"])
    assert abs(expires - datetime.now(UTC) - media.UPLOAD_EXPIRY) < timedelta(minutes=1)

    def begun() -> str:
        row = media.create_upload(hub, size=9, category="document", patient_id="4MR1", created_by="test")
        media.append(hub, row.id, 0, b"abc")
        return row.id

    def aged(media_id: str, days: float) -> None:
        with hub.catalog.begin() as conn:
            when = datetime.now(UTC) - timedelta(days=days)
            conn.execute(update(MediaObject).where(MediaObject.id == media_id).values(created_at=when))

    old, recent, resumed = begun(), begun(), begun()
    for media_id, days in ((old, 8), (recent, 6), (resumed, 8)):
        aged(media_id, days)
    path = f"/api/v1/media/uploads/{resumed}"
    assert api.client.head(path, headers=headers).status_code == 404  # expired: removed when asked for
    assert list(hub.objects.list(f"uploads/{resumed}/")) == []
    assert media.expire_uploads(hub) == 1  # the other old one; the recent one stays
    assert list(hub.objects.list(f"uploads/{old}/")) == []
    assert media.upload(hub, recent).received == 3
    assert list(hub.objects.list(f"uploads/{recent}/")) != []
    assert media.get(hub, api.media_id).status == media.AVAILABLE  # complete objects are never expired
    with hub.catalog.begin() as conn:
        conn.execute(
            update(MediaObject).where(MediaObject.id == recent).values(created_at=datetime(2000, 1, 1))
        )
    media.create_upload(hub, size=1, category="document", patient_id="4MR1", created_by="test")
    with pytest.raises(NotFound):  # each new upload sweeps the expired ones first
        media.get(hub, recent, any_status=True)
