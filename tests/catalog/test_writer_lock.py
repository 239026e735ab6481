"""The catalog's writer lock: one writer at a time among threads and processes."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from hdhub.catalog.db import create_catalog_engine, writer_lock

ROUNDS = 300


def _bump(db: Path, counter: Path, rounds: int, start: Any = None) -> None:
    """Read-modify-write a counter file under the lock: a lost update means two holders."""
    engine = create_catalog_engine(f"sqlite:///{db}")
    if start is not None:
        start.wait(60)
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


def test_processes_take_turns(tmp_path: Path) -> None:
    """Two processes (``hdhub serve --workers 2``): their writers queue on one another too."""
    db, counter = tmp_path / "catalog.db", tmp_path / "counter"
    counter.write_text("0")
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    workers = [spawn.Process(target=_bump, args=(db, counter, 5 * ROUNDS, start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(1)  # both started: then at once
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert int(counter.read_text()) == 2 * 5 * ROUNDS


def test_a_forked_child_holds_none_of_its_parents_locks(tmp_path: Path) -> None:
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    lock = writer_lock(engine)
    with lock:
        pid = os.fork()
        if pid == 0:  # the child: the parent holds the lock, so this must fail at once
            fd = os.open(tmp_path / "catalog.db.writers", os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os._exit(1)  # taken while the parent held it
            except BlockingIOError:
                pass
            # The forking thread held the lock; the child's copy of that thread must wait for
            # the parent all the same (it would re-enter a lock copied as held).
            signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
            signal.alarm(1)
            lock.__enter__()
            os._exit(2)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
