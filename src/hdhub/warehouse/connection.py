"""Connect to the warehouse by URL (``duckdb:///path``), with the CDM tables in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis

from hdhub.errors import ConfigError
from hdhub.warehouse.schema import create_cdm


def connect(url: str) -> Any:
    """An Ibis backend on the warehouse; creates the OMOP CDM 5.4 tables if missing."""
    if not url.startswith("duckdb:///"):
        raise ConfigError(
            f"unsupported warehouse URL {url!r}: use duckdb:///… (PostgreSQL and Spark come later)"
        )
    path = url[len("duckdb:///") :]
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = ibis.duckdb.connect(path)
    except Exception as exc:  # duckdb raises IOException when another process holds the file
        raise ConfigError(f"cannot open the warehouse {path}: {exc}") from None
    create_cdm(con)
    return con
