"""DIMSE with real peers: dcmtk's echoscu, storescu, findscu, movescu and storescp."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import DicomInstance
from hdhub.hub import Hub
from hdhub.imaging.dimse import ScpConfig, serve
from hdhub.imaging.store import read_instance
from tests.imaging.test_patient_issuer import IPP, NORD, SUD, instance
from tests.imaging.test_store import _variant

pytestmark = pytest.mark.integration
DCMTK = Path("/usr/bin/storescu")
if not DCMTK.exists():
    if os.environ.get("CI_REQUIRE_SERVICES"):
        raise RuntimeError("dcmtk is missing: scripts/debian-packages.sh installs it")
    pytest.skip("dcmtk not installed (scripts/debian-packages.sh installs it)", allow_module_level=True)
ENV = os.environ | {"TCP_NODELAY": "1"}  # dcmtk leaves Nagle on otherwise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=ENV, check=False)


@pytest.fixture
def scp(local_hub: Hub, tmp_path: Path) -> Iterator[tuple[Hub, int, Path]]:
    """The archive's SCP on loopback, and a dcmtk storescp as the C-MOVE destination."""
    port, dest_port = _free_port(), _free_port()
    received = tmp_path / "received"
    received.mkdir()
    storescp = subprocess.Popen(
        ["/usr/bin/storescp", "-aet", "VIEWER", "-od", str(received), str(dest_port)], env=ENV
    )
    config = ScpConfig("HDHUB", ["MODALITY", "VIEWER"], {"VIEWER": ("127.0.0.1", dest_port)})
    server = serve(local_hub, config, "127.0.0.1", port, block=False)
    time.sleep(0.3)
    try:
        yield local_hub, port, received
    finally:
        server.shutdown()
        storescp.terminate()
        storescp.wait(10)


