"""DICOM de-identification: PS3.15 Basic Profile, with and without the Modified Dates option."""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import random
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from hdhub.errors import ValidationError
from hdhub.privacy import _ps315_profile as profile
from hdhub.privacy.dicom_deid import BurnedInAnnotationError, DicomDeidentifier

ROOT = Path(__file__).resolve().parents[2]
PROFILE_JSON = ROOT.parent / "shared" / "data" / "dicom-standard" / "confidentiality_profile_attributes.json"

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PSEUDONYM = "P-000123"
STUDY_UID = "1.2.250.1.59.453.859.1001"
SERIES_UID = "1.2.250.1.59.453.859.1001.2"
FOR_UID = "1.2.250.1.59.453.859.1001.9"
SOP_A = "1.2.250.1.59.453.859.1001.2.1"
SOP_B = "1.2.250.1.59.453.859.1001.2.2"

# Every identifying string the instance carries; none may survive anywhere in the output.
IDENTIFYING = [
    "DUPONT",
    "JEAN-MARIE",
    "IPP-778899",
    "19580412",
    "CHU NANTES-SUD",
    "BOULEVARD JACQUES MONOD",
    "MARTIN^CLAIRE",
    "ACC20240117",
    "ST-4711",
    "CT-SCAN-ROOM-3",
    "SN-99812",
    "THORAX DUPONT",
    "SECRET-PRIVATE",
    "HDHUB TEST",
    "OVERLAY NOTE",
    "CURVE",
    "PADDING",
    "BERNARD",
    "EMP-5521",
    "ORD-31337",
    "LEROY^PAUL",
    "PROTOCOLE DUPONT",
    "PREAMBLE",
    STUDY_UID,
    SERIES_UID,
    FOR_UID,
    SOP_A,
    SOP_B,
]


