"""Storage policies of the imaging archive: retention as object lock, lifecycle, purge.

Each category of object has a policy (``imaging.policies`` in hdhub.toml): ``dicom`` for
every DICOM instance (keys ``dicom/…``), and one per category of non-DICOM object (keys
``media/<category>/…``). Defaults: locked for 20 years after the patient's last stay
(the French rule for medical records), in GOVERNANCE mode; videos to the COLD class after
90 days, pathology slides after 365; rejected objects purged 30 days after rejection.

An object is locked when stored, until its stay (study date; for other objects their
date) plus the policy's years. ``hdhub dicom apply-policies`` (daily, from cron or a
systemd timer) then:

1. extends the lock of every object of a patient (DICOM or not) to that patient's *last*
   stay known to the archive plus its category's years (a new study in 2030 keeps the
   2010 images and videos until 2050). A patient is (PatientID, IssuerOfPatientID): one
   site's patient never extends the lock of another site's patient with the same Patient
   ID. What has no known issuer (studies without IssuerOfPatientID, non-DICOM objects
   uploaded without one and not linked to a study of the archive) may be any of them: its
   stays count for every patient of that Patient ID, and its lock follows the latest of all
   their stays (kept too long is the safer error: an object deleted too early cannot come
   back);
2. moves objects to the COLD class after ``cold_after_days`` (the object store's
   lifecycle engine, with one rule per category);
3. purges rejected (IOCM) objects once ``purge_rejected_after_days`` have passed: a
   GOVERNANCE lock is bypassed for them (the privileged deletion that mode exists for), a
   COMPLIANCE lock or a legal hold is not: those stay, hidden, until it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import aliased

from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy, MediaObject
from hdhub.config.settings import LifecycleRule, Settings, StoragePolicy, default_policies
from hdhub.errors import ObjectLocked
from hdhub.objects.base import Retention
from hdhub.objects.lifecycle import apply_lifecycle


def effective(settings: Settings) -> dict[str, StoragePolicy]:
    """The configured policies over the defaults (a category left out keeps its default)."""
    return default_policies() | dict(settings.imaging.policies)


def prefix(category: str) -> str:
    return "dicom/" if category == "dicom" else f"media/{category}/"


def stay_date(value: str | None) -> date | None:
    """A DICOM DA (YYYYMMDD) as a date, or None."""
    try:
        return datetime.strptime((value or "").strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def retention_for(policy: StoragePolicy, stay: date | None, now: datetime | None = None) -> Retention | None:
    """The lock an object of this stay gets: ``retention_years`` after it (today, when the
    stay is unknown); None when the policy locks nothing or the date has passed."""
    now = now or datetime.now(UTC)
    if policy.retention_years == 0:
        return None
    base = stay or now.date()
    year = base.year + policy.retention_years
    day = min(base.day, 28) if base.month == 2 else base.day
    until = datetime(year, base.month, day, tzinfo=UTC) + timedelta(days=1)  # the whole last day
    return Retention(policy.retention_mode, until) if until > now else None


@dataclass
class PolicyReport:
    extended: int = 0  # objects whose lock was extended to a later stay
    transitioned: int = 0
    purged: int = 0  # rejected instances removed for good
    kept_locked: list[tuple[str, str]] = field(default_factory=list)  # key, why
    # Whose rejected instances were purged: (Patient ID, IssuerOfPatientID or None).
    patients: set[tuple[str, str | None]] = field(default_factory=set)


def apply_policies(hub: Any, now: datetime | None = None) -> PolicyReport:
    now = now or datetime.now(UTC)
    policies = effective(hub.settings)
    report = PolicyReport()
    _extend_retention(hub, policies, now, report)
    rules = [
        LifecycleRule(prefix=prefix(category), transition_after_days=policy.cold_after_days)
        for category, policy in policies.items()
        if policy.cold_after_days is not None
    ]
    report.transitioned = len(apply_lifecycle(hub.objects, rules, now=now).transitioned)
    _purge_rejected(hub, policies["dicom"], now, report)
    return report


# A patient: (Patient ID, IssuerOfPatientID or None when the issuer is unknown).
Patient = tuple[str, str | None]
# A non-DICOM object's issuer: its own (given at upload, or its study's then), else that of
# the study it names when it is the same Patient ID's (objects uploaded before the column).
_LINKED = aliased(DicomStudy)
_MEDIA_ISSUER = func.coalesce(MediaObject.issuer_of_patient_id, _LINKED.issuer_of_patient_id)
_MEDIA_LINK = and_(_LINKED.study_uid == MediaObject.study_uid, _LINKED.patient_id == MediaObject.patient_id)


def _later(a: date | None, b: date | None) -> date | None:
    return b if a is None else a if b is None else max(a, b)


def _last_stays(hub: Any) -> dict[Patient, date | None]:
    """Each patient's last stay known to the archive: latest visible study or object date,
    per (Patient ID, issuer); None for a patient without any dated stay."""
    stays: dict[Patient, date | None] = {}
    with hub.catalog.connect() as conn:
        rows = [
            *conn.execute(
                select(
                    DicomStudy.patient_id, DicomStudy.issuer_of_patient_id, func.max(DicomStudy.study_date)
                )
                .where(DicomStudy.rejected_at.is_(None), DicomStudy.patient_id.is_not(None))
                .group_by(DicomStudy.patient_id, DicomStudy.issuer_of_patient_id)
            ),
            *conn.execute(
                select(MediaObject.patient_id, _MEDIA_ISSUER, func.max(MediaObject.stay_date))
                .outerjoin(_LINKED, _MEDIA_LINK)
                .where(MediaObject.status == "available")
                .group_by(MediaObject.patient_id, _MEDIA_ISSUER)
            ),
        ]
    for patient, issuer, day in rows:
        key = (patient, issuer)
        stays[key] = _later(stays.get(key), stay_date(day))
    return stays


def _last_stay_of(stays: dict[Patient, date | None]) -> Callable[[str, str | None], date | None]:
    """The last stay an object of a patient follows: its own patient's and those with no known
    issuer (they may be that patient); for an object whose issuer is unknown, every patient
    of its Patient ID's (it may be any of them). Never another issuer's stays."""
    unknown: dict[str, date | None] = {}
    any_issuer: dict[str, date | None] = {}
    for (patient, issuer), stay in stays.items():
        any_issuer[patient] = _later(any_issuer.get(patient), stay)
        if issuer is None:
            unknown[patient] = stay

    def last(patient: str, issuer: str | None) -> date | None:
        if issuer is None:
            return any_issuer.get(patient)
        return _later(stays.get((patient, issuer)), unknown.get(patient))

    return last


def _extend_retention(
    hub: Any, policies: dict[str, StoragePolicy], now: datetime, report: PolicyReport
) -> None:
    last_stay = _last_stay_of(_last_stays(hub))
    with hub.catalog.connect() as conn:
        dicom = conn.execute(
            select(
                DicomInstance.sop_instance_uid,
                DicomInstance.object_key,
                DicomInstance.retain_until,
                DicomStudy.patient_id,
                DicomStudy.issuer_of_patient_id,
            )
            .join(DicomStudy, DicomStudy.study_uid == DicomInstance.study_uid)
            .where(DicomInstance.rejected_at.is_(None), DicomStudy.patient_id.is_not(None))
        ).all()
        others = conn.execute(
            select(
                MediaObject.id,
                MediaObject.object_key,
                MediaObject.retain_until,
                MediaObject.patient_id,
                _MEDIA_ISSUER,
                MediaObject.category,
            )
            .outerjoin(_LINKED, _MEDIA_LINK)
            .where(MediaObject.status == "available")
        ).all()
    jobs = [(DicomInstance, DicomInstance.sop_instance_uid, *row, "dicom") for row in dicom]
    jobs += [(MediaObject, MediaObject.id, *row) for row in others]
    for model, id_column, ident, key, current, patient, issuer, category in jobs:
        policy = policies.get(category, policies["document"])
        wanted = retention_for(policy, last_stay(patient, issuer), now)
        if wanted is None or (current is not None and _aware(current) >= wanted.until):
            continue
        for version in hub.objects.versions(key):
            if version.key == key and not version.delete_marker:
                hub.objects.set_retention(key, version.version_id, wanted)
        with hub.catalog.begin() as conn:
            conn.execute(update(model).where(id_column == ident).values(retain_until=wanted.until))
        report.extended += 1


def _purge_rejected(hub: Any, policy: StoragePolicy, now: datetime, report: PolicyReport) -> None:
    due = now - timedelta(days=policy.purge_rejected_after_days)
    with hub.catalog.connect() as conn:
        rows = conn.execute(
            select(
                DicomInstance.sop_instance_uid,
                DicomInstance.object_key,
                DicomStudy.patient_id,
                DicomStudy.issuer_of_patient_id,
            )
            .join(DicomStudy, DicomStudy.study_uid == DicomInstance.study_uid)
            .where(DicomInstance.rejected_at.is_not(None), DicomInstance.rejected_at <= due)
        ).all()
    for sop, key, patient, issuer in rows:
        locked = None
        for version in hub.objects.versions(key):
            if version.key != key:
                continue
            try:
                if version.delete_marker:
                    hub.objects.delete(key, version.version_id)
                else:
                    hub.objects.delete(key, version.version_id, bypass_governance=True)
            except ObjectLocked as exc:
                locked = exc.message
        if locked is not None:
            report.kept_locked.append((key, locked))
            continue
        with hub.catalog.begin() as conn:
            conn.execute(delete(DicomInstance).where(DicomInstance.sop_instance_uid == sop))
        report.purged += 1
        if patient:
            report.patients.add((patient, issuer))
    # Series and studies with no instance left are removed from the index too.
    with hub.catalog.begin() as conn:
        held = aliased(DicomInstance)
        conn.execute(
            delete(DicomSeries).where(
                DicomSeries.rejected_at.is_not(None),
                ~exists().where(held.series_uid == DicomSeries.series_uid),
            )
        )
        remaining = aliased(DicomSeries)
        conn.execute(
            delete(DicomStudy).where(
                DicomStudy.rejected_at.is_not(None),
                ~exists().where(remaining.study_uid == DicomStudy.study_uid),
            )
        )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
