"""Load an OMOP CDM 5.4 CSV export into the warehouse, all-or-nothing.

Each file (``PERSON.csv``, ``person.csv.gz`` …; names are case-insensitive) is read by
DuckDB as text, checked column by column in one vectorised scan (types, required
values, varchar lengths, primary keys), and staged in a typed temporary table. Only
when every file is clean are all tables written, in one transaction. The first problem
stops the load with a message naming the file, the physical line and the column.
"""

# SQL here is assembled from identifiers of the OMOP specification only (a file's header
# is checked against it before any SQL is built) and quoted; values are bound parameters.

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from hdhub.errors import NotFound, ValidationError
from hdhub.ingest.sql import sql_literal
from hdhub.warehouse._omop_cdm54 import TABLES
from hdhub.warehouse.spec import CdmColumn, CdmTable

NOT_DATA = ("license", "readme", "notice", "copying")
MAX_LINE_BYTES = 64 * 1024 * 1024  # a note_text may be long; anything past this is hostile


@dataclass
class LoadReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows loaded
    files: dict[str, str] = field(default_factory=dict)  # table -> file name
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def discover(directory: Path, schema: str | None = None) -> list[tuple[CdmTable, Path]]:
    """The CDM table of every data file in ``directory``; anything unknown is an error."""
    if not directory.is_dir():
        raise NotFound(f"{directory} is not a directory")
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        lower = path.name.lower()
        if path.is_dir() or lower.startswith(NOT_DATA) or lower.startswith("."):
            continue
        if not lower.endswith((".csv", ".csv.gz")):
            raise ValidationError(f"{path.name}: not an OMOP CSV file (expected TABLE.csv or TABLE.csv.gz)")
        name = lower.removesuffix(".gz").removesuffix(".csv")
        if name not in TABLES:
            raise ValidationError(f"{path.name}: {name!r} is not an OMOP CDM 5.4 table")
        if schema is not None and TABLES[name].schema != schema:
            raise ValidationError(f"{path.name}: table {name} is not a {schema} table")
        if name in found:
            raise ValidationError(f"{path.name} and {found[name].name} are both files of table {name}")
        found[name] = path
    if not found:
        raise ValidationError(f"{directory}: no OMOP CSV files found")
    return [(TABLES[name], found[name]) for name in TABLES if name in found]


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="", errors="replace")


