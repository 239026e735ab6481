"""IHE IOCM rejection: instances withdrawn from use, hidden at once, purged by policy.

A rejection names a reason from the IOCM rejection note titles (DICOM CID 7011, scheme
DCM). The rejected instances leave every search and retrieval at once (QIDO-RS, WADO-RS,
thumbnails, C-FIND, C-MOVE); a series or study left with no visible instance leaves
with them. Their objects stay until the storage policy job purges them, once their
retention lets it (``imaging.policies``). An instance once rejected is not stored again.

Rejections arrive three ways: a Key Object Selection document titled with a rejection
code, stored like any instance (STOW-RS, C-STORE, import; the IHE IOCM way); ``POST
/dicomweb/studies/{study}[/series/{series}[/instances/{instance}]]/reject/{code}^DCM``
(as dcm4chee); ``hdhub dicom reject``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, select, update
from sqlalchemy.orm import aliased

from hdhub.catalog.db import in_chunks
from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy, utcnow
from hdhub.errors import NotFound, ValidationError

KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
# CID 7011 Rejected for ... (IHE IOCM), coding scheme DCM.
REASONS = {
    "113001": "Rejected for Quality Reasons",
    "113037": "Rejected for Patient Safety Reasons",
    "113038": "Incorrect Modality Worklist Entry",
    "113039": "Data Retention Policy Expired",
}
ALIASES = {"quality": "113001", "safety": "113037", "worklist": "113038", "retention": "113039"}


@dataclass
class Rejection:
    code: str  # a key of REASONS
    # (study, series, instance) references; series or instance None: all of them
    references: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.code}^DCM {REASONS[self.code]}"


def reason_code(value: str) -> str:
    """``113001``, ``113001^DCM`` or an alias (quality, safety, worklist, retention)."""
    code, _, scheme = value.strip().partition("^")
    code = ALIASES.get(code.lower(), code)
    if code not in REASONS or scheme not in ("", "DCM"):
        known = ", ".join(f"{c} ({n})" for c, n in REASONS.items())
        raise ValidationError(f"{value!r} is not an IOCM rejection reason: use one of {known}")
    return code


def from_kos(ds: Any) -> Rejection | None:
    """The rejection a Key Object Selection document carries, if its title is one."""
    try:
        title = ds.ConceptNameCodeSequence[0]
        code, scheme = str(title.CodeValue), str(title.CodingSchemeDesignator)
    except (AttributeError, IndexError, KeyError):
        return None
    if scheme != "DCM" or code not in REASONS:
        return None
    rejection = Rejection(code)
    for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.get("ReferencedSeriesSequence", []):
            for sop in series.get("ReferencedSOPSequence", []):
                rejection.references.append(
                    (
                        str(study.StudyInstanceUID),
                        str(series.SeriesInstanceUID),
                        str(sop.ReferencedSOPInstanceUID),
                    )
                )
    return rejection if rejection.references else None


@dataclass
class RejectReport:
    instances: int = 0
    studies: set[str] = field(default_factory=set)
    # (Patient ID, IssuerOfPatientID or None): one Patient ID may be two patients of two sites.
    patients: set[tuple[str, str | None]] = field(default_factory=set)


def apply(conn: Connection, rejection: Rejection, now: datetime | None = None) -> RejectReport:
    """Mark the referenced visible instances rejected, then their emptied series and studies
    (inside the caller's transaction)."""
    now = now or utcnow()
    report = RejectReport()
    series_touched: set[str] = set()
    for study, series, sop in rejection.references:
        stmt = select(DicomInstance.sop_instance_uid, DicomInstance.series_uid).where(
            DicomInstance.study_uid == study, DicomInstance.rejected_at.is_(None)
        )
        if series is not None:
            stmt = stmt.where(DicomInstance.series_uid == series)
        if sop is not None:
            stmt = stmt.where(DicomInstance.sop_instance_uid == sop)
        rows = conn.execute(stmt).all()
        if not rows:
            continue
        for chunk in in_chunks([r[0] for r in rows]):
            conn.execute(
                update(DicomInstance)
                .where(DicomInstance.sop_instance_uid.in_(chunk))
                .values(rejected_at=now, rejection=rejection.label)
            )
        report.instances += len(rows)
        report.studies.add(study)
        series_touched.update(r[1] for r in rows)
    visible = aliased(DicomInstance)
    for chunk in in_chunks(sorted(series_touched)):
        conn.execute(
            update(DicomSeries)
            .where(
                DicomSeries.series_uid.in_(chunk),
                ~exists().where(visible.series_uid == DicomSeries.series_uid, visible.rejected_at.is_(None)),
            )
            .values(rejected_at=now)
        )
    for chunk in in_chunks(sorted(report.studies)):
        conn.execute(
            update(DicomStudy)
            .where(
                DicomStudy.study_uid.in_(chunk),
                ~exists().where(visible.study_uid == DicomStudy.study_uid, visible.rejected_at.is_(None)),
            )
            .values(rejected_at=now)
        )
        patients = select(DicomStudy.patient_id, DicomStudy.issuer_of_patient_id).where(
            DicomStudy.study_uid.in_(chunk)
        )
        report.patients.update((p, issuer) for p, issuer in conn.execute(patients) if p)
    return report


def reject(
    catalog: Any, study: str, series: str | None = None, instance: str | None = None, code: str = "113001"
) -> RejectReport:
    """Reject a study, a series or an instance (again: nothing more to do, no error);
    NotFound when the archive never held it."""
    rejection = Rejection(reason_code(code), [(study, series, instance)])
    with catalog.begin() as conn:
        report = apply(conn, rejection)
        if not report.instances:
            stmt = select(DicomInstance.sop_instance_uid).where(DicomInstance.study_uid == study)
            if series is not None:
                stmt = stmt.where(DicomInstance.series_uid == series)
            if instance is not None:
                stmt = stmt.where(DicomInstance.sop_instance_uid == instance)
            if conn.execute(stmt.limit(1)).first() is None:
                raise NotFound(f"no DICOM instance for {instance or series or study}")
    return report
