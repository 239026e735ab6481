"""Background WAL checkpoints: the log reaches the database file without a writer doing it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from hdhub.catalog.checkpoints import AUTOCHECKPOINT_PAGES, Checkpoints
from hdhub.catalog.db import create_catalog_engine


def in_database_file(db: Path) -> int:
    """Rows of ``t`` in the database file itself, ignoring the write-ahead log."""
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return con.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        con.close()


def test_the_log_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    engine = create_catalog_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == AUTOCHECKPOINT_PAGES
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1), (2), (3)"))
    assert in_database_file(db) == 0  # in the log only: far below the connections' own threshold
    checkpoints = Checkpoints(engine, interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while in_database_file(db) != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        checkpoints.stop()
    assert in_database_file(db) == 3 and checkpoints.done >= 1
    engine.dispose()


def test_nothing_to_do_for_an_in_memory_catalog() -> None:
    checkpoints = Checkpoints(create_catalog_engine("sqlite://")).start()
    assert checkpoints.path is None and checkpoints._thread is None
    checkpoints.stop()
