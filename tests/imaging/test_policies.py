"""Storage policies: locks from the last stay, refusal to delete, lifecycle, purge of rejections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from hdhub.catalog.models import DicomInstance
from hdhub.cli.main import app
from hdhub.config.settings import StoragePolicy
from hdhub.errors import NotFound, ObjectLocked
from hdhub.hub import Hub
from hdhub.imaging.policies import apply_policies, retention_for
from hdhub.imaging.rejection import reject
from hdhub.imaging.store import STORED, instance_rows, object_key, read_object, store_for_hub
from tests.imaging.test_store import _counts, _variant


def _store(hub: Hub, patient: str, study_date: str, n: int = 2) -> tuple[str, str, list[str]]:
    from io import BytesIO

    import pydicom

    study, series = generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(n)]
    items = []
    for sop in sops:
        ds = pydicom.dcmread(BytesIO(_variant(study, series, sop)))
        ds.PatientID, ds.StudyDate = patient, study_date
        buf = BytesIO()
        ds.save_as(buf)
        items.append((buf.getvalue(), sop))
    assert all(o.status == STORED for o in store_for_hub(hub, items))
    return study, series, sops


def _lock(hub: Hub, study: str, series: str, sop: str) -> datetime:
    info = hub.objects.head(object_key(study, series, sop))
    assert info.retention is not None
    return info.retention.until


def test_retention_rule() -> None:
    policy = StoragePolicy()  # 20 years, GOVERNANCE
    now = datetime(2026, 11, 26, tzinfo=UTC)
    lock = retention_for(policy, date(2024, 2, 29), now)
    assert lock is not None and lock.mode == "GOVERNANCE" and lock.until == datetime(2044, 2, 29, tzinfo=UTC)
    assert retention_for(policy, date(1990, 1, 1), now) is None  # the 20 years are over
    assert retention_for(StoragePolicy(retention_years=0), date(2024, 1, 1), now) is None


def test_locked_from_the_last_stay_and_never_deleted(hub: Hub) -> None:
    """Stored in 2010, locked to 2030; a 2024 stay of the same patient extends it to 2044."""
    old = _store(hub, "IPP-7", "20100304")
    assert _lock(hub, *old[:2], old[2][0]) == datetime(2030, 3, 5, tzinfo=UTC)
    key = object_key(old[0], old[1], old[2][0])
    with pytest.raises(ObjectLocked):
        hub.objects.delete(key, hub.objects.head(key).version_id)
    new = _store(hub, "IPP-7", "20240601", n=1)
    report = apply_policies(hub)
    assert report.extended == 2  # the two 2010 instances; the 2024 one is already there
    assert _lock(hub, *old[:2], old[2][1]) == datetime(2044, 6, 2, tzinfo=UTC)
    assert _lock(hub, *new[:2], new[2][0]) == datetime(2044, 6, 2, tzinfo=UTC)
    assert apply_policies(hub).extended == 0  # nothing left to do
    with Session(hub.catalog) as s:
        until = s.scalar(
            select(DicomInstance.retain_until).where(DicomInstance.sop_instance_uid == old[2][0])
        )
    assert until is not None and until.replace(tzinfo=UTC) == datetime(2044, 6, 2, tzinfo=UTC)


def test_rejected_instances_are_purged_when_their_lock_allows(hub: Hub) -> None:
    study, series, sops = _store(hub, "IPP-8", "20250101")
    reject(hub.catalog, study, series, sops[0], "113001")
    assert apply_policies(hub).purged == 0  # the 30 days of grace are not over
    later = datetime.now(UTC) + timedelta(days=31)
    report = apply_policies(hub, now=later)
    assert report.purged == 1 and report.patients == {("IPP-8", None)}  # GOVERNANCE lock bypassed
    assert not [v for v in hub.objects.versions(object_key(study, series, sops[0])) if not v.delete_marker]
    assert [r.sop_instance_uid for r in instance_rows(hub.catalog, study)] == [sops[1]]
    # The whole study rejected and purged: no row is left.
    reject(hub.catalog, study, code="113039")
    assert apply_policies(hub, now=later).purged == 1
    assert _counts(hub) == (0, 0, 0)


def test_compliance_locks_keep_rejected_objects_hidden_until_they_end(local_hub: Hub) -> None:
    local_hub.settings.imaging.policies = {"dicom": StoragePolicy(retention_mode="COMPLIANCE")}
    study, _, sops = _store(local_hub, "IPP-9", "20250101", n=1)
    reject(local_hub.catalog, study, code="113037")
    report = apply_policies(local_hub, now=datetime.now(UTC) + timedelta(days=31))
    assert report.purged == 0 and "COMPLIANCE" in report.kept_locked[0][1]
    assert read_object(local_hub.objects, _row(local_hub, sops[0]))  # kept, hidden from queries
    with pytest.raises(NotFound):
        instance_rows(local_hub.catalog, study)


def _row(hub: Hub, sop: str) -> DicomInstance:
    with Session(hub.catalog) as s:
        row = s.get(DicomInstance, sop)
        s.expunge(row)
    return row


def test_lifecycle_moves_old_objects_to_the_cold_class(hub: Hub) -> None:
    hub.settings.imaging.policies = {"dicom": StoragePolicy(cold_after_days=90)}
    study, series, sops = _store(hub, "IPP-10", "20250101", n=1)
    assert apply_policies(hub).transitioned == 0
    assert apply_policies(hub, now=datetime.now(UTC) + timedelta(days=91)).transitioned == 1
    key = object_key(study, series, sops[0])
    assert hub.objects.head(key).storage_class == "COLD"
    assert read_object(hub.objects, instance_rows(hub.catalog, study)[0])  # still retrieved


def test_cli_apply_policies(local_hub: Hub) -> None:
    _store(local_hub, "IPP-11", "20100101", n=1)
    _store(local_hub, "IPP-11", "20200101", n=1)
    r = CliRunner().invoke(app, ["--home", str(local_hub.settings.home), "dicom", "apply-policies"])
    assert r.exit_code == 0 and "locks extended: 1" in r.output, r.output
    assert local_hub.audit.count(action="imaging.apply-policies") == 1


def test_videos_follow_the_patients_last_stay_and_go_cold_after_90_days(hub: Hub) -> None:
    from hdhub.imaging import media

    video = media.create_upload(
        hub, size=3, category="video", patient_id="IPP-12", created_by="t", date="20200110"
    )
    video = media.append(hub, video.id, 0, b"abc")
    assert hub.objects.head(video.object_key).retention.until == datetime(2040, 1, 11, tzinfo=UTC)
    _store(hub, "IPP-12", "20230505", n=1)  # a later stay of the same patient, in the DICOM archive
    report = apply_policies(hub, now=datetime.now(UTC) + timedelta(days=91))
    assert report.extended == 1 and report.transitioned == 1  # the video, not the 2023 images
    info = hub.objects.head(video.object_key)
    assert info.retention.until == datetime(2043, 5, 6, tzinfo=UTC) and info.storage_class == "COLD"


def test_the_last_stay_is_each_patients_own_patient_id_and_issuer(hub: Hub) -> None:
    """One Patient ID issued by two sites is two patients: one's later stay does not extend the
    other's lock. A stay with no known issuer may be either: it counts for both, and what has
    no known issuer follows the latest stay of its Patient ID's."""
    from hdhub.imaging import media
    from tests.imaging.test_patient_issuer import IPP, NORD, SUD, instance

    def store(study_date: str, **issuer: str) -> tuple[str, str, str]:
        study = generate_uid()
        [o] = store_for_hub(hub, [(instance(study, PatientID=IPP, StudyDate=study_date, **issuer), "x")])
        assert o.status == STORED
        [row] = instance_rows(hub.catalog, study)
        return study, row.series_uid, row.sop_instance_uid

    def retain_until(sop: str) -> datetime:
        with Session(hub.catalog) as s:
            until = s.scalar(select(DicomInstance.retain_until).where(DicomInstance.sop_instance_uid == sop))
        assert until is not None
        return until.replace(tzinfo=UTC)

    nord = store("20100304", IssuerOfPatientID=NORD)
    sud = store("20240601", IssuerOfPatientID=SUD)
    assert apply_policies(hub).extended == 0  # the South's 2024 stay is another patient's
    assert _lock(hub, *nord) == retain_until(nord[2]) == datetime(2030, 3, 5, tzinfo=UTC)
    assert _lock(hub, *sud) == retain_until(sud[2]) == datetime(2044, 6, 2, tzinfo=UTC)

    # A video of the North's patient (it names the North's study) follows the North's stays.
    video = media.create_upload(
        hub, size=3, category="video", patient_id=IPP, created_by="t", date="20110101", study_uid=nord[0]
    )
    video = media.append(hub, video.id, 0, b"abc")
    assert apply_policies(hub).extended == 1  # the video, to the North's 2010 stay only
    assert hub.objects.head(video.object_key).retention.until == datetime(2031, 1, 2, tzinfo=UTC)

    # A 2015 study without an issuer may be either patient's: the North's lock goes to 2035
    # (the South's is later already), and it follows the latest stay of the Patient ID.
    unknown = store("20150101")
    assert retain_until(unknown[2]) == datetime(2035, 1, 2, tzinfo=UTC)
    assert apply_policies(hub).extended == 3  # the North's image and video, the unknown study
    assert _lock(hub, *nord) == retain_until(nord[2]) == datetime(2035, 1, 2, tzinfo=UTC)
    assert hub.objects.head(video.object_key).retention.until == datetime(2035, 1, 2, tzinfo=UTC)
    assert _lock(hub, *sud) == retain_until(sud[2]) == datetime(2044, 6, 2, tzinfo=UTC)
    assert _lock(hub, *unknown) == retain_until(unknown[2]) == datetime(2044, 6, 2, tzinfo=UTC)
