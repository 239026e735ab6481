"""The index's DICOM JSON equals pydicom's, on every test file pydicom ships."""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import pydicom.data
import pytest
from pydicom.dataset import Dataset

from hdhub.imaging.dicom_json import BULK_THRESHOLD, dataset_json
from hdhub.imaging.store import parse

FILES = [Path(f) for f in pydicom.data.get_testdata_files() if Path(f).is_file()]


def _pydicom_json(ds: Dataset) -> dict:
    return ds.to_json_dict(
        bulk_data_threshold=BULK_THRESHOLD,
        bulk_data_element_handler=lambda elem: "",
        suppress_invalid_tags=True,
    )


def test_equal_to_pydicom_on_every_test_file() -> None:
    assert len(FILES) > 100
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in FILES:
            data = path.read_bytes()
            try:
                expected = _pydicom_json(parse(data))
            except ValueError:
                continue  # not readable at all: refused before any metadata is made
            assert dataset_json(parse(data)) == expected, path.name
            compared += 1
    assert compared > 100


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        (
            "PatientName",
            "Doe^Jane=ド^ジ=ど^じ",
            [{"Alphabetic": "Doe^Jane", "Ideographic": "ド^ジ", "Phonetic": "ど^じ"}],
        ),
        ("PatientName", "A\\B", [{"Alphabetic": "A"}, {"Alphabetic": "B"}]),
        ("ImageType", ["ORIGINAL", "PRIMARY"], ["ORIGINAL", "PRIMARY"]),
        ("SliceThickness", "1.25", [1.25]),
        ("InstanceNumber", "7", [7]),
        ("StudyDescription", "Scanner thoracique", ["Scanner thoracique"]),
    ],
)
def test_values_written_by_pydicom_read_back_equal(keyword: str, value: object, expected: list) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPInstanceUID = "1.2.3.4"
    setattr(ds, keyword, value)
    buf = BytesIO()
    ds.save_as(buf, implicit_vr=False, little_endian=True)
    read = parse(buf.getvalue())
    assert dataset_json(read)[f"{read.data_element(keyword).tag:08X}"]["Value"] == expected
    assert dataset_json(read) == _pydicom_json(parse(buf.getvalue()))
