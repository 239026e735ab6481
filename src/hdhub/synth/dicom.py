"""Small synthetic DICOM studies for synthetic patients, so the demo's archive has images.

Each patient gets one or two studies on days they were seen at the site holding the images
(their FHIR encounters): a chest CT, a head CT or a brain MR, each of two or three series of
a few 128 x 128 axial slices drawn from simple shapes (body, lungs, heart, spine; scalp,
skull, grey and white matter, ventricles), with each tissue's CT number or MR signal in the
series' weighting, so thumbnails and rendered images look like the real thing from afar.

Files are explicit VR little endian, uncompressed; PatientID is the patient's IPP at that
site and IssuerOfPatientID the IPP's identifier system (as in the site's FHIR Patient, so
the archive's pages match the IPP found in the identity store with the right site: every
site numbers its patients from 00…), with the patient's name, birth date and sex.
Everything is drawn from random streams seeded by (seed, issuer and Patient ID, study): the
same seed gives the same bytes, UIDs included (``2.25.<128-bit integer>``), and two sites'
patients with the same IPP get studies of their own. Instances are made one at a time
(an iterator), so memory stays flat whatever the number of patients.
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
# hdhub's synthetic generator as the implementation that wrote the files (a fixed 2.25 UID,
# so the bytes do not change with the pydicom version).
IMPLEMENTATION_UID = "2.25.214958637520391651393372811364823452127"
SIZE = 128
RECENT = "20050101"  # studies on a patient's days seen from this date on, when they have any
LAST_DAY = dt.date(2026, 10, 31)  # the synthetic population's last day (synth.generate.END)

# Tissue values per contrast: CT numbers (HU) or MR signal (arbitrary units, 12 bits).
TISSUES = ("air", "fat", "soft", "lung", "blood", "bone", "csf", "grey", "white", "lesion")
CONTRASTS: dict[str, dict[str, float]] = {
    "ct": {"air": -1000, "fat": -100, "soft": 45, "lung": -850, "blood": 45, "bone": 900, "csf": 8,
           "grey": 40, "white": 28, "lesion": 32},
    "ct+c": {"air": -1000, "fat": -100, "soft": 60, "lung": -850, "blood": 280, "bone": 900, "csf": 8,
             "grey": 45, "white": 30, "lesion": 90},
    "t1": {"air": 0, "fat": 1100, "soft": 500, "lung": 30, "blood": 150, "bone": 60, "csf": 180,
           "grey": 520, "white": 760, "lesion": 420},
    "t2": {"air": 0, "fat": 800, "soft": 350, "lung": 30, "blood": 80, "bone": 50, "csf": 1500,
           "grey": 700, "white": 480, "lesion": 1200},
    "flair": {"air": 0, "fat": 700, "soft": 300, "lung": 30, "blood": 60, "bone": 40, "csf": 90,
              "grey": 640, "white": 470, "lesion": 1250},
}  # fmt: skip


@dataclass(frozen=True)
class SeriesProtocol:
    description: str
    contrast: str  # a key of CONTRASTS
    window: tuple[int, int]  # center, width
    slices: int


@dataclass(frozen=True)
class StudyProtocol:
    modality: str  # CT or MR
    description: str
    body_part: str
    anatomy: str  # chest or head
    fov_mm: float
    coverage_mm: float  # from the first slice to the last
    series: tuple[SeriesProtocol, ...]


PROTOCOLS = (
    StudyProtocol("CT", "TDM THORAX", "CHEST", "chest", 380.0, 280.0, (
        SeriesProtocol("Thorax sans injection", "ct", (40, 400), 6),
        SeriesProtocol("Thorax injecte", "ct+c", (50, 350), 6),
        SeriesProtocol("Parenchyme pulmonaire", "ct", (-600, 1500), 6),
    )),
    StudyProtocol("CT", "TDM CEREBRALE", "HEAD", "head", 230.0, 120.0, (
        SeriesProtocol("Cerveau sans injection", "ct", (40, 80), 6),
        SeriesProtocol("Fenetre osseuse", "ct", (600, 2800), 6),
    )),
    StudyProtocol("MR", "IRM CEREBRALE", "BRAIN", "head", 230.0, 110.0, (
        SeriesProtocol("T1 axial", "t1", (600, 1200), 5),
        SeriesProtocol("T2 axial", "t2", (700, 1500), 5),
        SeriesProtocol("FLAIR axial", "flair", (650, 1300), 5),
    )),
)  # fmt: skip


@dataclass(frozen=True)
class ImagingPatient:
    """A synthetic patient as the site holding their images knows them."""

    patient_id: str  # the IPP at that site
    family: str
    given: str
    birth_date: str  # YYYYMMDD ("" when unknown)
    sex: str  # M, F, O or ""
    seen: tuple[str, ...] = ()  # YYYYMMDDHHMMSS of their encounters at that site, oldest first
    issuer: str = ""  # the IPP's identifier system, written as IssuerOfPatientID (64 characters at most)
    institution: str = ""  # the site's name


@dataclass
class SynthInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_id: str
    data: bytes

    @property
    def path(self) -> str:
        return f"{self.study_uid}/{self.series_uid}/{self.sop_uid}.dcm"


@dataclass
class DicomSynthReport:
    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0
    bytes: int = 0
    patient_ids: list[str] = field(default_factory=list)


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(128) or 1}"


@cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres from -1 to 1 (x to the patient's left, y to the back)."""
    axis = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE * 2 - 1
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return x, y


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    x, y = _grid()
    if rx <= 0 or ry <= 0:
        return np.zeros(x.shape, dtype=bool)
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def _labels(anatomy: str, t: float, lesion: bool) -> list[tuple[np.ndarray, str]]:
    """The tissues of the axial slice at ``t`` (0: top, 1: bottom), painted in order."""
    if anatomy == "chest":
        lungs = 0.55 + 0.45 * np.sin(np.pi * (0.15 + 0.7 * t))
        heart = max(0.0, 1.0 - ((t - 0.62) / 0.34) ** 2)
        return [
            (_ellipse(0, 0.02, 0.9, 0.64), "fat"),
            (_ellipse(0, 0.02, 0.82, 0.57), "soft"),
            (_ellipse(-0.4, -0.02, 0.3, 0.42 * lungs), "lung"),
            (_ellipse(0.4, -0.02, 0.3, 0.42 * lungs), "lung"),
            (_ellipse(0.1, 0.02, 0.26 * heart, 0.22 * heart), "blood"),
            (_ellipse(-0.1, 0.3, 0.065, 0.065), "blood"),  # descending aorta
            (_ellipse(0, -0.5, 0.07, 0.035), "bone"),  # sternum
            (_ellipse(0, 0.46, 0.1, 0.09), "bone"),  # vertebral body
            (_ellipse(0, 0.46, 0.035, 0.035), "csf"),  # spinal canal
        ]
    head = float(np.sqrt(max(0.05, 1.0 - ((t - 0.35) / 0.8) ** 2)))
    ventricles = max(0.0, 1.0 - ((t - 0.5) / 0.25) ** 2)
    out = [
        (_ellipse(0, 0, 0.74 * head, 0.88 * head), "fat"),  # scalp
        (_ellipse(0, 0, 0.69 * head, 0.83 * head), "bone"),  # skull
        (_ellipse(0, 0, 0.63 * head, 0.77 * head), "grey"),
        (_ellipse(0, 0.02, 0.5 * head, 0.64 * head), "white"),
        (_ellipse(-0.1, -0.02, 0.06 * ventricles, 0.22 * ventricles), "csf"),
        (_ellipse(0.1, -0.02, 0.06 * ventricles, 0.22 * ventricles), "csf"),
    ]
    if lesion and 0.35 <= t <= 0.75:
        out.append((_ellipse(0.28, -0.25, 0.06, 0.06), "lesion"))
    return out


