"""Non-DICOM objects (videos, slides, documents): resumable upload (tus 1.0), listing as
FHIR DocumentReference, download with HTTP Range.

Uploading needs ``imaging:write``, listing and reading ``imaging:read``.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.utils import format_datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from hdhub.api.deps import audit_context, get_hub, require
from hdhub.errors import HdhubError, ValidationError
from hdhub.hub import Hub
from hdhub.imaging import media
from hdhub.imaging.reach import patient_issuers
from hdhub.security.principal import Principal

router = APIRouter(prefix="/api/v1/media", tags=["imaging"])
TUS_VERSION = "1.0.0"
TUS_HEADERS = {"Tus-Resumable": TUS_VERSION}
HubDep = Annotated[Hub, Depends(get_hub)]
Writer = Annotated[Principal, Depends(require("imaging:write"))]
Reader = Annotated[Principal, Depends(require("imaging:read"))]


class TusError(HdhubError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _issuers(rows: list[media.MediaObject]) -> list[dict[str, str | None]]:
    return patient_issuers((r.patient_id, r.issuer_of_patient_id) for r in rows)


def _audit(request: Request, row: media.MediaObject) -> None:
    """The request's audit event names the object and its patient (with the issuer, as
    imaging events do: one Patient ID may be two people of two sites)."""
    audit_context(request, resource_type="DocumentReference", resource_id=row.id, patient_id=row.patient_id,
                  detail={"patient_issuers": _issuers([row])})  # fmt: skip


def _tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise TusError(412, "tus_version", f"Tus-Resumable: {TUS_VERSION} is required")


def _metadata(header: str) -> dict[str, str]:
    """tus Upload-Metadata: ``key base64value`` pairs separated by commas."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise TusError(400, "invalid", f"Upload-Metadata: {key!r} is not base64 UTF-8") from None
    return out


