"""`hdhub warehouse optimize` sorts the event tables and changes no result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hdhub.cohorts.definition import parse_definition
from hdhub.cohorts.run import count_cohort
from hdhub.ingest.omop_csv import load_omop_csv
from hdhub.warehouse import connect
from hdhub.warehouse.layout import CLUSTER_KEYS, optimize_layout
from tests.cohorts.cases import SAMPLE

pytestmark = pytest.mark.integration


def snapshot(con: Any) -> dict[str, Any]:
    db = con.con
    return {
        t: (
            db.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {t}").fetchall(),
            db.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [t]).fetchone()[0],
        )
        for t in CLUSTER_KEYS
    }


def test_optimize_sorts_by_concept_and_keeps_rows_definitions_and_counts(
    shared_data: Path, tmp_path: Path
) -> None:
    con = connect(f"duckdb:///{tmp_path}/w.duckdb")
    load_omop_csv(con, shared_data / "omop-synthea27nj")
    before = snapshot(con)
    definitions = [parse_definition(c.definition) for c in SAMPLE[:6]]
    counts = [count_cohort(con, d).persons for d in definitions]
    seen: list[str] = []
    optimize_layout(con, progress=lambda table, rows, seconds: seen.append(table))
    assert seen == list(CLUSTER_KEYS)
    assert snapshot(con) == before  # same rows, same CREATE TABLE (NOT NULL kept)
    keys = ", ".join(CLUSTER_KEYS["measurement"])
    in_order = con.con.execute(f"SELECT {keys} FROM measurement").fetchall()
    assert in_order == sorted(in_order)
    assert [count_cohort(con, d).persons for d in definitions] == counts
    con.disconnect()
