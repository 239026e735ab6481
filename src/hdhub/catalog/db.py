"""Catalog engine factory: one code path for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from hdhub.catalog.checkpoints import AUTOCHECKPOINT_PAGES
from hdhub.errors import ConfigError


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; safe with WAL
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")  # long-running processes: Checkpoints
    cur.close()


class _Writers:
    """The writers of one SQLite file, in every process: a re-entrant lock queues this process's
    threads, then an exclusive ``flock`` on ``<file>.writers`` queues the processes (the workers
    of ``hdhub serve --workers N``, the MQTT subscriber, the CLI). A waiting writer is woken the
    moment the holder is done; at SQLite's own file lock it would sleep 1, 2, 5 … up to 100 ms
    between tries while the lock sat free (two workers spent a third of their time so)."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".writers")
        self._reset()

    def _reset(self) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def _file(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:  # a read-only folder: SQLite's lock alone then
                return None
        return self._fd

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0:
            try:
                fd = self._file()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def after_fork(self) -> None:
        """A forked child holds none of its parent's locks (nor shares its open lock file)."""
        if self._fd is not None:
            os.close(self._fd)
        self._reset()


_WRITERS: dict[Path, _Writers] = {}
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, AbstractContextManager[Any]] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _after_fork() -> None:
    global _WRITERS_LOCK
    _WRITERS_LOCK = threading.Lock()
    for writers in _WRITERS.values():
        writers.after_fork()


os.register_at_fork(after_in_child=_after_fork)


def writer_lock(engine: Engine) -> AbstractContextManager[Any]:
    """Hold while writing to the catalog: for an SQLite file, one writer at a time among all
    processes and threads, each waiting one woken as soon as the lock is free (:class:`_Writers`).
    Nothing for PostgreSQL (its writers wait on row locks) or an in-memory database."""
    lock = _BY_ENGINE.get(engine)
    if lock is not None:
        return lock
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        lock = nullcontext()
    else:
        path = Path(database).resolve()
        with _WRITERS_LOCK:
            lock = _WRITERS.get(path) or _WRITERS.setdefault(path, _Writers(path))
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
