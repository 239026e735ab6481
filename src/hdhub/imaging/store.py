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
import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pydicom
import pydicom.datadict
import sqlalchemy.exc
from pydicom.dataset import Dataset
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from hdhub.catalog.db import in_chunks
from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy, utcnow
from hdhub.errors import IntegrityError, NotFound
from hdhub.imaging import rejection as rejections
from hdhub.imaging.dicom_json import dataset_json
from hdhub.imaging.policies import retention_for, stay_date
from hdhub.imaging.rejection import Rejection
from hdhub.objects.base import Retention

if TYPE_CHECKING:
    from hdhub.config.settings import StoragePolicy
    from hdhub.imaging.workers import IngestWorkers

# PS3.5 9.1: digits and dots, at most 64 characters, no empty component.
UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")  # fullmatch: "$" would take a final newline
MAX_INSTANCE_BYTES = 4 << 30  # larger objects go through the resumable upload (later)
MAX_INFLATED_BYTES = 256 << 20  # a Deflated Explicit VR Little Endian dataset, once inflated
DEFLATED = "1.2.840.10008.1.2.1.99"
STORED, REFUSED = "stored", "refused"
PUT_THREADS = 4  # object writes at once: they wait on fsync or the network, not on the CPU
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreOutcome:
    source: str
    status: str  # stored or refused
    sop_instance_uid: str | None = None
    study_uid: str | None = None
    reason: str | None = None
    sop_class_uid: str | None = None
    duplicate: bool = False  # refused as a second copy of a stored instance
    patient_id: str | None = None  # for the audit event
    identical: bool = False  # a duplicate with the very bytes already stored
    issuer: str | None = None  # IssuerOfPatientID: with patient_id, who the patient is


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


def _issuer(ds: Dataset) -> str | None:
    """IssuerOfPatientID (LO: padding spaces are not significant), cut to 64 characters as
    every indexed LO value; None when absent or empty (issuer unknown)."""
    value = _text(ds, "IssuerOfPatientID")
    return (value.strip(" \x00")[:64].rstrip(" ") or None) if value is not None else None