def test_storescu_findscu_movescu(scp: tuple[Hub, int, Path], tmp_path: Path) -> None:
    """Must show (issue 4): storescu of a folder appears in the index (and QIDO), findscu finds
    it, movescu delivers it to a dcmtk storescp."""
    hub, port, received = scp
    assert (
        _run("/usr/bin/echoscu", "-aet", "MODALITY", "-aec", "HDHUB", "127.0.0.1", str(port)).returncode == 0
    )
    folder = tmp_path / "exam"
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(3)]
    for i, sop in enumerate(sops):
        (folder / f"im{i}.dcm").write_bytes(_variant(study, series, sop))
    sent = _run(
        "/usr/bin/storescu", "-aet", "MODALITY", "-aec", "HDHUB", "+sd", "127.0.0.1", str(port), str(folder)
    )
    assert sent.returncode == 0, sent.stderr
    with Session(hub.catalog) as s:
        stored = set(
            s.scalars(select(DicomInstance.sop_instance_uid).where(DicomInstance.study_uid == study))
        )
    assert stored == set(sops)
    # Stored as sent: the pixel data storescu read from the file (same transfer syntax here).
    assert (
        pydicom.dcmread(folder / "im0.dcm").PixelData
        == pydicom.dcmread(BytesIO(read_instance(hub.catalog, hub.objects, sops[0]))).PixelData
    )

    found = _run(
        "/usr/bin/findscu", "-aet", "MODALITY", "-aec", "HDHUB", "-S", "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study}", "-k", "PatientName", "-k", "NumberOfStudyRelatedInstances",
        "127.0.0.1", str(port),
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    out = found.stderr + found.stdout
    assert study in out and re.search(r"\(0020,1208\) IS \[3\s*\]", out), out

    moved = _run(
        "/usr/bin/movescu", "-aet", "VIEWER", "-aec", "HDHUB", "-aem", "VIEWER", "-S",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(port),
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    deadline = time.monotonic() + 10
    while len(list(received.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    got = {pydicom.dcmread(f).SOPInstanceUID for f in received.iterdir()}
    assert got == set(sops)
    # Every operation is an audit event naming the calling AE, the study and the patient.
    for action, n in (("imaging.c-store", 3), ("imaging.c-find", 1), ("imaging.c-move", 1)):
        events = hub.audit.search(action=action)
        assert len(events) == n, action
        assert all(
            e.actor == f"dicom:{'VIEWER' if action == 'imaging.c-move' else 'MODALITY'}"
            and e.patient_id == "4MR1"
            and e.resource_id == study
            and e.outcome == "success"
            for e in events
        ), events


def test_unknown_callers_and_destinations_are_refused(scp: tuple[Hub, int, Path], tmp_path: Path) -> None:
    hub, port, received = scp
    (tmp_path / "x.dcm").write_bytes(_variant(generate_uid(), generate_uid(), generate_uid()))
    intruder = _run(
        "/usr/bin/storescu",
        "-aet",
        "INTRUDER",
        "-aec",
        "HDHUB",
        "127.0.0.1",
        str(port),
        str(tmp_path / "x.dcm"),
    )
    assert intruder.returncode != 0
    with Session(hub.catalog) as s:
        assert s.scalar(select(DicomInstance.sop_instance_uid)) is None
    moved = _run(
        "/usr/bin/movescu", "-aet", "MODALITY", "-aec", "HDHUB", "-aem", "ELSEWHERE", "-S",
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2.3", "127.0.0.1", str(port),
    )  # fmt: skip
    assert "Move Destination Unknown" in moved.stderr + moved.stdout or moved.returncode != 0
    assert list(received.iterdir()) == []
    shutil.rmtree(received)


def _issuers(hub: Hub, action: str) -> list[Any]:
    """The detail's patient_issuers of each event of ``action``, newest first."""
    return [json.loads(e.detail).get("patient_issuers") for e in hub.audit.search(action=action)]


def test_c_find_matches_and_returns_the_issuer(scp: tuple[Hub, int, Path]) -> None:
    """One Patient ID issued by two sites: C-FIND with IssuerOfPatientID (0010,0021) finds only
    that site's patient and returns the issuer; every event names the patients with issuers."""
    hub, port, _ = scp
    nord, sud, unknown = generate_uid(), generate_uid(), generate_uid()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(MRImageStorage)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", port, ae_title="HDHUB")
    assert assoc.is_established

    def find(level: str = "STUDY", **keys: str) -> dict[str, str | None]:
        """Study Instance UID -> IssuerOfPatientID of each match."""
        query = Dataset()
        query.QueryRetrieveLevel, query.StudyInstanceUID, query.IssuerOfPatientID = level, "", ""
        for keyword, value in keys.items():
            setattr(query, keyword, value)
        found = {}
        for status, ds in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            assert status.Status in (0xFF00, 0x0000), status
            if status.Status == 0xFF00:
                assert "IssuerOfPatientID" in ds  # (0010,0021) is returned, empty when unknown
                found[ds.StudyInstanceUID] = ds.IssuerOfPatientID or None
        return found

    try:
        for study, issuer in (
            (nord, {"IssuerOfPatientID": NORD}),
            (sud, {"IssuerOfPatientID": SUD}),
            (unknown, {}),
        ):
            ds = pydicom.dcmread(BytesIO(instance(study, PatientID=IPP, **issuer)))
            assert assoc.send_c_store(ds).Status == 0x0000
        assert find(PatientID=IPP) == {nord: NORD, sud: SUD, unknown: None}
        # A list of studies above the SERIES level was searched as one odd study: 0 matches.
        query = Dataset()
        query.QueryRetrieveLevel, query.StudyInstanceUID, query.SeriesInstanceUID = "SERIES", [nord, sud], ""
        ((status, _),) = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
        assert status.Status == 0xC001 and "one UID" in status.ErrorComment
        assert find(PatientID=IPP, IssuerOfPatientID=NORD) == {nord: NORD}
        assert find("SERIES", PatientID=IPP, IssuerOfPatientID=SUD) == {sud: SUD}
        assert find(PatientID=IPP, IssuerOfPatientID="*/ch-sud/*") == {sud: SUD}
        assert find(PatientID=IPP, IssuerOfPatientID=NORD.upper()) == {}
        move = Dataset()
        move.QueryRetrieveLevel, move.StudyInstanceUID = "STUDY", sud
        moved = list(assoc.send_c_move(move, "VIEWER", StudyRootQueryRetrieveInformationModelMove))
        assert moved[-1][0].Status == 0x0000
    finally:
        assoc.release()

    # The audit events: patient_id stays the Patient ID, patient_issuers names who it is.
    assert {e.patient_id for e in hub.audit.search(action="imaging.c-store")} == {IPP}
    assert sorted(_issuers(hub, "imaging.c-store"), key=lambda i: i[0]["issuer"] or "") == [
        [{"patient_id": IPP, "issuer": None}],
        [{"patient_id": IPP, "issuer": SUD}],
        [{"patient_id": IPP, "issuer": NORD}],
    ]
    finds = _issuers(hub, "imaging.c-find")[::-1]  # oldest first
    assert finds[0] == [
        {"patient_id": IPP, "issuer": None},
        {"patient_id": IPP, "issuer": SUD},
        {"patient_id": IPP, "issuer": NORD},
    ]
    assert finds[1] == [{"patient_id": IPP, "issuer": NORD}]
    assert finds[2] == finds[3] == [{"patient_id": IPP, "issuer": SUD}]
    assert finds[4] is None and len(finds) == 5  # a C-FIND matching nothing names no patient
    assert _issuers(hub, "imaging.c-move") == [[{"patient_id": IPP, "issuer": SUD}]]


def test_a_second_copy_succeeds_only_when_it_is_the_same(scp: tuple[Hub, int, Path]) -> None:
    """Found by a robustness sweep: other content under a stored SOP Instance UID was answered
    Success and dropped, so the modality could delete its only copy."""
    hub, port, _ = scp
    study = generate_uid()
    first = pydicom.dcmread(BytesIO(instance(study, PatientID=IPP)))
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="HDHUB")
    try:
        assert assoc.send_c_store(first).Status == 0x0000
        assert assoc.send_c_store(first).Status == 0x0000  # sent again, unchanged: success
        changed = pydicom.dcmread(BytesIO(instance(study, PatientID=IPP)))
        changed.SeriesInstanceUID = first.SeriesInstanceUID
        changed.SOPInstanceUID = changed.file_meta.MediaStorageSOPInstanceUID = first.SOPInstanceUID
        changed.StudyDescription = "something else"
        status = assoc.send_c_store(changed)
        assert status.Status != 0x0000 and "already" in status.ErrorComment, status
    finally:
        assoc.release()
    with Session(hub.catalog) as s:
        same = DicomInstance.sop_instance_uid == first.SOPInstanceUID
        assert len(s.scalars(select(DicomInstance).where(same)).all()) == 1


def test_idle_connections_do_not_keep_modalities_out(scp: tuple[Hub, int, Path]) -> None:
    """Found by a robustness sweep: 11 idle TCP connections from anywhere filled pynetdicom's
    default 10 associations for 30 s, and an allowed modality was refused."""
    _, port, _ = scp
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(15)]
    try:
        echo = _run("/usr/bin/echoscu", "-aet", "MODALITY", "-aec", "HDHUB", "127.0.0.1", str(port))
        assert echo.returncode == 0, echo.stderr
    finally:
        for conn in idle:
            conn.close()