def _pixels(anatomy: str, contrast: str, t: float, lesion: bool, noise: np.random.Generator) -> np.ndarray:
    """Stored pixel values (unsigned 12 bits; CT numbers stored + 1024)."""
    values = CONTRASTS[contrast]
    image = np.full((SIZE, SIZE), values["air"], dtype=np.float32)
    for mask, tissue in _labels(anatomy, t, lesion):
        image[mask] = values[tissue]
    ct = contrast.startswith("ct")
    image += noise.normal(0.0, 6.0 if ct else 18.0, image.shape).astype(np.float32)
    if ct:
        image += 1024
    return np.clip(np.rint(image), 0, 4095).astype("<u2")


def _sex(gender: str | None) -> str:
    return {"female": "F", "male": "M", "other": "O"}.get(gender or "", "")


def _study_days(patient: ImagingPatient, rng: random.Random, count: int) -> list[str]:
    """YYYYMMDDHHMMSS of ``count`` distinct days the patient was seen, recent ones first."""
    seen = sorted(set(patient.seen))
    recent = [s for s in seen if s[:8] >= RECENT] or seen
    if recent:
        return sorted(rng.sample(recent, k=min(count, len(recent))))
    born = dt.date(int(patient.birth_date[:4]), 1, 1) if patient.birth_date[:4].isdecimal() else LAST_DAY
    first = max(born, dt.date(2005, 1, 1))
    span = max((LAST_DAY - first).days, 1)
    day = first + dt.timedelta(days=rng.randrange(span))
    return [f"{day:%Y%m%d}{rng.randrange(8, 19):02d}{rng.randrange(60):02d}00"]


