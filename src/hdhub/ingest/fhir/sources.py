"""Finding FHIR input files and staging their resources: one typed row per resource.

An NDJSON file (plain or .gz) is parsed once by DuckDB's ``read_json`` straight into the
typed fields of ``mapping.FIELDS`` and projected into the staged row (``mapping.STAGED``):
no copy of the JSON text is kept. A file named after a resource type, as Bulk Data
exports are (``Observation.000.ndjson``), is read with that type's fields only; if it
holds other types too, it is read again with all fields. Lines are not numbered on this fast path; the few
rejected resources are located in their file afterwards (``locate_lines``).

A file the fast path cannot read whole (an invalid JSON line, a field of an unexpected
shape, a line over the size limit, a damaged .gz) is read again as text lines with exact
line numbers: invalid lines are reported, the rest is staged through ``json_transform``.
A damaged .gz keeps every complete line before the damage. A ``.json`` file holding a
Bundle (collection, transaction, batch, searchset) is exploded into its entries.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from hdhub.errors import NotFound, ValidationError
from hdhub.ingest.fhir import mapping as m
from hdhub.ingest.sql import sql_literal

MAX_LINE_BYTES = 64 * 1024 * 1024
SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz", ".json", ".json.gz")
RAW = "_fhir_raw"  # text lines of the files that need the slow path
STAGE = "_fhir_staged"  # one typed row per resource
# Bulk Data exports name files after their resource type: patients load first, then encounters.
FIRST = ("patient", "encounter")


@dataclass
class SourceFile:
    number: int
    path: Path
    sha256: str
    size: int
    bundle: bool
    longest_line: int = 0  # bytes, of a plain file (a .gz file is measured when it is staged)


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
    files.sort(key=_load_order)
    # hashlib releases the GIL: the files are read and hashed on every core at once (SHA-256
    # runs at 350 MB/s on a core without SHA instructions, a sixth of a load's time).
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        measured = list(pool.map(_measure, files))
    return [
        SourceFile(
            i,
            f,
            digest,
            f.stat().st_size,
            bundle=f.name.lower().removesuffix(".gz").endswith(".json"),
            longest_line=longest,
        )
        for i, (f, (digest, longest)) in enumerate(zip(files, measured, strict=True), start=1)
    ]


def _measure(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its longest line, in one read."""
    digest, lines = hashlib.sha256(), LineMeter()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            lines.feed(chunk)
    return digest.hexdigest(), lines.longest


