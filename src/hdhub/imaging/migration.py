"""Import a folder tree exported from an old PACS: parallel, resumable, with an error report.

Files are read in batches and stored through ``store_instances`` (parsing and object
writes in the deployment's worker processes). After each batch the files it settled are
appended to a journal (fsync'd) under ``<home>/state/ingest-dicom/``, named after the
paths given; a run that stops (crash, Ctrl-C, reboot) resumes where the journal ends, and
the journal is removed once the whole tree is done. A file stored but not yet journaled
when the run stopped comes back as an identical duplicate: counted as already stored, not
as an error. Every refused file is listed, with its reason and its category, in a CSV
report kept in the object store.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from hdhub.imaging.store import (
    MAX_INSTANCE_BYTES,
    REFUSED,
    STORED,
    StoreOutcome,
    dicom_files,
    store_for_hub,
)

BATCH = 64
ALREADY = "already stored (identical)"


@dataclass
class ImportReport:
    files: int = 0
    resumed: int = 0  # files settled by an earlier, interrupted run
    stored: int = 0
    already: int = 0  # identical copies of stored instances
    studies: set[str] = field(default_factory=set)
    # (Patient ID, IssuerOfPatientID or None): one Patient ID may be two patients of two sites.
    patients: set[tuple[str, str | None]] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)  # category -> files
    examples: list[StoreOutcome] = field(default_factory=list)  # the first refusals
    error_report: str | None = None  # object key of the CSV of every refusal
    seconds: float = 0.0


def category(outcome: StoreOutcome) -> str:
    """The kind of refusal, for the summary of a migration."""
    reason = outcome.reason or ""
    if outcome.duplicate:
        return ALREADY if outcome.identical else "duplicate SOP Instance UID, other content"
    if reason.startswith("larger than"):
        return "too large"
    if "not a DICOM instance: no " in reason:
        return "missing UID"
    if "is not a valid DICOM UID" in reason:
        return "invalid UID"
    if reason.startswith("not readable"):
        return "unreadable file"
    if reason.startswith(("not a DICOM", "not a readable DICOM", "unreadable DICOM", "not DICOM")):
        return "not DICOM or corrupt"
    return "conflicts with the archive"


def journal_path(home: Path, paths: list[Path]) -> Path:
    key = hashlib.sha256("\n".join(sorted(str(p.resolve()) for p in paths)).encode()).hexdigest()[:32]
    return home / "state" / "ingest-dicom" / f"{key}.jsonl"


def _read_journal(path: Path) -> set[str]:
    done: set[str] = set()
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                done.add(orjson.loads(line))
            except orjson.JSONDecodeError:
                break  # a line cut by the crash: that file is done again
    return done


def import_tree(
    hub: Any,
    paths: list[Path],
    *,
    restart: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportReport:
    """Store every file under ``paths``; resumes an interrupted run unless ``restart``."""
    started = time.perf_counter()
    files = dicom_files(paths)
    journal = journal_path(hub.settings.home, paths)
    if restart:
        journal.unlink(missing_ok=True)
    done = _read_journal(journal)
    todo = [f for f in files if str(f) not in done]
    report = ImportReport(files=len(files), resumed=len(files) - len(todo))
    journal.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    refusals = io.StringIO()
    writer = csv.writer(refusals)
    writer.writerow(["file", "category", "reason", "sop_instance_uid"])
    with journal.open("ab") as log:
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            read = [_read(f) for f in batch]
            items = [(data, str(f)) for f, data in zip(batch, read, strict=True) if isinstance(data, bytes)]
            stored = iter(store_for_hub(hub, items))
            for data in read:
                _count(report, next(stored) if isinstance(data, bytes) else data, writer)
            log.write(b"".join(orjson.dumps(str(f)) + b"\n" for f in batch))
            log.flush()
            os.fsync(log.fileno())
            if progress:
                progress("dicom", report.resumed + start + len(batch), len(files))
    if sum(report.refused.values()):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        report.error_report = f"reports/ingest-dicom/{stamp}.csv"
        hub.objects.put(report.error_report, refusals.getvalue().encode(), content_type="text/csv")
    journal.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - started
    return report


def _read(path: Path) -> bytes | StoreOutcome:
    """The file's bytes, or its refusal when it cannot be read whole."""
    try:
        if path.stat().st_size > MAX_INSTANCE_BYTES:
            return StoreOutcome(str(path), REFUSED, reason=f"larger than {MAX_INSTANCE_BYTES >> 30} GiB")
        return path.read_bytes()
    except OSError as exc:
        return StoreOutcome(str(path), REFUSED, reason=f"not readable: {exc.strerror or exc}")


def _count(report: ImportReport, o: StoreOutcome, writer: Any) -> None:
    if o.status == STORED:
        report.stored += 1
        report.studies.add(o.study_uid or "")
        if o.patient_id:
            report.patients.add((o.patient_id, o.issuer))
        return
    assert o.status == REFUSED
    kind = category(o)
    if kind == ALREADY:
        report.already += 1
        return
    report.refused[kind] += 1
    if len(report.examples) < 20:
        report.examples.append(o)
    writer.writerow([o.source, kind, o.reason, o.sop_instance_uid or ""])
