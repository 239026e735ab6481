"""One compiled expression, three engines: the SQL generated for PostgreSQL runs on a real
PostgreSQL and gives DuckDB's numbers; the Spark SQL parses as Spark SQL and, translated
back to DuckDB by sqlglot, gives them too (Spark itself runs in a later issue)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ibis
import pytest
import sqlglot

from hdhub.catalog.scratch import scratch_database
from hdhub.cohorts.compiler import compile_cohort, unbound_tables
from hdhub.cohorts.concepts import resolve_concept_sets
from hdhub.cohorts.definition import parse_definition
from hdhub.cohorts.run import compile_on, execute
from hdhub.cohorts.sql import to_sql
from tests.cohorts.cases import SAMPLE

pytestmark = pytest.mark.integration

CLINICAL = [
    "person", "observation_period", "condition_occurrence", "drug_exposure", "measurement",
    "procedure_occurrence", "observation", "visit_occurrence", "device_exposure", "death", "note",
    "person_site",
]  # fmt: skip


@pytest.fixture(scope="module")
def pg_sample(sample_warehouse: Any, pg_server: str) -> Iterator[Any]:
    """The sample's clinical tables copied into a throwaway PostgreSQL database."""
    with scratch_database("hdhub_cohorts") as url:
        database = url.rsplit("/", 1)[1]
        pg = ibis.postgres.connect(host="127.0.0.1", port=5432, user="postgres", database=database)
        try:
            for table in CLINICAL:
                pg.create_table(table, obj=sample_warehouse.table(table).to_pyarrow())
            yield pg
        finally:
            pg.disconnect()


def summaries(con: Any) -> Iterator[tuple[str, dict[str, Any], Any]]:
    for case in SAMPLE:
        d = parse_definition(case.definition)
        compiled = compile_on(con, d)
        expected = execute(con, compiled, compiled.summary()).to_pylist()[0]
        yield case.name, expected, compile_cohort(d, resolve_concept_sets(con, d), unbound_tables())


def test_postgres_sql_gives_the_same_counts(sample_warehouse: Any, pg_sample: Any) -> None:
    for name, expected, compiled in summaries(sample_warehouse):
        sql = to_sql(compiled.summary(), "postgres", lists=compiled.lists)
        try:
            got = pg_sample.raw_sql(sql).fetchone()
        except Exception as exc:
            pytest.fail(f"{name}: PostgreSQL refused the SQL: {exc}\n{sql}")
        assert dict(zip(expected, got, strict=True)) == expected, name
        rows = to_sql(compiled.cohort, "postgres", lists=compiled.lists)
        try:
            got_rows = pg_sample.raw_sql(rows).fetchall()
        except Exception as exc:
            pytest.fail(f"{name}: PostgreSQL refused the SQL: {exc}\n{rows}")
        assert len(got_rows) == compiled_rows(sample_warehouse, compiled), name


def compiled_rows(con: Any, compiled: Any) -> int:
    sql = to_sql(compiled.cohort, "duckdb", lists=compiled.lists)
    return con.con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]


def test_spark_sql_parses_and_means_the_same(sample_warehouse: Any) -> None:
    for name, expected, compiled in summaries(sample_warehouse):
        spark = to_sql(compiled.summary(), "pyspark", lists=compiled.lists)
        assert "`" in spark and '"' not in spark.replace('\\"', ""), name  # Spark's identifier quoting
        tree = sqlglot.parse_one(spark, read="spark")
        back = tree.sql(dialect="duckdb")
        got = sample_warehouse.con.execute(back).fetchone()
        assert dict(zip(expected, got, strict=True)) == expected, name
