"""Automatic statistical disclosure checks for the output airlock.

Results leave a project workspace only through the output airlock. For every file a
researcher asks to release, :func:`check_file` (or :func:`check_bytes`) runs the checks
below and returns a :class:`FileCheck` whose ``status`` is ``"pass"``, ``"review"`` (a
reviewer must look) or ``"fail"`` (the file cannot leave as it is). The rules and their
defaults follow ACRO/SACRO, the semi-automatic output checking tools of the SACRO project
(``acro/default.yaml``): minimum cell count 10, dominance (n, k) = (2, 90 %), p % rule with
p = 10 %, negative and missing values in magnitude tables sent to review. One difference:
zeros pass unless :attr:`Rules.zeros_disclosive` is set (ACRO's ``zeros_are_disclosive``
is True).

What the researcher writes: the table convention
================================================

A **results table** is a CSV file (``.csv``: UTF-8, with or without BOM, one header row,
comma or semicolon separated; ``.tsv``: tab separated) or a Parquet file (``.parquet``,
``.pq``). The type is taken from the file name's extension.
In a semicolon or tab separated file, decimal commas are accepted (``12,5`` is 12.5), as
French Excel writes them ("CSV UTF-8" export). Empty cells and ``NA``, ``N/A``, ``NaN``,
``null``, ``None``, ``.``, ``-`` are missing values. One row is one cell of the table (the
"long" layout); the columns are:

* **category columns** (text, or whole numbers under a category name such as ``year``,
  ``annee``, ``age_group``, ``sexe``, ``region``, ``*_concept_id``; Parquet dates and
  booleans): what the cell describes, in short labels (at most 200 characters);
* **a count column** named ``n``, ``count``, ``freq`` or ``effectif`` (any case; also
  ``n_deces``, ``count_female``… for several counts in one table): the number of
  individuals in the cell;
* for a **magnitude table** (a sum, mean, median, standard deviation… of a value per cell),
  the statistic columns, named after the statistic (``mean``, ``hba1c_mean``, ``moyenne``,
  ``sum``, ``median``, ``sd``…), and the **contributor columns** of that value in that cell:
  ``n`` (number of contributors), ``top1`` and ``top2`` (the two largest contributions) and
  ``total`` (sum of all contributions). :func:`summarise` produces such a table from
  microdata. One value per table (several statistics of that value are fine). With
  ``dominance_n`` above 2, ``top3``… up to ``top{dominance_n}`` are needed too.

The checks:

* **frequency table** (a count column): a count ``0 < n < threshold`` fails the threshold
  rule; a zero fails only when zeros are disclosive (:attr:`Rules.zeros_disclosive`); a
  count that is missing, not a number, not a whole number or negative fails.
* **magnitude table**: the threshold rule on ``n``; the dominance rule (the ``dominance_n``
  largest contributions make more than ``dominance_k`` of ``total``: fail); the p % rule
  (``total - top1 - top2 < p_ratio * top1``: fail); contributor statistics that contradict
  each other (``top2 > top1``, ``top1 + top2 > total``) fail; negative or missing values go
  to review (dominance and p % are then not applied to that cell, as in ACRO). Statistic
  columns without ``top1``, ``top2`` and ``total`` cannot be checked: review, and the
  detail names the columns to add. ``min``/``max`` columns always go to review: an extreme
  is one person's value.
* A table without a count column, a numeric column that is neither a count, a contributor
  statistic, a statistic nor a category, a percentage that is not the cell's share of the
  count column's total (it could reveal a small sub-count), a column that looks like an
  identifier (``person_id``, ``ipp``, ``nir``…), a column mixing numbers and text (``3``,
  ``<5``: hidden counts?), a text cell longer than 200 characters, a Parquet column of a
  type that cannot be checked (lists, structs, binary) → review.
* A text cell or header starting with ``=``, ``+``, ``-`` or ``@`` followed by letters (a
  spreadsheet formula) → review.
* Anything that is not a table (PNG, PDF, plain text, a spreadsheet, a model file…) →
  review: a reviewer must read it. Export spreadsheets as CSV UTF-8 to have them checked.
* A file that cannot be read as the table it claims to be (ragged rows, invalid UTF-8,
  binary data in a CSV, corrupt Parquet, empty, header only, more than
  :data:`MAX_ROWS` rows or :data:`MAX_COLUMNS` columns) → fail, with the reason.

A file larger than :data:`MAX_RELEASE_BYTES` raises :class:`~hdhub.errors.PayloadTooLarge`;
a file name with a path separator or a control character raises
:class:`~hdhub.errors.ValidationError`. Nothing else raises: any other problem is a
``"fail"`` with a detail.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from hdhub.errors import PayloadTooLarge, ValidationError

if TYPE_CHECKING:
    import pandas as pd

MAX_RELEASE_BYTES = 50 * 1024 * 1024
"""The largest file the airlock checks; above it :class:`PayloadTooLarge` is raised."""
MAX_ROWS = 1_000_000
"""A results table with more rows is not aggregated output: it fails."""
MAX_COLUMNS = 1_000
"""A results table with more columns fails."""
MAX_DECODED_BYTES = 512 * 1024 * 1024
"""The largest uncompressed size of a Parquet file's data (a guard against compression bombs)."""
MAX_REPORTED_CELLS = 20
"""At most this many cells are listed per check; the detail gives the full count."""
MAX_NAME_LENGTH = 255
MAX_TEXT_CHARS = 200
"""A text cell longer than this is no category label: review."""
MAX_LABEL_COLUMNS = 6

PASS, FAIL, REVIEW = "pass", "fail", "review"

