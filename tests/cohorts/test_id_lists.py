"""Id lists (concept sets, persons left out) enter the SQL when it is generated: one literal in
the expression, so compiling does not grow with the sets, and a question asked again with
other ids (a grown concept set, a new objection) reuses its compiled SQL."""

from __future__ import annotations

from typing import Any

import pytest

from hdhub.cohorts.compiler import LIST_SENTINEL, compile_cohort, unbound_tables
from hdhub.cohorts.concepts import ResolvedSet
from hdhub.cohorts.definition import parse_definition
from hdhub.cohorts.run import _cohort_sql, count_cohort
from hdhub.cohorts.sql import fill_lists, sql_template, to_sql
from tests.cohorts.cases import POPULATION, SAMPLE

T2DM = 201826
DIABETES = {
    "concept_sets": {"diabetes": {"items": [{"concept_id": T2DM, "descendants": True}]}},
    "entry": {"events": [{"domain": "condition", "concept_set": "diabetes"}]},
}


def test_a_set_of_5000_ids_is_one_literal_until_the_sql_is_made() -> None:
    definition = parse_definition(DIABETES)
    ids = frozenset(range(1_000_000, 1_005_000))
    sets = {"diabetes": ResolvedSet(ids, frozenset())}
    compiled = compile_cohort(definition, sets, unbound_tables(), [7, 8])
    template = sql_template(compiled.summary(), "duckdb")
    assert template.count(f"IN ({LIST_SENTINEL})") == 1  # the set
    assert template.count(f"IN ({LIST_SENTINEL - 1})") == 1  # the persons left out
    for dialect in ("duckdb", "postgres", "pyspark"):
        sql = to_sql(compiled.summary(), dialect, lists=compiled.lists)
        assert str(LIST_SENTINEL) not in sql
        assert "IN (1000000, 1000001," in sql and "1004999)" in sql
        assert "IN (7, 8)" in sql


def test_a_sentinel_without_its_ids_is_an_error_and_other_literals_stay() -> None:
    definition = parse_definition(DIABETES)
    compiled = compile_cohort(
        definition, {"diabetes": ResolvedSet(frozenset({T2DM}), frozenset())}, unbound_tables()
    )
    with pytest.raises(ValueError, match="its ids were not given"):
        to_sql(compiled.summary(), "duckdb")
    plain = "x IN (-5) AND y IN (-2199023255552000)"
    assert fill_lists(plain, {}) == plain


def test_the_cohort_periods_built_after_the_count_bring_their_own_list() -> None:
    """A count does not build the exit (the periods); built later, a drug-era exit's set is
    numbered then, and the compiled cohort's lists carry it."""
    definition = parse_definition(
        {
            **DIABETES,
            "concept_sets": {**DIABETES["concept_sets"], "metformin": {"items": [{"concept_id": 1503297}]}},
            "exit": {"type": "drug_era", "concept_set": "metformin"},
        }
    )
    sets = {
        "diabetes": ResolvedSet(frozenset({T2DM}), frozenset()),
        "metformin": ResolvedSet(frozenset({1503297, 1503298}), frozenset()),
    }
    compiled = compile_cohort(definition, sets, unbound_tables())
    assert len(compiled.lists) == 1  # the entry set only: the count needs no more
    to_sql(compiled.summary(), "duckdb", lists=compiled.lists)
    sql = to_sql(compiled.cohort, "duckdb", lists=compiled.lists)
    assert "IN (1503297, 1503298)" in sql
    assert compiled.list_keys == {
        LIST_SENTINEL: ("standard", "diabetes"),
        LIST_SENTINEL - 1: ("standard", "metformin"),
    }


def test_a_window_compares_dates_with_dates() -> None:
    """date ± interval is a timestamp in SQL: the window's bounds are cast back to dates, so
    the event dates are compared as they are, not cast row by row."""
    definition = parse_definition(
        {
            **DIABETES,
            "inclusion_rules": [
                {
                    "name": "a visit within 30 days",
                    "criteria": {
                        "type": "all",
                        "items": [
                            {
                                "event": {"domain": "visit"},
                                "window": {
                                    "start": {"days": 30, "direction": "before"},
                                    "end": {"days": 30, "direction": "after"},
                                },
                            }
                        ],
                    },
                }
            ],
        }
    )
    compiled = compile_cohort(
        definition, {"diabetes": ResolvedSet(frozenset({T2DM}), frozenset())}, unbound_tables()
    )
    sql = to_sql(compiled.summary(), "duckdb", pretty=False, lists=compiled.lists)
    assert sql.count("INTERVAL '30' DAY AS TIMESTAMP) AS DATE)") == 2


@pytest.mark.integration
def test_asked_again_with_other_ids_reuses_the_sql_and_counts_right(population_warehouse: Any) -> None:
    con = population_warehouse
    definition = parse_definition(DIABETES)
    everyone = count_cohort(con, definition, breakdowns=False)
    assert everyone.persons > 2
    first = con.con.execute(
        f"SELECT min(person_id), max(person_id) FROM condition_occurrence WHERE condition_concept_id = {T2DM}"
    ).fetchone()
    before = _cohort_sql.cache_info()
    fewer = count_cohort(con, definition, excluded_persons=list(first), breakdowns=False)
    fewest = count_cohort(con, definition, excluded_persons=[*first, 10**9], breakdowns=False)
    after = _cohort_sql.cache_info()
    assert fewer.persons == fewest.persons == everyone.persons - 2
    assert after.misses - before.misses == 1  # one compile for "someone left out", then reused
    assert after.hits - before.hits == 1


def test_a_count_compiles_without_the_periods_columns() -> None:
    """Compiled for counts (periods=False), the index events carry only what the counts read,
    and asking for the cohort periods is an error, not SQL missing a column."""
    definition = parse_definition(DIABETES)
    sets = {"diabetes": ResolvedSet(frozenset({T2DM}), frozenset())}
    counts = compile_cohort(definition, sets, unbound_tables(), periods=False)
    full = compile_cohort(definition, sets, unbound_tables())
    assert counts.events.columns == ("person_id", "event_key", "start_date")
    assert "op_end" in full.events.columns
    with pytest.raises(ValueError, match="counts only"):
        counts.cohort  # noqa: B018 (the property builds it)
    assert "cohort_end_date" in to_sql(full.cohort, "duckdb", lists=full.lists)


@pytest.mark.parametrize("case", [*SAMPLE, *POPULATION], ids=lambda c: c.name)
def test_the_narrowed_tables_give_the_sql_of_the_full_omop_tables(case: Any) -> None:
    """``unbound_tables()`` carries only the columns the compiler reads (fewer nodes to
    compile); every query of every test definition is the same SQL as over the full tables."""
    import functools

    import ibis

    from hdhub.warehouse.schema import cdm_schema

    @functools.cache
    def full(name: str) -> Any:
        return ibis.table(cdm_schema(name), name=name)

    definition = parse_definition(case.definition)
    sets = {n: ResolvedSet(frozenset({1, 2}), frozenset({3})) for n in definition.concept_sets}
    sql = []
    for tables in (unbound_tables(), full):
        c = compile_cohort(definition, sets, tables, [7])
        exprs = [c.summary(), c.cohort, c.breakdown("sex_age", tables), c.breakdown("site", tables)]
        sql.append([to_sql(e, "duckdb", lists=c.lists) for e in exprs])
    assert sql[0] == sql[1]
