"""DICOMweb (PS3.18): STOW-RS store; QIDO-RS search of studies, series and instances;
WADO-RS retrieve of studies, series and instances and their metadata; IOCM rejection.
Frames, rendered images, thumbnails and WADO-URI are in dicomweb_images.

Storing needs ``imaging:write``, searching and retrieving ``imaging:read``. Instances are
returned exactly as stored (``transfer-syntax=*``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from email.message import Message
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from hdhub.api.accept import accepts
from hdhub.api.deps import audit_context, get_hub, read_body, require
from hdhub.errors import HdhubError, PayloadTooLarge, ValidationError
from hdhub.hub import Hub
from hdhub.imaging.qido import parse_query, search
from hdhub.imaging.reach import PatientRef, reached
from hdhub.imaging.rejection import REASONS, reason_code, reject
from hdhub.imaging.render import NotAcceptable
from hdhub.imaging.store import (
    STORED,
    StoreOutcome,
    instance_rows,
    read_object,
    store_for_hub,
    study_patients,
)
from hdhub.security.principal import Principal

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
MAX_STOW_BYTES = 2 << 30
# STOW-RS failure reasons (PS3.18 / PS3.4 status codes)
DUPLICATE, CANNOT_UNDERSTAND = 0x0111, 0xC000


class BadRequest(HdhubError):
    code = "invalid"
    status = 400  # PS3.18: an invalid query or body is 400, not 422


class UnsupportedMediaType(HdhubError):
    code = "unsupported_media_type"
    status = 415


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/dicomweb"


MAX_PARTS = 10_000  # instances in one STOW-RS request


def split_multipart(body: bytes, boundary: str) -> list[tuple[Message, bytes]]:
    """The parts of a multipart body, each content byte-exact (RFC 2046). A body without its
    close delimiter was cut short: its last part would be a truncated instance, so it is refused."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter, MAX_PARTS + 1)
    if len(chunks) > MAX_PARTS + 1 and not chunks[-1].startswith(b"--"):
        raise PayloadTooLarge(f"multipart body: more than {MAX_PARTS} parts; send them in several requests")
    if not any(chunk.startswith(b"--") for chunk in chunks[1:]):
        raise BadRequest("multipart body: no close delimiter (--boundary--): the body was cut short")
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):  # the close delimiter
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise BadRequest("multipart body: a part without a blank line after its headers")
        headers = Message()
        for line in head.split(b"\r\n")[1:]:  # the rest of the delimiter line is padding
            name, colon, value = line.decode("latin-1").partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        parts.append((headers, content))
    return parts


def _is_dicom(headers: Message) -> bool:
    return headers.get_content_type() in ("application/dicom", "text/plain")  # text/plain: no header


def _content_type(value: str) -> Message:
    m = Message()
    m["content-type"] = value
    return m


def audit_studies(request: Request, studies: list[str], patients: Iterable[PatientRef]) -> None:
    """Name the studies and patients (Patient ID, issuer) a request reached in its audit event."""
    audit_context(request, **reached(studies, patients))


def _stow_response(outcomes: list[StoreOutcome], base: str) -> tuple[int, dict[str, Any]]:
    stored = [o for o in outcomes if o.status == STORED]
    failed = [o for o in outcomes if o.status != STORED]

    def ref(o: StoreOutcome) -> dict[str, Any]:
        item: dict[str, Any] = {}
        if o.sop_class_uid:
            item["00081150"] = {"vr": "UI", "Value": [o.sop_class_uid]}
        if o.sop_instance_uid:
            item["00081155"] = {"vr": "UI", "Value": [o.sop_instance_uid]}
        return item

    body: dict[str, Any] = {}
    studies = {o.study_uid for o in stored}
    if len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{studies.pop()}"]}
    if failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [
                ref(o)
                | {"00081197": {"vr": "US", "Value": [DUPLICATE if o.duplicate else CANNOT_UNDERSTAND]}}
                for o in failed
            ],
        }
    if stored:
        body["00081199"] = {
            "vr": "SQ",
            "Value": [
                ref(o)
                | {
                    "00081190": {
                        "vr": "UR",
                        "Value": [f"{base}/studies/{o.study_uid}/instances/{o.sop_instance_uid}"],
                    }
                }
                for o in stored
            ],
        }
    status = 200 if not failed else 202 if stored else 409
    return status, body


