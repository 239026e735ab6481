"""A patient of the archive is (PatientID, IssuerOfPatientID): the index keeps the issuer,
QIDO-RS matches and returns it, and a hostile value is cut like every indexed LO value."""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import orjson
import pydicom
import pydicom.data
import pytest
import sqlalchemy as sa
from alembic import command
from pydicom.uid import generate_uid
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.catalog.migrate import alembic_config, head_revision, upgrade
from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy
from hdhub.errors import ValidationError
from hdhub.hub import Hub
from hdhub.imaging.qido import parse_query, search
from hdhub.imaging.reach import reached
from hdhub.imaging.store import STORED, read_instance, store_instance, store_instances, study_patients

MR_SMALL = Path(pydicom.data.get_testdata_file("MR_small.dcm"))
NORD, SUD = "https://hdhub.example/chu-nord/ipp", "https://hdhub.example/ch-sud/ipp"
IPP = "0012345678"  # issued by both sites, to two different people


def instance(study: str, **attributes: str) -> bytes:
    """MR_small.dcm with a new study, series and instance and these attributes."""
    ds = pydicom.dcmread(MR_SMALL)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buf = BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of values longer than their VR allows
        ds.save_as(buf)
    return buf.getvalue()


def studies(hub: Hub, **params: str) -> dict[str, str | None]:
    """QIDO-RS study search: Study Instance UID -> IssuerOfPatientID returned."""
    found = search(hub.catalog, parse_query(list(params.items())), "")
    return {m["0020000D"]["Value"][0]: (m["00100021"].get("Value") or [None])[0] for m in found}


def test_one_patient_id_two_issuers_are_two_patients(hub: Hub) -> None:
    nord, sud, unknown, other = (generate_uid() for _ in range(4))
    outcomes = store_instances(hub.catalog, hub.objects, [
        (instance(nord, PatientID=IPP, IssuerOfPatientID=NORD, PatientName="Durand^Marie"), "nord"),
        (instance(sud, PatientID=IPP, IssuerOfPatientID=SUD, PatientName="Petit^Jean"), "sud"),
        (instance(unknown, PatientID=IPP, PatientName="Durand^Marie"), "no issuer"),
        (instance(other, PatientID="0099999999", IssuerOfPatientID=f"  {NORD} "), "padded"),
    ])  # fmt: skip
    assert [o.status for o in outcomes] == [STORED] * 4
    assert [o.issuer for o in outcomes] == [NORD, SUD, None, NORD]  # LO padding is not significant
    with Session(hub.catalog) as s:
        rows = dict(s.execute(select(DicomStudy.study_uid, DicomStudy.issuer_of_patient_id)).all())
    assert {k: rows[k] for k in (nord, sud, unknown, other)} == {
        nord: NORD,
        sud: SUD,
        unknown: None,
        other: NORD,
    }

    # QIDO-RS: IssuerOfPatientID matches exactly (case-sensitive), with wildcards, or universally.
    assert studies(hub, PatientID=IPP) == {nord: NORD, sud: SUD, unknown: None}
    assert studies(hub, PatientID=IPP, IssuerOfPatientID=NORD) == {nord: NORD}
    assert studies(hub, PatientID=IPP, IssuerOfPatientID=SUD) == {sud: SUD}
    assert studies(hub, IssuerOfPatientID=NORD) == {nord: NORD, other: NORD}
    assert studies(hub, PatientID=IPP, IssuerOfPatientID="") == {nord: NORD, sud: SUD, unknown: None}
    assert studies(hub, PatientID=IPP, IssuerOfPatientID="*/ch-sud/*") == {sud: SUD}
    assert studies(hub, PatientID=IPP, IssuerOfPatientID=NORD.upper()) == {}
    by_tag = search(hub.catalog, parse_query([("00100020", IPP), ("00100021", SUD)]), "")
    assert [m["0020000D"]["Value"][0] for m in by_tag] == [sud]
    # Returned at every level (the study's attributes are), with its VR.
    [series] = search(hub.catalog, parse_query([("IssuerOfPatientID", SUD)], "series"), "")
    assert series["00100021"] == {"vr": "LO", "Value": [SUD]}
    [bare] = search(hub.catalog, parse_query([("StudyInstanceUID", unknown)]), "")
    assert bare["00100021"] == {"vr": "LO"}

    # The audit fields name each patient with its issuer; the indexed patient_id stays the IDs.
    patients = study_patients(hub.catalog, [nord, sud, unknown])
    assert patients == [(IPP, None), (IPP, SUD), (IPP, NORD)]  # sorted by issuer
    fields = reached([nord, sud, unknown], patients)
    assert fields["patient_id"] == IPP and fields["detail"]["patients"] == [IPP]
    assert fields["detail"]["patient_issuers"] == [
        {"patient_id": IPP, "issuer": None},
        {"patient_id": IPP, "issuer": SUD},
        {"patient_id": IPP, "issuer": NORD},
    ]
    assert "patient_issuers" not in reached([nord], [IPP])["detail"]  # Patient IDs alone: as before


