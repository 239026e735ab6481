"""Connect to the warehouse by URL (``duckdb:///path``), with the CDM tables in place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis

from hdhub.errors import ConfigError, HdhubError
from hdhub.warehouse.schema import create_cdm


def _duckdb_path(url: str) -> str:
    if not url.startswith("duckdb:///"):
        raise ConfigError(
            f"unsupported warehouse URL {url!r}: use duckdb:///… (PostgreSQL and Spark come later)"
        )
    return url[len("duckdb:///") :]


def connect(url: str) -> Any:
    """An Ibis backend on the warehouse; creates the OMOP CDM 5.4 tables if missing."""
    path = _duckdb_path(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = ibis.duckdb.connect(path)
    except Exception as exc:  # duckdb raises IOException when another process holds the file
        raise ConfigError(f"cannot open the warehouse {path}: {exc}") from None
    create_cdm(con)
    return con


class WarehouseUnavailable(HdhubError):
    """The warehouse cannot be read now (empty, or a load holds DuckDB's write lock)."""

    code = "warehouse_unavailable"
    status = 503
    exit_code = 75  # EX_TEMPFAIL


@contextmanager
def read_only(url: str) -> Iterator[Any]:
    """An Ibis backend that only reads the warehouse, closed on the way out (the API's: it
    never takes DuckDB's write lock, so loads keep working)."""
    con = connect_read_only(url)
    try:
        yield con
    finally:
        con.disconnect()


def connect_read_only(url: str) -> Any:
    """An Ibis backend that only reads the warehouse (the API's: it never takes the write lock)."""
    path = _duckdb_path(url)
    if path != ":memory:" and not Path(path).is_file():
        raise WarehouseUnavailable("the warehouse is empty: nothing has been loaded yet")
    try:
        return ibis.duckdb.connect(path, read_only=True)
    except Exception as exc:  # IOException: a writer (a load) holds the file
        raise WarehouseUnavailable(f"the warehouse is busy (a load is running?): {exc}") from None
