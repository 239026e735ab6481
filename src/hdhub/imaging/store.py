"""Store DICOM instances byte-for-byte in the object store, indexed in the catalog.

Each instance is kept exactly as received (encrypted at rest by the object store) under
``dicom/<study>/<series>/<instance>.dcm``; the catalog indexes its patient, study, series
and instance attributes and keeps its DICOM JSON metadata (bulk data left out), so
searches and ``/metadata`` never read the objects. An instance is stored whole or not at
all: its index rows and its object are written in one catalog transaction, and anything
that cannot be read, lacks its UIDs or repeats a stored SOP Instance UID is refused with a
reason. Nothing is changed in a file, not even a malformed one that is accepted.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pydicom
import pydicom.datadict
from pydicom.dataset import Dataset
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy, utcnow
from hdhub.errors import IntegrityError, NotFound

# PS3.5 9.1: digits and dots, at most 64 characters, no empty component.
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MAX_INSTANCE_BYTES = 4 << 30  # larger objects go through the resumable upload (later)
BULK_THRESHOLD = 1024  # values larger than this stay out of the metadata (bulk data)
STORED, REFUSED = "stored", "refused"


@dataclass(frozen=True)
class StoreOutcome:
    source: str
    status: str  # stored or refused
    sop_instance_uid: str | None = None
    study_uid: str | None = None
    reason: str | None = None
    sop_class_uid: str | None = None
    duplicate: bool = False  # refused as a second copy of a stored instance


def object_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"dicom/{study_uid}/{series_uid}/{sop_uid}.dcm"


def _text(ds: Dataset, keyword: str, limit: int | None = None) -> str | None:
    """A top-level attribute as text (multiple values joined by ``\\``), or None."""
    try:
        elem = ds.get(keyword)
        value = None if elem is None else elem
    except Exception:  # a malformed value is not indexed; the file keeps it
        return None
    if value is None or value == "":
        return None
    multiple = isinstance(value, pydicom.multival.MultiValue)
    text = "\\".join(str(v) for v in value) if multiple else str(value)
    return text[:limit] if limit else text


def _uid(ds: Dataset, keyword: str) -> str:
    value = _text(ds, keyword)
    if value is None:
        tag = pydicom.datadict.tag_for_keyword(keyword) or 0
        raise ValueError(f"not a DICOM instance: no {keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    value = value.strip("\x00 ")
    if len(value) > 64 or not UID_RE.match(value):
        raise ValueError(f"{keyword} {value[:80]!r} is not a valid DICOM UID")
    return value


def _metadata(ds: Dataset) -> str:
    def bulk(elem: Any) -> str:
        return ""  # the value is bulk data: retrieved from the stored instance, not the index

    return orjson.dumps(
        ds.to_json_dict(
            bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=bulk, suppress_invalid_tags=True
        )
    ).decode()


def parse(data: bytes) -> Dataset:
    """The dataset of ``data`` (pixel data not read); raises ValueError with the reason."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except Exception as exc:
        raise ValueError(f"not a readable DICOM file: {type(exc).__name__}: {str(exc)[:200]}") from None
    if len(ds) == 0:
        raise ValueError("not a DICOM file: no data elements")
    return ds


def store_instance(
    catalog: Engine, objects: Any, data: bytes, source: str = "", duplicates: str = "refuse"
) -> StoreOutcome:
    """Store one instance (the file's bytes, unchanged) or refuse it with a reason.

    ``duplicates``: what a second copy of a stored SOP Instance UID gets: ``refuse``, or
    ``version`` (a new version of its object; the index describes the latest)."""
    return store_instances(catalog, objects, [(data, source)], duplicates)[0]


@dataclass
class _Parsed:
    data: bytes
    source: str
    ds: Dataset
    uids: tuple[str, str, str]  # study, series, instance
    metadata: str
    sop_class: str | None