def studies(patient: ImagingPatient, *, seed: int = 1, count: int | None = None) -> Iterator[SynthInstance]:
    """The patient's studies (one or two, or ``count``), one instance at a time
    (deterministic for the seed)."""
    # Who the patient is: the IPP and its issuer (the same IPP at two sites is two people).
    who = f"{patient.issuer[:64]}|{patient.patient_id}" if patient.issuer else patient.patient_id
    rng = random.Random(f"{seed}:dicom:{who}")
    drawn = 1 if rng.random() < 0.55 else 2
    count = drawn if count is None else count
    for number, when in enumerate(_study_days(patient, rng, count), start=1):
        protocol = rng.choices(PROTOCOLS, weights=(5, 3, 3))[0]
        study_rng = random.Random(f"{seed}:dicom:{who}:{number}")
        yield from _study(patient, protocol, when, number, study_rng)


def _study(patient: ImagingPatient, protocol: StudyProtocol, when: str, number: int,
           rng: random.Random) -> Iterator[SynthInstance]:  # fmt: skip
    study_uid, frame_uid = _uid(rng), _uid(rng)
    noise = np.random.default_rng(rng.getrandbits(64))
    lesion = protocol.anatomy == "head" and rng.random() < 0.3
    accession = f"{rng.randrange(10**10):010d}"
    spacing_px = protocol.fov_mm / SIZE
    for series_number, series in enumerate(protocol.series, start=1):
        series_uid = _uid(rng)
        step = protocol.coverage_mm / max(series.slices - 1, 1)
        for k in range(series.slices):
            t = (k + 0.5) / series.slices
            z = -k * step
            ds = _common(patient, protocol, when, study_uid, frame_uid)
            ds.AccessionNumber, ds.StudyID = accession, str(number)
            sop_uid = _uid(rng)
            ds.SOPInstanceUID = sop_uid
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = series_number
            ds.SeriesDescription = series.description
            ds.InstanceNumber = k + 1
            ds.AcquisitionNumber = 1
            ds.ImagePositionPatient = [-protocol.fov_mm / 2, -protocol.fov_mm / 2, round(z, 2)]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.SliceLocation = round(z, 2)
            ds.SliceThickness = round(min(step, 5.0), 2)
            ds.PixelSpacing = [round(spacing_px, 4), round(spacing_px, 4)]
            ds.WindowCenter, ds.WindowWidth = series.window
            if protocol.modality == "MR":
                ds.ScanningSequence = "IR" if series.contrast == "flair" else "SE"
                ds.SequenceVariant = "SK"
                ds.MRAcquisitionType = "2D"
                ds.RepetitionTime = {"t1": 500, "t2": 4000, "flair": 9000}[series.contrast]
                ds.EchoTime = {"t1": 12, "t2": 100, "flair": 120}[series.contrast]
                ds.MagneticFieldStrength = 1.5
            else:
                ds.KVP = 120
                ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
            ds.PixelData = _pixels(protocol.anatomy, series.contrast, t, lesion, noise).tobytes()
            buf = BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            yield SynthInstance(study_uid, series_uid, sop_uid, patient.patient_id, buf.getvalue())