COUNT_NAMES = frozenset({"n", "count", "freq", "effectif"})
CONTRIBUTOR_PREFIX = "top"
STATISTIC_WORDS = frozenset(
    {
        "mean", "avg", "average", "moyenne", "moy", "sum", "somme", "median", "mediane",
        "sd", "std", "stdev", "stddev", "var", "variance", "ecart", "se", "sem", "iqr",
        "q1", "q3", "p25", "p75", "quantile", "percentile", "quartile1", "quartile3", "mode",
        "cv", "gmean", "geomean",
    }
)  # fmt: skip
EXTREME_WORDS = frozenset({"min", "max", "minimum", "maximum", "range", "etendue"})
PERCENT_WORDS = frozenset({"pct", "percent", "percentage", "pourcent", "pourcentage", "prop", "proportion"})
CATEGORY_WORDS = frozenset(
    {
        "year", "annee", "an", "month", "mois", "week", "semaine", "day", "jour", "date",
        "quarter", "trimestre", "period", "periode", "age", "agegroup", "tranche", "classe",
        "class", "group", "groupe", "category", "categorie", "cat", "sex", "sexe", "gender",
        "genre", "region", "departement", "dept", "commune", "site", "hopital", "hospital",
        "service", "stratum", "strate", "level", "niveau", "decile", "quintile", "quartile",
        "rank", "rang", "code", "cim10", "icd10", "atc", "ccam", "ghm", "arm", "bras", "wave",
        "vague", "visit", "visite", "status", "statut", "concept",
    }
)  # fmt: skip
IDENTIFIER_WORDS = frozenset({"id", "ipp", "nir", "ins", "nda", "uuid", "identifiant", "nip"})
MISSING_MARKERS = ["", "na", "n/a", "nan", "null", "none", ".", "-"]

