from __future__ import annotations

import csv
from pathlib import Path

import ibis
import pytest

from hdhub.errors import ConfigError, NotFound
from hdhub.warehouse import cdm_schema, connect
from hdhub.warehouse._omop_cdm54 import TABLES


def test_all_39_tables_with_spec_names_and_types(tmp_path: Path) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    assert set(con.list_tables()) >= set(TABLES) and len(TABLES) == 39
    rows = con.con.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
    ).fetchall()
    got = {(t, c): (ty, nullable) for t, c, ty, nullable in rows}
    duck = {
        "integer": "INTEGER",
        "float": "DOUBLE",
        "date": "DATE",
        "datetime": "TIMESTAMP",
        "string": "VARCHAR",
    }
    for table in TABLES.values():
        for col in table.columns:
            assert got[(table.name, col.name)] == (duck[col.kind], "NO" if col.required else "YES"), col


def test_generated_module_matches_the_spec(shared_data: Path) -> None:
    spec = shared_data / "omop-cdm-5.4-spec" / "OMOP_CDMv5.4_Field_Level.csv"
    with spec.open(encoding="utf-8-sig", newline="") as fh:
        fields = [
            (r["cdmTableName"].lower(), r["cdmFieldName"].strip('"').lower()) for r in csv.DictReader(fh)
        ]
    assert fields == [(t.name, c.name) for t in TABLES.values() for c in t.columns]


def test_connect_is_idempotent_and_refuses_other_engines(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    connect(url).disconnect()
    assert len(connect(url).list_tables()) == 41  # the 39 of the spec + image_occurrence, person_site
    with pytest.raises(ConfigError, match="come later"):
        connect("postgresql://x/y")


def test_unknown_table() -> None:
    with pytest.raises(NotFound):
        cdm_schema("patients")


@pytest.mark.parametrize("dialect", ["postgres", "pyspark", "duckdb"])
def test_one_ibis_expression_compiles_for_every_engine(dialect: str) -> None:
    person = ibis.table(cdm_schema("person"), name="person")
    old = person.filter(person.year_of_birth < 1950)
    expr = old.group_by("gender_concept_id").agg(n=old.count())
    sql = ibis.to_sql(expr, dialect=dialect)
    assert "year_of_birth" in sql and "GROUP BY" in sql.upper()