def test_a_hostile_issuer_is_cut_like_every_indexed_lo_value(hub: Hub) -> None:
    study = generate_uid()
    hostile = "A" * 64 + "B" * (10_000 - 64)
    data = instance(study, PatientID=IPP, IssuerOfPatientID=hostile)
    outcome = store_instance(hub.catalog, hub.objects, data)
    assert outcome.status == STORED and outcome.issuer == "A" * 64
    with Session(hub.catalog) as s:
        row = s.get(DicomStudy, study)
        assert row is not None and row.issuer_of_patient_id == "A" * 64
        counts = [
            s.scalar(select(func.count()).select_from(m).where(m.study_uid == study))
            for m in (DicomSeries, DicomInstance)
        ]
        metadata = orjson.loads(
            s.scalar(select(DicomInstance.metadata_json).where(DicomInstance.study_uid == study))
        )
    # Stored whole: its series and instance indexed, the file's bytes unchanged, its /metadata
    # the file's (the whole value, as received); only the index column is cut.
    assert counts == [1, 1]
    assert read_instance(hub.catalog, hub.objects, str(outcome.sop_instance_uid)) == data
    assert metadata["00100021"] == {"vr": "LO", "Value": [hostile]}
    assert studies(hub, IssuerOfPatientID="A" * 64) == {study: "A" * 64}
    # A query value that long is refused (400), as for every key.
    with pytest.raises(ValidationError, match="too long"):
        parse_query([("IssuerOfPatientID", hostile)])
    # A value of spaces only is no issuer.
    blank = generate_uid()
    assert (
        store_instance(
            hub.catalog, hub.objects, instance(blank, PatientID=IPP, IssuerOfPatientID="   ")
        ).issuer
        is None
    )
    assert studies(hub, StudyInstanceUID=blank) == {blank: None}


def test_studies_stored_before_the_migration_keep_no_issuer(hub: Hub) -> None:
    """Upgrading a catalog holding studies: they stay, issuer unknown, found by Patient ID."""
    cfg = alembic_config(hub.catalog)
    command.downgrade(cfg, "0011")
    with hub.catalog.begin() as conn:
        assert "issuer_of_patient_id" not in {
            c["name"] for c in sa.inspect(conn).get_columns("dicom_studies")
        }
        conn.execute(
            sa.text("INSERT INTO dicom_studies (study_uid, patient_id, created_at) VALUES (:u, :p, :t)"),
            {"u": "1.2.3.4", "p": IPP, "t": "2026-01-01 00:00:00"},
        )
    assert upgrade(hub.catalog) == head_revision()
    with Session(hub.catalog) as s:
        row = s.get(DicomStudy, "1.2.3.4")
        assert row is not None and row.patient_id == IPP and row.issuer_of_patient_id is None
    assert studies(hub, PatientID=IPP) == {"1.2.3.4": None}
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(hub.catalog).get_indexes("dicom_studies")}
    assert indexes["ix_dicom_studies_patient_id_issuer"] == ["patient_id", "issuer_of_patient_id"]


def test_c_find_matches_the_issuer_too(hub: Hub) -> None:
    """C-FIND is answered by the QIDO-RS query code: IssuerOfPatientID is a key there too."""
    from pydicom.dataset import Dataset

    from hdhub.imaging.dimse import _find_params

    nord, sud = generate_uid(), generate_uid()
    for study, issuer in ((nord, NORD), (sud, SUD)):
        assert (
            store_instance(
                hub.catalog, hub.objects, instance(study, PatientID=IPP, IssuerOfPatientID=issuer)
            ).status
            == STORED
        )
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientID, identifier.IssuerOfPatientID, identifier.StudyInstanceUID = IPP, SUD, ""
    level, params, _, _ = _find_params(identifier)
    assert level == "study" and params == [("PatientID", IPP), ("IssuerOfPatientID", SUD)]
    assert studies(hub, **dict(params)) == {sud: SUD}


def test_two_sites_patients_with_one_ipp_get_studies_of_their_own() -> None:
    """The synthetic images are drawn from (issuer, IPP): every site numbers from 00…"""
    from hdhub.synth.dicom import ImagingPatient
    from hdhub.synth.dicom import studies as synth_studies

    nord = ImagingPatient(IPP, "Durand", "Marie", "19560312", "F", ("20230611141500",), NORD, "CHU Nord")
    sud = ImagingPatient(IPP, "Petit", "Jean", "19700101", "M", ("20230611141500",), SUD, "CH Sud")
    made = {p.issuer: list(synth_studies(p, seed=1, count=1)) for p in (nord, sud)}
    assert not {i.sop_uid for i in made[NORD]} & {i.sop_uid for i in made[SUD]}
    for issuer, instances in made.items():
        ds = pydicom.dcmread(BytesIO(instances[0].data))
        assert (ds.PatientID, ds.IssuerOfPatientID) == (IPP, issuer)
