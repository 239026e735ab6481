"""DIMSE with real peers: dcmtk's echoscu, storescu, findscu, movescu and storescp."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import DicomInstance
from hdhub.hub import Hub
from hdhub.imaging.dimse import ScpConfig, serve
from hdhub.imaging.store import read_instance
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
