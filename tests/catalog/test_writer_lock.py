"""The catalog's writer lock: one writer at a time among a process's threads."""

from __future__ import annotations

import threading
from pathlib import Path

from hdhub.catalog.db import create_catalog_engine, writer_lock

ROUNDS = 300


def _bump(db: Path, counter: Path, rounds: int) -> None:
    """Read-modify-write a counter file under the lock: a lost update means two holders."""
    engine = create_catalog_engine(f"sqlite:///{db}")
    for _ in range(rounds):
        with writer_lock(engine):
            value = int(counter.read_text() or 0)
            counter.write_text(str(value + 1))


def test_threads_take_turns_across_engines(tmp_path: Path) -> None:
    """Four threads, each with its own engine on the same file: no update is lost."""
    db, counter = tmp_path / "catalog.db", tmp_path / "counter"
    counter.write_text("0")
    threads = [threading.Thread(target=_bump, args=(db, counter, ROUNDS)) for _ in range(4)]
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join(timeout=120)
    assert int(counter.read_text()) == 4 * ROUNDS


def test_reentrant_and_released_on_error(tmp_path: Path) -> None:
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    lock = writer_lock(engine)
    assert writer_lock(create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.db'}")) is lock
    try:
        with lock, lock:
            raise RuntimeError("a failed write")
    except RuntimeError:
        pass
    taken = threading.Event()

    def other() -> None:
        with lock:
            taken.set()

    t = threading.Thread(target=other)
    t.start()
    t.join(timeout=10)
    assert taken.is_set()


def test_no_lock_for_an_in_memory_database() -> None:
    memory = create_catalog_engine("sqlite://")
    with writer_lock(memory), writer_lock(memory):
        pass  # nothing to serialise: each in-memory connection is its own database
