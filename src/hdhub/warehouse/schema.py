"""OMOP CDM 5.4 tables as Ibis schemas, with the specification's names and types.

Spec type -> Ibis type: integer -> int32, float -> float64, date -> date,
datetime -> timestamp, varchar(n) / varchar(max) -> string. Required columns are
non-nullable. varchar lengths are enforced by the loader (DuckDB ignores them,
PostgreSQL would not).
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.datatypes as dt

from hdhub.errors import NotFound
from hdhub.warehouse._omop_cdm54 import TABLES
from hdhub.warehouse.extensions import EXTENSION_TABLES
from hdhub.warehouse.spec import CdmTable

# The specification's 39 tables, then the extensions hdhub fills (image_occurrence).
ALL_TABLES: dict[str, CdmTable] = {**TABLES, **EXTENSION_TABLES}

_IBIS_TYPE = {"integer": dt.int32, "float": dt.float64, "date": dt.date, "datetime": dt.timestamp,
              "string": dt.string}  # fmt: skip


def cdm_table(name: str) -> CdmTable:
    try:
        return ALL_TABLES[name.lower()]
    except KeyError:
        raise NotFound(f"{name!r} is not an OMOP CDM 5.4 table") from None


def cdm_schema(name: str) -> ibis.Schema:
    table = cdm_table(name)
    return ibis.schema({c.name: _IBIS_TYPE[c.kind].copy(nullable=not c.required) for c in table.columns})


def create_cdm(con: Any) -> list[str]:
    """Create every missing CDM table through Ibis; returns the names created."""
    existing = set(con.list_tables())
    created = []
    for name in ALL_TABLES:
        if name not in existing:
            con.create_table(name, schema=cdm_schema(name))
            created.append(name)
    return created
