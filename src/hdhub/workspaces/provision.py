# ruff: noqa: S608  (SQL is built from OMOP names checked against the specification, integers
# and a hex salt; no request text reaches it)
"""``hdhub project provision P``: the approved perimeter, pseudonymised, in the project's prefix.

What an extract holds, and how each value is changed:

- **rows**: the persons of the project's cohort (its approved version) — or every person when
  the approval names no cohort — minus everyone in the opposition registry *now*; events
  only within the approved date range (by the table's start date; periods that overlap it);
  reference tables (vocabulary, care sites, providers) whole.
- **columns**: exactly those approved, table by table. ``person_source_value`` (the
  warehouse's keyed hash of the patient, the same in every project) is withheld always.
- **person_id**: the per-project pseudonym (:mod:`hdhub.privacy.pseudonyms`): two projects
  cannot link their extracts, and provisioning again gives the same ids.
- **event ids** (visit, condition, note … ids, and the foreign keys to them): remapped with a
  project secret, so joins inside the extract still work and ids match no other extract.
- **dates**: shifted by the person's per-project offset (days, never 0) unless the approval
  keeps them; year/month/day of birth follow the shifted birth date.
- **note text**: de-identified (names, dates — shifted like the rest —, phone numbers, e-mail,
  addresses, NIR/INS, IPP, other identifiers); see :mod:`hdhub.privacy.note_deid`.
- **images**: when ``image_occurrence`` is approved, every stored instance of the persons'
  series, de-identified by the DICOM PS3.15 Annex E basic profile (with the Retain
  Longitudinal Temporal Information with Modified Dates option as the date shift; the basic
  profile alone when the approval keeps dates, so no real date leaves), Patient's Name and ID
  the person's pseudonym, UIDs remapped with a project key — the same in ``image_occurrence``
  (``image_study_uid``, ``image_series_uid``) and in the files, under
  ``dicom/<study>/<series>/<instance>.dcm``. Instances marked with burned-in annotation are
  left out and counted; ``wadors_uri`` and ``local_path`` (the archive's addresses) are withheld.
- **cohort**: when the approval names one, its periods as OMOP ``cohort`` rows
  (cohort_definition_id 1), pseudonymised and shifted like every other table.

The files — one Parquet file per table and a DuckDB database holding them all — go to
``projects/<slug>/extract-<n>/`` encrypted under the project's own key, with a manifest
giving rows, columns and SHA-256 of each. The previous extract is then deleted for good
(every version), so a patient who objected leaves the workspace with re-provisioning.
The identity store is never read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pydicom
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import Project, ProjectExtract, ProvisioningRun, aware, utcnow
from hdhub.errors import Conflict, HdhubError
from hdhub.hub import Hub
from hdhub.privacy.pseudonyms import ProjectPseudonyms
from hdhub.warehouse.connection import read_only
from hdhub.warehouse.schema import cdm_table
from hdhub.warehouse.spec import CdmTable
from hdhub.workspaces.keys import project_key, project_prefix, project_store
from hdhub.workspaces.runs import next_version

FORMAT = "hdhub.extract/1"
_EXTRACT_DIR = re.compile(r"extract-(\d+)/")
WITHHELD = frozenset({"person_source_value", "wadors_uri", "local_path"})
FREE_TEXT = {"note": ("note_text", "note_title")}


@dataclass(frozen=True)
class ExtractResult:
    project: str
    version: int
    prefix: str
    persons: int
    excluded_by_opposition: int
    tables: dict[str, int]  # rows per table
    seconds: float
    notes: int = 0
    images: int = 0


def _person_tables() -> frozenset[str]:
    from hdhub.warehouse.schema import ALL_TABLES

    return frozenset(name for name, t in ALL_TABLES.items() if t.column("person_id") is not None)


def _is_event_id(table: CdmTable, column: str) -> bool:
    """Ids of person-level rows (their keys and the foreign keys to them), and polymorphic
    ``*_event_id`` columns: remapped per project."""
    col = table.column(column)
    if col is None or column == "person_id" or col.kind != "integer":
        return False
    persons = _person_tables()
    if col.primary_key and table.name in persons:
        return True
    return (col.fk_table or "").lower() in persons or column.endswith("_event_id")


def _date_filter(table: CdmTable, date_from: str | None, date_to: str | None) -> str:
    if not (date_from or date_to):
        return "TRUE"
    dates = [c.name for c in table.columns if c.kind == "date"]
    if not dates:
        return "TRUE"
    start = next((c for c in dates if c.endswith("_start_date")), dates[0])
    end = start.replace("_start_date", "_end_date") if start.endswith("_start_date") else start
    end = end if end in dates else start
    clauses = []
    if date_to:
        clauses.append(f"t.{start} <= DATE '{dt.date.fromisoformat(date_to)}'")
    if date_from:
        clauses.append(f"coalesce(t.{end}, t.{start}) >= DATE '{dt.date.fromisoformat(date_from)}'")
    return " AND ".join(clauses)


def _select(table: CdmTable, columns: list[str], salt: str, keep_dates: bool) -> list[str]:
    out = []
    for name in columns:
        col = table.column(name)
        if col is None or name in WITHHELD:
            continue
        if name == "person_id":
            out.append("m.pid AS person_id")
        elif _is_event_id(table, name):
            out.append(
                f"CAST((('0x' || substr(sha256('{salt}:' || CAST(t.{name} AS VARCHAR)), 1, 16))::UBIGINT"
                f" >> 1) AS BIGINT) AS {name}"
            )
        elif keep_dates or table.column("person_id") is None:
            out.append(f"t.{name}")
        elif col.kind == "date":
            out.append(f"t.{name} + m.shift AS {name}")
        elif col.kind == "datetime":
            out.append(f"t.{name} + to_days(m.shift) AS {name}")
        elif table.name == "person" and name in ("year_of_birth", "month_of_birth", "day_of_birth"):
            born = (
                "(make_date(t.year_of_birth, coalesce(t.month_of_birth, 1), coalesce(t.day_of_birth, 1))"
                " + m.shift)"
            )
            part = {"year_of_birth": "year", "month_of_birth": "month", "day_of_birth": "day"}[name]
            source = "year_of_birth" if part == "year" else name
            out.append(f"CASE WHEN t.{source} IS NULL THEN NULL ELSE {part}({born}) END AS {name}")
        else:
            out.append(f"t.{name}")
    return out


def _table_sql(table: CdmTable, columns: list[str], perimeter: dict[str, Any], salt: str) -> str:
    keep = bool(perimeter.get("keep_dates"))
    select_list = _select(table, columns, salt, keep)
    if table.column("person_id") is None:
        return f"SELECT {', '.join(select_list)} FROM {table.name} t"
    text = FREE_TEXT.get(table.name, ())
    if any(c in columns for c in text):
        select_list.append("m.shift AS _hdhub_shift")
    if table.name == "image_occurrence":  # the raw UIDs, for the images; remapped afterwards
        select_list += ["t.image_study_uid AS _hdhub_study", "t.image_series_uid AS _hdhub_series",
                        "m.shift AS _hdhub_shift", "m.pid AS _hdhub_pid"]  # fmt: skip
    where = _date_filter(table, perimeter.get("date_from"), perimeter.get("date_to"))
    return (
        f"SELECT {', '.join(select_list)} FROM {table.name} t "
        f"JOIN _hdhub_map m ON m.person_id = t.person_id WHERE {where}"
    )


def _persons(con: Any, catalog: Any, perimeter: dict[str, Any]) -> tuple[pa.Table, int, Any]:
    """(person_id, person_source_value) of the extract, the persons the opposition removed,
    and the cohort's rows (or None)."""
    from hdhub.cohorts.compiler import merge_intervals
    from hdhub.cohorts.definition import CohortDefinition
    from hdhub.cohorts.run import compile_on, execute
    from hdhub.cohorts.service import get_definition, opposed_person_ids

    db = con.con
    opposed = opposed_person_ids(catalog, con)
    db.register("_hdhub_opposed", pa.table({"person_id": pa.array(opposed, pa.int64())}))
    cohort_rows = None
    ref = perimeter.get("cohort")
    if ref:
        row = get_definition(catalog, ref["owner"], ref["name"], ref["version"])
        definition = CohortDefinition.model_validate_json(row.definition)
        compiled = compile_on(con, definition)
        merged = merge_intervals(compiled.cohort, "person_id", "cohort_start_date", "cohort_end_date", 0)
        everyone = execute(con, compiled, merged)
        db.register("_hdhub_everyone", everyone)
        source = "SELECT DISTINCT person_id FROM _hdhub_everyone"
    else:
        everyone = None
        source = "SELECT person_id FROM person"
    total = db.execute(f"SELECT count(*) FROM ({source})").fetchone()[0]
    persons = db.execute(
        f"SELECT p.person_id, p.person_source_value FROM person p WHERE p.person_id IN ({source}) "
        "AND p.person_id NOT IN (SELECT person_id FROM _hdhub_opposed) ORDER BY p.person_id"
    ).fetch_arrow_table()
    if everyone is not None:
        cohort_rows = everyone.filter(pc.is_in(everyone["person_id"], persons["person_id"]))
    return persons, total - persons.num_rows, cohort_rows


