"""The SQL one compiled cohort expression gives on each engine (DuckDB, PostgreSQL, Spark)."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence

import ibis.backends.sql.compilers as compilers
import ibis.expr.types as ir
from ibis.config import Config, options

from hdhub.cohorts.compiler import LIST_SENTINEL

DIALECTS = ("duckdb", "postgres", "pyspark")
_ONE_LITERAL_IN = re.compile(r"IN \((-\d+)\)")
_MAX_LISTS = 1_000_000  # sentinels run from LIST_SENTINEL down by one per list
_OPTIONS = threading.Lock()  # ibis's options are global: one SQL generation at a time changes them


class _SparkSqlOptions(Config):
    """What ibis's Spark compiler reads from its backend's options: SQL generation for Spark
    needs no Spark session, so pyspark itself (400 MB) is not a dependency."""

    treat_nan_as_null: bool = False


def to_sql(
    expr: ir.Table, dialect: str, *, pretty: bool = True, lists: Mapping[int, Sequence[int]] | None = None
) -> str:
    """SQL text of ``expr`` (built on ``unbound_tables()``) for ``dialect``, with the id lists
    of its compiled cohort (``CompiledCohort.lists``) in place of their sentinels."""
    return fill_lists(sql_template(expr, dialect, pretty=pretty), lists or {})


def sql_template(expr: ir.Table, dialect: str, *, pretty: bool = True) -> str:
    """SQL text of ``expr`` with its id lists still sentinels (see :func:`fill_lists`)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}: one of {', '.join(DIALECTS)}")
    if dialect == "pyspark" and options.pyspark is None:
        options.pyspark = _SparkSqlOptions()
    compiler = getattr(compilers, dialect).compiler
    # What ibis.to_sql does, minus three costs (a third of the time of a cohort's SQL): it
    # unbinds the tables (ours are unbound), fuses nested SELECTs (the engines' planners
    # flatten them anyway) and lets sqlglot copy the whole tree before writing it.
    with _OPTIONS:
        fuse, options.sql.fuse_selects = options.sql.fuse_selects, False
        try:
            query = compiler.to_sqlglot(expr)
        finally:
            options.sql.fuse_selects = fuse
    return query.sql(dialect=compiler.dialect, pretty=pretty, copy=False)


def fill_lists(sql: str, lists: Mapping[int, Sequence[int]]) -> str:
    """``sql`` with each ``IN (<sentinel>)`` made ``IN (<its ids>)``. A sentinel without its
    list is an error, never SQL that quietly matches nothing."""

    def put(match: re.Match[str]) -> str:
        value = int(match.group(1))
        if not LIST_SENTINEL - _MAX_LISTS < value <= LIST_SENTINEL:
            return match.group(0)  # an ordinary literal
        ids = lists.get(value)
        if not ids:
            raise ValueError(f"the SQL stands for id list {value}, but its ids were not given")
        return "IN (" + ", ".join(map(str, ids)) + ")"

    return _ONE_LITERAL_IN.sub(put, sql)
