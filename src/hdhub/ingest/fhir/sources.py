"""Finding FHIR input files and staging their resources, one row per line or Bundle entry.

NDJSON (plain or .gz) is read by DuckDB as text lines with exact line numbers; a file
DuckDB cannot read whole (a truncated .gz, a line over the size limit) is read again by
Python up to the damage, and what could be read is kept. A ``.json`` file holding a
Bundle (collection, transaction, batch, searchset) is exploded into its entries.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from hdhub.errors import NotFound, ValidationError

MAX_LINE_BYTES = 64 * 1024 * 1024
SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz", ".json", ".json.gz")
RAW = "_fhir_raw"


@dataclass
class SourceFile:
    number: int
    path: Path
    sha256: str
    size: int
    bundle: bool


@dataclass
class StagingIssues:
    """Problems found while reading files: (file number, line, reason)."""

    rows: list[tuple[int, int, str]] = field(default_factory=list)


def discover(paths: list[Path]) -> list[SourceFile]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and f.name.lower().endswith(SUFFIXES) and not f.name.lower().startswith("log.")
            )
        elif p.is_file():
            if not p.name.lower().endswith(SUFFIXES):
                raise ValidationError(
                    f"{p.name}: not a FHIR file (expected .ndjson, .ndjson.gz or a .json Bundle)"
                )
            files.append(p)
        else:
            raise NotFound(f"{p}: no such file or directory")
    if not files:
        raise ValidationError("no FHIR files found (.ndjson, .ndjson.gz, or .json Bundles)")
    out = []
    for i, f in enumerate(files, start=1):
        digest = hashlib.sha256()
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        name = f.name.lower().removesuffix(".gz")
        out.append(SourceFile(i, f, digest.hexdigest(), f.stat().st_size, bundle=name.endswith(".json")))
    return out


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def create_raw(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(f"CREATE OR REPLACE TEMP TABLE {RAW} (file_no INTEGER, line INTEGER, j VARCHAR)")


def gzip_damage(path: Path) -> str | None:
    """Why a .gz file is damaged, or None. DuckDB reads a truncated gzip without a word."""
    decomp = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                while chunk:
                    decomp.decompress(chunk, 1 << 24)  # output discarded, bounded memory
                    chunk = decomp.unconsumed_tail
                    if decomp.eof and decomp.unused_data:  # next member of a multi-member file
                        chunk, decomp = decomp.unused_data + chunk, zlib.decompressobj(wbits=47)
    except zlib.error as exc:
        return f"corrupt gzip data: {exc}"
    return None if decomp.eof else "truncated gzip file"


def stage_file(db: duckdb.DuckDBPyConnection, src: SourceFile, issues: StagingIssues) -> None:
    if src.bundle:
        _stage_bundle(db, src, issues)
        return
    if src.path.name.lower().endswith(".gz") and (damage := gzip_damage(src.path)):
        _stage_with_python(db, src, issues, damage)
        return
    reader = (
        f"read_csv({_sql_str(str(src.path))}, columns = {{'j': 'VARCHAR'}}, header = false, delim = '\\x01', "
        f"quote = '', escape = '', auto_detect = false, null_padding = true, compression = 'auto', "
        f"max_line_size = {MAX_LINE_BYTES})"
    )
    try:
        db.execute(f"INSERT INTO {RAW} SELECT {src.number}, row_number() OVER () AS line, j FROM {reader}")
    except duckdb.Error as exc:
        _stage_with_python(db, src, issues, str(exc).splitlines()[0])


def _stage_with_python(
    db: duckdb.DuckDBPyConnection, src: SourceFile, issues: StagingIssues, why: str
) -> None:
    """Keep every complete line before the damage; report the damage itself."""
    rows: list[tuple[int, int, str]] = []
    opener = gzip.open if src.path.name.lower().endswith(".gz") else open
    line_no = 0
    try:
        with opener(src.path, "rb") as fh:  # type: ignore[operator]
            for line_no, raw in enumerate(io.BufferedReader(fh), start=1):  # type: ignore[arg-type]
                if not raw.endswith(b"\n"):
                    break  # an incomplete last line of a damaged file is not trusted
                if len(raw) > MAX_LINE_BYTES:
                    issues.rows.append((src.number, line_no, f"line longer than {MAX_LINE_BYTES >> 20} MB"))
                    continue
                rows.append((src.number, line_no, raw.decode("utf-8", errors="replace")))
            else:
                line_no = 0
    except (EOFError, OSError, zlib.error) as exc:
        issues.rows.append((src.number, line_no + 1, f"file damaged from here on: {exc}"))
    else:
        if line_no:
            issues.rows.append((src.number, line_no, f"file damaged from here on: {why[:200]}"))
    if rows:
        db.executemany(f"INSERT INTO {RAW} VALUES (?, ?, ?)", rows)


def _stage_bundle(db: duckdb.DuckDBPyConnection, src: SourceFile, issues: StagingIssues) -> None:
    try:
        db.execute(
            f"INSERT INTO {RAW} SELECT {src.number}, e.i::INTEGER, e.r FROM ("
            f"  SELECT unnest(range(1, len(entries) + 1)) AS i, unnest(entries) AS r FROM ("
            f"    SELECT json_extract(json, '$.entry[*].resource')::VARCHAR[] AS entries,"
            f"           json_extract_string(json, '$.resourceType') AS kind"
            f"    FROM read_json_objects({_sql_str(str(src.path))}, format = 'auto', compression = 'auto_detect',"
            f"                           maximum_object_size = {(1 << 31) - 1}) WHERE kind = 'Bundle')"
            f") e"
        )
    except duckdb.Error as exc:
        issues.rows.append((src.number, 1, f"not a readable FHIR Bundle: {str(exc).splitlines()[0][:200]}"))