def _common(patient: ImagingPatient, protocol: StudyProtocol, when: str, study_uid: str,
            frame_uid: str) -> Dataset:  # fmt: skip
    """The attributes every instance of the study shares."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = "HDHUB_SYNTH"
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: French names keep their accents
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE if protocol.modality == "CT" else MR_IMAGE_STORAGE
    date, time = when[:8], when[8:14] or "120000"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
    ds.Modality = protocol.modality
    ds.Manufacturer = "hdhub synthetic"
    ds.InstitutionName = patient.institution
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = protocol.description
    ds.PatientName = f"{patient.family}^{patient.given}"
    ds.PatientID = patient.patient_id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer[:64]
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.BodyPartExamined = protocol.body_part
    ds.StudyInstanceUID = study_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def generate_studies(patients: Iterable[ImagingPatient], *, seed: int = 1) -> Iterator[SynthInstance]:
    """Every patient's studies, one instance at a time."""
    for patient in patients:
        yield from studies(patient, seed=seed)


def write_studies(out: Path, patients: Iterable[ImagingPatient], *, seed: int = 1) -> DicomSynthReport:
    """Write the patients' studies under ``out/<study>/<series>/<instance>.dcm``."""
    report = DicomSynthReport()
    seen_studies: set[str] = set()
    seen_series: set[str] = set()
    for patient in patients:
        report.patients += 1
        report.patient_ids.append(patient.patient_id)
        for instance in studies(patient, seed=seed):
            path = out / instance.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(instance.data)
            seen_studies.add(instance.study_uid)
            seen_series.add(instance.series_uid)
            report.instances += 1
            report.bytes += len(instance.data)
    report.studies, report.series = len(seen_studies), len(seen_series)
    return report


# --- the patients of a synthetic site (``hdhub synth`` output) ------------------------------------


def _ndjson(site_dir: Path, resource: str) -> Iterator[dict[str, Any]]:
    for name in (f"{resource}.ndjson", f"{resource}.ndjson.gz"):
        path = site_dir / name
        if path.exists():
            opener = gzip.open if name.endswith(".gz") else open
            fh: IO[bytes]
            with opener(path, "rb") as fh:  # type: ignore[operator]
                for line in fh:
                    if line.strip():
                        yield orjson.loads(line)
            return


def _ipp(patient: dict[str, Any]) -> dict[str, Any] | None:
    """The site's patient number: the identifier typed PI, else the one whose system ends in /ipp."""
    identifiers = [i for i in patient.get("identifier") or [] if i.get("value")]
    for ident in identifiers:
        codes = [c.get("code") for c in (ident.get("type") or {}).get("coding") or []]
        if "PI" in codes:
            return ident
    return next((i for i in identifiers if str(i.get("system", "")).endswith("/ipp")), None)


def site_patients(site_dir: Path, limit: int) -> list[ImagingPatient]:
    """The first ``limit`` patients of a synthetic site who were seen there since 2005 (or at
    all, when too few were), with the days they were seen. Reads the site's Patient and
    Encounter files as streams, keeping only candidates."""
    institution = next((o.get("name", "") for o in _ndjson(site_dir, "Organization")), "")
    candidates: dict[str, ImagingPatient] = {}
    for p in _ndjson(site_dir, "Patient"):
        ipp = _ipp(p)
        if ipp is None:
            continue
        name = (p.get("name") or [{}])[0]
        candidates[str(p["id"])] = ImagingPatient(
            patient_id=str(ipp["value"])[:64],
            family=str(name.get("family", "")),
            given=" ".join(name.get("given") or []),
            birth_date=str(p.get("birthDate", "")).replace("-", "")[:8],
            sex=_sex(p.get("gender")),
            issuer=str(ipp.get("system", "")),
            institution=institution,
        )
        if len(candidates) >= 3 * limit:
            break
    seen: dict[str, list[str]] = {pid: [] for pid in candidates}
    for e in _ndjson(site_dir, "Encounter"):
        pid = str((e.get("subject") or {}).get("reference", "")).removeprefix("Patient/")
        start = str((e.get("period") or {}).get("start", ""))
        if pid in seen and len(start) >= 19:
            seen[pid].append(start[:19].replace("-", "").replace("T", "").replace(":", ""))
    chosen = sorted(candidates, key=lambda pid: not any(s[:8] >= RECENT for s in seen[pid]))[:limit]
    order = {pid: n for n, pid in enumerate(candidates)}
    return [replace(candidates[pid], seen=tuple(sorted(seen[pid]))) for pid in sorted(chosen, key=order.get)]