_NUMBER_RE = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$"
_FORMULA_RE = r"^[=+\-@][ \t]*[A-Za-z]"
_CSV_SUFFIXES = {".csv": None, ".tsv": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_SPREADSHEET_SUFFIXES = {".xlsx", ".xls", ".xlsm", ".ods"}
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Rules:
    """The thresholds of the disclosure checks (ACRO's defaults unless said otherwise)."""

    threshold: int = 10
    """Minimum number of individuals in a cell: ``0 < n < threshold`` fails (ACRO ``safe_threshold``)."""
    dominance_n: int = 2
    """How many of the largest contributions the dominance rule adds up (ACRO ``safe_nk_n``)."""
    dominance_k: float = 0.9
    """The share of the cell's total those contributions may not exceed (ACRO ``safe_nk_k``)."""
    p_ratio: float = 0.1
    """p % rule: ``total - top1 - top2`` must be at least ``p_ratio * top1`` (ACRO ``safe_pratio_p``)."""
    zeros_disclosive: bool = False
    """Whether a count of zero fails. ACRO's default is True; hdhub's is False, since a zero
    count alone is rarely disclosive (set True where structural zeros reveal attributes)."""

    def __post_init__(self) -> None:
        if not (
            self.threshold >= 1
            and 1 <= self.dominance_n <= 9
            and 0 < self.dominance_k <= 1
            and 0 <= self.p_ratio <= 1
        ):
            raise ValidationError(
                "rules: threshold ≥ 1, 1 ≤ dominance_n ≤ 9, 0 < dominance_k ≤ 1 and 0 ≤ p_ratio ≤ 1"
            )


@dataclass(frozen=True)
class Cell:
    """One cell a check is about: its data row (1-based, header not counted), column and value.

    ``label`` names the cell by its category columns (``region=Nord; sexe=F``).
    """

    row: int
    column: str
    value: str
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "value": self.value, "label": self.label}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one rule on one file."""

    rule: str
    outcome: str  # "pass" | "fail" | "review"
    detail: str
    cells: tuple[Cell, ...] = ()  # the first MAX_REPORTED_CELLS cells concerned

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "outcome": self.outcome,
            "detail": self.detail,
            "cells": [c.to_json() for c in self.cells],
        }


@dataclass(frozen=True)
class FileCheck:
    """All checks of one file. ``status``: fail if any check fails, else review if any needs it.

    ``kind`` is what the file was taken for: ``frequency``, ``magnitude``, ``table`` (a table
    of another shape), ``not_a_table`` or ``unreadable``.
    """

    name: str
    status: str
    checks: tuple[CheckResult, ...]
    sha256: str
    kind: str = "unreadable"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "kind": self.kind,
            "sha256": self.sha256,
            "checks": [c.to_json() for c in self.checks],
        }


def overall_status(checks: tuple[CheckResult, ...] | list[CheckResult]) -> str:
    """``fail`` if any check fails, else ``review`` if any needs review, else ``pass``."""
    outcomes = {c.outcome for c in checks}
    if FAIL in outcomes:
        return FAIL
    if REVIEW in outcomes or not checks:
        return REVIEW
    return PASS


# ---------------------------------------------------------------------------------------
# Entry points


def validate_name(name: str) -> None:
    """Refuse a release file name that is not a plain file name.

    Raises :class:`ValidationError` for an empty name, ``.`` or ``..``, a path separator, a
    control character or a name longer than 255 characters.
    """
    if not isinstance(name, str) or not name or name in {".", ".."}:
        raise ValidationError("the file name is empty or not a file name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"the file name is longer than {MAX_NAME_LENGTH} characters")
    if "/" in name or "\\" in name:
        raise ValidationError("the file name contains a path separator")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name):
        raise ValidationError("the file name contains a control character")


def check_file(path: Path, rules: Rules = Rules()) -> FileCheck:
    """Check one file on disk; its name is ``path.name``.

    Raises :class:`PayloadTooLarge` above :data:`MAX_RELEASE_BYTES`, :class:`ValidationError`
    for a bad name or when ``path`` is not a regular file (symbolic links are refused), and
    :class:`FileNotFoundError` when it does not exist.
    """
    path = Path(path)
    validate_name(path.name)
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError(f"{path.name} is not a regular file")
    if info.st_size > MAX_RELEASE_BYTES:
        raise PayloadTooLarge(_too_large(path.name, info.st_size))
    with path.open("rb") as f:
        data = f.read(MAX_RELEASE_BYTES + 1)
    return check_bytes(path.name, data, rules)


def check_bytes(name: str, data: bytes, rules: Rules = Rules()) -> FileCheck:
    """Check the bytes of a file the researcher asks to release under ``name``."""
    validate_name(name)
    if len(data) > MAX_RELEASE_BYTES:
        raise PayloadTooLarge(_too_large(name, len(data)))
    digest = hashlib.sha256(data).hexdigest()
    try:
        kind, checks = _check(name, bytes(data), rules)
    except Exception as exc:  # a safety net: a file never makes the airlock crash
        kind = "unreadable"
        checks = [_result("format", FAIL, f"the file could not be checked ({type(exc).__name__})")]
    return FileCheck(name=name, status=overall_status(checks), checks=tuple(checks), sha256=digest, kind=kind)


def _too_large(name: str, size: int) -> str:
    return f"{name} is {size} bytes; the airlock checks files up to {MAX_RELEASE_BYTES} bytes"


def _result(rule: str, outcome: str, detail: str, cells: list[Cell] | None = None) -> CheckResult:
    return CheckResult(rule, outcome, detail, tuple((cells or [])[:MAX_REPORTED_CELLS]))


class _Unreadable(Exception):
    """The file is not the table it claims to be: the message says why."""


def _check(name: str, data: bytes, rules: Rules) -> tuple[str, list[CheckResult]]:
    suffix = Path(name).suffix.lower()
    try:
        if suffix in _CSV_SUFFIXES:
            table, how = _read_csv(data, _CSV_SUFFIXES[suffix])
        elif suffix in _PARQUET_SUFFIXES:
            table, how = _read_parquet(data)
        else:
            return "not_a_table", [_result("table", REVIEW, _not_a_table(suffix, data))]
    except _Unreadable as exc:
        return "unreadable", [_result("format", FAIL, str(exc))]
    checks = [_result("format", PASS, how)]
    kind, more = _check_table(table, rules)
    return kind, checks + more


def _not_a_table(suffix: str, data: bytes) -> str:
    what = _sniff(data)
    hint = ""
    if suffix in _SPREADSHEET_SUFFIXES:
        hint = " (export the sheet as CSV UTF-8 to have it checked automatically)"
    return f"not a table{f' ({what})' if what else ''}: a reviewer must read it{hint}"


def _sniff(data: bytes) -> str:
    magics = (
        (b"\x89PNG\r\n\x1a\n", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"%PDF-", "PDF document"),
        (b"GIF8", "GIF image"), (b"PK\x03\x04", "ZIP archive or office document"), (b"PAR1", "Parquet data"),
        (b"\x89HDF", "HDF5 data"), (b"\x80", "Python pickle"),
    )  # fmt: skip
    for magic, what in magics:
        if data.startswith(magic):
            return what
    if data.lstrip()[:5].lower() in {b"<svg ", b"<?xml"}:
        return "SVG or XML document"
    return ""


# ---------------------------------------------------------------------------------------
# Reading: a table becomes named columns of text, each with its numbers when it has any


@dataclass
class _Column:
    name: str
    text: pa.Array  # string; null where the value is missing
    numbers: pa.Array  # float64; null where missing or not a finite number
    missing: pa.Array  # bool
    unparsable: pa.Array  # bool: present but not a number
    typed: str = "text"  # "text", "number", "category" (Parquet dates, booleans) or "other" (unsupported)
    _stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_present(self) -> int:
        return len(self.text) - _count(self.missing)

    @property
    def is_numeric(self) -> bool:
        return self.typed in {"text", "number"} and self.n_present > 0 and _count(self.unparsable) == 0

    @property
    def is_integer(self) -> bool:
        if "int" not in self._stats:
            whole = pc.equal(self.numbers, pc.floor(self.numbers))
            self._stats["int"] = self.is_numeric and _count(pc.invert(whole)) == 0
        return bool(self._stats["int"])


@dataclass
class _Table:
    columns: list[_Column]
    num_rows: int


def _false(length: int) -> pa.Array:
    return pa.repeat(False, length)


def _count(mask: pa.Array) -> int:
    return int(pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0)


def _text_column(name: str, raw: pa.Array, decimal_comma: bool) -> _Column:
    text = pc.utf8_trim_whitespace(raw.cast(pa.string()))
    missing = pc.or_(pc.is_null(text), pc.is_in(pc.utf8_lower(text), pa.array(MISSING_MARKERS)))
    text = pc.if_else(missing, pa.scalar(None, pa.string()), text)
    candidate = pc.replace_substring(text, ",", ".", max_replacements=1) if decimal_comma else text
    looks = pc.fill_null(pc.match_substring_regex(candidate, _NUMBER_RE), False)
    numbers = pc.cast(pc.if_else(looks, candidate, pa.scalar(None, pa.string())), pa.float64())
    finite = pc.fill_null(pc.is_finite(numbers), False)
    numbers = pc.if_else(finite, numbers, pa.scalar(None, pa.float64()))
    unparsable = pc.and_(pc.invert(missing), pc.invert(finite))
    return _Column(name, text, numbers, missing, unparsable, "text")


def _number_column(name: str, raw: pa.Array) -> _Column:
    numbers = raw.cast(pa.float64())
    finite = pc.fill_null(pc.is_finite(numbers), False)
    missing = pc.invert(finite)  # null, NaN and infinities
    numbers = pc.if_else(finite, numbers, pa.scalar(None, pa.float64()))
    text = pc.if_else(finite, raw.cast(pa.string()), pa.scalar(None, pa.string()))
    unparsable = _false(len(raw))
    return _Column(name, text, numbers, missing, unparsable, "number")


def _header_names(raw: list[str]) -> list[str]:
    names = []
    for i, value in enumerate(raw):
        value = value.strip()
        names.append(value if value else f"(unnamed column {i + 1})")
    if any(len(n) > 200 for n in names):
        raise _Unreadable("a column name is longer than 200 characters")
    folded = [n.casefold() for n in names]
    duplicates = sorted({n for n, f in zip(names, folded, strict=True) if folded.count(f) > 1})
    if duplicates:
        raise _Unreadable(f"the header names a column twice: {', '.join(duplicates[:10])}")
    return names


def _read_csv(data: bytes, delimiter: str | None) -> tuple[_Table, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise _Unreadable("the file is empty")
    if b"\x00" in data:
        what = _sniff(data)
        raise _Unreadable(f"binary data ({what or 'NUL bytes'}), not a CSV text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"not valid UTF-8 text (byte {exc.start}); save the file as 'CSV UTF-8'") from None
    head = text.lstrip("\r\n")[:1_000_000]  # the header record is in there, or it is too wide anyway
    if delimiter is None:
        delimiter = max((",", ";"), key=lambda d: (_fields(head, d), d == ","))
    n_header = _fields(head, delimiter)
    if n_header > MAX_COLUMNS:
        raise _Unreadable(f"{n_header} columns; a results table has at most {MAX_COLUMNS}")
    bad_rows: list[Any] = []

    def on_invalid(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(
                # one block for the whole file: a long row never straddles two blocks
                use_threads=False,
                autogenerate_column_names=True,
                block_size=max(len(data), 1),
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={f"f{i}": pa.string() for i in range(n_header)},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, ValueError, OverflowError) as exc:
        if bad_rows:
            row = bad_rows[0]
            where = f"line {row.number}" if row.number is not None else "a row"
            raise _Unreadable(
                f"{where} has {row.actual_columns} fields where the header has {row.expected_columns} "
                f"(ragged rows; separator {_show(delimiter)})"
            ) from None
        raise _Unreadable(f"the CSV could not be parsed: {_clip(str(exc), 200)}") from None
    if table.num_columns != n_header or table.num_columns == 0:
        raise _Unreadable("the header row could not be read")
    if table.num_rows <= 1:
        raise _Unreadable("the file has a header row but no data rows")
    if table.num_rows - 1 > MAX_ROWS:
        raise _Unreadable(f"{table.num_rows - 1} rows; a results table has at most {MAX_ROWS}")
    header = [table.column(i)[0].as_py() for i in range(table.num_columns)]
    names = _header_names(header)
    body = table.slice(1)
    decimal_comma = delimiter != ","
    columns = [_text_column(n, body.column(i).combine_chunks(), decimal_comma) for i, n in enumerate(names)]
    how = f"CSV, {body.num_rows} rows x {len(columns)} columns, separator {_show(delimiter)}" + (
        ", decimal comma accepted" if decimal_comma else ""
    )
    return _Table(columns, body.num_rows), how


def _fields(text: str, delimiter: str) -> int:
    """The number of fields of the first record of ``text`` (a header may span lines when quoted)."""
    try:
        return len(next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), []))
    except csv.Error:
        first_line = text.split("\n", 1)[0]
        return first_line.count(delimiter) + 1


def _show(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab"}.get(delimiter, repr(delimiter))


def _read_parquet(data: bytes) -> tuple[_Table, str]:
    """Read a Parquet table, refusing one whose data would decode to more than MAX_DECODED_BYTES.

    The budget counts what decoding allocates: the decompressed pages the metadata declares,
    fixed-width values row by row (run-length encoding makes a million equal values tiny), and
    text columns exactly, read as dictionaries and measured before they are expanded. Columns
    whose type cannot be checked (lists, structs, binary…) are not read at all.
    """
    if not data:
        raise _Unreadable("the file is empty")
    if not (data.startswith(b"PAR1") and data.endswith(b"PAR1")):
        raise _Unreadable("not a Parquet file (the PAR1 markers are missing)")
    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        meta, schema = pf.metadata, pf.schema_arrow
        declared = sum(
            meta.row_group(i).column(j).total_uncompressed_size
            for i in range(meta.num_row_groups)
            for j in range(meta.num_columns)
        )
    except Exception as exc:
        raise _Unreadable(f"not a readable Parquet file ({_clip(str(exc), 160)})") from None
    if len(schema) > MAX_COLUMNS:
        raise _Unreadable(f"{len(schema)} columns; a results table has at most {MAX_COLUMNS}")
    if meta.num_rows > MAX_ROWS:
        raise _Unreadable(f"{meta.num_rows} rows; a results table has at most {MAX_ROWS}")
    if meta.num_rows <= 0 or len(schema) == 0:
        raise _Unreadable("the table has no rows")
    names = _header_names([str(n) for n in schema.names])
    readable = [f.name for f in schema if _parquet_kind(f.type) != "other"]
    texts = [f.name for f in schema if _parquet_kind(f.type) == "text"]
    fixed = sum(
        meta.num_rows * max(f.type.bit_width // 8, 1)
        for f in schema
        if _parquet_kind(f.type) in {"number", "category"} and _has_bit_width(f.type)
    )
    budget = declared + fixed
    if budget > MAX_DECODED_BYTES:
        raise _Unreadable(f"{budget} bytes once decompressed; the limit is {MAX_DECODED_BYTES}")
    try:
        table = pq.ParquetFile(pa.BufferReader(data), read_dictionary=texts).read(columns=readable)
        for name in texts:
            column = table.column(name)
            for chunk in column.chunks:
                if pa.types.is_dictionary(chunk.type):
                    lengths = pc.take(pc.binary_length(chunk.dictionary), chunk.indices)
                    budget += int(pc.sum(lengths).as_py() or 0)
                else:
                    budget += chunk.nbytes
            if budget > MAX_DECODED_BYTES:
                raise _Unreadable(f"more than {MAX_DECODED_BYTES} bytes once decoded: not a results table")
    except _Unreadable:
        raise
    except Exception as exc:
        raise _Unreadable(f"the Parquet data is corrupt ({_clip(str(exc), 160)})") from None
    if table.num_rows != meta.num_rows:
        raise _Unreadable("the Parquet data does not match its metadata")
    columns = []
    for name, schema_field in zip(names, schema, strict=True):
        if schema_field.name not in readable:
            columns.append(_unsupported_column(name, table.num_rows, schema_field.type))
            continue
        raw = table.column(schema_field.name).combine_chunks()
        if pa.types.is_dictionary(raw.type):
            raw = raw.dictionary_decode()
        columns.append(_parquet_column(name, raw))
    how = f"Parquet, {table.num_rows} rows x {len(columns)} columns"
    return _Table(columns, table.num_rows), how


def _parquet_kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_boolean(t) or pa.types.is_temporal(t):
        return "category"
    return "other"


def _has_bit_width(t: pa.DataType) -> bool:
    try:
        return t.bit_width > 0
    except ValueError:
        return False


def _parquet_column(name: str, raw: pa.Array) -> _Column:
    kind = _parquet_kind(raw.type)
    if kind == "number":
        return _number_column(name, raw)
    if kind == "text":
        return _text_column(name, raw, decimal_comma=False)
    col = _text_column(name, raw.cast(pa.string()), decimal_comma=False)
    col.unparsable = _false(len(raw))  # dates and booleans are never numbers
    col.numbers = pa.nulls(len(raw), pa.float64())
    col.typed = "category"
    return col


def _unsupported_column(name: str, length: int, t: pa.DataType) -> _Column:
    """Lists, structs, maps, binary: named with their type, never read nor checked automatically."""
    col = _text_column(name, pa.nulls(length, pa.string()), decimal_comma=False)
    col.typed = "other"
    col._stats["type"] = str(t)
    return col


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` printable characters (control characters become spaces)."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else " " for ch in cut)


# ---------------------------------------------------------------------------------------
# Classifying columns by name and content


def _tokens(name: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return [t for t in re.split(r"[^a-z0-9]+", plain) if t]


def _is_count_name(name: str) -> bool:
    tokens = _tokens(name)
    return bool(tokens) and (tokens[0] in COUNT_NAMES or (len(tokens) > 1 and tokens[-1] in COUNT_NAMES))


def _contributor_rank(name: str) -> int | None:
    """1 for ``top1``, 2 for ``top2``…; 0 for ``total``; None otherwise."""
    joined = "".join(_tokens(name))
    if joined == "total":
        return 0
    if re.fullmatch(r"top[1-9]", joined):
        return int(joined[3:])
    return None


@dataclass
class _Roles:
    counts: list[_Column] = field(default_factory=list)
    contributor_n: _Column | None = None
    tops: dict[int, _Column] = field(default_factory=dict)
    total: _Column | None = None
    statistics: list[_Column] = field(default_factory=list)
    extremes: list[_Column] = field(default_factory=list)
    percents: list[_Column] = field(default_factory=list)
    identifiers: list[_Column] = field(default_factory=list)
    unknown: list[_Column] = field(default_factory=list)
    unsupported: list[_Column] = field(default_factory=list)
    mixed: list[_Column] = field(default_factory=list)
    categories: list[_Column] = field(default_factory=list)


def _classify(table: _Table) -> _Roles:
    roles = _Roles()
    for col in table.columns:
        tokens = set(_tokens(col.name))
        rank = _contributor_rank(col.name)
        if col.typed == "other":
            roles.unsupported.append(col)
        elif len(tokens) == 1 and tokens <= COUNT_NAMES:
            roles.counts.append(col)
        elif rank is not None:
            if rank == 0:
                roles.total = col
            else:
                roles.tops[rank] = col
        elif tokens & EXTREME_WORDS:
            roles.extremes.append(col)
        elif tokens & STATISTIC_WORDS:
            roles.statistics.append(col)  # before n_…: n_visits_mean is a statistic
        elif _is_count_name(col.name):
            roles.counts.append(col)
        elif tokens & PERCENT_WORDS or "%" in col.name:
            roles.percents.append(col)
        elif _tokens(col.name)[-2:] == ["concept", "id"] or col.typed == "category":
            roles.categories.append(col)
        elif tokens & IDENTIFIER_WORDS:
            roles.identifiers.append(col)
        elif col.is_numeric:
            if not col.is_integer:
                roles.statistics.append(col)  # a value with decimals is a statistic, whatever its name
            elif tokens & CATEGORY_WORDS:
                roles.categories.append(col)
            else:
                roles.unknown.append(col)
        elif _count(pc.invert(col.unparsable)) - _count(col.missing) > 0 and not tokens & CATEGORY_WORDS:
            roles.mixed.append(col)  # numbers mixed with text ("3", "<5"): maybe hidden counts
        else:
            roles.categories.append(col)
    exact = [c for c in roles.counts if _tokens(c.name) and len(_tokens(c.name)) == 1]
    if exact:
        roles.contributor_n = next((c for c in exact if _tokens(c.name) == ["n"]), exact[0])
    return roles


# ---------------------------------------------------------------------------------------
# The rules


class _Cells:
    """Builds :class:`Cell` values for the rows a mask selects, labelled by category columns."""

    def __init__(self, table: _Table, categories: list[_Column]) -> None:
        self.table, self.categories = table, categories

    def of(self, mask: pa.Array, column: _Column, want: int = MAX_REPORTED_CELLS) -> tuple[int, list[Cell]]:
        """How many rows ``mask`` selects, and the first ``want`` of them as cells of ``column``."""
        mask = pc.fill_null(mask, False)
        total = _count(mask)
        if not total or want <= 0:
            return total, []
        indices = pc.indices_nonzero(mask)[:want].to_pylist()
        return total, [self.cell(index, column) for index in indices]

    def cell(self, index: int, column: _Column) -> Cell:
        value = column.text[index].as_py()
        parts = []
        for c in self.categories[:MAX_LABEL_COLUMNS]:
            parts.append(f"{_clip(c.name, 40)}={_clip(str(c.text[index].as_py() or ''), 40)}")
        label = "; ".join(parts) + ("; …" if len(self.categories) > MAX_LABEL_COLUMNS else "")
        return Cell(
            row=index + 1,
            column=column.name,
            value=_clip("" if value is None else str(value), 60),
            label=_clip(label, 200),
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _listed(total: int) -> str:
    return f" (first {MAX_REPORTED_CELLS} listed)" if total > MAX_REPORTED_CELLS else ""


def _check_table(table: _Table, rules: Rules) -> tuple[str, list[CheckResult]]:
    roles = _classify(table)
    cells = _Cells(table, roles.categories)
    results: list[CheckResult] = []
    magnitude_columns = roles.statistics or roles.tops or roles.total is not None
    kind = "magnitude" if magnitude_columns else ("frequency" if roles.counts else "table")

    if not roles.counts:
        results.append(
            _result(
                "counts",
                REVIEW,
                "no count column (named n, count, freq or effectif): the cell sizes cannot be checked "
                "automatically, a reviewer must read the table",
            )
        )
    valid_counts: dict[str, pa.Array] = {}
    for col in roles.counts:
        results.extend(_count_rules(col, cells, rules, valid_counts))

    if magnitude_columns:
        results.extend(_magnitude_rules(table, roles, cells, rules, valid_counts))
    results.extend(_column_rules(table, roles, cells, valid_counts))
    results.extend(_formula_rule(table, cells))
    results.extend(_long_text_rule(table, cells))
    return kind, results


def _count_rules(
    col: _Column, cells: _Cells, rules: Rules, valid_counts: dict[str, pa.Array]
) -> list[CheckResult]:
    out = []
    whole = pc.equal(col.numbers, pc.floor(col.numbers))
    problems = [
        (col.missing, "missing"),
        (col.unparsable, "not a number"),
        (pc.invert(whole), "not a whole number"),
        (pc.less(col.numbers, 0), "negative"),
    ]
    bad = _false(len(col.numbers))
    reasons, listed = [], []
    for mask, reason in problems:
        mask = pc.fill_null(mask, False)
        total, some = cells.of(pc.and_(mask, pc.invert(bad)), col, MAX_REPORTED_CELLS - len(listed))
        if total:
            reasons.append(f"{_plural(total, 'count')} {reason}")
            listed.extend(some)
        bad = pc.or_(bad, mask)
    if reasons:
        out.append(
            _result(
                "counts",
                FAIL,
                f"column {col.name}: {', '.join(reasons)}; every count must be a whole number ≥ 0"
                f"{_listed(_count(bad))}",
                listed,
            )
        )
    valid = pc.if_else(bad, pa.scalar(None, pa.float64()), col.numbers)
    valid_counts[col.name] = valid
    small = pc.and_(pc.greater(valid, 0), pc.less(valid, rules.threshold))
    total, some = cells.of(small, col)
    if total:
        out.append(
            _result(
                "threshold",
                FAIL,
                f"column {col.name}: {_plural(total, 'cell')} below the threshold of {rules.threshold}"
                f"{_listed(total)}",
                some,
            )
        )
    else:
        out.append(
            _result("threshold", PASS, f"column {col.name}: every non-zero count is ≥ {rules.threshold}")
        )
    zeros, some = cells.of(pc.equal(valid, 0), col)
    if zeros and rules.zeros_disclosive:
        out.append(
            _result("zeros", FAIL, f"column {col.name}: {_plural(zeros, 'zero count')}{_listed(zeros)}", some)
        )
    elif zeros:
        out.append(
            _result(
                "zeros",
                PASS,
                f"column {col.name}: {_plural(zeros, 'zero count')}, not disclosive by the rules",
            )
        )
    return out


def _magnitude_rules(
    table: _Table, roles: _Roles, cells: _Cells, rules: Rules, valid_counts: dict[str, pa.Array]
) -> list[CheckResult]:
    needed_tops = max(2, rules.dominance_n)
    missing_names = []
    if roles.contributor_n is None:
        missing_names.append("n")
    missing_names += [f"top{i}" for i in range(1, needed_tops + 1) if i not in roles.tops]
    if roles.total is None:
        missing_names.append("total")
    stats = ", ".join(c.name for c in roles.statistics) or "the statistic"
    if missing_names:
        return [
            _result(
                "magnitude",
                REVIEW,
                f"{stats}: a magnitude table needs the contributor columns n, top1, top2, total per cell "
                f"to be checked automatically; add {', '.join(missing_names)} (summarise() computes them) "
                "or a reviewer must check it",
            )
        ]
    assert roles.contributor_n is not None and roles.total is not None
    n = valid_counts[roles.contributor_n.name]
    tops = [roles.tops[i].numbers for i in range(1, needed_tops + 1)]
    total = roles.total.numbers
    out: list[CheckResult] = []
    involved = [roles.total, *(roles.tops[i] for i in range(1, needed_tops + 1)), *roles.statistics]

    no = _false(table.num_rows)
    missing, negative, unreadable = no, no, no
    listed_missing: list[Cell] = []
    listed_negative: list[Cell] = []
    listed_unreadable: list[Cell] = []
    for col in involved:
        is_contributor = col is roles.total or col in roles.tops.values()
        m = pc.fill_null(col.missing, False)
        if not is_contributor:  # a statistic of an empty cell (n = 0) has no value
            m = pc.and_(m, pc.fill_null(pc.not_equal(n, 0), True))
        listed_missing += cells.of(
            pc.and_(m, pc.invert(missing)), col, MAX_REPORTED_CELLS - len(listed_missing)
        )[1]
        missing = pc.or_(missing, m)
        neg = pc.fill_null(pc.less(col.numbers, 0), False)
        listed_negative += cells.of(
            pc.and_(neg, pc.invert(negative)), col, MAX_REPORTED_CELLS - len(listed_negative)
        )[1]
        negative = pc.or_(negative, neg)
        if is_contributor:
            u = pc.fill_null(col.unparsable, False)
            listed_unreadable += cells.of(
                pc.and_(u, pc.invert(unreadable)), col, MAX_REPORTED_CELLS - len(listed_unreadable)
            )[1]
            unreadable = pc.or_(unreadable, u)
    if _count(unreadable):
        out.append(
            _result(
                "contributors",
                FAIL,
                f"{_plural(_count(unreadable), 'cell')} with a contributor statistic (top1, top2, total) "
                "that is not a number",
                listed_unreadable,
            )
        )
    for mask, listed, rule, what in (
        (missing, listed_missing, "missing", "missing values"),
        (negative, listed_negative, "negative", "negative values"),
    ):
        count = _count(mask)
        if count:
            out.append(
                _result(
                    rule,
                    REVIEW,
                    f"{_plural(count, 'cell')} with {what}: dominance and p % rules not applied to them, "
                    "a reviewer must check",
                    listed,
                )
            )
    skip = pc.or_(pc.or_(missing, negative), unreadable)
    checkable = pc.invert(skip)
    anchor = roles.statistics[0] if roles.statistics else roles.total  # the column a failing cell is shown by

    # Contributor statistics that contradict each other mean the table is not what it says.
    tol = pc.add(pc.multiply(pc.abs(total), _TOLERANCE), _TOLERANCE)
    inconsistent = no
    for upper, lower in itertools.pairwise(tops):
        inconsistent = pc.or_(inconsistent, pc.fill_null(pc.greater(lower, pc.add(upper, tol)), False))
    top_sum = tops[0]
    for t in tops[1:]:
        top_sum = pc.add(top_sum, t)
    inconsistent = pc.or_(inconsistent, pc.fill_null(pc.greater(top_sum, pc.add(total, tol)), False))
    positive_tops = pc.add(*[pc.cast(pc.greater(t, 0), pa.float64()) for t in tops[:2]])
    inconsistent = pc.or_(inconsistent, pc.fill_null(pc.less(n, positive_tops), False))
    inconsistent = pc.and_(inconsistent, checkable)
    count, some = cells.of(inconsistent, anchor)
    if count:
        out.append(
            _result(
                "contributors",
                FAIL,
                f"{_plural(count, 'cell')} whose contributor statistics contradict each other (expected "
                f"top1 ≥ top2 ≥ 0, top1 + top2 ≤ total, n ≥ number of contributors){_listed(count)}",
                some,
            )
        )
    checkable = pc.and_(checkable, pc.invert(inconsistent))
    positive = pc.and_(checkable, pc.fill_null(pc.greater(total, 0), False))
    checked = _plural(_count(positive), "checked cell")

    dominant = tops[0]
    for t in tops[1 : rules.dominance_n]:
        dominant = pc.add(dominant, t)
    dominance = pc.and_(
        positive, pc.fill_null(pc.greater(dominant, pc.multiply(total, rules.dominance_k)), False)
    )
    count, some = cells.of(dominance, anchor)
    label = (
        f"the {rules.dominance_n} largest contributions"
        if rules.dominance_n > 1
        else "the largest contribution"
    )
    if count:
        out.append(
            _result(
                "dominance",
                FAIL,
                f"{_plural(count, 'cell')} where {label} make more than {rules.dominance_k:.0%} of the total"
                f"{_listed(count)}",
                some,
            )
        )
    else:
        out.append(
            _result(
                "dominance",
                PASS,
                f"in the {checked} {label} make at most {rules.dominance_k:.0%} of the total",
            )
        )

    remainder = pc.subtract(pc.subtract(total, tops[0]), tops[1])
    p_fail = pc.and_(positive, pc.fill_null(pc.less(remainder, pc.multiply(tops[0], rules.p_ratio)), False))
    count, some = cells.of(p_fail, anchor)
    if count:
        out.append(
            _result(
                "p_percent",
                FAIL,
                f"{_plural(count, 'cell')} where total - top1 - top2 is less than {rules.p_ratio:.0%} of "
                f"top1: the second largest contributor could estimate the largest{_listed(count)}",
                some,
            )
        )
    else:
        out.append(
            _result(
                "p_percent",
                PASS,
                f"in the {checked} total - top1 - top2 ≥ {rules.p_ratio:.0%} of top1",
            )
        )
    return out


def _column_rules(
    table: _Table, roles: _Roles, cells: _Cells, valid_counts: dict[str, pa.Array]
) -> list[CheckResult]:
    out = []

    def names(cols: list[_Column]) -> str:
        return ", ".join(c.name for c in cols[:10]) + (" …" if len(cols) > 10 else "")

    if roles.extremes:
        out.append(
            _result(
                "extremes",
                REVIEW,
                f"{names(roles.extremes)}: a minimum or maximum is one person's value; a reviewer must check",
            )
        )
    if roles.identifiers:
        out.append(
            _result(
                "identifiers",
                REVIEW,
                f"{names(roles.identifiers)}: looks like an identifier column; a reviewer must check that no "
                "individual-level identifiers leave",
            )
        )
    if roles.unknown:
        out.append(
            _result(
                "columns",
                REVIEW,
                f"{names(roles.unknown)}: numeric but neither a count (n, count, freq, effectif, n_…), a "
                "contributor statistic (top1, top2, total), a statistic (mean, sum, median…) nor a category "
                "(year, age_group…); a reviewer must check",
            )
        )
    if roles.mixed:
        out.append(
            _result(
                "columns",
                REVIEW,
                f"{names(roles.mixed)}: numbers mixed with text (suppressed or rounded counts?); "
                "a reviewer must check",
            )
        )
    if roles.unsupported:
        types = ", ".join(f"{c.name} ({c._stats.get('type', '?')})" for c in roles.unsupported[:10])
        out.append(_result("columns", REVIEW, f"{types}: column types that cannot be checked automatically"))
    shares = [c for c in roles.percents if not _is_share_of_counts(c, valid_counts)]
    if shares:
        out.append(
            _result(
                "percentages",
                REVIEW,
                f"{names(shares)}: percentages that are not each cell's share of a count column's total; "
                "they may reveal small sub-counts, a reviewer must check",
            )
        )
    return out


def _is_share_of_counts(col: _Column, valid_counts: dict[str, pa.Array]) -> bool:
    """Whether the column is ``n / sum(n)`` (as a fraction or percentage) of some count column."""
    if not col.is_numeric or col.n_present == 0:
        return False
    for counts in valid_counts.values():
        grand = pc.sum(counts).as_py()
        if not grand:
            continue
        share = pc.divide(counts, grand)
        for scale, tol in ((1.0, 0.005), (100.0, 0.5)):
            diff = pc.abs(pc.subtract(col.numbers, pc.multiply(share, scale)))
            within = pc.less_equal(diff, tol + _TOLERANCE)
            if _count(pc.invert(pc.fill_null(within, False))) == 0:
                return True
    return False


def _long_text_rule(table: _Table, cells: _Cells) -> list[CheckResult]:
    """Long text cells are no category labels: they could carry anything, a reviewer reads them."""
    listed: list[Cell] = []
    count = 0
    for col in table.columns:
        if col.is_numeric or col.typed == "other":
            continue
        n, some = cells.of(
            pc.greater(pc.utf8_length(col.text), MAX_TEXT_CHARS), col, MAX_REPORTED_CELLS - len(listed)
        )
        count += n
        listed.extend(some)
    if not count:
        return []
    return [
        _result(
            "long_text",
            REVIEW,
            f"{_plural(count, 'text cell')} longer than {MAX_TEXT_CHARS} characters: not category labels, "
            f"a reviewer must read them{_listed(count)}",
            listed,
        )
    ]


def _formula_rule(table: _Table, cells: _Cells) -> list[CheckResult]:
    listed: list[Cell] = []
    count = 0
    for col in table.columns:
        if re.match(_FORMULA_RE, col.name.strip()):
            count += 1
            listed.append(Cell(row=0, column=col.name, value=_clip(col.name, 60), label="header"))
    for col in table.columns:
        if col.is_numeric or col.typed == "other":
            continue
        n, some = cells.of(
            pc.match_substring_regex(col.text, _FORMULA_RE), col, MAX_REPORTED_CELLS - len(listed)
        )
        count += n
        listed.extend(some)
    if not count:
        return []
    return [
        _result(
            "formula",
            REVIEW,
            f"{_plural(count, 'cell')} starting like a spreadsheet formula (=, +, -, @ then letters); "
            f"a reviewer must check{_listed(count)}",
            listed,
        )
    ]


# ---------------------------------------------------------------------------------------
# Producing checkable tables

AGGREGATES = {
    "mean": "avg({v})",
    "sum": "sum({v})",
    "median": "median({v})",
    "sd": "stddev_samp({v})",
}


def summarise(
    rows: pa.Table | pd.DataFrame,
    by: list[str],
    value: str | None = None,
    agg: str = "mean",
    *,
    unit: str | None = None,
    top: int = 2,
) -> pa.Table:
    """Aggregate microdata into a table the airlock can check.

    Per group of the ``by`` columns: ``n``, and when ``value`` is given, ``{value}_{agg}``
    (``agg``: ``mean``, ``sum``, ``median`` or ``sd``) plus the contributor columns
    ``top1`` … ``top{top}`` (largest contributions; 0 where there are fewer contributors)
    and ``total`` (sum of contributions). Without ``value``, ``n`` is the row count: a
    frequency table.

    ``unit`` names the column that identifies an individual (``person_id``) when an
    individual may have several rows: ``n`` then counts distinct individuals and each
    contribution is the sum of one individual's values, as the dominance and p % rules
    mean. Missing values of ``value`` do not contribute. Computed by DuckDB, in one query.
    Rows are ordered by ``by``.
    """
    source = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    columns = set(source.column_names)
    wanted = [*by, *(c for c in (value, unit) if c is not None)]
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise ValidationError(f"summarise: no column {', '.join(unknown)} in the data")
    if len(set(by)) != len(by):
        raise ValidationError("summarise: a column appears twice in by")
    if value is not None and agg not in AGGREGATES:
        raise ValidationError(f"summarise: agg must be one of {', '.join(AGGREGATES)}")
    if not 1 <= top <= 9:
        raise ValidationError("summarise: top must be between 1 and 9")
    if value is not None:
        vtype = source.schema.field(value).type
        if not (pa.types.is_integer(vtype) or pa.types.is_floating(vtype) or pa.types.is_decimal(vtype)):
            raise ValidationError(f"summarise: {value} is not numeric ({vtype})")
    reserved = {"n", "total", *(f"top{i}" for i in range(1, top + 1))}
    if value is not None:
        reserved.add(f"{value}_{agg}")
    clash = [c for c in by if c in reserved or c.startswith("__")]
    if clash:
        raise ValidationError(f"summarise: {', '.join(clash)} cannot be a grouping column (an output column)")

    sql = _summarise_sql(by, value, agg, unit, top)
    con = duckdb.connect(":memory:")
    try:
        con.register("microdata", source)
        result = con.execute(sql).arrow()
        if isinstance(result, pa.RecordBatchReader):
            result = result.read_all()
    finally:
        con.close()
    return result


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _summarise_sql(by: list[str], value: str | None, agg: str, unit: str | None, top: int) -> str:
    # Every identifier is a column name checked against the data, then quoted; no value is inlined.
    keys = ", ".join(_q(c) for c in by)
    group = f"GROUP BY {keys}" if by else ""
    order = f"ORDER BY {keys}" if by else ""
    sel = f"{keys}, " if by else ""
    if value is None:
        n = f"count(DISTINCT {_q(unit)})" if unit else "count(*)"
        return f"SELECT {sel}{n} AS n FROM microdata {group} {order}"  # noqa: S608
    stat_name = _q(f"{value}_{agg}")
    stat = AGGREGATES[agg].format(v="__value")
    unit_expr = _q(unit) if unit else "NULL"
    tops = ", ".join(f"list_extract(max(__c, {top}), {i}) AS top{i}" for i in range(1, top + 1))
    # One contribution per individual (the sum of their values in the group) when unit is
    # given, else one per row; missing values contribute nothing.
    per_unit = (
        f"SELECT {sel}__unit, sum(__value) AS __c FROM rows_ WHERE __value IS NOT NULL GROUP BY {sel}__unit"  # noqa: S608
        if unit
        else "SELECT *, __value AS __c FROM rows_ WHERE __value IS NOT NULL"
    )
    join = " AND ".join(f"s.{_q(c)} IS NOT DISTINCT FROM p.{_q(c)}" for c in by) or "TRUE"
    s_keys = ", ".join(f"s.{_q(c)}" for c in by)
    return (
        f"WITH rows_ AS (SELECT {sel}{unit_expr} AS __unit, CAST({_q(value)} AS DOUBLE) AS __value "  # noqa: S608
        "FROM microdata), "
        f"stats_ AS (SELECT {sel}{stat} AS {stat_name} FROM rows_ {group}), "
        f"units_ AS ({per_unit}), "
        f"contrib_ AS (SELECT {sel}count(*) AS n, {tops}, sum(__c) AS total FROM units_ {group}) "
        f"SELECT {s_keys + ', ' if by else ''}coalesce(p.n, 0) AS n, s.{stat_name}, "
        + ", ".join(f"coalesce(p.top{i}, 0) AS top{i}" for i in range(1, top + 1))
        + f", coalesce(p.total, 0) AS total FROM stats_ s LEFT JOIN contrib_ p ON {join}"
        + (f" ORDER BY {s_keys}" if by else "")
    )


__all__ = [
    "MAX_COLUMNS",
    "MAX_RELEASE_BYTES",
    "MAX_ROWS",
    "Cell",
    "CheckResult",
    "FileCheck",
    "Rules",
    "check_bytes",
    "check_file",
    "overall_status",
    "summarise",
    "validate_name",
]