def make_instance(
    sop_uid: str = SOP_A,
    *,
    syntax: str = ExplicitVRLittleEndian,
    source_sop: str | None = None,
    rows: int = 16,
    padding: bool = True,
    burned_in: str = "NO",
) -> Dataset:
    """A CT instance as a hospital PACS would hold it, identifying data everywhere."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20240117"
    ds.SeriesDate = "20240117"
    ds.ContentDate = "20240117"
    ds.InstanceCreationDate = "20240117"
    ds.StudyTime = "101530.25"
    ds.SeriesTime = "101812"
    ds.ContentTime = "102001"
    ds.AcquisitionDateTime = "20240117102001.123456+0100"
    ds.AccessionNumber = "ACC20240117"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME MEDICAL"
    ds.InstitutionName = "CHU NANTES-SUD"
    ds.InstitutionAddress = "1 BOULEVARD JACQUES MONOD, NANTES"
    ds.ReferringPhysicianName = "MARTIN^CLAIRE"
    ds.StationName = "CT-SCAN-ROOM-3"
    ds.StudyDescription = "THORAX DUPONT"
    ds.OperatorsName = "BERNARD^LUC"
    op = Dataset()
    code = Dataset()
    code.CodeValue = "EMP-5521"
    code.CodingSchemeDesignator = "L"
    code.CodeMeaning = "OPERATOR BERNARD"
    op.PersonIdentificationCodeSequence = [code]
    op.InstitutionName = "CHU NANTES-SUD"
    ds.OperatorIdentificationSequence = [op]
    request = Dataset()  # Referenced Request Sequence is not in the table: kept, walked
    request.StudyInstanceUID = STUDY_UID
    request.AccessionNumber = "ACC20240117"
    request.RequestingPhysician = "LEROY^PAUL"
    request.PlacerOrderNumberImagingServiceRequest = "ORD-31337"
    request.RequestedProcedureID = "ORD-31337"
    ds.ReferencedRequestSequence = [request]
    if source_sop:
        src = Dataset()
        src.ReferencedSOPClassUID = CTImageStorage
        src.ReferencedSOPInstanceUID = source_sop
        ds.SourceImageSequence = [src]
    ds.PatientName = "DUPONT^JEAN-MARIE"
    ds.PatientID = "IPP-778899"
    ds.PatientBirthDate = "19580412"
    ds.PatientSex = "M"
    ds.PatientAge = "065Y"
    ds.DeviceSerialNumber = "SN-99812"
    ds.ProtocolName = "PROTOCOLE DUPONT"
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.StudyID = "ST-4711"
    ds.SeriesNumber = 2
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = FOR_UID
    block = ds.private_block(0x0029, "HDHUB TEST", create=True)
    block.add_new(0x01, "LO", "SECRET-PRIVATE-IPP-778899")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.BurnedInAnnotation = burned_in
    # Overlay plane 6000 and curve 5000: the data and comments are X by mask, the rest kept.
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", rows)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", np.packbits(np.eye(rows, dtype=np.uint8)).tobytes())
    ds.add_new(0x60004000, "LT", "OVERLAY NOTE FOR DUPONT")
    ds.add_new(0x50003000, "OW", b"CURVE DUPONT")
    pixels = (np.arange(rows * rows, dtype=np.uint16) * 7 % 4096).reshape(rows, rows)
    if syntax == RLELossless:  # encapsulated: fragments kept as they are (never decoded here)
        ds.PixelData = encapsulate([pixels.tobytes()])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = pixels.tobytes()
    if padding:
        ds.add_new(0xFFFCFFFC, "OB", b"PADDING DUPONT\x00\x00")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.SourceApplicationEntityTitle = "CT-SCAN-ROOM-3"
    ds.preamble = b"PREAMBLE DUPONT".ljust(128, b"\x00")
    return ds


def to_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def read(raw: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(raw))


def deid(days: int | None = 37, key: bytes = KEY, pseudonym: str = PSEUDONYM) -> DicomDeidentifier:
    return DicomDeidentifier(key, date_shift_days=days, patient_pseudonym=pseudonym)


def shifted(da: str, days: int) -> str:
    return (dt.date(int(da[:4]), int(da[4:6]), int(da[6:])) + dt.timedelta(days=days)).strftime("%Y%m%d")


@pytest.mark.parametrize("days", [37, None])
def test_removed_emptied_dummy_and_kept(days: int | None) -> None:
    raw = to_bytes(make_instance())
    out = read(deid(days).deidentify_bytes(raw))
    # X: removed (including private attributes, overlay data and comments, curve, padding).
    for keyword in ("PatientAge", "StudyDescription", "InstitutionAddress", "RequestingPhysician"):
        assert keyword not in out and keyword not in out.ReferencedRequestSequence[0]
    for tag in (0x00290010, 0x00291001, 0x60003000, 0x60004000, 0x50003000, 0xFFFCFFFC):
        assert tag not in out
    assert "RequestedProcedureID" not in out.ReferencedRequestSequence[0]
    # Z (and X/Z, X/Z/D read as Z): present, zero length.
    for keyword in ("AccessionNumber", "ReferringPhysicianName", "PatientBirthDate", "PatientSex", "StudyID"):
        assert keyword in out and out[keyword].is_empty, keyword
    for keyword in ("InstitutionName", "StationName", "DeviceSerialNumber", "OperatorsName"):
        assert out[keyword].is_empty, keyword  # X/Z/D
    request = out.ReferencedRequestSequence[0]
    assert request.AccessionNumber == "" and request.PlacerOrderNumberImagingServiceRequest == ""
    # D (and X/D, Z/D read as D): dummy values valid for the VR; the pseudonym for the patient.
    assert out.PatientName == PSEUDONYM and out.PatientID == PSEUDONYM
    assert out.ProtocolName == "ANONYMIZED"  # X/D, LO
    # A dummy sequence (X/D): items kept, contents de-identified, free text replaced.
    (op,) = out.OperatorIdentificationSequence
    (code,) = op.PersonIdentificationCodeSequence
    assert code.CodeValue == "ANONYMIZED" and code.CodeMeaning == "ANONYMIZED"
    assert code.CodingSchemeDesignator == "ANONYMIZED" and op.InstitutionName == ""
    # K / not in the table: kept.
    src = read(raw)
    assert out.Modality == "CT" and out.Manufacturer == "ACME MEDICAL" and out.BodyPartExamined == "CHEST"
    assert (out.Rows, out.Columns, out.BitsAllocated, out.BitsStored) == (16, 16, 16, 12)
    assert out.PixelData == src.PixelData and out.SOPClassUID == CTImageStorage
    assert out.ImageType == ["ORIGINAL", "PRIMARY", "AXIAL"] and out.SeriesNumber == 2
    assert out[0x60000010].value == 16 and out[0x60000040].value == "G"  # overlay attributes not listed
    assert out.BurnedInAnnotation == "NO"
    # The profile's marks.
    assert out.PatientIdentityRemoved == "YES"
    codes = [(c.CodingSchemeDesignator, c.CodeValue) for c in out.DeidentificationMethodCodeSequence]
    if days is None:
        assert codes == [("DCM", "113100")]
        assert out.LongitudinalTemporalInformationModified == "REMOVED"
        assert out.DeidentificationMethod == "PS3.15 E.1-1 Basic Application Confidentiality Profile"
    else:
        assert codes == [("DCM", "113100"), ("DCM", "113107")]
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
        assert len(out.DeidentificationMethod) == 2


@pytest.mark.parametrize("days", [37, -400, 1, 3650])
def test_dates_shifted_exactly_with_the_option(days: int) -> None:
    out = read(deid(days).deidentify_bytes(to_bytes(make_instance())))
    for keyword in ("StudyDate", "SeriesDate", "ContentDate", "InstanceCreationDate"):
        assert out[keyword].value == shifted("20240117", days), keyword
    assert out.AcquisitionDateTime == shifted("20240117", days) + "102001.123456+0100"  # time, offset kept
    assert (out.StudyTime, out.SeriesTime, out.ContentTime) == ("101530.25", "101812", "102001")
    assert out.PatientBirthDate == ""  # Z, not under the option: emptied all the same


def test_dates_without_the_option_are_removed_emptied_or_dummy() -> None:
    out = read(deid(None).deidentify_bytes(to_bytes(make_instance())))
    assert out.StudyDate == "" and out.StudyTime == ""  # Z
    assert out.AcquisitionDateTime == ""  # X/Z/D -> Z
    assert out.SeriesDate == "19000101" and out.InstanceCreationDate == "19000101"  # X/D -> D
    assert out.ContentDate == "19000101" and out.ContentTime == "000000"  # Z/D -> D
    assert out.SeriesTime == "000000"


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA:UserWarning")
def test_date_values_that_cannot_be_shifted_fall_back_to_the_basic_action() -> None:
    ds = make_instance()
    ds.AcquisitionDateTime = "2024"  # only a year: no exact shift; X/Z/D -> Z
    ds.SeriesDate = "2024-01-17"  # not a DA: X/D -> D
    ds.StudyDate = ["20240117", "20240229"]  # several values: each shifted
    ds.ContentDate = "2024.01.17"  # ACR-NEMA style is still a date
    ds.TimezoneOffsetFromUTC = "+0100"  # C under the option, but no date: X
    out = deid(366).deidentify(ds)
    assert out.AcquisitionDateTime == "" and out.SeriesDate == "19000101"
    assert list(out.StudyDate) == ["20250117", "20250301"] and out.ContentDate == "20250117"
    assert "TimezoneOffsetFromUTC" not in out


def test_uids_consistent_within_a_project_and_unlinkable_across() -> None:
    a_raw = to_bytes(make_instance(SOP_A))
    b_raw = to_bytes(make_instance(SOP_B, source_sop=SOP_A))  # B derives from A
    d = deid()
    a, b = read(d.deidentify_bytes(a_raw)), read(d.deidentify_bytes(b_raw))
    for ds in (a, b):
        uids = [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID]
        assert all(u.startswith("2.25.") and len(u) <= 64 and u[5] != "0" for u in uids)
        assert ds.ReferencedRequestSequence[0].StudyInstanceUID == ds.StudyInstanceUID  # relation kept
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (a.StudyInstanceUID, a.SeriesInstanceUID, a.FrameOfReferenceUID) == (
        b.StudyInstanceUID,
        b.SeriesInstanceUID,
        b.FrameOfReferenceUID,
    )
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID  # reference kept
    assert b.SourceImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert a.SOPInstanceUID == d.new_uid(SOP_A)
    # Another patient of the same project: the same UIDs; another project: other UIDs.
    assert read(deid(-5, pseudonym="P-9").deidentify_bytes(a_raw)).StudyInstanceUID == a.StudyInstanceUID
    other = read(deid(key=OTHER_KEY).deidentify_bytes(a_raw))
    assert {other.StudyInstanceUID, other.SeriesInstanceUID, other.SOPInstanceUID}.isdisjoint(
        {a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID}
    )


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless]
)
@pytest.mark.parametrize("days", [37, None])
def test_output_is_a_valid_part10_file_with_no_identifying_bytes(syntax: str, days: int | None) -> None:
    raw = to_bytes(make_instance(SOP_B, syntax=syntax, source_sop=SOP_A))
    assert all(s.encode() in raw or syntax == DeflatedExplicitVRLittleEndian for s in ("DUPONT", SOP_A))
    out_raw = deid(days).deidentify_bytes(raw)
    assert out_raw[:128] == bytes(128) and out_raw[128:132] == b"DICM"
    out = read(out_raw)
    assert out.file_meta.TransferSyntaxUID == syntax
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.PixelData == read(raw).PixelData
    for _ in out.iterall():  # every value decodes
        pass
    plain = out_raw
    if syntax == DeflatedExplicitVRLittleEndian:  # look inside the compressed data set too
        plain = to_bytes_plain(out)
    for text in IDENTIFYING:
        assert text.encode() not in plain, text
    if days is not None:
        assert b"20240117" not in plain
    assert DicomDeidentifier(KEY, date_shift_days=days, patient_pseudonym=PSEUDONYM).deidentify_bytes(
        raw
    ) == deid(days).deidentify_bytes(raw)  # deterministic


def to_bytes_plain(ds: Dataset) -> bytes:
    ds = ds.copy()
    ds.file_meta = ds.file_meta.copy()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return to_bytes(ds)


def test_big_endian_is_kept() -> None:
    ds = make_instance(syntax=ExplicitVRBigEndian)
    out = read(deid().deidentify_bytes(to_bytes(ds)))
    assert out.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    assert out.PatientName == PSEUDONYM and out.Rows == 16 and out.StudyDate == shifted("20240117", 37)


def test_deidentify_dataset_leaves_the_input_alone() -> None:
    ds = make_instance()
    out = deid().deidentify(ds)
    assert ds.PatientName == "DUPONT^JEAN-MARIE" and ds.SOPInstanceUID == SOP_A and 0x00291001 in ds
    assert out.PatientName == PSEUDONYM and out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.preamble is None  # written as zeros
    bare = make_instance()
    del bare.file_meta
    assert "SOPInstanceUID" in deid().deidentify(bare)


def test_sequences_with_x_go_whole_and_dummy_sequences_clean_their_free_text() -> None:
    ds = make_instance()
    patient = Dataset()
    patient.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"
    patient.ReferencedSOPInstanceUID = "1.2.3.4.5"
    ds.ReferencedPatientSequence = [patient]  # X
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "Patient DUPONT seen by Dr LEROY"  # not in the table
    item.UID = "1.2.3.4.6"  # U
    item.DateTime = "20240117103000"  # D, C under the option
    ds.ContentSequence = [item]  # D
    for days, date in ((37, "20240223103000"), (None, "19000101000000")):
        out = deid(days).deidentify(ds)
        assert "ReferencedPatientSequence" not in out
        (got,) = out.ContentSequence
        assert got.ValueType == "TEXT" and got.TextValue == "ANONYMIZED"
        expected_uid = deid(days).new_uid("1.2.3.4.6")
        assert got[0x0040A124].value == expected_uid and got.DateTime == date


def _implicit(tag: int, value: bytes) -> bytes:
    value += b"\x00" * (len(value) % 2)
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def test_sequences_stored_as_un_of_undefined_length_are_walked() -> None:
    """PS3.5 6.2.2: a sequence may come as UN, undefined length, in implicit VR little endian."""
    raw = to_bytes(make_instance(padding=False))
    item = _implicit(0x00081150, CTImageStorage.encode()) + _implicit(0x00081155, SOP_B.encode())
    item += _implicit(0x00100010, b"DUPONT^UN")
    un_sequence = (
        struct.pack("<HH2sHL", 0x0008, 0x1140, b"UN", 0, 0xFFFFFFFF)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + item
        + struct.pack("<HHLHHL", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
    )
    at = raw.find(struct.pack("<HH", 0x0010, 0x0010) + b"PN")  # keep the tags in order
    data = raw[:at] + un_sequence + raw[at:]
    d = deid()
    out_raw = d.deidentify_bytes(data)
    (ref,) = read(out_raw).ReferencedImageSequence  # X/Z/U* -> U: kept, UIDs remapped
    assert ref.ReferencedSOPInstanceUID == d.new_uid(SOP_B) and ref.PatientName == PSEUDONYM
    assert b"DUPONT" not in out_raw and SOP_B.encode() not in out_raw
    with pytest.raises(ValidationError, match=r"truncated|malformed"):
        d.deidentify_bytes(data[: at + len(un_sequence) - 6] + data[at + len(un_sequence) :])


def test_public_tags_unknown_to_the_dictionary_are_removed() -> None:
    ds = make_instance()
    ds.add_new(0x00100011, "UN", b"DUPONT^JEAN-MARIE")  # e.g. a damaged Patient's Name tag
    ds.add_new(0x60020010, "US", 16)  # a second overlay plane: known by its repeating group
    out = deid().deidentify(ds)
    assert 0x00100011 not in out and out[0x60020010].value == 16


def test_burned_in_annotation_is_refused_unless_allowed() -> None:
    raw = to_bytes(make_instance(burned_in="YES"))
    with pytest.raises(BurnedInAnnotationError, match="Burned In Annotation"):
        deid().deidentify_bytes(raw)
    with pytest.raises(ValidationError):  # a ValidationError for generic handlers
        deid().deidentify(make_instance(burned_in="YES"))
    allowed = DicomDeidentifier(
        KEY, date_shift_days=3, patient_pseudonym="P1", allow_burned_in_annotation=True
    )
    out = read(allowed.deidentify_bytes(raw))
    assert out.BurnedInAnnotation == "YES" and out.PatientName == "P1"


def test_every_truncation_and_malformed_input_is_a_validation_error() -> None:
    raw = to_bytes(make_instance(rows=4, padding=False))
    deid().deidentify_bytes(raw)  # the whole file is fine
    d = deid()
    for cut in range(len(raw)):
        with pytest.raises(ValidationError):
            d.deidentify_bytes(raw[:cut])
    rng = random.Random(20240117)
    for size in (0, 1, 131, 132, 500, 4096):
        with pytest.raises(ValidationError):
            d.deidentify_bytes(bytes(rng.getrandbits(8) for _ in range(size)))
    with pytest.raises(ValidationError, match="not a DICOM Part 10 file"):
        d.deidentify_bytes(b"")
    with pytest.raises(ValidationError):
        d.deidentify_bytes(bytes(128) + b"DICM" + bytes(rng.getrandbits(8) for _ in range(2000)))
    encapsulated = to_bytes(make_instance(syntax=RLELossless, padding=False))
    for cut in (len(encapsulated) - 1, len(encapsulated) - 8, len(encapsulated) - 20):
        with pytest.raises(ValidationError):
            d.deidentify_bytes(encapsulated[:cut])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless]
)
def test_corrupted_bytes_give_a_result_or_a_validation_error(syntax: str) -> None:
    raw = to_bytes(make_instance(SOP_B, rows=4, syntax=syntax, source_sop=SOP_A))
    rng = random.Random(7)
    d = deid()
    outcomes = {"ok": 0, "invalid": 0}
    for _ in range(300):
        data = bytearray(raw)
        at = rng.randrange(132, len(data))
        kind = rng.random()
        if kind < 0.6:  # bytes flipped
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(132, len(data))] = rng.getrandbits(8)
        elif kind < 0.8:  # bytes lost
            del data[at : at + rng.randint(1, 40)]
        else:  # bytes inserted
            data[at:at] = rng.randbytes(rng.randint(1, 20))
        try:
            out = d.deidentify_bytes(bytes(data))
        except ValidationError as exc:
            assert "\n" not in exc.message
            outcomes["invalid"] += 1
        else:
            read(out)
            outcomes["ok"] += 1
    assert outcomes["ok"] and outcomes["invalid"]


def test_bad_parameters() -> None:
    with pytest.raises(ValidationError):
        DicomDeidentifier(b"short", date_shift_days=3, patient_pseudonym=PSEUDONYM)
    for days in (0, True, 40_000, 1.5):
        with pytest.raises(ValidationError):
            DicomDeidentifier(KEY, date_shift_days=days, patient_pseudonym=PSEUDONYM)  # type: ignore[arg-type]
    for name in ("", "A\\B", "DUPONT^JEAN", "x" * 65, " P1", "P1 "):
        with pytest.raises(ValidationError):
            DicomDeidentifier(KEY, date_shift_days=3, patient_pseudonym=name)
    assert DicomDeidentifier(KEY, date_shift_days=None, patient_pseudonym="x" * 64).date_shift_days is None


def test_the_profile_covers_the_table() -> None:
    assert profile.ROWS == 621 and profile.PRIVATE_ATTRIBUTES == "X"
    assert len(profile.BASIC_PROFILE) + len(profile.BASIC_PROFILE_MASKED) + 1 == profile.ROWS
    assert set(profile.RETAIN_LONGITUDINAL_MODIFIED_DATES) <= set(profile.BASIC_PROFILE)
    assert profile.BASIC_PROFILE[0x00100010] == "Z" and profile.BASIC_PROFILE[0x0020000D] == "U"
    assert profile.RETAIN_LONGITUDINAL_MODIFIED_DATES[0x00080020] == "C"
    assert (0xFF00FFFF, 0x60003000, "X") in profile.BASIC_PROFILE_MASKED


def test_the_generated_profile_is_current() -> None:
    if not PROFILE_JSON.exists():
        pytest.skip(f"{PROFILE_JSON} is absent: cannot regenerate the profile to compare")
    spec = importlib.util.spec_from_file_location(
        "generate_dicom_deid_profile", ROOT / "scripts" / "generate_dicom_deid_profile.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (ROOT / "src" / "hdhub" / "privacy" / "_ps315_profile.py").read_text(encoding="utf-8")
    assert generator.render(*generator.load(PROFILE_JSON)) == committed, (
        "src/hdhub/privacy/_ps315_profile.py is stale: run python scripts/generate_dicom_deid_profile.py"
    )