@router.post("/studies", summary="STOW-RS: store instances (multipart/related; type=application/dicom)")
async def stow(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    _: Annotated[Principal, Depends(require("imaging:write"))],
) -> Response:
    ctype = _content_type(request.headers.get("content-type", ""))
    if ctype.get_content_type() != "multipart/related" or ctype.get_param("type") != "application/dicom":
        raise UnsupportedMediaType('expected multipart/related; type="application/dicom"')
    boundary = ctype.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise BadRequest("multipart/related: a boundary of 1 to 70 characters is required")
    body = await read_body(
        request, MAX_STOW_BYTES, f"a STOW-RS request holds at most {MAX_STOW_BYTES >> 30} GiB"
    )
    parts = split_multipart(body, boundary)
    if not parts:
        raise BadRequest("multipart body: no part")

    def store_all() -> list[StoreOutcome]:
        dicom = [(content, f"part {n}") for n, (h, content) in enumerate(parts, start=1) if _is_dicom(h)]
        stored = iter(store_for_hub(hub, dicom))
        return [
            next(stored)
            if _is_dicom(h)
            else StoreOutcome(f"part {n}", "refused", reason="not application/dicom")
            for n, (h, _) in enumerate(parts, start=1)
        ]

    outcomes = await run_in_threadpool(store_all)
    status, payload = _stow_response(outcomes, _base_url(request))
    stored = [o for o in outcomes if o.status == STORED]
    audit_studies(
        request, [o.study_uid for o in stored if o.study_uid], [(o.patient_id, o.issuer) for o in stored]
    )
    return Response(orjson.dumps(payload), status_code=status, media_type=DICOM_JSON)


def _first(match: dict[str, Any], tag: str) -> str | None:
    values = match.get(tag, {}).get("Value")
    return str(values[0]) if values else None


def _qido(
    request: Request, hub: Hub, level: str, study: str | None = None, series: str | None = None
) -> Response:
    try:
        query = parse_query(list(request.query_params.multi_items()), level)
        found = search(hub.catalog, query, _base_url(request), study, series)
    except ValidationError as exc:
        raise BadRequest(exc.message) from None
    audit_studies(
        request,
        [m["0020000D"]["Value"][0] for m in found if "Value" in m.get("0020000D", {})] or [study or ""],
        [(_first(m, "00100020"), _first(m, "00100021")) for m in found],
    )
    if not found:
        return Response(status_code=204)
    return Response(orjson.dumps(found), media_type=DICOM_JSON)


Reader = Annotated[Principal, Depends(require("imaging:read"))]
HubDep = Annotated[Hub, Depends(get_hub)]


@router.get("/studies", summary="QIDO-RS: search studies")
def search_studies(request: Request, hub: HubDep, _: Reader) -> Response:
    return _qido(request, hub, "study")


@router.get("/series", summary="QIDO-RS: search series")
def search_all_series(request: Request, hub: HubDep, _: Reader) -> Response:
    return _qido(request, hub, "series")


@router.get("/studies/{study}/series", summary="QIDO-RS: search the series of a study")
def search_series(request: Request, hub: HubDep, _: Reader, study: str) -> Response:
    return _qido(request, hub, "series", study)


@router.get("/instances", summary="QIDO-RS: search instances")
def search_all_instances(request: Request, hub: HubDep, _: Reader) -> Response:
    return _qido(request, hub, "instance")


@router.get("/studies/{study}/instances", summary="QIDO-RS: search the instances of a study")
def search_study_instances(request: Request, hub: HubDep, _: Reader, study: str) -> Response:
    return _qido(request, hub, "instance", study)


@router.get("/studies/{study}/series/{series}/instances", summary="QIDO-RS: search the instances of a series")
def search_series_instances(request: Request, hub: HubDep, _: Reader, study: str, series: str) -> Response:
    return _qido(request, hub, "instance", study, series)