def _int_header(request: Request, name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdecimal():
        raise TusError(400, "invalid", f"{name}: a non-negative integer is required")
    return int(value)


def _upload_headers(row: media.MediaObject) -> dict[str, str]:
    headers = TUS_HEADERS | {
        "Upload-Offset": str(row.received),
        "Upload-Length": str(row.size),
        "Cache-Control": "no-store",
    }
    if (expires := media.expires(row)) is not None:
        headers["Upload-Expires"] = format_datetime(expires, usegmt=True)  # RFC 9110 date
    return headers


@router.options("/uploads", summary="tus: what this server supports")
def tus_options(_: Writer) -> Response:
    return Response(
        status_code=204,
        headers=TUS_HEADERS
        | {
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": "creation,termination,expiration",
            "Tus-Max-Size": str(media.MAX_SIZE),
        },
    )


@router.post("/uploads", summary="tus: create an upload (Upload-Length, Upload-Metadata)")
def create_upload(request: Request, hub: HubDep, who: Writer) -> Response:
    _tus(request)
    meta = _metadata(request.headers.get("upload-metadata", ""))
    try:
        row = media.create_upload(
            hub,
            size=_int_header(request, "upload-length"),
            category=meta.get("category", ""),
            patient_id=meta.get("patient", ""),
            issuer=meta.get("issuer") or None,
            created_by=who.name,
            content_type=meta.get("content_type") or meta.get("filetype") or "application/octet-stream",
            study_uid=meta.get("study") or None,
            encounter_id=meta.get("encounter") or None,
            title=meta.get("title") or None,
            filename=meta.get("filename") or None,
            date=meta.get("date") or None,
        )
    except ValidationError as exc:
        raise TusError(400, "invalid", exc.message) from None
    _audit(request, row)
    location = f"{str(request.base_url).rstrip('/')}/api/v1/media/uploads/{row.id}"
    return Response(status_code=201, headers=_upload_headers(row) | {"Location": location})


@router.head("/uploads/{upload_id}", summary="tus: how much of an upload has arrived")
def upload_offset(request: Request, hub: HubDep, _: Writer, upload_id: str) -> Response:
    _tus(request)
    row = media.upload(hub, upload_id)
    _audit(request, row)
    return Response(status_code=200, headers=_upload_headers(row))


@router.patch("/uploads/{upload_id}", summary="tus: add a chunk at Upload-Offset")
async def upload_chunk(request: Request, hub: HubDep, _: Writer, upload_id: str) -> Response:
    _tus(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
        raise TusError(415, "unsupported_media_type", "Content-Type: application/offset+octet-stream")
    offset = _int_header(request, "upload-offset")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > media.MAX_CHUNK:
            raise TusError(413, "payload_too_large", f"a chunk holds at most {media.MAX_CHUNK} bytes")
    try:
        row = await run_in_threadpool(media.append, hub, upload_id, offset, bytes(body))
    except ValidationError as exc:
        raise TusError(400, "invalid", exc.message) from None
    _audit(request, row)
    return Response(status_code=204, headers=_upload_headers(row))


@router.delete("/uploads/{upload_id}", summary="tus: abandon an upload in progress")
def terminate_upload(request: Request, hub: HubDep, _: Writer, upload_id: str) -> Response:
    _tus(request)
    row = media.get(hub, upload_id, any_status=True)
    media.terminate(hub, upload_id)
    _audit(request, row)
    return Response(status_code=204, headers=TUS_HEADERS)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("", summary="Objects of a patient, study or encounter, as a Bundle of DocumentReference")
def search_media(
    request: Request,
    hub: HubDep,
    _: Reader,
    patient: str | None = None,
    issuer: str | None = None,
    study: str | None = None,
    encounter: str | None = None,
    category: str | None = None,
) -> Response:
    if not (patient or study or encounter):
        raise ValidationError("name a patient, a study or an encounter")
    rows = media.search(
        hub, patient_id=patient, issuer=issuer, study_uid=study, encounter_id=encounter, category=category
    )
    patients = sorted({r.patient_id for r in rows})
    audit_context(
        request, resource_type="DocumentReference", patient_id=",".join(patients)[:200] or None,
        detail={"patients": patients, "patient_issuers": _issuers(rows), "objects": [r.id for r in rows]},
    )  # fmt: skip
    base, systems = _base(request), hub.settings.imaging.issuer_systems
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(rows),
        "entry": [{"resource": media.document_reference(r, base, systems)} for r in rows],
    }
    return Response(orjson.dumps(bundle), media_type="application/fhir+json")


@router.get("/{media_id}", summary="One object, as a FHIR DocumentReference")
def read_media(request: Request, hub: HubDep, _: Reader, media_id: str) -> Response:
    row = media.get(hub, media_id)
    _audit(request, row)
    return Response(
        orjson.dumps(media.document_reference(row, _base(request), hub.settings.imaging.issuer_systems)),
        media_type="application/fhir+json",
    )


_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)\Z")
# Shown in the browser; anything else (HTML, SVG, scripts…) is only ever downloaded.
_INLINE = ("video/", "image/jpeg", "image/png", "image/tiff", "application/pdf", "audio/")


def _safe_headers(row: media.MediaObject) -> dict[str, str]:
    """Uploaded bytes never run as a page of this origin: no sniffing, a sandbox, and any
    type a browser would execute served as an attachment."""
    inline = row.content_type.lower().startswith(_INLINE)
    name = re.sub(r"[^\w.\- ]", "_", row.filename or row.id)[:200]
    return {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{name}"',
    }


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range asked (RFC 9110 14.1.2), None for the whole object; several ranges
    are answered whole, as the RFC allows."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if not match[1]:  # the last N bytes
        start, end = max(size - int(match[2]), 0), size - 1
    else:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    if size == 0 or start >= size or start > end:
        raise TusError(416, "range_not_satisfiable", f"range {header!r} is outside the {size} bytes")
    return start, end


@router.get("/{media_id}/content", summary="An object's bytes (HTTP Range: video seeking)")
def media_content(request: Request, hub: HubDep, _: Reader, media_id: str) -> Response:
    row = media.get(hub, media_id)
    _audit(request, row)
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{row.sha256}"'} | _safe_headers(row)
    try:
        wanted = _byte_range(request.headers.get("range"), row.size)
    except TusError:
        return Response(status_code=416, headers=headers | {"Content-Range": f"bytes */{row.size}"})
    if wanted is None:
        reader = hub.objects.get(row.object_key)
        return StreamingResponse(
            iter(reader), media_type=row.content_type, headers=headers | {"Content-Length": str(row.size)}
        )
    start, end = wanted
    _, chunks = hub.objects.get_range(row.object_key, start, end)
    return StreamingResponse(
        chunks,
        status_code=206,
        media_type=row.content_type,
        headers=headers
        | {"Content-Range": f"bytes {start}-{end}/{row.size}", "Content-Length": str(end - start + 1)},
    )
