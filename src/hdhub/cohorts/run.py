"""Run a cohort definition on the warehouse: exact persons, attrition and breakdowns.

These are the true numbers; what a caller may see of them is decided by
``hdhub.cohorts.disclosure``. Persons who objected to research use are left out before
anything is counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdhub.cohorts.compiler import CompiledCohort, compile_cohort
from hdhub.cohorts.concepts import resolve_concept_sets
from hdhub.cohorts.definition import CohortDefinition
from hdhub.errors import HdhubError


class CohortQueryError(HdhubError):
    """The engine could not run a compiled cohort (not the definition's fault)."""

    code = "cohort_query"
    status = 500
    exit_code = 70


@dataclass
class RuleCount:
    name: str
    met: int  # persons meeting this rule alone (among entry persons)
    remaining: int  # persons left after this rule and every rule before it


@dataclass
class CohortCounts:
    entry: int
    persons: int
    rules: list[RuleCount]
    by_sex_age: list[dict[str, Any]] = field(default_factory=list)  # sex, age_band, persons
    by_site: list[dict[str, Any]] = field(default_factory=list)  # site, persons
    seconds: float = 0.0


def compile_on(
    con: Any, definition: CohortDefinition, excluded_persons: Iterable[int] = ()
) -> CompiledCohort:
    """Resolve the concept sets on ``con`` and compile over its tables."""
    sets = resolve_concept_sets(con, definition)
    return compile_cohort(definition, sets, con.table, excluded_persons)


def count_cohort(
    con: Any,
    definition: CohortDefinition,
    excluded_persons: Iterable[int] = (),
    *,
    breakdowns: bool = True,
) -> CohortCounts:
    """Exact counts: entry persons, each rule's attrition, final persons, breakdowns."""
    started = time.perf_counter()
    compiled = compile_on(con, definition, excluded_persons)
    try:
        row = compiled.summary().to_pyarrow().to_pylist()[0]
        by_sex_age = by_site = []
        if breakdowns and row["persons"]:
            by_sex_age = _rows(compiled.breakdown("sex_age", con.table))
            by_site = _rows(compiled.breakdown("site", con.table))
    except HdhubError:
        raise
    except Exception as exc:  # an engine error: name it, keep the traceback for --debug
        raise CohortQueryError(f"the warehouse could not run the cohort query: {exc}") from exc
    rules = [
        RuleCount(rule.name, int(row[f"rule_{k}_met"]), int(row[f"after_rule_{k}"]))
        for k, rule in enumerate(definition.inclusion_rules)
    ]
    return CohortCounts(
        entry=int(row["entry"]),
        persons=int(row["persons"]),
        rules=rules,
        by_sex_age=sorted(by_sex_age, key=lambda r: (r["sex"], r["age_band"])),
        by_site=sorted(by_site, key=lambda r: r["site"]),
        seconds=time.perf_counter() - started,
    )


def _rows(expr: Any) -> list[dict[str, Any]]:
    return expr.to_pyarrow().to_pylist()
