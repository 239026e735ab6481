"""DICOMweb pixels: WADO-RS frames (PS3.18 8.7.3), rendered images and thumbnails
(8.3.5), and WADO-URI (PS3.18 9). Reading needs ``imaging:read``."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request, Response

from hdhub.api.routes.dicomweb import BadRequest, HubDep, Reader, audit_studies
from hdhub.hub import Hub
from hdhub.imaging.dicom_json import integer_string
from hdhub.imaging.render import THUMBNAIL, NotAcceptable, frames_of, parse_viewport, parse_window, render
from hdhub.imaging.store import instance_rows, read_object, study_patients

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])


def instance_bytes(request: Request, hub: Hub, study: str, series: str, instance: str) -> bytes:
    """An instance's stored bytes (NotFound for an unknown or rejected one), its study and
    patient named in the request's audit event. The web pages' images read through it too."""
    row = instance_rows(hub.catalog, study, series, instance)[0]
    audit_studies(request, [study], study_patients(hub.catalog, [study]))
    return read_object(hub.objects, row)


def _numbers(value: str) -> list[int]:
    try:
        numbers = [int(n) for n in value.split(",")]
    except ValueError:
        raise BadRequest("frame numbers: integers from 1, separated by commas") from None
    if not numbers or len(numbers) > 10_000 or min(numbers) < 1:
        raise BadRequest("frame numbers: integers from 1, separated by commas")
    if len(set(numbers)) < len(numbers):  # 1,1,1,… made a response of gigabytes from one frame
        raise BadRequest("frame numbers: each frame once")
    return numbers


def _wants_native(accept: str) -> bool:
    """A client that accepts only uncompressed frames (octet-stream without transfer-syntax=*)."""
    accept = accept.lower()
    return (
        "application/octet-stream" in accept
        and "transfer-syntax=*" not in accept
        and "*/*" not in accept
        and "image/" not in accept
    )


def _rendered_type(request: Request) -> str:
    accept = (request.query_params.get("accept") or request.headers.get("accept") or "").lower()
    if "image/png" in accept:
        return "image/png"
    if not accept or any(t in accept for t in ("image/jpeg", "image/*", "*/*")):
        return "image/jpeg"
    raise NotAcceptable("rendered images are image/jpeg or image/png")


def _render(request: Request, data: bytes, number: int, viewport: tuple[int, int] | None = None) -> Response:
    params = request.query_params
    media = _rendered_type(request)
    try:
        window = parse_window(params.get("window"))
        viewport = parse_viewport(params.get("viewport")) or viewport
        quality = int(params.get("quality", "90"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return image_response(data, number, media, window, viewport, quality)


def image_response(
    data: bytes,
    number: int,
    media: str,
    window: tuple[float, float] | None,
    viewport: tuple[int, int] | None,
    quality: int,
) -> Response:
    """Frame ``number`` of an instance's bytes rendered as ``media`` (image/jpeg or image/png)."""
    if not 1 <= quality <= 100:
        raise BadRequest("quality: from 1 to 100")
    image = render(data, number, media_type=media, window=window, viewport=viewport, quality=quality)
    return Response(image, media_type=media)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    summary="WADO-RS: frames of an instance (as stored, or uncompressed on request)",
)
def retrieve_frames(
    request: Request, hub: HubDep, _: Reader, study: str, series: str, instance: str, frames: str
) -> Response:
    numbers = _numbers(frames)
    data = instance_bytes(request, hub, study, series, instance)
    decode = _wants_native(request.headers.get("accept", ""))
    found = frames_of(data, numbers, decode=decode)
    boundary = secrets.token_hex(16)
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {f.media_type}; transfer-syntax={f.transfer_syntax}\r\n\r\n".encode()
        + f.data
        + b"\r\n"
        for f in found
    )
    media_type = f'multipart/related; type="{found[0].media_type}"; boundary={boundary}'
    return Response(body + f"--{boundary}--\r\n".encode(), media_type=media_type)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/rendered",
    summary="WADO-RS: an instance rendered as JPEG or PNG (its first frame)",
)
def rendered_instance(
    request: Request, hub: HubDep, _: Reader, study: str, series: str, instance: str
) -> Response:
    return _render(request, instance_bytes(request, hub, study, series, instance), 1)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
    summary="WADO-RS: one frame rendered as JPEG or PNG",
)
def rendered_frame(
    request: Request, hub: HubDep, _: Reader, study: str, series: str, instance: str, frames: str
) -> Response:
    numbers = _numbers(frames)
    if len(numbers) != 1:
        raise BadRequest("a rendered frame: one frame number")
    return _render(request, instance_bytes(request, hub, study, series, instance), numbers[0])


def first_image(hub: Hub, study: str, series: str | None = None) -> tuple[str, str]:
    """The series and instance a study's or series' thumbnail shows (lowest instance number)."""
    rows = instance_rows(hub.catalog, study, series)

    def order(row: Any) -> tuple[str, int, str]:
        number = integer_string((row.instance_number or "").strip())
        return (
            row.series_uid,
            1 << 30 if number is None else number,
            row.sop_instance_uid,
        )

    first = min(rows, key=order)
    return first.series_uid, first.sop_instance_uid


@router.get("/studies/{study}/thumbnail", summary="WADO-RS: thumbnail of a study")
def study_thumbnail(request: Request, hub: HubDep, _: Reader, study: str) -> Response:
    series, instance = first_image(hub, study)
    return _render(request, instance_bytes(request, hub, study, series, instance), 1, THUMBNAIL)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="WADO-RS: thumbnail of a series")
def series_thumbnail(request: Request, hub: HubDep, _: Reader, study: str, series: str) -> Response:
    _, instance = first_image(hub, study, series)
    return _render(request, instance_bytes(request, hub, study, series, instance), 1, THUMBNAIL)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
    summary="WADO-RS: thumbnail of an instance",
)
def instance_thumbnail(
    request: Request, hub: HubDep, _: Reader, study: str, series: str, instance: str
) -> Response:
    return _render(request, instance_bytes(request, hub, study, series, instance), 1, THUMBNAIL)


@router.get("/wado", summary="WADO-URI: an instance as stored (application/dicom) or rendered")
def wado_uri(request: Request, hub: HubDep, _: Reader) -> Response:
    params = request.query_params
    if params.get("requestType") != "WADO":
        raise BadRequest("requestType=WADO is required")
    uids = [params.get(k) for k in ("studyUID", "seriesUID", "objectUID")]
    if not all(uids):
        raise BadRequest("studyUID, seriesUID and objectUID are required")
    study, series, instance = uids  # type: ignore[misc]
    data = instance_bytes(request, hub, study, series, instance)  # type: ignore[arg-type]
    content = (params.get("contentType") or "image/jpeg").split(",")[0].strip()
    if content == "application/dicom":
        return Response(data, media_type="application/dicom")
    if content not in ("image/jpeg", "image/png"):
        raise NotAcceptable("contentType: application/dicom, image/jpeg or image/png")
    try:
        number = int(params.get("frameNumber", "1"))
        window = None
        if params.get("windowCenter") is not None or params.get("windowWidth") is not None:
            window = parse_window(f"{params.get('windowCenter')},{params.get('windowWidth')}")
        rows, columns = params.get("rows"), params.get("columns")
        viewport = parse_viewport(f"{columns or rows},{rows or columns}") if rows or columns else None
        quality = int(params.get("imageQuality", "90"))
    except ValueError as exc:
        raise BadRequest(f"WADO-URI parameters: {exc}") from None
    return image_response(data, number, content, window, viewport, quality)
