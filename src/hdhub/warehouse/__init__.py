"""The OMOP CDM 5.4 warehouse behind Ibis (DuckDB embedded; PostgreSQL and Spark later)."""

from hdhub.warehouse.connection import connect
from hdhub.warehouse.schema import cdm_schema, create_cdm

__all__ = ["cdm_schema", "connect", "create_cdm"]