def _parse_instance(data: bytes, source: str) -> _Parsed | StoreOutcome:
    if len(data) > MAX_INSTANCE_BYTES:
        return StoreOutcome(source, REFUSED, reason=f"larger than {MAX_INSTANCE_BYTES >> 30} GiB")
    try:
        ds = parse(data)
        uids = tuple(_uid(ds, k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
        return _Parsed(data, source, ds, uids, _metadata(ds), _text(ds, "SOPClassUID", 64))  # type: ignore[arg-type]
    except ValueError as exc:
        return StoreOutcome(source, REFUSED, reason=str(exc))
    except Exception as exc:  # pydicom on hostile input: any failure is a refusal, never a crash
        return StoreOutcome(
            source, REFUSED, reason=f"unreadable DICOM data: {type(exc).__name__}: {str(exc)[:200]}"
        )


def store_instances(
    catalog: Engine, objects: Any, items: list[tuple[bytes, str]], duplicates: str = "refuse"
) -> list[StoreOutcome]:
    """Store several instances (bytes, source) in one catalog transaction, each inside its
    own savepoint: a refused instance leaves nothing, the others are kept."""
    # Parsed before the transaction opens: the catalog's write lock is not held meanwhile.
    parsed = [_parse_instance(data, source) for data, source in items]
    outcomes: list[StoreOutcome] = []
    with Session(catalog) as session, session.begin():
        for p in parsed:
            if isinstance(p, StoreOutcome):
                outcomes.append(p)
                continue
            study, _, sop = p.uids
            try:
                with session.begin_nested():
                    _index_and_put(session, objects, p.ds, p.data, p.uids, p.metadata, duplicates)
            except _Refused as exc:
                outcomes.append(
                    StoreOutcome(p.source, REFUSED, sop, study, str(exc), p.sop_class, exc.duplicate)
                )
                continue
            outcomes.append(StoreOutcome(p.source, STORED, sop, study, sop_class_uid=p.sop_class))
    return outcomes


class _Refused(Exception):
    """Raised inside the catalog transaction, so that it rolls back."""

    def __init__(self, reason: str, duplicate: bool = False) -> None:
        super().__init__(reason)
        self.duplicate = duplicate


def _index_and_put(
    session: Session,
    objects: Any,
    ds: Dataset,
    data: bytes,
    uids: tuple[str, str, str],
    metadata: str,
    duplicates: str = "refuse",
) -> None:
    study, series, sop = uids
    meta = getattr(ds, "file_meta", None)
    sha = hashlib.sha256(data).hexdigest()
    stored = session.get(DicomInstance, sop)
    if stored is not None:
        if duplicates != "version":
            raise _Refused(f"SOP Instance UID {sop} is already stored", duplicate=True)
        if (stored.study_uid, stored.series_uid) != (study, series):
            raise _Refused(f"SOP Instance UID {sop} is stored in another study or series")
        if stored.sha256 == sha:
            return  # the same bytes again: nothing to keep
        stored.size, stored.sha256, stored.metadata_json = len(data), sha, metadata
        stored.transfer_syntax_uid = _text(meta, "TransferSyntaxUID", 64) if meta is not None else None
        stored.received_at = utcnow()
        session.flush()
        objects.put(
            stored.object_key, data, content_type="application/dicom", metadata={"sop-instance-uid": sop}
        )
        return
    if session.get(DicomStudy, study) is None:
        session.add(
            DicomStudy(
                study_uid=study,
                patient_id=_text(ds, "PatientID", 64),
                patient_name=_text(ds, "PatientName"),
                patient_birth_date=_text(ds, "PatientBirthDate", 8),
                patient_sex=_text(ds, "PatientSex", 16),
                study_date=_text(ds, "StudyDate", 8),
                study_time=_text(ds, "StudyTime", 16),
                accession_number=_text(ds, "AccessionNumber", 64),
                study_id=_text(ds, "StudyID", 64),
                study_description=_text(ds, "StudyDescription"),
                referring_physician_name=_text(ds, "ReferringPhysicianName"),
            )
        )
        session.flush()
    known_series = session.get(DicomSeries, series)
    if known_series is None:
        session.add(
            DicomSeries(
                series_uid=series,
                study_uid=study,
                modality=_text(ds, "Modality", 16),
                series_number=_text(ds, "SeriesNumber", 16),
                series_description=_text(ds, "SeriesDescription"),
                body_part_examined=_text(ds, "BodyPartExamined", 64),
            )
        )
        session.flush()
    elif known_series.study_uid != study:
        raise _Refused(f"series {series} belongs to study {known_series.study_uid}")
    key = object_key(study, series, sop)
    session.add(
        DicomInstance(
            sop_instance_uid=sop,
            series_uid=series,
            study_uid=study,
            sop_class_uid=_text(ds, "SOPClassUID", 64),
            instance_number=_text(ds, "InstanceNumber", 16),
            transfer_syntax_uid=_text(meta, "TransferSyntaxUID", 64) if meta is not None else None,
            object_key=key,
            size=len(data),
            sha256=sha,
            metadata_json=metadata,
        )
    )
    session.flush()
    # The object last, inside the transaction: if it fails, no index row remains.
    objects.put(key, data, content_type="application/dicom", metadata={"sop-instance-uid": sop})


def store_file(catalog: Engine, objects: Any, path: Path, duplicates: str = "refuse") -> StoreOutcome:
    """``store_instance`` of a file, refused unread when it is too large."""
    if path.stat().st_size > MAX_INSTANCE_BYTES:
        return StoreOutcome(str(path), REFUSED, reason=f"larger than {MAX_INSTANCE_BYTES >> 30} GiB")
    return store_instance(catalog, objects, path.read_bytes(), str(path), duplicates)


def read_instance(
    catalog: Engine, objects: Any, sop_uid: str, study_uid: str | None = None, series_uid: str | None = None
) -> bytes:
    """The stored bytes of an instance, exactly as received (of that study and series, if given)."""
    with Session(catalog) as session:
        row = session.get(DicomInstance, sop_uid)
        if row is None or (study_uid, series_uid) not in ((None, None), (row.study_uid, row.series_uid)):
            raise NotFound(f"no DICOM instance {sop_uid}" + (f" in study {study_uid}" if study_uid else ""))
        session.expunge(row)
    return read_object(objects, row)


def dicom_files(paths: Iterable[Path]) -> list[Path]:
    """Every regular file under ``paths`` (DICOM files have no reliable extension)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            found.append(p)
        else:
            raise NotFound(f"{p}: no such file or directory")
    return found


def instance_rows(
    catalog: Engine, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> list[DicomInstance]:
    """The index rows of a study's (or series', or one) instances, in series and instance order."""
    stmt = select(DicomInstance).where(DicomInstance.study_uid == study_uid)
    if series_uid is not None:
        stmt = stmt.where(DicomInstance.series_uid == series_uid)
    if sop_uid is not None:
        stmt = stmt.where(DicomInstance.sop_instance_uid == sop_uid)
    with Session(catalog) as session:
        rows = list(session.scalars(stmt.order_by(DicomInstance.series_uid, DicomInstance.sop_instance_uid)))
        session.expunge_all()
    if not rows:
        what = sop_uid or series_uid or study_uid
        raise NotFound(f"no DICOM instances for {what}")
    return rows


def read_object(objects: Any, row: DicomInstance) -> bytes:
    """An instance's stored bytes, checked against the SHA-256 recorded at storage."""
    data = objects.get_bytes(row.object_key)
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise IntegrityError(
            f"DICOM instance {row.sop_instance_uid}: stored bytes do not match their checksum"
        )
    return data
