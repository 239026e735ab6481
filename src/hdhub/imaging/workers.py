"""Worker processes for DICOM ingest: parsing and object writes on every core.

Parsing a DICOM header and writing its encrypted object are CPU work held by the GIL in a
single process; the catalog plan and transaction stay in the calling process. Workers are
started (``spawn``: the caller may run threads) when first needed and each opens the
deployment's object store once. The keyring reaches them through the settings' secret
files, never through the pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from hdhub.config import Settings
from hdhub.errors import HdhubError

MIN_BATCH = 16  # smaller batches are parsed in the calling process: the pipe would cost more

_objects: Any = None  # the worker process's object store
_threads: ThreadPoolExecutor | None = None  # its object writers


def _start(settings: Settings) -> None:
    global _objects
    from hdhub.hub import Hub

    _objects = Hub(settings).objects
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (killed, crashed) exits too, instead of lingering."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _parse(items: list[tuple[bytes, str]]) -> list[Any]:
    from hdhub.imaging.store import parse_batch

    return parse_batch(items)


def _put(jobs: list[tuple[str, bytes, str, Any]]) -> list[str | BaseException]:
    from hdhub.imaging.store import PUT_THREADS, put_object

    def put(job: tuple[str, bytes, str, Any]) -> str | BaseException:
        try:
            return put_object(_objects, *job)
        except Exception as exc:  # reported to the caller, which removes the batch's writes
            return exc

    global _threads
    if _threads is None:  # the writes wait on fsync or the network: several at once
        _threads = ThreadPoolExecutor(PUT_THREADS)
    return list(_threads.map(put, jobs))


class WorkersLost(HdhubError):
    """A worker process died (killed, out of memory) during the batch: nothing of it is stored."""

    code = "ingest_workers_lost"
    status = 503
    exit_code = 75  # EX_TEMPFAIL


def default_processes() -> int:
    return min(os.cpu_count() or 1, 8)


class IngestWorkers:
    """A pool of processes that parse instances and write their objects."""

    def __init__(self, settings: Settings, processes: int | None = None) -> None:
        self.settings = settings
        self.processes = processes or default_processes()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self.settings,),
            )
        return self._pool

    def _map(self, fn: Any, items: list[Any]) -> list[Any]:
        if not items:
            return []
        pool = self._executor()
        size = -(-len(items) // self.processes)  # one task per worker: few trips through the pipe
        try:
            futures: list[Future[list[Any]]] = [
                pool.submit(fn, items[i : i + size]) for i in range(0, len(items), size)
            ]
            return [result for f in futures for result in f.result()]
        except BrokenProcessPool:
            # A broken pool refuses every later batch: start a new one at the next, and let
            # this batch fail (retrying it here could kill a worker again).
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise WorkersLost("an ingest worker process died during this batch; try again") from None

    def start(self) -> None:
        """Start every worker now rather than at the first large batch (servers do)."""
        pool = self._executor()
        for f in [pool.submit(_parse, []) for _ in range(self.processes)]:
            f.result()

    @staticmethod
    def worth_it(n_items: int) -> bool:
        """Whether a batch is large enough to pay for the trips through the pipe."""
        return n_items >= MIN_BATCH

    def parse(self, items: list[tuple[bytes, str]]) -> list[Any]:
        """``store.parse_batch`` of the items, in the workers."""
        return self._map(_parse, items)

    def put(self, jobs: list[tuple[str, bytes, str, Any]]) -> list[str | BaseException]:
        """Write (key, bytes, SOP Instance UID, retention) objects: a version id or the error,
        per job."""
        return self._map(_put, jobs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
