"""Synthetic DICOM studies: deterministic for a seed, readable by pydicom, accepted and
rendered by the archive; the demo stores them once through the `hdhub ingest dicom` path."""

from __future__ import annotations

import re
from collections import Counter
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.catalog.models import DicomInstance, DicomStudy
from hdhub.cli.context import CliState
from hdhub.cli.demo_imaging import demo_imaging
from hdhub.hub import Hub
from hdhub.imaging.qido import parse_query, search
from hdhub.imaging.render import THUMBNAIL, render
from hdhub.imaging.store import STORED, store_instances
from hdhub.synth import generate
from hdhub.synth.dicom import (
    CT_IMAGE_STORAGE,
    MR_IMAGE_STORAGE,
    ImagingPatient,
    generate_studies,
    site_patients,
    studies,
    write_studies,
)

SEEN = ("19990101120000", "20120304101500", "20230611141500")
IPP_SYSTEM = "https://hdhub.example/nord/ipp"
PATIENTS = [
    ImagingPatient(f"00{n:08d}", "Lefèvre", "Hélène", "19610704", "MF"[n % 2], SEEN, IPP_SYSTEM, "CHU Nord")
    for n in range(12)
]


def test_deterministic_for_a_seed() -> None:
    a = [(i.path, i.data) for i in generate_studies(PATIENTS[:4], seed=3)]
    b = [(i.path, i.data) for i in generate_studies(PATIENTS[:4], seed=3)]
    c = [(i.path, i.data) for i in generate_studies(PATIENTS[:4], seed=4)]
    assert a == b and a != c
    assert not {p for p, _ in a} & {p for p, _ in c}  # another seed, other UIDs
    # A patient's studies do not depend on the patients generated before them.
    alone = [(i.path, i.data) for i in generate_studies(PATIENTS[3:4], seed=3)]
    assert alone == [x for x in a if x[1] in {d for _, d in alone}]


def test_instances_are_valid_dicom_of_the_patient() -> None:
    patient = PATIENTS[1]
    made = list(studies(patient, seed=5, count=2))
    assert 10 <= len(made) <= 40
    study_dates = set()
    for instance in made:
        ds = pydicom.dcmread(BytesIO(instance.data))
        assert instance.data[128:132] == b"DICM"
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID in (CT_IMAGE_STORAGE, MR_IMAGE_STORAGE) and ds.Modality in ("CT", "MR")
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == instance.sop_uid
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
            assert re.fullmatch(r"2\.25\.[1-9]\d*", uid) and len(uid) <= 64
        assert (ds.PatientID, str(ds.PatientName)) == (patient.patient_id, "Lefèvre^Hélène")
        assert (ds.PatientBirthDate, ds.PatientSex) == (patient.birth_date, patient.sex)
        assert ds.IssuerOfPatientID == patient.issuer and ds.InstitutionName == "CHU Nord"
        assert ds.StudyDate in {s[:8] for s in patient.seen} and ds.StudyDate >= "20050101"
        study_dates.add((ds.StudyInstanceUID, ds.StudyDate))
        pixels = pixel_array(ds)
        assert pixels.shape == (128, 128) and int(pixels.max()) > int(pixels.min())  # shapes, not a blank
    assert len(study_dates) == 2 and len({d for _, d in study_dates}) == 2  # two studies, two days
    series = Counter(i.series_uid for i in made)
    assert all(n >= 5 for n in series.values()) and len(series) >= 4


def test_written_one_at_a_time(tmp_path: Path) -> None:
    report = write_studies(tmp_path, PATIENTS, seed=1)
    assert report.patients == 12 and report.instances >= 150 and report.studies >= 12
    files = list(tmp_path.rglob("*.dcm"))
    assert len(files) == report.instances and sum(f.stat().st_size for f in files) == report.bytes


def test_accepted_searched_and_rendered_by_the_archive(local_hub: Hub) -> None:
    made = list(generate_studies(PATIENTS[:3], seed=2))
    outcomes = store_instances(local_hub.catalog, local_hub.objects, [(i.data, i.path) for i in made])
    assert [o.status for o in outcomes] == [STORED] * len(made)
    found = search(local_hub.catalog, parse_query([("PatientID", PATIENTS[0].patient_id)]), "")
    assert found and found[0]["00100010"]["Value"] == [{"Alphabetic": "Lefèvre^Hélène"}]
    assert sum(f["00201208"]["Value"][0] for f in found) == sum(i.patient_id == "0000000000" for i in made)
    thumbnail = render(made[0].data, media_type="image/jpeg", viewport=THUMBNAIL)
    assert thumbnail.startswith(b"\xff\xd8\xff")


def test_patients_of_a_synthetic_site(tmp_path: Path) -> None:
    generate(tmp_path, patients=60, sites=3, seed=9)
    chosen = site_patients(tmp_path / "chu-nord", 5)
    assert len(chosen) == 5 and len({p.patient_id for p in chosen}) == 5
    for p in chosen:
        assert re.fullmatch(r"\d{10}", p.patient_id) and p.issuer.endswith("/chu-nord/ipp")
        assert p.family and p.given and len(p.birth_date) == 8 and p.sex in ("F", "M")
        assert p.seen and all(len(s) == 14 and s[:8] >= p.birth_date for s in p.seen)
        assert p.institution == "CHU Nord"


def test_the_demo_stores_its_images_once(local_hub: Hub, capsys) -> None:  # type: ignore[no-untyped-def]
    generate(local_hub.settings.home / "synth", patients=60, sites=3, seed=1)
    st = CliState(home=local_hub.settings.home, _hub=local_hub)
    demo_imaging(st, patients=4)
    line = capsys.readouterr().out
    assert "imaging:" in line and "for 4 patients of ch-sud" in line
    with Session(local_hub.catalog) as s:
        instances = s.scalar(select(func.count()).select_from(DicomInstance))
        patients = set(s.scalars(select(DicomStudy.patient_id)))
    assert instances and len(patients) == 4
    store = local_hub.audit.search(action="imaging.store")
    assert len(store) == 1 and set((store[0].patient_id or "").split(",")) == patients
    demo_imaging(st, patients=4)  # a second `hdhub demo`: nothing more
    assert capsys.readouterr().out == ""
    with Session(local_hub.catalog) as s:
        assert s.scalar(select(func.count()).select_from(DicomInstance)) == instances
    assert len(local_hub.audit.search(action="imaging.store")) == 1
