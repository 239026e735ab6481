"""The start-up heap of the long-running servers (API, DICOM SCP): what would load on a first
request loaded before, then kept out of the garbage collector's full passes."""

from __future__ import annotations

import gc


def load_lazy_modules() -> None:
    """Load what a first API request would otherwise load (before freezing the heap): DuckDB's
    Python client imports pandas and numpy on its first query with parameters (0.3-0.65 s
    here), which made the first cohort count or concept search after a start that slower."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("SELECT ?", [1]).fetchall()


def freeze_startup_heap() -> None:
    """Keep the objects alive after start-up out of the cyclic collector's full passes.

    A full collection walks every tracked object: about 130,000 once the API is imported,
    some 75 ms here, which showed as the p99 of QIDO-RS searches. Frozen (``gc.freeze``),
    those objects are skipped and a full pass walks only what requests create."""
    gc.collect()
    gc.freeze()
