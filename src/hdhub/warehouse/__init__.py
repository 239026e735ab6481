"""The OMOP CDM 5.4 warehouse behind Ibis (DuckDB embedded; PostgreSQL and Spark later)."""

from pathlib import Path

from hdhub.warehouse.connection import connect
from hdhub.warehouse.schema import cdm_schema, create_cdm

# The OMOP concepts of the codes `hdhub synth` uses (scripts/generate_builtin_vocabulary.py).
BUILTIN_VOCABULARY = Path(__file__).parent / "builtin_vocabulary"

__all__ = ["BUILTIN_VOCABULARY", "cdm_schema", "connect", "create_cdm"]
