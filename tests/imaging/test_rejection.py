"""IHE IOCM rejection: rejected instances leave every query at once and are not stored again."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.errors import NotFound, ValidationError
from hdhub.hub import Hub
from hdhub.imaging.qido import parse_query, search
from hdhub.imaging.rejection import KOS_SOP_CLASS, reject
from hdhub.imaging.store import REFUSED, STORED, instance_rows, store_instances
from tests.imaging.test_store import _variant

MR = "1.2.840.10008.5.1.4.1.1.4"


def _study(hub: Hub) -> tuple[str, list[str], list[list[str]]]:
    """A stored study: series 0 with 3 instances, series 1 with 1."""
    study = generate_uid()
    series = [generate_uid(), generate_uid()]
    sops = [[generate_uid() for _ in range(3)], [generate_uid()]]
    items = [(_variant(study, series[i], sop), sop) for i in range(2) for sop in sops[i]]
    assert all(o.status == STORED for o in store_instances(hub.catalog, hub.objects, items))
    return study, series, sops


def _find(hub: Hub, level: str, **keys: str) -> list[dict]:
    return search(hub.catalog, parse_query(list(keys.items()), level), "")


def _kos(study: str, series: str, references: list[tuple[str, str]], code: str = "113039") -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = KOS_SOP_CLASS, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.PatientID = study, generate_uid(), "KO", "4MR1"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = (
        code,
        "DCM",
        "Data Retention Policy Expired",
    )
    ds.ConceptNameCodeSequence = [title]
    evidence, ref_series = Dataset(), Dataset()
    evidence.StudyInstanceUID, ref_series.SeriesInstanceUID = study, series
    refs = []
    for sop_class, sop in references:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, sop
        refs.append(ref)
    ref_series.ReferencedSOPSequence = refs
    evidence.ReferencedSeriesSequence = [ref_series]
    ds.CurrentRequestedProcedureEvidenceSequence = [evidence]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        KOS_SOP_CLASS,
        ds.SOPInstanceUID,
    )
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_rejected_instances_series_and_studies_leave_every_query(hub: Hub) -> None:
    study, series, sops = _study(hub)
    report = reject(hub.catalog, study, series[0], sops[0][0], "113001^DCM")
    assert report.instances == 1 and report.patients == {("4MR1", None)}
    found = _find(hub, "study", StudyInstanceUID=study)[0]
    assert found["00201208"]["Value"] == [3] and found["00201206"]["Value"] == [2]
    assert {r.sop_instance_uid for r in instance_rows(hub.catalog, study)} == {*sops[0][1:], *sops[1]}
    assert len(_find(hub, "instance", StudyInstanceUID=study)) == 3
    # The last instance of series 1: the series goes; the study stays.
    reject(hub.catalog, study, series[1], code="quality")
    assert [s["0020000E"]["Value"][0] for s in _find(hub, "series", StudyInstanceUID=study)] == [series[0]]
    # Everything: the study goes too, and nothing visible is left to reject.
    assert reject(hub.catalog, study, code="safety").instances == 2
    assert _find(hub, "study", StudyInstanceUID=study) == []
    with pytest.raises(NotFound):
        instance_rows(hub.catalog, study)
    assert reject(hub.catalog, study).instances == 0  # again: nothing more to do
    with pytest.raises(NotFound):
        reject(hub.catalog, generate_uid())
    # A rejected instance is not stored again.
    again = store_instances(hub.catalog, hub.objects, [(_variant(study, series[0], sops[0][0]), "again")])[0]
    assert (
        again.status == REFUSED and "was rejected (113001^DCM Rejected for Quality Reasons)" in again.reason
    )
    # A new instance brings its series and study back.
    new = store_instances(hub.catalog, hub.objects, [(_variant(study, series[0], generate_uid()), "new")])[0]
    assert new.status == STORED
    assert _find(hub, "study", StudyInstanceUID=study)[0]["00201208"]["Value"] == [1]
    with pytest.raises(ValidationError, match="not an IOCM rejection reason"):
        reject(hub.catalog, study, code="113002")


def test_a_rejection_note_stored_like_any_instance_rejects_what_it_references(hub: Hub) -> None:
    """IHE IOCM: a Key Object Selection titled 113039 (Data Retention Policy Expired)."""
    study, series, sops = _study(hub)
    note = _kos(study, series[0], [(MR, sops[0][0]), (MR, sops[0][1])])
    assert store_instances(hub.catalog, hub.objects, [(note, "note")])[0].status == STORED
    # The two referenced instances and the note itself are hidden; the rest stays.
    visible = {r.sop_instance_uid for r in instance_rows(hub.catalog, study)}
    assert visible == {sops[0][2], sops[1][0]}
    assert _find(hub, "study", StudyInstanceUID=study)[0]["00201208"]["Value"] == [2]


def test_cli_reject(local_hub: Hub) -> None:
    study, series, _ = _study(local_hub)
    home = str(local_hub.settings.home)
    runner = CliRunner()
    r = runner.invoke(
        app, ["--home", home, "dicom", "reject", study, "--series", series[1], "--reason", "worklist"]
    )
    assert r.exit_code == 0 and "1 instances rejected (113038 Incorrect Modality Worklist Entry)" in r.output
    r = runner.invoke(app, ["--home", home, "dicom", "reject", study, "--reason", "because"])
    assert r.exit_code != 0 and "not an IOCM rejection reason" in r.output
    assert local_hub.audit.count(action="imaging.reject") == 1
