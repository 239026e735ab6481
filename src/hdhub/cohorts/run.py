"""Run a cohort definition on the warehouse: exact persons, attrition and breakdowns.

These are the true numbers; what a caller may see of them is decided by
``hdhub.cohorts.disclosure``. Persons who objected to research use are left out before
anything is counted.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from hdhub.cohorts.compiler import CompiledCohort, compile_cohort, unbound_tables
from hdhub.cohorts.concepts import ResolvedSet, resolve_concept_sets
from hdhub.cohorts.definition import CohortDefinition
from hdhub.cohorts.sql import fill_lists, sql_template, to_sql
from hdhub.errors import HdhubError


class CohortTooCostly(HdhubError):
    """A count stopped at its time limit (``cohorts.max_seconds``)."""

    code = "cohort_too_costly"
    status = 422
    exit_code = 65


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
    """Resolve the concept sets on ``con``; compile over unbound tables (run with :func:`execute`)."""
    sets = resolve_concept_sets(con, definition)
    return compile_cohort(definition, sets, unbound_tables(), excluded_persons)


def execute(con: Any, compiled: CompiledCohort, expr: Any) -> pa.Table:
    """Run ``expr``, built from ``compiled`` on unbound tables, on the warehouse ``con`` (DuckDB).

    The SQL goes straight to the connection: Ibis's own execution path looks up every
    table's schema and adds tens of milliseconds to queries answered in a few.
    """
    sql = to_sql(expr, "duckdb", pretty=False, lists=compiled.lists)
    return _duckdb(con).execute(sql).fetch_arrow_table()


def _duckdb(con: Any) -> Any:
    """The DuckDB connection under an Ibis backend (cohorts run on DuckDB warehouses)."""
    if getattr(con, "name", "") != "duckdb":
        raise CohortQueryError(f"cohorts run on DuckDB warehouses, not {getattr(con, 'name', con)!r}")
    return con.con


Shape = tuple[tuple[str, bool, bool], ...]  # each concept set: name, has standard ids, has source ids


@functools.lru_cache(maxsize=256)
def _cohort_sql(
    definition_json: bytes, shape: Shape, excluding: bool, kind: str
) -> tuple[str, dict[int, tuple[str, ...]]]:
    """The DuckDB SQL of one of a definition's queries, its id lists left as sentinels, and
    what each sentinel stands for. Compiling through Ibis takes 20-70 ms, as long as the
    query itself on a mid-size warehouse: a question asked again (the breakdowns after the
    count, a page reloaded, a concept set or the opposition registry grown) reuses its SQL.
    The SQL depends on the definition and on which id lists are empty, not on the ids."""
    definition = CohortDefinition.model_validate_json(definition_json)
    placeholder = frozenset({0})
    resolved = {
        name: ResolvedSet(placeholder if std else frozenset(), placeholder if src else frozenset())
        for name, std, src in shape
    }
    compiled = compile_cohort(definition, resolved, unbound_tables(), [0] if excluding else [], periods=False)
    expr = compiled.summary() if kind == "summary" else compiled.breakdown(kind, unbound_tables())
    return sql_template(expr, "duckdb", pretty=False), compiled.list_keys


def _ids(key: tuple[str, ...], sets: dict[str, ResolvedSet], excluded: list[int]) -> list[int]:
    """The ids a sentinel of :func:`_cohort_sql` stands for, in this ask."""
    if key == ("excluded",):
        return excluded
    kind, name = key
    return sorted(sets[name].standard if kind == "standard" else sets[name].source)


def count_cohort(
    con: Any,
    definition: CohortDefinition,
    excluded_persons: Iterable[int] = (),
    *,
    breakdowns: bool = True,
    max_seconds: float | None = None,
) -> CohortCounts:
    """Exact counts: entry persons, each rule's attrition, final persons, breakdowns. The
    queries are stopped after ``max_seconds`` (compiling is not: it is bounded by the
    definition's size limits)."""
    started = time.perf_counter()
    db = _duckdb(con)
    sets = resolve_concept_sets(con, definition)
    excluded = sorted(set(excluded_persons))
    definition_json = definition.model_dump_json(by_alias=True).encode()
    shape = tuple(sorted((n, bool(r.standard), bool(r.source)) for n, r in sets.items()))

    deadline = None if max_seconds is None else started + max_seconds

    def too_costly() -> CohortTooCostly:
        return CohortTooCostly(
            f"the count was stopped after {max_seconds:g} s (cohorts.max_seconds): the definition "
            "is too costly for this warehouse; use fewer criteria or narrower concept sets"
        )

    def run(kind: str) -> list[dict[str, Any]]:
        template, keys = _cohort_sql(definition_json, shape, bool(excluded), kind)
        sql = fill_lists(template, {sentinel: _ids(key, sets, excluded) for sentinel, key in keys.items()})
        if deadline is None:
            return db.execute(sql).fetch_arrow_table().to_pylist()
        # DuckDB forgets an interrupt that arrives between queries: one timer per query
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise too_costly()
        timer = threading.Timer(remaining, db.interrupt)
        timer.start()
        try:
            return db.execute(sql).fetch_arrow_table().to_pylist()
        finally:
            timer.cancel()

    try:
        row = run("summary")[0]
        by_sex_age = by_site = []
        if breakdowns and row["persons"]:
            by_sex_age, by_site = run("sex_age"), run("site")
    except HdhubError:
        raise
    except duckdb.InterruptException:
        raise too_costly() from None
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
