"""The SQL one compiled cohort expression gives on each engine (DuckDB, PostgreSQL, Spark)."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
from ibis.config import Config, options

DIALECTS = ("duckdb", "postgres", "pyspark")


class _SparkSqlOptions(Config):
    """What ibis's Spark compiler reads from its backend's options: SQL generation for Spark
    needs no Spark session, so pyspark itself (400 MB) is not a dependency."""

    treat_nan_as_null: bool = False


def to_sql(expr: ir.Table, dialect: str, *, pretty: bool = True) -> str:
    """SQL text of ``expr`` (built on ``unbound_tables()``) for ``dialect``."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}: one of {', '.join(DIALECTS)}")
    if dialect == "pyspark" and options.pyspark is None:
        options.pyspark = _SparkSqlOptions()
    return str(ibis.to_sql(expr, dialect=dialect, pretty=pretty))
