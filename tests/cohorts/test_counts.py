"""Compiled cohorts give the counts, attrition and rows of the same logic written by hand."""

from __future__ import annotations

from typing import Any

import pytest

from hdhub.cohorts.definition import Criterion, Group, iter_items, parse_definition
from hdhub.cohorts.run import CohortTooCostly, compile_on, count_cohort, execute
from tests.cohorts.cases import POPULATION, SAMPLE, Case

pytestmark = pytest.mark.integration


def scalar(con: Any, sql: str) -> int:
    return con.con.execute(sql).fetchone()[0]


def check(con: Any, case: Case) -> None:
    definition = parse_definition(case.definition)
    counts = count_cohort(con, definition)
    assert counts.persons == scalar(con, case.persons_sql), case.name
    assert counts.persons > 0, f"{case.name}: a case that selects nobody proves little"
    for rule, sql in zip(counts.rules, case.attrition_sql, strict=False):
        assert rule.remaining == scalar(con, sql), (case.name, rule.name)
    if case.rows_sql:
        compiled = compile_on(con, definition)
        rows = execute(con, compiled, compiled.cohort).to_pylist()
        got = sorted((r["person_id"], r["cohort_start_date"], r["cohort_end_date"]) for r in rows)
        want = sorted(tuple(r) for r in con.con.execute(case.rows_sql).fetchall())
        assert got == want, case.name


@pytest.mark.parametrize("case", SAMPLE, ids=[c.name for c in SAMPLE])
def test_sample_counts_equal_hand_written_sql(sample_warehouse: Any, case: Case) -> None:
    check(sample_warehouse, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", POPULATION, ids=[c.name for c in POPULATION])
def test_population_counts_equal_hand_written_sql(population_warehouse: Any, case: Case) -> None:
    check(population_warehouse, case)


def test_the_cases_use_every_construct() -> None:
    """The definitions above together use every construct of the format."""
    seen: set[str] = set()
    for case in SAMPLE + POPULATION:
        d = parse_definition(case.definition)
        events = list(d.entry.events)
        seen.add(f"occurrence:{d.entry.occurrence}")
        seen.add(f"exit:{d.exit.type}")
        if d.observation.prior_days:
            seen.add("prior_days")
        if d.observation.post_days:
            seen.add("post_days")
        demos = [d.demographics] if d.demographics else []
        for cs in d.concept_sets.values():
            seen.update(
                f"item:{flag}"
                for i in cs.items
                for flag in ("descendants", "mapped", "exclude")
                if getattr(i, flag)
            )
            if cs.include:
                seen.add("include")
        for rule in d.inclusion_rules:
            for _, item in iter_items(rule.criteria):
                if isinstance(item, Group):
                    seen.add(f"group:{item.type}")
                    seen.add("nested")
                elif isinstance(item, Criterion):
                    events.append(item.event)
                    seen.add(f"occurrences:{item.occurrences.type}")
                    if item.same_visit:
                        seen.add("same_visit")
                    if item.window and item.window.start.days is not None:
                        seen.add(f"window_start:{item.window.start.direction}")
                    if item.window and item.window.end.days is not None:
                        seen.add(f"window_end:{item.window.end.direction}")
                else:
                    demos.append(item.demographics)
                if getattr(item, "negate", False):
                    seen.add(f"negate:{type(item).__name__}")
            seen.add(f"group:{rule.criteria.type}")
        for e in events:
            seen.add(f"domain:{e.domain}")
            for attr in ("value", "units", "abnormal", "text", "date_range"):
                if getattr(e, attr) is not None:
                    seen.add(attr)
            if e.first_occurrence:
                seen.add("first_occurrence")
        for demo in demos:
            seen.update(attr for attr in ("age", "sex", "sites") if getattr(demo, attr) is not None)
    domains = {
        "condition",
        "drug",
        "measurement",
        "procedure",
        "observation",
        "visit",
        "device",
        "death",
        "note",
    }
    expected = {f"domain:{x}" for x in domains} | {
        "item:descendants", "item:mapped", "item:exclude", "include",
        "value", "units", "abnormal", "text", "date_range", "first_occurrence",
        "occurrence:first", "occurrence:all", "prior_days", "post_days",
        "group:all", "group:any", "group:at_least", "group:at_most", "nested",
        "negate:Criterion", "negate:DemographicCriterion", "negate:Group",
        "occurrences:at_least", "occurrences:exactly", "same_visit",
        "window_start:before", "window_start:after", "window_end:after",
        "age", "sex", "sites",
        "exit:end_of_observation", "exit:fixed_offset", "exit:drug_era",
    }  # fmt: skip
    assert expected <= seen, expected - seen
    assert len(SAMPLE) + len(POPULATION) >= 12


def costly(criteria: int) -> Any:
    """Many windowed criteria on every domain (found by fuzzing: minutes on a small warehouse)."""

    def criterion(i: int) -> dict[str, Any]:
        return {"event": {"domain": ["condition", "drug", "measurement", "visit"][i % 4], "concept_set": "s"},
                "window": {"start": {"days": i}, "end": {"days": i, "direction": "after"}},
                "occurrences": {"type": "at_least", "count": 2}, "same_visit": i % 2 == 0}  # fmt: skip

    events = [{"domain": d, "concept_set": "s"} for d in ("condition", "drug", "measurement", "visit")]
    return parse_definition({
        "concept_sets": {"s": {"items": [{"concept_id": 201826, "descendants": True, "mapped": True}]}},
        "entry": {"events": events * 3, "occurrence": "all"},
        "inclusion_rules": [{"name": "r", "criteria": {"items": [criterion(i) for i in range(criteria)]}}],
    })  # fmt: skip


def test_a_count_past_its_time_limit_is_stopped(population_warehouse: Any) -> None:
    d = costly(40)
    for _ in range(2):  # the first compiles (its SQL is kept), the second runs and is interrupted
        with pytest.raises(CohortTooCostly, match=r"stopped after 0\.05 s"):
            count_cohort(population_warehouse, d, max_seconds=0.05)
    assert count_cohort(population_warehouse, parse_definition(POPULATION[0].definition)).persons >= 0
