"""Shapes of the OMOP CDM specification as data (filled by the generated _omop_cdm54)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VARCHAR = re.compile(r"varchar\((\d+|max)\)")


@dataclass(frozen=True)
class CdmColumn:
    name: str
    datatype: str  # as in the spec: integer, float, date, datetime, varchar(n), varchar(max)
    required: bool
    primary_key: bool = False
    fk_table: str | None = None
    fk_column: str | None = None
    fk_domain: str | None = None  # the concept domain(s) a concept FK must be in ("Procedure, Regimen")
    fk_class: str | None = None  # the concept class it must be in ("Ingredient")

    @property
    def max_length(self) -> int | None:
        m = _VARCHAR.fullmatch(self.datatype)
        return int(m.group(1)) if m and m.group(1) != "max" else None

    @property
    def kind(self) -> str:
        """integer, float, date, datetime or string."""
        return "string" if self.datatype.startswith("varchar") else self.datatype


@dataclass(frozen=True)
class CdmTable:
    name: str
    schema: str  # CDM, VOCAB or RESULTS
    description: str
    columns: tuple[CdmColumn, ...]

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)

    def column(self, name: str) -> CdmColumn | None:
        return next((c for c in self.columns if c.name == name), None)
