"""The physical order of the event tables: sorted by concept, person and date.

A cohort question starts from concepts ("type 2 diabetes", "HbA1c"). DuckDB keeps the
minimum and maximum of each column per row group (zone maps), so when a table is sorted by
its concept column a query for one concept reads only that concept's row groups instead of
the whole table: a criterion on 100 million measurements then reads a few million. Loads
append in arrival order; ``hdhub warehouse optimize`` (after large loads) rewrites each
event table in this order, keeping its definition, in one transaction per table. Results
never depend on it; only speed does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# table -> sort key (its concept, person and start date columns)
CLUSTER_KEYS: dict[str, tuple[str, ...]] = {
    "measurement": ("measurement_concept_id", "person_id", "measurement_date"),
    "condition_occurrence": ("condition_concept_id", "person_id", "condition_start_date"),
    "drug_exposure": ("drug_concept_id", "person_id", "drug_exposure_start_date"),
    "procedure_occurrence": ("procedure_concept_id", "person_id", "procedure_date"),
    "observation": ("observation_concept_id", "person_id", "observation_date"),
    "device_exposure": ("device_concept_id", "person_id", "device_exposure_start_date"),
    "visit_occurrence": ("visit_concept_id", "person_id", "visit_start_date"),
}


def optimize_layout(
    con: Any, tables: list[str] | None = None, progress: Callable[[str, int, float], None] | None = None
) -> dict[str, float]:
    """Rewrite each event table sorted by CLUSTER_KEYS; returns seconds per table."""
    db = con.con
    timings: dict[str, float] = {}
    for table in tables or list(CLUSTER_KEYS):
        keys = CLUSTER_KEYS[table]
        started = time.perf_counter()
        (ddl,) = db.execute(
            "SELECT sql FROM duckdb_tables() WHERE table_name = ? AND schema_name = current_schema()", [table]
        ).fetchone()
        staging = f"_hdhub_sorted_{table}"
        prefix = f"CREATE TABLE {table}("
        if not ddl.startswith(prefix):
            raise RuntimeError(f"unexpected definition of {table}: {ddl[:80]}")
        db.execute("BEGIN TRANSACTION")
        try:
            db.execute(f"DROP TABLE IF EXISTS {staging}")
            db.execute(f"CREATE TABLE {staging}(" + ddl[len(prefix) :])
            # table and keys come from CLUSTER_KEYS (an unknown table raised KeyError above)
            db.execute(f"INSERT INTO {staging} SELECT * FROM {table} ORDER BY {', '.join(keys)}")  # noqa: S608
            rows = db.execute(f"SELECT count(*) FROM {staging}").fetchone()[0]  # noqa: S608
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {staging} RENAME TO {table}")
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        timings[table] = time.perf_counter() - started
        if progress is not None:
            progress(table, rows, timings[table])
    db.execute("CHECKPOINT")
    return timings