def _retrieve(
    request: Request, hub: Hub, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """The instances, as stored, one part each (read one at a time while the answer streams)."""
    _acceptable(request, "multipart/related", part="application/dicom")
    rows = instance_rows(hub.catalog, study, series, instance)
    audit_studies(request, [study], study_patients(hub.catalog, [study]))
    boundary = secrets.token_hex(16)

    def parts() -> Iterator[bytes]:
        for row in rows:
            yield f"--{boundary}\r\nContent-Type: application/dicom; transfer-syntax=*\r\n\r\n".encode()
            yield read_object(hub.objects, row)
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    media_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return StreamingResponse(parts(), media_type=media_type)


def _acceptable(request: Request, media: str, part: str | None = None, aliases: tuple[str, ...] = ()) -> None:
    """406 unless the request's Accept (or its ``accept`` query parameter, PS3.18 §8.3.3.1)
    takes ``media``."""
    header = request.query_params.get("accept") or request.headers.get("accept")
    if not accepts(header, media, part, aliases):
        what = f'{media}; type="{part}"' if part else media
        raise NotAcceptable(f"this resource is {what}, which the Accept header excludes")


def _metadata(
    request: Request, hub: Hub, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """DICOM JSON of the instances, from the index: no stored object is read."""
    _acceptable(request, DICOM_JSON, aliases=("application/json",))  # JSON, whatever its suffix
    rows = instance_rows(hub.catalog, study, series, instance)
    audit_studies(request, [study], study_patients(hub.catalog, [study]))
    body = b"[" + b",".join(row.metadata_json.encode() for row in rows) + b"]"
    return Response(body, media_type=DICOM_JSON)


@router.get("/studies/{study}", summary="WADO-RS: every instance of a study")
def retrieve_study(request: Request, hub: HubDep, _: Reader, study: str) -> Response:
    return _retrieve(request, hub, study)


@router.get("/studies/{study}/series/{series}", summary="WADO-RS: every instance of a series")
def retrieve_series(request: Request, hub: HubDep, _: Reader, study: str, series: str) -> Response:
    return _retrieve(request, hub, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}",
    summary="WADO-RS: one instance, as stored (multipart/related; type=application/dicom)",
)
def retrieve_instance(
    request: Request, hub: HubDep, _: Reader, study: str, series: str, instance: str
) -> Response:
    return _retrieve(request, hub, study, series, instance)


@router.get("/studies/{study}/metadata", summary="WADO-RS: metadata of a study's instances")
def study_metadata(request: Request, hub: HubDep, _: Reader, study: str) -> Response:
    return _metadata(request, hub, study)


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: metadata of a series' instances")
def series_metadata(request: Request, hub: HubDep, _: Reader, study: str, series: str) -> Response:
    return _metadata(request, hub, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    summary="WADO-RS: metadata of an instance",
)
def instance_metadata(
    request: Request, hub: HubDep, _: Reader, study: str, series: str, instance: str
) -> Response:
    return _metadata(request, hub, study, series, instance)


# --- IHE IOCM rejection (as dcm4chee: POST …/reject/{code}^{scheme}) ---

Writer = Annotated[Principal, Depends(require("imaging:write"))]


def _reject(
    request: Request, hub: Hub, code: str, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    try:
        report = reject(hub.catalog, study, series, instance, code)
    except ValidationError as exc:
        raise BadRequest(exc.message) from None
    audit_studies(request, sorted(report.studies), report.patients)
    body = {"rejected": report.instances, "reason": f"{reason_code(code)}^DCM {REASONS[reason_code(code)]}"}
    return Response(orjson.dumps(body), media_type="application/json")


@router.post("/studies/{study}/reject/{code}", summary="IOCM: reject a study (e.g. 113001^DCM)")
def reject_study(request: Request, hub: HubDep, _: Writer, study: str, code: str) -> Response:
    return _reject(request, hub, code, study)


@router.post("/studies/{study}/series/{series}/reject/{code}", summary="IOCM: reject a series")
def reject_series(request: Request, hub: HubDep, _: Writer, study: str, series: str, code: str) -> Response:
    return _reject(request, hub, code, study, series)


@router.post(
    "/studies/{study}/series/{series}/instances/{instance}/reject/{code}", summary="IOCM: reject an instance"
)
def reject_instance(
    request: Request, hub: HubDep, _: Writer, study: str, series: str, instance: str, code: str
) -> Response:
    return _reject(request, hub, code, study, series, instance)
