"""Derive ``concept_ancestor`` from the 'Is a' relationships when a vocabulary lacks it.

OHDSI Athena downloads ship CONCEPT_ANCESTOR, but extracts such as the Eunomia sample
databases leave it empty, and then "include descendants" finds nothing. The transitive
closure of valid 'Is a' relationships (concept_id_1 'Is a' concept_id_2: the second is an
ancestor) gives the same table for the hierarchy present, with the minimum and maximum
levels of separation, plus a level-0 row for every standard concept, as Athena's has.
"""

from __future__ import annotations

from typing import Any

MAX_LEVELS = 30  # deeper than any OMOP hierarchy; also ends any cycle in a broken extract


def build_concept_ancestor(con: Any, *, replace: bool = False) -> int:
    """Fill ``concept_ancestor`` on a DuckDB warehouse; returns the rows written.

    Does nothing (returns 0) when the table already has rows, unless ``replace``.
    """
    db = con.con  # the DuckDB connection under the Ibis backend
    existing = db.execute("SELECT count(*) FROM concept_ancestor").fetchone()[0]
    if existing and not replace:
        return 0
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute("DELETE FROM concept_ancestor")
        db.execute(
            """
            INSERT INTO concept_ancestor
            WITH RECURSIVE isa AS (
                SELECT DISTINCT concept_id_1 AS d, concept_id_2 AS a FROM concept_relationship
                WHERE relationship_id = 'Is a' AND invalid_reason IS NULL AND concept_id_1 <> concept_id_2
            ), closure(d, a, lvl) AS (
                SELECT d, a, 1 FROM isa
                UNION
                SELECT c.d, i.a, c.lvl + 1 FROM closure c JOIN isa i ON i.d = c.a WHERE c.lvl < ?
            )
            SELECT a, d, min(lvl), max(lvl) FROM closure WHERE a <> d GROUP BY a, d
            UNION ALL
            SELECT concept_id, concept_id, 0, 0 FROM concept WHERE standard_concept IN ('S', 'C')
            """,
            [MAX_LEVELS],
        )
        written = db.execute("SELECT count(*) FROM concept_ancestor").fetchone()[0]
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    return int(written)
