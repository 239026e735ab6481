"""Catalog engine factory: one code path for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from hdhub.errors import ConfigError


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; safe with WAL
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_WRITERS: dict[Path, AbstractContextManager[Any]] = {}
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, AbstractContextManager[Any]] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def writer_lock(engine: Engine) -> AbstractContextManager[Any]:
    """Hold while writing to the catalog. For an SQLite file, a re-entrant lock shared by this
    process's writers (one per file, whichever engine opened it): a waiting writer is woken the
    moment the previous one is done. Without it, threads meet at SQLite's file lock, whose busy
    handler makes a waiting writer sleep 1, 2, 5 … up to 100 ms between tries while the lock
    sits free. Other processes still meet at the file lock (a file lock between processes, tried
    here, let the holding process take it back before the other woke). Nothing for PostgreSQL
    (its writers wait on row locks) or an in-memory database."""
    lock = _BY_ENGINE.get(engine)
    if lock is not None:
        return lock
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        lock = nullcontext()
    else:
        path = Path(database).resolve()
        with _WRITERS_LOCK:
            lock = _WRITERS.setdefault(path, threading.RLock())
    _BY_ENGINE[engine] = lock
    return lock


MAX_ROW_ID = 2**63 - 1  # SQLite's driver raises OverflowError beyond: bound every id and version


def is_row_id(value: int) -> bool:
    """Whether a row with this id can exist (look nothing else up: it is simply not found)."""
    return 0 < value <= MAX_ROW_ID


def in_chunks(values: Iterable[str], size: int = 500) -> Iterator[list[str]]:
    """``values`` in lists short enough for one ``IN (…)`` each (SQLite binds at most
    32,766 parameters per statement; PostgreSQL 65,535)."""
    items = list(values)
    return (items[i : i + size] for i in range(0, len(items), size))


def create_catalog_engine(url: str, **kwargs: Any) -> Engine:
    """Engine for ``sqlite:///…`` or ``postgresql+psycopg://…``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    raise ConfigError(f"unsupported catalog URL {url!r}: use sqlite:/// or postgresql+psycopg://")