def _mapping(persons: pa.Table, pseudonyms: ProjectPseudonyms) -> pa.Table:
    ids = persons["person_id"].to_pylist()
    keys = [
        psv if psv else f"person:{pid}"
        for pid, psv in zip(ids, persons["person_source_value"].to_pylist(), strict=True)
    ]
    pids = [pseudonyms.person_id(k) for k in keys]
    if len(set(pids)) != len(pids):  # about one chance in 10^7 for a million persons
        raise HdhubError("two persons drew the same pseudonym: provision the project again with a new slug")
    return pa.table(
        {
            "person_id": pa.array(ids, pa.int64()),
            "pid": pa.array(pids, pa.int64()),
            "shift": pa.array([pseudonyms.date_shift(k) for k in keys], pa.int32()),
        }
    )


def _deidentify_notes(path: Path, text_columns: tuple[str, ...]) -> int:
    """De-identify the free text of a note extract in place; returns the notes processed."""
    from hdhub.privacy.note_deid import deidentify

    table = pq.read_table(path)
    shifts = table["_hdhub_shift"].to_pylist()
    for name in text_columns:
        if name not in table.column_names:
            continue
        texts = table[name].to_pylist()
        clean = [
            None if text is None else deidentify(text, date_shift_days=shift)
            for text, shift in zip(texts, shifts, strict=True)
        ]
        table = table.set_column(table.column_names.index(name), name, pa.array(clean, pa.string()))
    table = table.drop_columns(["_hdhub_shift"])
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def _images(hub: Hub, path: Path, pseudonyms: ProjectPseudonyms, keep_dates: bool, store: Any,
            prefix: str) -> dict[str, int]:  # fmt: skip
    """De-identified copies of the series of ``image_occurrence`` rows, and the table's UIDs
    remapped the same way; returns the instances copied and those left out."""
    from hdhub.catalog.models import DicomInstance
    from hdhub.privacy.dicom_deid import BurnedInAnnotationError, DicomDeidentifier

    table = pq.read_table(path)
    key = pseudonyms.uid_key()
    rows = table.select(["_hdhub_study", "_hdhub_series", "_hdhub_shift", "_hdhub_pid"]).to_pylist()
    remap = DicomDeidentifier(key, date_shift_days=None, patient_pseudonym="x").new_uid
    for name, raw in (("image_study_uid", "_hdhub_study"), ("image_series_uid", "_hdhub_series")):
        if name in table.column_names:
            uids = [None if u is None else remap(u) for u in table[raw].to_pylist()]
            table = table.set_column(table.column_names.index(name), name, pa.array(uids, pa.string()))
    pq.write_table(table.drop_columns([c for c in table.column_names if c.startswith("_hdhub_")]), path,
                   compression="zstd")  # fmt: skip
    by_series = {r["_hdhub_series"]: r for r in rows if r["_hdhub_series"]}
    copied = skipped = 0
    with Session(hub.catalog) as s:
        series = list(by_series)
        for i in range(0, len(series), 500):
            instances = s.execute(
                select(DicomInstance.series_uid, DicomInstance.object_key).where(
                    DicomInstance.series_uid.in_(series[i : i + 500]), DicomInstance.rejected_at.is_(None)
                )
            ).all()
            for series_uid, object_key in instances:
                row = by_series[series_uid]
                deid = DicomDeidentifier(
                    key, date_shift_days=None if keep_dates else row["_hdhub_shift"],
                    patient_pseudonym=str(row["_hdhub_pid"]),
                )  # fmt: skip
                try:
                    clean = deid.deidentify_bytes(hub.objects.get_bytes(object_key))
                except BurnedInAnnotationError:
                    skipped += 1
                    continue
                ds = pydicom.dcmread(io.BytesIO(clean), stop_before_pixels=True)
                name = f"dicom/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
                store.put(prefix + name, clean, content_type="application/dicom")
                copied += 1
    return {"instances": copied, "left_out_burned_in_annotation": skipped}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def provision(hub: Hub, slug: str, by: str, run: int | None = None) -> ExtractResult:
    """Build (or rebuild) the workspace of an approved project; see the module docstring.

    ``run`` is the provisioning run (hdhub.workspaces.runs) doing it: the extract takes the
    version the run reserved, and the project switches to it only if the run is still the
    project's running one (a run taken for stopped may have been followed by another)."""
    started = time.perf_counter()
    with Session(hub.catalog) as s, s.begin():
        project = check_provisionable(s, slug)
        key = project_key(hub, s, project, create=True)
        perimeter = orjson.loads(project.perimeter)  # type: ignore[arg-type]
        reserved = None if run is None else s.get(ProvisioningRun, run)
        if reserved is not None and reserved.extract_version is not None:
            version = reserved.extract_version
        else:  # no run (a direct call), or one recorded before versions were reserved
            version = next_version(s, project)
        previous = project.extract_version
    delete_stale_extracts(hub, slug, key)
    pseudonyms = ProjectPseudonyms(hub.keys.pseudonym, slug)
    salt = pseudonyms.event_salt()
    prefix = f"{project_prefix(slug)}extract-{version}/"
    store = project_store(hub, key)
    tables: dict[str, int] = {}
    files: dict[str, dict[str, Any]] = {}
    notes = 0
    images: dict[str, int] = {"instances": 0, "left_out_burned_in_annotation": 0}
    with (
        tempfile.TemporaryDirectory(prefix="hdhub-provision-") as tmp,
        read_only(hub.settings.warehouse_url_resolved) as con,
    ):
        out = Path(tmp)
        db = con.con
        db.execute("SET preserve_insertion_order = false")
        persons, excluded, cohort_rows = _persons(con, hub.catalog, perimeter)
        db.register("_hdhub_map", _mapping(persons, pseudonyms))
        withheld: dict[str, list[str]] = {}
        for item in perimeter["data"]:
            table = cdm_table(item["table"])
            columns = list(item["columns"])
            if dropped := sorted(set(columns) & WITHHELD):
                withheld[table.name] = dropped
            if not [c for c in columns if c not in WITHHELD]:
                continue
            path = out / f"{table.name}.parquet"
            sql = _table_sql(table, columns, perimeter, salt)
            db.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
            if table.name in FREE_TEXT and any(c in columns for c in FREE_TEXT[table.name]):
                notes += _deidentify_notes(path, FREE_TEXT[table.name])
            if table.name == "image_occurrence":
                keep = bool(perimeter.get("keep_dates"))
                images = _images(hub, path, pseudonyms, keep, store, prefix)
            tables[table.name] = pq.read_metadata(path).num_rows
        if cohort_rows is not None:
            db.register("_hdhub_cohort", cohort_rows)
            shift = "" if perimeter.get("keep_dates") else " + m.shift"
            path = out / "cohort.parquet"
            db.execute(
                "COPY (SELECT 1::BIGINT AS cohort_definition_id, m.pid AS subject_id, "
                f"c.cohort_start_date{shift} AS cohort_start_date, "
                f"c.cohort_end_date{shift} AS cohort_end_date "
                f"FROM _hdhub_cohort c JOIN _hdhub_map m USING (person_id)) TO '{path}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            tables["cohort"] = pq.read_metadata(path).num_rows
        mart = out / "mart.duckdb"
        with duckdb.connect(str(mart)) as m:
            for name in tables:
                m.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{out / name}.parquet')")
        for path in [*(out / f"{n}.parquet" for n in tables), mart]:
            with path.open("rb") as fh:
                store.put(prefix + path.name, fh, content_type="application/octet-stream")
            files[path.name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {
        "format": FORMAT,
        "project": slug,
        "version": version,
        "created_at": utcnow().isoformat(),
        "persons": persons.num_rows,
        "excluded_by_opposition": excluded,
        "keep_dates": bool(perimeter.get("keep_dates")),
        "date_from": perimeter.get("date_from"),
        "date_to": perimeter.get("date_to"),
        "tables": {
            name: {"rows": rows, "file": f"{name}.parquet", **files[f"{name}.parquet"]}
            for name, rows in tables.items()
        },
        "database": {"file": "mart.duckdb", **files["mart.duckdb"]},
        "withheld_columns": withheld,
        "notes_deidentified": notes,
        "images": images,
    }
    store.put(prefix + "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2),
              content_type="application/json")  # fmt: skip
    try:
        with Session(hub.catalog) as s, s.begin():
            project = check_provisionable(s, slug)
            if run is not None:
                _still_running(s, run)
            s.add(
                ProjectExtract(
                    project_id=project.id, version=version, prefix=prefix, persons=persons.num_rows,
                    excluded_by_opposition=excluded, manifest=orjson.dumps(manifest).decode(), created_by=by,
                )
            )  # fmt: skip
            project.extract_version = version
            if project.status == "approved":
                project.status = "active"
    except Conflict:  # not switched to: the files written are nobody's
        delete_extract(hub, slug, version, key)
        raise
    if previous is not None:
        delete_extract(hub, slug, previous, key)
    return ExtractResult(slug, version, prefix, persons.num_rows, excluded, tables,
                         time.perf_counter() - started, notes, images["instances"])  # fmt: skip


def check_provisionable(s: Session, slug: str) -> Project:
    """The project, if it may be provisioned now (approved or active, not expired or frozen)."""
    from hdhub.governance.projects import get_project

    project = get_project(s, slug)
    expired = project.expires_at is not None and aware(project.expires_at) <= dt.datetime.now(dt.UTC)
    if project.status not in ("approved", "active") or expired or project.frozen_at is not None:
        open_ = project.status in ("approved", "active")
        state = project.status if not open_ else "expired" if expired else "frozen"
        raise Conflict(f"project {slug!r} is {state}: only an approved or active project is provisioned")
    if not project.perimeter:
        raise Conflict(f"project {slug!r} has no approved perimeter")
    return project


def delete_extract(hub: Hub, slug: str, version: int, key: bytes) -> int:
    """Delete one extract's files for good (every version); returns the versions removed."""
    store = project_store(hub, key)
    prefix = f"{project_prefix(slug)}extract-{version}/"
    removed = 0
    for info in store.versions(prefix):
        store.delete(info.key, info.version_id)
        removed += 1
    with Session(hub.catalog) as s, s.begin():
        row = s.scalar(
            select(ProjectExtract)
            .join(Project, Project.id == ProjectExtract.project_id)
            .where(Project.slug == slug, ProjectExtract.version == version)
        )
        if row is not None and row.deleted_at is None:
            row.deleted_at = utcnow()
    return removed


def _still_running(s: Session, run: int) -> None:
    """Conflict unless ``run`` is still running (read in the transaction that switches)."""
    state = s.scalar(select(ProvisioningRun.state).where(ProvisioningRun.id == run).with_for_update())
    if state != "running":
        raise Conflict(
            f"provisioning run {run} was taken for stopped ({state}): another run may have followed "
            "it, so its extract is not used"
        )


def delete_stale_extracts(hub: Hub, slug: str, key: bytes) -> list[int]:
    """Delete the project's extracts that are neither the current one nor being written by a
    running provisioning: what a provisioning killed before its end left behind — an extract
    half written, or the previous one, not yet deleted, which may hold persons who have
    objected since. Returns the versions deleted.

    The store is listed before the catalog is read: an extract found in the listing belongs
    to a run that had started by then, so the catalog read afterwards sees that run running,
    finished (current) or failed (its files are garbage). A run started later reserves a
    higher version than any listed. So a run taken for stopped that wakes up never deletes
    the extract of the run that followed it."""
    store = project_store(hub, key)
    listed = set()
    for info in store.versions(project_prefix(slug)):
        found = _EXTRACT_DIR.match(info.key[len(project_prefix(slug)) :])
        if found:
            listed.add(int(found.group(1)))
    with Session(hub.catalog) as s:
        project = s.scalar(select(Project).where(Project.slug == slug))
        if project is None:
            return []
        keep = {project.extract_version} | set(
            s.scalars(
                select(ProvisioningRun.extract_version).where(
                    ProvisioningRun.project_id == project.id, ProvisioningRun.state == "running"
                )
            )
        )
    stale = sorted(listed - keep)
    for version in stale:
        delete_extract(hub, slug, version, key)
    return stale


def current_manifest(hub: Hub, slug: str) -> dict[str, Any]:
    """The manifest of the project's current extract."""
    from hdhub.governance.projects import get_project

    with Session(hub.catalog) as s:
        project = get_project(s, slug)
        if project.extract_version is None:
            raise Conflict(f"project {slug!r} has not been provisioned")
        row = s.scalar(
            select(ProjectExtract).where(
                ProjectExtract.project_id == project.id, ProjectExtract.version == project.extract_version
            )
        )
        return orjson.loads(row.manifest)  # type: ignore[union-attr]
