"""An SQLite catalog's WAL checkpoints, in the background of a long-running process.

SQLite copies its write-ahead log back into the database file (a checkpoint, with an fsync of
each) at the commit that finds the log past ``wal_autocheckpoint`` pages. In a server that
commit holds the catalog's writer lock (:func:`hdhub.catalog.db.writer_lock`) while it copies,
and every other writer waits: device vitals at 55,000 values/s checkpointed every quarter of a
second so. The server's processes and the MQTT subscriber run :class:`Checkpoints` instead: a
thread that checkpoints every 0.1 s, PASSIVE (it never waits for a reader or a writer, nor
makes one wait). A connection checkpoints itself past ``AUTOCHECKPOINT_PAGES`` (set on every
catalog connection): the safety net of a process without the thread, or of a thread behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import Engine

log = logging.getLogger(__name__)

AUTOCHECKPOINT_PAGES = 10_000  # 40 MB of log, at SQLite's 4 kB pages
INTERVAL_SECONDS = 0.1


class Checkpoints:
    """Checkpoint ``engine``'s SQLite file every ``interval`` seconds until :meth:`stop` (nothing
    for PostgreSQL or an in-memory database)."""

    def __init__(self, engine: Engine, interval: float = INTERVAL_SECONDS) -> None:
        database = engine.url.database
        sqlite_file = engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
        self.path = database if sqlite_file else None
        self.interval = interval
        self.done = 0  # checkpoints run (for tests and curiosity)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Checkpoints:
        if self.path is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hdhub-checkpoints", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        assert self.path is not None
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=0")  # another process's checkpoint: next time
            while not self._stop.wait(self.interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done += 1
                except sqlite3.Error as exc:  # busy, or the file gone: try again at the next tick
                    log.debug("catalog checkpoint skipped: %s", exc)
        finally:
            connection.close()
