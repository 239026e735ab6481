"""The imaging archive's store: byte-identical instances, a consistent index, clear refusals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from io import BytesIO
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from hdhub.catalog.models import DicomInstance, DicomSeries, DicomStudy
from hdhub.cli.main import app
from hdhub.errors import NotFound
from hdhub.hub import Hub
from hdhub.imaging.migration import journal_path
from hdhub.imaging.render import NotAcceptable, render
from hdhub.imaging.store import REFUSED, STORED, read_instance, store_instance, store_instances
from hdhub.imaging.workers import WorkersLost
from hdhub.objects import open_store

runner = CliRunner()
MR_SMALL = Path(pydicom.data.get_testdata_file("MR_small.dcm"))


def _counts(hub: Hub) -> tuple[int, int, int]:
    with Session(hub.catalog) as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(model))
            for model in (DicomStudy, DicomSeries, DicomInstance)
        )


def _variant(study: str | None = None, series: str | None = None, sop: str | None = None) -> bytes:
    """MR_small.dcm with other UIDs (None: removed)."""
    ds = pydicom.dcmread(MR_SMALL)
    for keyword, value in (
        ("StudyInstanceUID", study),
        ("SeriesInstanceUID", series),
        ("SOPInstanceUID", sop),
    ):
        if value is None:
            del ds[keyword]
        else:
            setattr(ds, keyword, value)
    buf = BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def test_every_pydicom_test_file_is_stored_identically_or_refused_with_a_reason(hub: Hub) -> None:
    """Must show (issue 4): explicit and implicit VR, big endian, deflated, JPEG, JPEG 2000,
    JPEG-LS, RLE and the deliberately broken files: no crash, no half-indexed instance."""
    files = [Path(f) for f in pydicom.data.get_testdata_files() if Path(f).is_file()]
    assert len(files) > 100
    stored: dict[str, bytes] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the broken files it reads
        for f in files:
            data = f.read_bytes()
            outcome = store_instance(hub.catalog, hub.objects, data, f.name)
            assert outcome.status in (STORED, REFUSED)
            if outcome.status == STORED:
                stored[outcome.sop_instance_uid] = data  # type: ignore[index]
            else:
                assert outcome.reason, f.name
    assert len(stored) > 100
    for sop, data in stored.items():
        assert read_instance(hub.catalog, hub.objects, sop) == data
    # The index holds exactly the stored instances, each with its object.
    with Session(hub.catalog) as s:
        rows = s.execute(select(DicomInstance.sop_instance_uid, DicomInstance.object_key)).all()
    assert {sop for sop, _ in rows} == set(stored)
    keys = {info.key for info in hub.objects.list("dicom/")}
    assert keys == {key for _, key in rows}
    # Transfer syntaxes seen: the formats the issue names.
    with Session(hub.catalog) as s:
        syntaxes = set(s.scalars(select(DicomInstance.transfer_syntax_uid)))
    for uid in (
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.5",
    ):
        assert uid in syntaxes, uid  # fmt: skip


def test_refusals_leave_nothing_behind(hub: Hub) -> None:
    study, series = generate_uid(), generate_uid()
    ok = store_instance(hub.catalog, hub.objects, _variant(study, series, generate_uid()), "ok")
    assert ok.status == STORED
    before = _counts(hub)
    cases = {
        "traversal": (_variant("1.2/../../etc", series, generate_uid()), "is not a valid DICOM UID"),
        "no study": (_variant(None, series, generate_uid()), "no StudyInstanceUID (0020,000D)"),
        "too long": (_variant("1." * 40 + "1", series, generate_uid()), "is not a valid DICOM UID"),
        "not dicom": (b"%PDF-1.7 not an image", "not a DICOM"),
        "empty": (b"", "not a DICOM file"),
        "duplicate": (_variant(study, series, ok.sop_instance_uid), "is already stored"),
        # A known series under a new study: the new study row is rolled back too.
        "series elsewhere": (_variant(generate_uid(), series, generate_uid()), f"series {series} belongs to"),
    }  # fmt: skip
    for name, (data, reason) in cases.items():
        outcome = store_instance(hub.catalog, hub.objects, data, name)
        assert outcome.status == REFUSED and reason in (outcome.reason or ""), (name, outcome)
    assert _counts(hub) == before
    assert len(list(hub.objects.list("dicom/"))) == 1


def test_a_failing_object_store_leaves_no_index_row(hub: Hub, tmp_path: Path) -> None:
    root = tmp_path / "objects"
    broken = open_store(f"file://{root}", hub.keys.keyring)
    shutil.rmtree(root)
    root.write_text("a file where the store's directory was")  # every write now fails
    with pytest.raises(OSError):  # one instance (a C-STORE)
        store_instance(hub.catalog, broken, _variant(generate_uid(), generate_uid(), generate_uid()), "x")
    assert _counts(hub) == (0, 0, 0)
    batch = [(_variant(generate_uid(), generate_uid(), generate_uid()), f"f{k}") for k in range(3)]
    with pytest.raises(OSError):  # several at once
        store_instances(hub.catalog, broken, batch)
    assert _counts(hub) == (0, 0, 0)
    with pytest.raises(NotFound):
        read_instance(hub.catalog, hub.objects, "1.2.3")


def test_cli_ingest_dicom_reports_every_kind_of_refusal(local_hub: Hub, tmp_path: Path) -> None:
    home = str(local_hub.settings.home)
    local_hub.close()
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        (folder / f"img{i}").write_bytes(_variant("1.2.3.4", "1.2.3.4.5", f"1.2.3.4.5.{i}"))
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / "no-study").write_bytes(_variant(None, "1.2.3.4.6", "1.2.3.4.6.1"))
    (folder / "sub" / "bad-uid").write_bytes(_variant("1.2.x", "1.2.3.4.7", "1.2.3.4.7.1"))
    r = runner.invoke(app, ["--home", home, "ingest", "dicom", str(folder)])
    assert r.exit_code == 0, r.output
    assert "3 instances stored (1 studies), 0 already stored, 3 refused" in r.output
    assert (
        "not DICOM or corrupt 1" in r.output and "missing UID 1" in r.output and "invalid UID 1" in r.output
    )
    key = re.search(r"hdhub objects get (\S+)", r.output).group(1)  # type: ignore[union-attr]
    # Run again: the stored files are identical copies, not errors.
    r = runner.invoke(app, ["--home", home, "ingest", "dicom", str(folder)])
    assert r.exit_code == 0 and "0 instances stored (0 studies), 3 already stored, 3 refused" in r.output
    r = runner.invoke(app, ["--home", home, "ingest", "dicom", str(folder / "notes.txt")])
    assert r.exit_code == 65
    hub = Hub.open(home)
    try:
        report = hub.objects.get_bytes(key).decode()
        assert "notes.txt,not DICOM or corrupt" in report and "no-study,missing UID" in report
        assert hub.audit.count(action="imaging.store") == 3
        assert _counts(hub) == (1, 1, 3)
    finally:
        hub.close()


@pytest.mark.integration
def test_cli_ingest_dicom_resumes_after_a_crash(local_hub: Hub, tmp_path: Path) -> None:
    """Killed (SIGKILL) mid-run, the import resumes from its journal: every file stored once."""
    home = local_hub.settings.home
    local_hub.close()
    folder = tmp_path / "pacs-export"
    folder.mkdir()
    study = f"1.2.826.0.1.3680043.10.{time.time_ns() % 10**9}"
    for i in range(640):
        (folder / f"{i:04d}.dcm").write_bytes(
            _variant(study, f"{study}.{i // 100}", f"{study}.{i // 100}.{i}")
        )
    journal = journal_path(home, [folder])
    proc = subprocess.Popen(
        [sys.executable, "-m", "hdhub.cli.main", "--home", str(home), "ingest", "dicom", str(folder)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 64:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the import ended before it could be interrupted"
    r = runner.invoke(app, ["--home", str(home), "ingest", "dicom", str(folder)])
    assert r.exit_code == 0, r.output
    assert re.search(r"resumed: \d+ files done by the interrupted run", r.output), r.output
    assert " 0 refused" in r.output and not journal.exists()
    hub = Hub.open(home)
    try:
        assert _counts(hub) == (1, 7, 640)
    finally:
        hub.close()


def test_duplicates_kept_as_versions_when_configured(hub: Hub) -> None:
    uids = (generate_uid(), generate_uid(), generate_uid())
    first, second = _variant(*uids), _variant(*uids)
    ds = pydicom.dcmread(BytesIO(second))
    ds.PatientName = "Corrected^Name"
    buf = BytesIO()
    ds.save_as(buf)
    second = buf.getvalue()
    assert store_instance(hub.catalog, hub.objects, first, "v1").status == STORED
    refused = store_instance(hub.catalog, hub.objects, second, "v2")
    assert refused.status == REFUSED and refused.duplicate
    assert store_instance(hub.catalog, hub.objects, second, "v2", duplicates="version").status == STORED
    assert store_instance(hub.catalog, hub.objects, second, "v2 again", duplicates="version").status == STORED
    assert read_instance(hub.catalog, hub.objects, uids[2]) == second
    assert _counts(hub) == (1, 1, 1)
    versions = [v for v in hub.objects.versions("dicom/") if not v.delete_marker]
    assert len(versions) == 2  # the first copy is kept; the identical third changed nothing
    # A copy under another series is refused even when versions are kept.
    moved = store_instance(
        hub.catalog, hub.objects, _variant(uids[0], generate_uid(), uids[2]), "x", "version"
    )
    assert moved.status == REFUSED and "another study or series" in (moved.reason or "")


def test_a_batch_is_checked_as_a_whole(hub: Hub) -> None:
    """Refusals inside one batch: a repeated SOP Instance UID, a series claimed by two studies."""
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    other_study = generate_uid()
    batch = [
        (_variant(study, series, sop), "first"),
        (_variant(study, series, sop), "same UID again"),
        (_variant(study, series, generate_uid()), "second of the series"),
        (_variant(other_study, series, generate_uid()), "series under another study"),
        (b"garbage", "not DICOM"),
    ]
    outcomes = store_instances(hub.catalog, hub.objects, batch)
    assert [o.status for o in outcomes] == [STORED, REFUSED, STORED, REFUSED, REFUSED]
    assert outcomes[1].duplicate and "twice in this batch" in (outcomes[1].reason or "")
    assert f"belongs to study {study}" in (outcomes[3].reason or "")
    assert _counts(hub) == (1, 1, 2)
    assert len(list(hub.objects.list("dicom/"))) == 2
    again = store_instances(hub.catalog, hub.objects, batch[:1])
    assert again[0].status == REFUSED and again[0].duplicate


def test_large_batches_go_through_the_worker_processes(hub: Hub) -> None:
    """Parsing and object writes in worker processes: same outcomes, same bytes, both profiles."""
    study = f"1.2.826.0.1.3680043.10.{time.time_ns() % 10**9}"
    items = [(_variant(study, f"{study}.1", f"{study}.1.{i}"), f"part {i}") for i in range(24)]
    items.append((items[0][0], "again"))
    items.append((b"not dicom", "junk"))
    try:
        outcomes = store_instances(hub.catalog, hub.objects, items, workers=hub.imaging_workers)
    finally:
        hub.imaging_workers.close()
    assert [o.status for o in outcomes] == [STORED] * 24 + [REFUSED, REFUSED]
    assert outcomes[24].duplicate and outcomes[24].identical
    assert _counts(hub) == (1, 1, 24)
    assert read_instance(hub.catalog, hub.objects, f"{study}.1.7") == items[7][0]


def test_a_dead_worker_fails_its_batch_and_the_next_batch_gets_new_workers(local_hub: Hub) -> None:
    """Found by a robustness sweep: once one worker died (the kernel's out-of-memory killer, say),
    every later large batch failed with BrokenProcessPool (a 500) until the server restarted."""
    hub = local_hub
    study = f"1.2.826.0.1.3680043.10.{time.time_ns() % 10**9}"
    items = [(_variant(study, f"{study}.1", f"{study}.1.{i}"), f"part {i}") for i in range(16)]
    workers = hub.imaging_workers
    try:
        workers.start()
        os.kill(next(iter(workers._pool._processes)), signal.SIGKILL)  # type: ignore[union-attr]
        with pytest.raises(WorkersLost):
            store_instances(hub.catalog, hub.objects, items, workers=workers)
        assert _counts(hub) == (0, 0, 0)  # nothing of the failed batch
        outcomes = store_instances(hub.catalog, hub.objects, items, workers=workers)
    finally:
        workers.close()
    assert [o.status for o in outcomes] == [STORED] * 16


@pytest.mark.integration
def test_workers_exit_when_their_parent_is_killed(local_hub: Hub) -> None:
    """No worker process outlives a killed server or import (they would hold memory forever)."""
    script = (
        "import os, sys, time\n"
        "from hdhub.hub import Hub\n"
        f"hub = Hub.open({str(local_hub.settings.home)!r})\n"
        "hub.imaging_workers.start()\n"
        "print(' '.join(str(p) for p in hub.imaging_workers._pool._processes), flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]  # type: ignore[union-attr]
    assert workers
    parent.kill()  # SIGKILL: no clean-up code runs in the parent
    parent.wait(10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"orphaned workers: {alive}"


def _deflate_bomb(inflated: int) -> bytes:
    """A Deflated Explicit VR Little Endian instance whose private OB element is ``inflated``
    bytes of zeros: about a thousandth of that once deflated."""
    uid = generate_uid
    ds = pydicom.Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID, ds.Modality = uid(), uid(), "BOMB", "OT"
    body = pydicom.filebase.DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = False, True
    pydicom.filewriter.write_dataset(body, ds)
    meta = pydicom.dataset.FileMetaDataset()
    meta.TransferSyntaxUID, meta.MediaStorageSOPClassUID = "1.2.840.10008.1.2.1.99", ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    head = BytesIO()
    pydicom.filewriter.write_file_meta_info(head, meta, enforce_standard=True)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = deflate.compress(body.getvalue() + b"\x09\x00\x01\x10OB\x00\x00" + struct.pack("<I", inflated))
    zeros = bytes(16 << 20)
    for start in range(0, inflated, len(zeros)):
        out += deflate.compress(zeros[: inflated - start])
    return b"\x00" * 128 + b"DICM" + head.getvalue() + out + deflate.flush()


def test_a_deflate_bomb_is_refused_before_it_is_inflated(hub: Hub) -> None:
    """Found by a robustness sweep: a 1 MB deflated instance inflating to 1 GB was stored, and
    pydicom inflated it whole, in memory, at its storing and at every frame or render."""
    small, bomb = _deflate_bomb(1 << 20), _deflate_bomb(300 << 20)
    assert len(bomb) < 1 << 20
    outcomes = store_instances(hub.catalog, hub.objects, [(small, "small"), (bomb, "bomb")])
    small_outcome, bomb_outcome = outcomes
    assert small_outcome.status == STORED
    assert bomb_outcome.status == REFUSED and "inflates beyond 256 MiB" in (bomb_outcome.reason or "")
    assert _counts(hub)[2] == 1
    with pytest.raises(NotAcceptable, match="inflates beyond"):  # one stored before: never rendered
        render(bomb)