def _uid(ds: Dataset, keyword: str) -> str:
    value = _text(ds, keyword)
    if value is None:
        tag = pydicom.datadict.tag_for_keyword(keyword) or 0
        raise ValueError(f"not a DICOM instance: no {keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    value = value.strip("\x00 ")
    if len(value) > 64 or not UID_RE.fullmatch(value):
        raise ValueError(f"{keyword} {value[:80]!r} is not a valid DICOM UID")
    return value


def _metadata(ds: Dataset) -> str:
    return orjson.dumps(dataset_json(ds)).decode()


def check_inflated_size(data: bytes) -> None:
    """pydicom inflates a deflated dataset whole, in memory: a 1 MB file of zeros inflating to
    1 GB (a deflate bomb) took gigabytes at every read. Inflate it once here, in a stream,
    counting, and refuse it past ``MAX_INFLATED_BYTES``."""
    if data[128:132] != b"DICM" or data[132:140] != b"\x02\x00\x00\x00UL\x04\x00":
        return  # no Part 10 File Meta with its group length: not deflated (pydicom says the rest)
    (meta_length,) = struct.unpack("<I", data[140:144])
    meta = data[144 : 144 + meta_length]
    at = meta.find(b"\x02\x00\x10\x00UI")  # (0002,0010) Transfer Syntax UID, explicit VR
    if at < 0:
        return
    (size,) = struct.unpack("<H", meta[at + 6 : at + 8])
    if meta[at + 8 : at + 8 + size].rstrip(b"\x00 ") != DEFLATED.encode():
        return
    inflater, pending, total = zlib.decompressobj(-zlib.MAX_WBITS), data[144 + meta_length :], 0
    try:
        while pending and not inflater.eof:
            total += len(inflater.decompress(pending, 1 << 20))
            pending = inflater.unconsumed_tail
            if total > MAX_INFLATED_BYTES:
                raise ValueError(f"the deflated dataset inflates beyond {MAX_INFLATED_BYTES >> 20} MiB")
    except zlib.error as exc:
        raise ValueError(f"the deflated dataset cannot be inflated: {exc}") from None


def parse(data: bytes) -> Dataset:
    """The dataset of ``data`` (pixel data not read); raises ValueError with the reason."""
    check_inflated_size(data)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except Exception as exc:
        raise ValueError(f"not a readable DICOM file: {type(exc).__name__}: {str(exc)[:200]}") from None
    if len(ds) == 0:
        raise ValueError("not a DICOM file: no data elements")
    if data[128:132] != b"DICM" and "SOPClassUID" not in ds and "SOPInstanceUID" not in ds:
        raise ValueError("not a DICOM file: no DICM preamble and no SOP Class or Instance UID")
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
    """What the index needs of a readable instance (picklable: made in worker processes)."""

    source: str
    uids: tuple[str, str, str]  # study, series, instance
    sha256: str
    metadata: str
    sop_class: str | None
    patient_id: str | None
    study_row: dict[str, Any]
    series_row: dict[str, Any]
    instance_row: dict[str, Any]  # sop_class_uid, instance_number, transfer_syntax_uid, size
    rejection: Rejection | None = None  # an IOCM rejection note (KOS) and what it rejects
    data: bytes = b""  # attached where the batch is planned


def _parse_instance(data: bytes, source: str) -> _Parsed | StoreOutcome:
    if len(data) > MAX_INSTANCE_BYTES:
        return StoreOutcome(source, REFUSED, reason=f"larger than {MAX_INSTANCE_BYTES >> 30} GiB")
    try:
        ds = parse(data)
        study, series, sop = (
            _uid(ds, k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        )
        meta = getattr(ds, "file_meta", None)
        sop_class = _text(ds, "SOPClassUID", 64)
        rejection = rejections.from_kos(ds) if sop_class == rejections.KOS_SOP_CLASS else None
        if rejection is not None:  # the note itself is kept, hidden with what it rejects
            rejection.references.append((study, series, sop))
        return _Parsed(
            source,
            (study, series, sop),
            hashlib.sha256(data).hexdigest(),
            _metadata(ds),
            sop_class,
            _text(ds, "PatientID", 64),
            _study_row(ds, study),
            _series_row(ds, series, study),
            {
                "sop_class_uid": sop_class,
                "instance_number": _text(ds, "InstanceNumber", 16),
                "transfer_syntax_uid": _text(meta, "TransferSyntaxUID", 64) if meta is not None else None,
                "size": len(data),
            },
            rejection,
        )
    except ValueError as exc:
        return StoreOutcome(source, REFUSED, reason=str(exc))
    except Exception as exc:  # pydicom on hostile input: any failure is a refusal, never a crash
        return StoreOutcome(
            source, REFUSED, reason=f"unreadable DICOM data: {type(exc).__name__}: {str(exc)[:200]}"
        )


def parse_batch(items: list[tuple[bytes, str]]) -> list[_Parsed | StoreOutcome]:
    """``_parse_instance`` of each item, without the bytes (for worker processes)."""
    return [_parse_instance(data, source) for data, source in items]


def store_instances(
    catalog: Engine,
    objects: Any,
    items: list[tuple[bytes, str]],
    duplicates: str = "refuse",
    workers: IngestWorkers | None = None,
    policy: StoragePolicy | None = None,
) -> list[StoreOutcome]:
    """Store several instances (bytes, source): each is stored whole or refused with a reason.

    Every check is made before anything is written: the instances are parsed, then one query
    per table finds what the catalog already holds. The accepted objects are written in
    parallel, then their index rows in one transaction. If an object write or the
    transaction fails, the versions written are removed and the error is raised: no index
    row ever points to a missing object. A rival writer inserting the same UIDs meanwhile
    makes the transaction fail; the batch is then planned again against the new state.

    With ``workers``, parsing and object writes of a large batch run in its processes
    (every core at work). With ``policy``, each object is locked for the policy's years
    after its study date."""
    if workers is not None and not workers.worth_it(len(items)):
        workers = None
    parsed = workers.parse(items) if workers is not None else parse_batch(items)
    for p, (data, _) in zip(parsed, items, strict=True):
        if isinstance(p, _Parsed):
            p.data = data
    try:
        return _store_parsed(catalog, objects, parsed, duplicates, workers, policy)
    except sqlalchemy.exc.IntegrityError:
        return _store_parsed(catalog, objects, parsed, duplicates, workers, policy)


def store_for_hub(hub: Any, items: list[tuple[bytes, str]]) -> list[StoreOutcome]:
    """``store_instances`` with the deployment's settings: duplicates rule, ingest workers,
    the ``dicom`` storage policy."""
    from hdhub.imaging.policies import effective

    return store_instances(
        hub.catalog,
        hub.objects,
        items,
        hub.settings.imaging.duplicates,
        hub.imaging_workers,
        effective(hub.settings)["dicom"],
    )


@dataclass
class _Write:
    parsed: _Parsed
    sha256: str
    update: bool  # a new version of a stored instance
    retention: Retention | None = None
    version_id: str | None = None


def _store_parsed(
    catalog: Engine,
    objects: Any,
    parsed: list[_Parsed | StoreOutcome],
    duplicates: str,
    workers: IngestWorkers | None,
    policy: StoragePolicy | None,
) -> list[StoreOutcome]:
    candidates = [p for p in parsed if isinstance(p, _Parsed)]
    stored_instances, stored_series, stored_studies = _known(catalog, candidates)
    outcomes: dict[int, StoreOutcome] = {}
    writes: list[_Write] = []
    batch_series: dict[str, str] = {}
    batch_sops: dict[str, str] = {}  # SOP Instance UID -> SHA-256, in this batch
    for p in candidates:
        study, series, sop = p.uids
        sha = p.sha256

        known = stored_instances.get(sop)
        owner = stored_series.get(series) or batch_series.get(series)
        if sop in batch_sops:
            outcomes[id(p)] = _refused(
                p, f"SOP Instance UID {sop} appears twice in this batch", True, batch_sops[sop] == sha
            )
        elif known is not None and known[3] is not None:
            outcomes[id(p)] = _refused(
                p, f"SOP Instance UID {sop} was rejected ({known[3]}): not stored again"
            )
        elif known is not None and duplicates != "version":
            outcomes[id(p)] = _refused(p, f"SOP Instance UID {sop} is already stored", True, known[2] == sha)
        elif known is not None and known[:2] != (study, series):
            outcomes[id(p)] = _refused(p, f"SOP Instance UID {sop} is stored in another study or series")
        elif owner is not None and owner != study:
            outcomes[id(p)] = _refused(p, f"series {series} belongs to study {owner}")
        else:
            batch_sops[sop] = sha
            batch_series[series] = study
            if known is not None and known[2] == sha:
                outcomes[id(p)] = _stored(p)
            else:
                retention = None
                if policy is not None:
                    retention = retention_for(policy, stay_date(p.study_row["study_date"]))
                writes.append(_Write(p, sha, update=known is not None, retention=retention))
    _put_objects(objects, writes, workers)
    try:
        _index(catalog, writes, stored_series, stored_studies)
    except BaseException:
        _remove_versions(objects, writes)
        raise
    for w in writes:
        study, _, sop = w.parsed.uids
        outcomes[id(w.parsed)] = _stored(w.parsed)
    return [p if isinstance(p, StoreOutcome) else outcomes[id(p)] for p in parsed]


def _refused(p: _Parsed, reason: str, duplicate: bool = False, identical: bool = False) -> StoreOutcome:
    study, _, sop = p.uids
    return StoreOutcome(
        p.source, REFUSED, sop, study, reason, p.sop_class, duplicate, p.patient_id, identical,
        p.study_row["issuer_of_patient_id"],
    )  # fmt: skip


def _stored(p: _Parsed) -> StoreOutcome:
    study, _, sop = p.uids
    return StoreOutcome(
        p.source, STORED, sop, study, sop_class_uid=p.sop_class, patient_id=p.patient_id,
        issuer=p.study_row["issuer_of_patient_id"],
    )  # fmt: skip


def _known(
    catalog: Engine, candidates: list[_Parsed]
) -> tuple[dict[str, tuple[str, str, str, str | None]], dict[str, str], set[str]]:
    """What the catalog holds of these instances, their series and their studies."""
    instances: dict[str, tuple[str, str, str, str | None]] = {}  # study, series, sha, rejection
    series: dict[str, str] = {}
    studies: set[str] = set()
    with catalog.connect() as conn:
        for chunk in in_chunks(sorted({p.uids[2] for p in candidates})):
            stmt = select(
                DicomInstance.sop_instance_uid,
                DicomInstance.study_uid,
                DicomInstance.series_uid,
                DicomInstance.sha256,
                DicomInstance.rejection,
            ).where(DicomInstance.sop_instance_uid.in_(chunk))
            instances.update((row[0], tuple(row[1:])) for row in conn.execute(stmt))
        for chunk in in_chunks(sorted({p.uids[1] for p in candidates})):
            found = select(DicomSeries.series_uid, DicomSeries.study_uid)
            series.update((s, st) for s, st in conn.execute(found.where(DicomSeries.series_uid.in_(chunk))))
        for chunk in in_chunks(sorted({p.uids[0] for p in candidates})):
            studies.update(conn.scalars(select(DicomStudy.study_uid).where(DicomStudy.study_uid.in_(chunk))))
    return instances, series, studies


_WRITERS: tuple[int, ThreadPoolExecutor] | None = None  # (process id, pool)
_WRITERS_LOCK = threading.Lock()


def _writers() -> ThreadPoolExecutor:
    """This process's object-writing threads, started once (a pool per batch cost 1-4 ms); a
    forked child starts its own (it inherits the pool, not its threads)."""
    global _WRITERS
    with _WRITERS_LOCK:
        if _WRITERS is None or _WRITERS[0] != os.getpid():
            _WRITERS = (os.getpid(), ThreadPoolExecutor(PUT_THREADS, thread_name_prefix="hdhub-put"))
        return _WRITERS[1]


def _put_objects(objects: Any, writes: list[_Write], workers: IngestWorkers | None) -> None:
    """Write the objects, several at once (the writes wait on the disk or the network)."""
    jobs = [(object_key(*w.parsed.uids), w.parsed.data, w.parsed.uids[2], w.retention) for w in writes]
    results: list[Any]
    if workers is not None:
        results = workers.put(jobs)
    else:
        futures = [_writers().submit(put_object, objects, *job) for job in jobs]
        wait(futures)
        results = [f.exception() or f.result() for f in futures]
    for w, result in zip(writes, results, strict=True):
        w.version_id = result if isinstance(result, str) else None
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        _remove_versions(objects, writes)
        raise errors[0]


def put_object(objects: Any, key: str, data: bytes, sop: str, retention: Retention | None = None) -> str:
    """Write one instance's object (locked until ``retention``, if given); its version id."""
    info = objects.put(
        key, data, content_type="application/dicom", metadata={"sop-instance-uid": sop}, retention=retention
    )
    return str(info.version_id)


def _remove_versions(objects: Any, writes: list[_Write]) -> None:
    """Undo the object writes of a batch that is not indexed (best effort)."""
    for w in writes:
        if w.version_id is not None:
            try:
                objects.delete(object_key(*w.parsed.uids), w.version_id)
            except Exception:
                log.exception("could not remove the unindexed object %s", object_key(*w.parsed.uids))


def _index(
    catalog: Engine, writes: list[_Write], stored_series: dict[str, str], stored_studies: set[str]
) -> None:
    """The index rows of the written objects, in one transaction."""
    studies: dict[str, dict[str, Any]] = {}
    series: dict[str, dict[str, Any]] = {}
    instances: list[dict[str, Any]] = []
    now = utcnow()
    for w in writes:
        p = w.parsed
        study, series_uid, sop = p.uids
        row = p.instance_row | {
            "sop_instance_uid": sop,
            "sha256": w.sha256,
            "metadata_json": p.metadata,
            "received_at": now,
            "retain_until": w.retention.until if w.retention is not None else None,
        }
        if w.update:
            del row["sop_class_uid"], row["instance_number"]  # as first stored: same study and series
            instances.append(row)
            continue
        if study not in stored_studies and study not in studies:
            studies[study] = p.study_row | {"created_at": now}
        if series_uid not in stored_series and series_uid not in series:
            series[series_uid] = p.series_row
        instances.append(
            row
            | {"series_uid": series_uid, "study_uid": study, "object_key": object_key(study, series_uid, sop)}
        )
    updates = [r for r, w in zip(instances, writes, strict=True) if w.update]
    inserts = [r for r, w in zip(instances, writes, strict=True) if not w.update]
    with Session(catalog) as session, session.begin():
        if studies:
            session.execute(insert(DicomStudy), list(studies.values()))
        if series:
            session.execute(insert(DicomSeries), list(series.values()))
        if inserts:
            session.execute(insert(DicomInstance), inserts)
        if updates:
            session.execute(update(DicomInstance), updates)
        # New instances bring a series or study whose instances were all rejected back.
        revived = sorted({r["series_uid"] for r in inserts} - set(series))
        for chunk in in_chunks(revived):
            session.execute(
                update(DicomSeries).where(DicomSeries.series_uid.in_(chunk)).values(rejected_at=None)
            )
        for chunk in in_chunks(sorted({r["study_uid"] for r in inserts} - set(studies))):
            session.execute(
                update(DicomStudy).where(DicomStudy.study_uid.in_(chunk)).values(rejected_at=None)
            )
        for w in writes:
            if w.parsed.rejection is not None:
                rejections.apply(session.connection(), w.parsed.rejection, now)


def _study_row(ds: Dataset, study: str) -> dict[str, Any]:
    return {
        "study_uid": study,
        "patient_id": _text(ds, "PatientID", 64),
        "issuer_of_patient_id": _issuer(ds),
        "patient_name": _text(ds, "PatientName"),
        "patient_birth_date": _text(ds, "PatientBirthDate", 8),
        "patient_sex": _text(ds, "PatientSex", 16),
        "study_date": _text(ds, "StudyDate", 8),
        "study_time": _text(ds, "StudyTime", 16),
        "accession_number": _text(ds, "AccessionNumber", 64),
        "study_id": _text(ds, "StudyID", 64),
        "study_description": _text(ds, "StudyDescription"),
        "referring_physician_name": _text(ds, "ReferringPhysicianName"),
    }


def _series_row(ds: Dataset, series: str, study: str) -> dict[str, Any]:
    return {
        "series_uid": series,
        "study_uid": study,
        "modality": _text(ds, "Modality", 16),
        "series_number": _text(ds, "SeriesNumber", 16),
        "series_description": _text(ds, "SeriesDescription"),
        "body_part_examined": _text(ds, "BodyPartExamined", 64),
    }


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
    """The index rows of a study's (or series', or one) instances, in series and instance order
    (rejected ones left out)."""
    stmt = select(DicomInstance).where(
        DicomInstance.study_uid == study_uid, DicomInstance.rejected_at.is_(None)
    )
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


def study_patients(catalog: Engine, study_uids: Iterable[str]) -> list[tuple[str, str | None]]:
    """The patients of these studies (for audit events): (Patient ID, IssuerOfPatientID or
    None), sorted, without repeats."""
    uids = sorted(set(study_uids))
    found: set[tuple[str, str | None]] = set()
    with catalog.connect() as conn:
        for chunk in in_chunks(uids):
            stmt = select(DicomStudy.patient_id, DicomStudy.issuer_of_patient_id).where(
                DicomStudy.study_uid.in_(chunk)
            )
            found.update((p, issuer) for p, issuer in conn.execute(stmt) if p)
    return sorted(found, key=lambda p: (p[0], p[1] or ""))


def read_object(objects: Any, row: DicomInstance) -> bytes:
    """An instance's stored bytes, checked against the SHA-256 recorded at storage."""
    data = objects.get_bytes(row.object_key)
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise IntegrityError(
            f"DICOM instance {row.sop_instance_uid}: stored bytes do not match their checksum"
        )
    return data
