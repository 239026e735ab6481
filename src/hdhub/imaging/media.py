"""Non-DICOM objects of the imaging archive: surgical videos, pathology slides, documents.

An object of any size arrives in resumable chunks (the tus 1.0 protocol: create, then
PATCH chunks at the offset the server reports, resume after any failure with HEAD). Each
chunk is kept as an encrypted part object (``uploads/<id>/<offset>``) once received
whole; when the last byte arrives the parts are streamed, in order, into one encrypted
object ``media/<category>/<id>`` (multipart on S3), locked by its category's storage
policy, its SHA-256 and SHA-1 computed on the way, and the parts removed. The object is
linked to a patient — (Patient ID, IssuerOfPatientID), as the DICOM studies: one Patient
ID may be two people of two sites — and to a study and/or an encounter, and is listed as
FHIR DocumentReference resources. A study named must be that patient's when the archive
holds it (its issuer is then the object's, when none is given). Reads honour HTTP Range
(video seeking) and decrypt only the segments asked.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hdhub.catalog.models import DicomStudy, MediaObject, aware
from hdhub.errors import Conflict, IntegrityError, NotFound, ValidationError
from hdhub.imaging.issuers import ISSUER, patient_identifier
from hdhub.imaging.policies import effective, prefix, retention_for, stay_date
from hdhub.imaging.store import UID_RE

MAX_SIZE = 1 << 42  # 4 TiB: a whole-slide image or a long surgical video fits
MAX_CHUNK = 64 << 20  # bytes per PATCH; clients resume with more PATCHes
UPLOADING, ASSEMBLING, AVAILABLE = "uploading", "assembling", "available"
# An assembly claimed this long ago and not done is taken for dead (its process crashed): the
# next request assembles the object again. Longer than assembling the largest upload takes.
ASSEMBLY_STALE = timedelta(hours=24)
UPLOAD_EXPIRY = timedelta(days=7)  # tus expiration: an upload unfinished a week after it began goes
_CATEGORY = re.compile(r"^[a-z][a-z0-9-]{0,31}\Z")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z")


def _part_prefix(media_id: str) -> str:
    return f"uploads/{media_id}/"


def create_upload(
    hub: Any,
    *,
    size: int,
    category: str,
    patient_id: str,
    created_by: str,
    issuer: str | None = None,
    content_type: str = "application/octet-stream",
    study_uid: str | None = None,
    encounter_id: str | None = None,
    title: str | None = None,
    filename: str | None = None,
    date: str | None = None,
) -> MediaObject:
    """A new upload of ``size`` bytes (checked before anything is stored); expired uploads go
    first (:func:`expire_uploads`)."""
    if not 0 <= size <= MAX_SIZE:
        raise ValidationError(f"size: from 0 to {MAX_SIZE} bytes")
    policies = effective(hub.settings)
    if not _CATEGORY.match(category) or category == "dicom" or category not in policies:
        known = ", ".join(sorted(c for c in policies if c != "dicom"))
        raise ValidationError(f"category {category!r} has no storage policy: use one of {known}")
    if not patient_id or len(patient_id) > 64:
        raise ValidationError("patient: a Patient ID of 1 to 64 characters is required")
    _check_issuer(issuer)
    if study_uid is not None and (len(study_uid) > 64 or not UID_RE.fullmatch(study_uid)):
        raise ValidationError(f"study: {study_uid[:80]!r} is not a DICOM UID")
    if study_uid is not None:
        issuer = _study_issuer(hub, study_uid, patient_id, issuer)
    if encounter_id is not None and not 1 <= len(encounter_id) <= 64:
        raise ValidationError("encounter: 1 to 64 characters")
    if not _MEDIA_TYPE.match(content_type) or len(content_type) > 200:
        raise ValidationError(f"content type {content_type[:80]!r} is not a media type")
    if date is not None and stay_date(date) is None:
        raise ValidationError(f"date {date[:20]!r}: YYYYMMDD")
    expire_uploads(hub)
    media_id = secrets.token_hex(16)
    row = MediaObject(
        id=media_id,
        category=category,
        patient_id=patient_id,
        issuer_of_patient_id=issuer,
        study_uid=study_uid,
        encounter_id=encounter_id,
        title=(title or None) and title[:1000],
        filename=(filename or None) and filename[:500],
        content_type=content_type,
        stay_date=date,
        size=size,
        received=0,
        status=UPLOADING,
        object_key=f"{prefix(category)}{media_id}",
        created_by=created_by[:200],
    )
    with Session(hub.catalog) as session, session.begin():
        session.add(row)
    if size == 0:
        return _finish(hub, media_id)
    return get(hub, media_id, any_status=True)


def _check_issuer(issuer: str | None) -> None:
    if issuer is not None and not ISSUER.match(issuer):
        raise ValidationError("issuer: 1 to 64 characters, without backslash or control characters")


def _study_issuer(hub: Any, study_uid: str, patient_id: str, issuer: str | None) -> str | None:
    """The object's issuer once linked to ``study_uid``: a study the archive holds must be
    the same patient's (Patient ID, and issuer when both are known); its issuer is taken
    when none is given. A study not (yet) in the archive is linked as named."""
    with Session(hub.catalog) as session:
        study = session.execute(
            select(DicomStudy.patient_id, DicomStudy.issuer_of_patient_id).where(
                DicomStudy.study_uid == study_uid
            )
        ).first()
    if study is None:
        return issuer
    if study.patient_id != patient_id or (
        issuer is not None and study.issuer_of_patient_id not in (None, issuer)
    ):
        who = f"{patient_id}" + (f" (issuer {issuer})" if issuer else "")
        raise ValidationError(f"study {study_uid} is not a study of patient {who}")
    return issuer if issuer is not None else study.issuer_of_patient_id


def get(hub: Any, media_id: str, *, any_status: bool = False) -> MediaObject:
    with Session(hub.catalog) as session:
        row = session.get(MediaObject, media_id) if re.fullmatch(r"[0-9a-f]{32}", media_id) else None
        if row is None or (row.status != AVAILABLE and not any_status):
            raise NotFound(f"no object {media_id}")
        session.expunge(row)
    return row


def upload(hub: Any, media_id: str) -> MediaObject:
    """An upload in progress; an upload whose last chunk arrived but was not assembled (a
    crash at that moment) is assembled now."""
    row = _unexpired(hub, get(hub, media_id, any_status=True))
    if row.status in (UPLOADING, ASSEMBLING) and row.received == row.size:
        return _finish(hub, media_id)
    return row


def append(hub: Any, media_id: str, offset: int, data: bytes) -> MediaObject:
    """Add a chunk at ``offset``, which must be the number of bytes received so far."""
    row = _unexpired(hub, get(hub, media_id, any_status=True))
    if row.status != UPLOADING:
        state = "being assembled" if row.status == ASSEMBLING else "complete"
        raise Conflict(f"upload {media_id} is {state}")
    if offset != row.received:
        raise Conflict(f"Upload-Offset {offset} does not match the {row.received} bytes received")
    if len(data) > MAX_CHUNK:
        raise ValidationError(f"a chunk holds at most {MAX_CHUNK} bytes")
    if offset + len(data) > row.size:
        raise ValidationError(f"{offset + len(data)} bytes would exceed the declared {row.size}")
    if not data:
        return row
    part = hub.objects.put(
        f"{_part_prefix(media_id)}{offset:020d}", data, content_type="application/octet-stream"
    )
    with hub.catalog.begin() as conn:  # only if no rival chunk landed at this offset meanwhile
        moved = conn.execute(
            update(MediaObject)
            .where(MediaObject.id == media_id, MediaObject.received == offset)
            .values(received=offset + len(data))
        ).rowcount
    if moved != 1:
        hub.objects.delete(part.key, part.version_id)
        raise Conflict(f"another chunk was stored at offset {offset} meanwhile")
    if offset + len(data) == row.size:
        return _finish(hub, media_id)
    return get(hub, media_id, any_status=True)


def expires(row: MediaObject) -> datetime | None:
    """When an upload in progress will be removed (tus ``Upload-Expires``); None once complete."""
    return aware(row.created_at).astimezone(UTC) + UPLOAD_EXPIRY if row.status == UPLOADING else None


def _unexpired(hub: Any, row: MediaObject) -> MediaObject:
    now = datetime.now(UTC)
    until = expires(row)
    if until is not None and until < now and row.received < row.size:
        _remove_upload(hub, row.id, now - UPLOAD_EXPIRY)
        raise NotFound(f"upload {row.id} expired: it was not finished within {UPLOAD_EXPIRY.days} days")
    return row


def expire_uploads(hub: Any, now: datetime | None = None, limit: int = 100) -> int:
    """Remove up to ``limit`` uploads begun more than ``UPLOAD_EXPIRY`` ago and still
    unfinished, parts and rows (a client that gave up never sends its DELETE); returns how many."""
    cutoff = (now or datetime.now(UTC)) - UPLOAD_EXPIRY
    with Session(hub.catalog) as session:
        ids = list(
            session.scalars(
                select(MediaObject.id)
                .where(MediaObject.status == UPLOADING, MediaObject.received < MediaObject.size)
                .where(MediaObject.created_at < cutoff)
                .limit(limit)
            )
        )
    return sum(_remove_upload(hub, media_id, cutoff) for media_id in ids)


def _remove_upload(hub: Any, media_id: str, created_before: datetime) -> bool:
    """Remove an unfinished upload begun before ``created_before``, unless a request has begun
    assembling it meanwhile."""
    row = MediaObject
    with hub.catalog.begin() as conn:
        gone = conn.execute(
            row.__table__.delete().where(
                row.id == media_id,
                row.status == UPLOADING,
                row.received < row.size,
                row.created_at < created_before,
            )
        ).rowcount
    if gone == 1:
        _drop_parts(hub, media_id)
    return gone == 1


def _claim(hub: Any, media_id: str) -> bool:
    """Whether this request assembles the object: one at a time (a tus client polling HEAD
    while the last PATCH assembled started a full assembly at every poll: several locked
    copies, and parts dropped under the first). While assembling, ``completed_at`` holds when
    the assembly began."""
    now = datetime.now(UTC)
    row = MediaObject
    with hub.catalog.begin() as conn:
        return (
            conn.execute(
                update(row)
                .where(row.id == media_id, row.received == row.size)
                .where(
                    (row.status == UPLOADING)
                    | ((row.status == ASSEMBLING) & (row.completed_at < now - ASSEMBLY_STALE))
                )
                .values(status=ASSEMBLING, completed_at=now)
            ).rowcount
            == 1
        )


def _finish(hub: Any, media_id: str) -> MediaObject:
    """Stream the parts, in order, into the final object; then drop them."""
    if not _claim(hub, media_id):  # another request assembles it, or has
        return get(hub, media_id, any_status=True)
    row = get(hub, media_id, any_status=True)
    parts = sorted((info for info in hub.objects.list(_part_prefix(media_id))), key=lambda info: info.key)
    sha256, sha1, counted = hashlib.sha256(), hashlib.sha1(usedforsecurity=False), 0

    def stream() -> Iterator[bytes]:
        nonlocal counted
        for part in parts:
            for chunk in hub.objects.get(part.key):
                sha256.update(chunk)
                sha1.update(chunk)
                counted += len(chunk)
                yield chunk

    policy = effective(hub.settings)[row.category]
    retention = retention_for(policy, stay_date(row.stay_date) or row.created_at.date())
    hub.objects.put(
        row.object_key,
        stream(),
        content_type=row.content_type,
        metadata={"media-id": media_id, "category": row.category},
        retention=retention,
    )
    if counted != row.size:  # never expected: the parts are what was counted in
        raise IntegrityError(f"upload {media_id}: {counted} bytes assembled, {row.size} declared")
    with hub.catalog.begin() as conn:
        conn.execute(
            update(MediaObject)
            .where(MediaObject.id == media_id)
            .values(
                status=AVAILABLE,
                sha256=sha256.hexdigest(),
                sha1=sha1.hexdigest(),
                retain_until=retention.until if retention else None,
                completed_at=datetime.now(UTC),
            )
        )
    _drop_parts(hub, media_id)
    return get(hub, media_id)


def _drop_parts(hub: Any, media_id: str) -> None:
    for version in hub.objects.versions(_part_prefix(media_id)):
        hub.objects.delete(version.key, version.version_id)


def terminate(hub: Any, media_id: str) -> None:
    """Abandon an upload in progress: its parts and its row go."""
    if get(hub, media_id, any_status=True).status == AVAILABLE:
        raise Conflict(f"{media_id} is complete: it is kept under its storage policy")
    with hub.catalog.begin() as conn:  # only while no request has begun assembling it
        gone = conn.execute(
            MediaObject.__table__.delete().where(MediaObject.id == media_id, MediaObject.status == UPLOADING)
        ).rowcount
    if gone != 1:
        raise Conflict(f"{media_id} is being assembled: it is kept under its storage policy")
    _drop_parts(hub, media_id)


def search(
    hub: Any,
    *,
    patient_id: str | None = None,
    issuer: str | None = None,
    study_uid: str | None = None,
    encounter_id: str | None = None,
    category: str | None = None,
    limit: int = 100,
) -> list[MediaObject]:
    """Complete objects matching every given link, newest first. With ``issuer``, objects of
    that issuer and those whose issuer is unknown (they may be that patient's: each
    DocumentReference says which)."""
    _check_issuer(issuer)
    stmt = select(MediaObject).where(MediaObject.status == AVAILABLE)
    if issuer is not None:
        stmt = stmt.where(
            or_(MediaObject.issuer_of_patient_id == issuer, MediaObject.issuer_of_patient_id.is_(None))
        )
    for column, value in (
        (MediaObject.patient_id, patient_id),
        (MediaObject.study_uid, study_uid),
        (MediaObject.encounter_id, encounter_id),
        (MediaObject.category, category),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    with Session(hub.catalog) as session:
        rows = list(session.scalars(stmt.order_by(MediaObject.created_at.desc()).limit(limit)))
        session.expunge_all()
    return rows


def document_reference(row: MediaObject, base_url: str, systems: Mapping[str, str]) -> dict[str, Any]:
    """The object as a FHIR R4 DocumentReference (its content as an Attachment with a URL; the
    patient's issuer as its identifier system, ``systems`` naming those of short codes)."""
    attachment: dict[str, Any] = {
        "contentType": row.content_type,
        "size": row.size,
        "url": f"{base_url}/api/v1/media/{row.id}/content",
    }
    if row.sha1:
        attachment["hash"] = base64.b64encode(bytes.fromhex(row.sha1)).decode()
    if row.filename:
        attachment["title"] = row.filename
    if row.completed_at:
        attachment["creation"] = _iso(row.completed_at)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": row.id,
        "status": "current",
        "docStatus": "final",
        "type": {"text": row.category},
        "category": [{"coding": [{"system": "https://hdhub.dev/fhir/media-category", "code": row.category}]}],
        "subject": {"identifier": patient_identifier(row.patient_id, row.issuer_of_patient_id, systems)},
        "date": _iso(row.completed_at or row.created_at),
        "content": [{"attachment": attachment}],
    }
    if row.title:
        resource["description"] = row.title
    context: dict[str, Any] = {}
    if row.encounter_id:
        context["encounter"] = [{"identifier": {"value": row.encounter_id}}]
    if row.study_uid:
        context["related"] = [
            {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{row.study_uid}"}}
        ]
    if row.stay_date:
        day = stay_date(row.stay_date)
        if day is not None:
            context["period"] = {"start": day.isoformat()}
    if context:
        resource["context"] = context
    return resource


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