def is_tab_separated(path: Path) -> bool:
    """OHDSI Athena vocabulary files are tab-separated and unquoted, despite their .csv name."""
    with _open_text(path) as fh:
        try:
            return "\t" in fh.readline(MAX_LINE_BYTES)
        except (OSError, EOFError):
            return False


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of each CSV record, header included."""
    csv.field_size_limit(MAX_LINE_BYTES)
    tabs = is_tab_separated(path)
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if tabs else csv.reader(fh)
        start = 1
        for rec in reader:
            yield start, rec
            start = reader.line_num + 1


def line_of_record(path: Path, record: int) -> int:
    """Physical line where data record ``record`` (1-based, after the header) starts."""
    for i, (line, _fields) in enumerate(_records(path)):
        if i == record:
            return line
    return -1


def read_header(path: Path, table: CdmTable) -> list[str]:
    try:
        _line, header = next(_records(path))
    except StopIteration:
        raise ValidationError(f"{path.name}: empty file (a header row is required)") from None
    except (csv.Error, OSError, EOFError) as exc:
        raise ValidationError(f"{path.name}, line 1: unreadable header: {exc}") from None
    names = [h.strip().lower() for h in header]
    for name in names:
        if table.column(name) is None:
            shown = name if len(name) <= 60 else name[:60] + "…"
            raise ValidationError(
                f"{path.name}, line 1, column {shown!r}: not a column of OMOP table {table.name}"
            )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(f"{path.name}, line 1: column {dupes[0]!r} appears twice")
    missing = [c.name for c in table.columns if c.required and c.name not in names]
    if missing:
        raise ValidationError(f"{path.name}, line 1: required column {missing[0]!r} is missing")
    return names


def _typed(col: CdmColumn, v: str) -> str:
    """SQL turning text ``v`` (already NULL for empty) into the column's type, or NULL if it can't."""
    if col.kind == "integer":
        return f"TRY_CAST({v} AS INTEGER)"
    if col.kind == "float":
        return f"TRY_CAST({v} AS DOUBLE)"
    if col.kind == "date":
        return f"COALESCE(TRY_CAST({v} AS DATE), TRY_CAST(TRY_STRPTIME({v}, '%Y%m%d') AS DATE))"
    if col.kind == "datetime":
        return f"COALESCE(TRY_CAST({v} AS TIMESTAMP), TRY_STRPTIME({v}, '%Y%m%d'))"
    return v


def _problems(col: CdmColumn, v: str) -> list[tuple[str, str]]:
    """(SQL condition, message) pairs that make a value of ``col`` bad."""
    out = []
    if col.required:
        out.append((f"{v} IS NULL", "a value is required"))
    if col.kind != "string":
        out.append((f"{v} IS NOT NULL AND {_typed(col, v)} IS NULL", f"is not a valid {col.kind}"))
    elif col.max_length is not None:
        out.append((f"length({v}) > {col.max_length}", f"is longer than {col.max_length} characters"))
    return out


class _Stager:
    def __init__(self, db: duckdb.DuckDBPyConnection, table: CdmTable, path: Path) -> None:
        self.db, self.table, self.path = db, table, path
        self.raw = f"_hdhub_raw_{table.name}"
        self.stage = f"_hdhub_stage_{table.name}"

    def fail(self, record: int, column: str, message: str, value: Any = None) -> None:
        line = line_of_record(self.path, record)
        shown = (
            ""
            if value is None
            else (repr(value) if len(str(value)) <= 60 else repr(str(value)[:60]) + "…") + " "
        )
        raise ValidationError(f"{self.path.name}, line {line}, column {column}: {shown}{message}")

    def stage_file(self) -> int:
        names = read_header(self.path, self.table)
        columns = "{" + ", ".join(f"{sql_literal(n)}: 'VARCHAR'" for n in names) + "}"
        tabs = is_tab_separated(self.path)
        dialect = (
            "delim = '\t', quote = '', escape = ''" if tabs else "delim = ',', quote = '\"', escape = '\"'"
        )
        source = (
            f"read_csv({sql_literal(str(self.path))}, columns = {columns}, header = true, "
            f"auto_detect = false, {dialect}, compression = 'auto', "
            f"max_line_size = {MAX_LINE_BYTES})"
        )
        try:
            self.db.execute(
                f"CREATE OR REPLACE TEMP TABLE {self.raw} AS SELECT row_number() OVER () AS __rec, "
                f"{', '.join(_quote(n) for n in names)} FROM {source}"
            )
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValidationError(f"{self.path.name}: cannot parse as CSV: {first[:300]}") from None
        present = {n: f"NULLIF({_quote(n)}, '')" for n in names}
        self._check(present)
        select = []
        for col in self.table.columns:
            expr = _typed(col, present[col.name]) if col.name in present else "NULL"
            select.append(f"{expr} AS {_quote(col.name)}")
        self.db.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.stage} AS SELECT __rec, {', '.join(select)} FROM {self.raw}"
        )
        self.db.execute(f"DROP TABLE {self.raw}")
        self._check_primary_key()
        return self.db.execute(f"SELECT count(*) FROM {self.stage}").fetchone()[0]

    def _check(self, present: dict[str, str]) -> None:
        checks = [
            (col.name, cond, msg)
            for col in self.table.columns
            if col.name in present
            for cond, msg in _problems(col, present[col.name])
        ]
        if not checks:
            return
        firsts = self.db.execute(
            "SELECT "
            + ", ".join(f"min(__rec) FILTER (WHERE {cond})" for _n, cond, _m in checks)
            + f" FROM {self.raw}"
        ).fetchone()
        bad = [(rec, i) for i, rec in enumerate(firsts) if rec is not None]
        if bad:
            rec, i = min(bad)
            name, _cond, message = checks[i]
            value = self.db.execute(
                f"SELECT {_quote(name)} FROM {self.raw} WHERE __rec = ?", [rec]
            ).fetchone()[0]
            self.fail(rec, name, message, value)

    def _check_primary_key(self) -> None:
        pk = self.table.primary_key
        if not pk:
            return
        cols = ", ".join(_quote(c) for c in pk)
        dup = self.db.execute(
            f"SELECT __rec, {cols} FROM (SELECT __rec, {cols}, row_number() OVER (PARTITION BY {cols} "
            f"ORDER BY __rec) AS n FROM {self.stage}) WHERE n > 1 ORDER BY __rec LIMIT 1"
        ).fetchone()
        if dup:
            self.fail(dup[0], pk[0], "duplicate primary key", dup[1])

    def check_collisions(self) -> None:
        pk = self.table.primary_key
        if not pk:
            return
        cols = ", ".join(_quote(c) for c in pk)
        hit = self.db.execute(
            f"SELECT s.__rec, {', '.join('s.' + _quote(c) for c in pk)} FROM {self.stage} s "
            f"JOIN main.{_quote(self.table.name)} t USING ({cols}) ORDER BY s.__rec LIMIT 1"
        ).fetchone()
        if hit:
            self.fail(
                hit[0], pk[0], f"primary key already in table {self.table.name} (use --replace)", hit[1]
            )

    def insert(self, replace: bool) -> None:
        target = f"main.{_quote(self.table.name)}"
        if replace:
            self.db.execute(f"DELETE FROM {target}")
        cols = ", ".join(_quote(c.name) for c in self.table.columns)
        self.db.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {self.stage} ORDER BY __rec")

    def drop(self) -> None:
        self.db.execute(f"DROP TABLE IF EXISTS {self.raw}")
        self.db.execute(f"DROP TABLE IF EXISTS {self.stage}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_omop_csv(
    con: Any, directory: Path | str, *, replace: bool = False, schema: str | None = None
) -> LoadReport:
    """Load every OMOP CSV file in ``directory``; nothing is written unless all are valid.

    ``schema`` ("VOCAB", "CDM") restricts the files accepted to that part of the model.
    """
    started = time.perf_counter()
    directory = Path(directory)
    db: duckdb.DuckDBPyConnection = con.con
    files = discover(directory, schema)
    stagers = [_Stager(db, table, path) for table, path in files]
    report = LoadReport()
    try:
        for s in stagers:
            report.rows[s.table.name] = s.stage_file()
            report.files[s.table.name] = s.path.name
        db.begin()
        try:
            for s in stagers:
                if not replace:
                    s.check_collisions()
                s.insert(replace)
            db.commit()
        except BaseException:
            db.rollback()
            raise
    finally:
        for s in stagers:
            s.drop()
    report.seconds = time.perf_counter() - started
    return report