class LineMeter:
    """The longest line of a stream of chunks, in a few C calls per chunk: only a line that
    spans chunks can be longer than a chunk."""

    def __init__(self) -> None:
        self.longest = 0
        self.run = 0  # bytes since the last newline

    def feed(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            self.run += len(chunk)
        else:
            self.longest = max(self.longest, self.run + first + 1)
            self.run = len(chunk) - chunk.rfind(b"\n") - 1
        self.longest = max(self.longest, self.run)


def _load_order(path: Path) -> int:
    name = path.name.lower()
    return next((i for i, prefix in enumerate(FIRST) if name.startswith(prefix)), len(FIRST))


def create_staging(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(f"CREATE OR REPLACE TEMP TABLE {RAW} (file_no INTEGER, line INTEGER, j VARCHAR)")
    columns = ", ".join(f"{col} {typ}" for col, (typ, _) in m.STAGED.items())
    db.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE} (file_no INTEGER, line INTEGER, {columns})")


def gzip_damage(path: Path, lines: LineMeter | None = None) -> str | None:
    """Why a .gz file is damaged, or None (DuckDB reads a truncated gzip without a word);
    measures its lines on the way."""
    decomp = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                while chunk:
                    out = decomp.decompress(chunk, 1 << 24)  # bounded memory
                    if lines is not None:
                        lines.feed(out)
                    chunk = decomp.unconsumed_tail
                    if decomp.eof and decomp.unused_data:  # next member of a multi-member file
                        chunk, decomp = decomp.unused_data + chunk, zlib.decompressobj(wbits=47)
    except zlib.error as exc:
        return f"corrupt gzip data: {exc}"
    return None if decomp.eof else "truncated gzip file"


def type_hint(path: Path) -> str | None:
    """The resource type a Bulk Data file is named after (``Observation.000.ndjson``)."""
    stem = re.match(r"[A-Za-z]+", path.name)
    known = {t.lower(): t for t in m.MAPPED | m.NOT_MAPPED_YET}
    return known.get(stem.group(0).lower()) if stem else None


def stage_file(
    db: duckdb.DuckDBPyConnection,
    src: SourceFile,
    issues: StagingIssues,
    merge_systems: tuple[str, ...],
    site: str,
) -> None:
    """Stage every resource of ``src``; report what cannot be read. Runs in autocommit: a
    failed statement leaves nothing behind."""
    select = m.staged_select(merge_systems, site)
    lines = LineMeter()
    if src.bundle:
        _stage_bundle(db, src, issues)
    elif src.path.name.lower().endswith(".gz") and (damage := gzip_damage(src.path, lines)):
        _stage_with_python(db, src, issues, damage)
    elif max(lines.longest, src.longest_line) > MAX_LINE_BYTES:
        _stage_with_python(db, src, issues, "")
    else:
        hint = type_hint(src.path)
        try:
            if hint is not None:
                _stage_fast(db, src, m.staged_select(merge_systems, site, frozenset({hint})), hint)
                mixed = db.execute(
                    f"SELECT count(*) FROM {STAGE} WHERE file_no = {src.number} AND rtype IS DISTINCT FROM ?",
                    [hint],
                ).fetchone()[0]  # type: ignore[index]
                if not mixed:
                    return
                db.execute(f"DELETE FROM {STAGE} WHERE file_no = {src.number}")
            _stage_fast(db, src, select, None)
            return
        except duckdb.Error:  # an invalid line or an unexpected shape somewhere: go line by line
            db.execute(f"DELETE FROM {STAGE} WHERE file_no = {src.number}")
            _stage_lines(db, src, issues)
    _stage_text(db, src, issues, select)


def _stage_fast(db: duckdb.DuckDBPyConnection, src: SourceFile, select: str, hint: str | None) -> None:
    columns = m.read_json_columns(None if hint is None else frozenset({hint}))
    reader = (
        f"read_json({sql_literal(str(src.path))}, format = 'newline_delimited', columns = {columns}, "
        f"compression = 'auto_detect', maximum_object_size = {MAX_LINE_BYTES})"
    )
    db.execute(f"INSERT INTO {STAGE} SELECT {src.number}, NULL, {select} FROM {reader}")


def _line_reader(src: SourceFile) -> str:
    """``src`` as text lines (column ``j``), in file order, blank lines included."""
    return (
        f"read_csv({sql_literal(str(src.path))}, columns = {{'j': 'VARCHAR'}}, header = false, delim = '\\x01', "
        f"quote = '', escape = '', auto_detect = false, null_padding = true, compression = 'auto', "
        f"max_line_size = {MAX_LINE_BYTES})"
    )


def _stage_lines(db: duckdb.DuckDBPyConnection, src: SourceFile, issues: StagingIssues) -> None:
    reader = _line_reader(src)
    try:
        db.execute(f"INSERT INTO {RAW} SELECT {src.number}, row_number() OVER () AS line, j FROM {reader}")
    except duckdb.Error as exc:
        _stage_with_python(db, src, issues, str(exc).splitlines()[0])


def _stage_text(db: duckdb.DuckDBPyConnection, src: SourceFile, issues: StagingIssues, select: str) -> None:
    """Text lines of ``src`` in RAW -> typed staged rows; invalid JSON is reported by line."""
    where = f"file_no = {src.number} AND j IS NOT NULL AND trim(j) <> ''"
    for (line,) in db.execute(
        f"SELECT line FROM {RAW} WHERE {where} AND NOT json_valid(j) ORDER BY line"
    ).fetchall():
        issues.rows.append((src.number, line, "not valid JSON"))
    db.execute(
        f"INSERT INTO {STAGE} SELECT file_no, line, {select} FROM (SELECT file_no, line, "
        f"unnest(json_transform(j, {sql_literal(m.transform_structure())})) FROM {RAW} WHERE {where} AND json_valid(j) "
        f"AND json_type(j) = 'OBJECT')"
    )
    for (line,) in db.execute(
        f"SELECT line FROM {RAW} WHERE {where} AND json_valid(j) AND json_type(j) <> 'OBJECT' ORDER BY line"
    ).fetchall():
        issues.rows.append((src.number, line, "not a JSON object"))
    db.execute(f"DELETE FROM {RAW} WHERE file_no = {src.number}")


def locate_lines(
    db: duckdb.DuckDBPyConnection, src: SourceFile, wanted: list[tuple[str | None, str | None]]
) -> list[int]:
    """Line numbers of resources staged without one (fast path), by (resourceType, id),
    in file order: the n-th wanted (type, id) pair gets the n-th line holding it."""
    reader = _line_reader(src)
    keys = sorted({f"{t}\x00{i}" for t, i in wanted if t is not None and i is not None})
    rows = db.execute(
        f"SELECT line, k[1], k[2] FROM (SELECT line, json_extract_string(j, ['$.resourceType', '$.id']) AS k "
        f"FROM (SELECT row_number() OVER () AS line, j FROM {reader}) WHERE json_valid(j)) "
        f"WHERE k[1] IS NULL OR k[2] IS NULL OR list_contains(?, k[1] || chr(0) || k[2]) ORDER BY line",
        [keys],
    ).fetchall()
    lines: dict[tuple[str | None, str | None], list[int]] = {}
    for line, rtype, fid in rows:
        lines.setdefault((rtype, fid), []).append(line)
    out = []
    for key in wanted:
        found = lines.get(key)
        out.append(found.pop(0) if found else 0)
    return out


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
        if line_no and why:
            issues.rows.append((src.number, line_no, f"file damaged from here on: {why[:200]}"))
    if rows:
        db.executemany(f"INSERT INTO {RAW} VALUES (?, ?, ?)", rows)


def _bundle_limit(src: SourceFile) -> int:
    """DuckDB reserves twice this much memory: the file's own size (a gzipped Bundle may
    expand some twenty-fold)."""
    factor = 20 if src.path.name.lower().endswith(".gz") else 1
    return min(src.size * factor + 1024, (1 << 31) - 1)


def _stage_bundle(db: duckdb.DuckDBPyConnection, src: SourceFile, issues: StagingIssues) -> None:
    try:
        db.execute(
            f"INSERT INTO {RAW} SELECT {src.number}, e.i::INTEGER, e.r FROM ("
            f"  SELECT unnest(range(1, len(entries) + 1)) AS i, unnest(entries) AS r FROM ("
            f"    SELECT json_extract(json, '$.entry[*].resource')::VARCHAR[] AS entries,"
            f"           json_extract_string(json, '$.resourceType') AS kind"
            f"    FROM read_json_objects({sql_literal(str(src.path))}, format = 'auto', compression = 'auto_detect',"
            f"                           maximum_object_size = {_bundle_limit(src)}) "
            f"WHERE kind = 'Bundle')"
            f") e"
        )
    except duckdb.Error as exc:
        issues.rows.append((src.number, 1, f"not a readable FHIR Bundle: {str(exc).splitlines()[0][:200]}"))
