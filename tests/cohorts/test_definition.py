"""The definition format refuses what it cannot run, with a message naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hdhub.cohorts.definition import CohortDefinition, json_schema, parse_definition
from hdhub.errors import ValidationError

DOCS_SCHEMA = Path(__file__).parents[2] / "docs" / "cohort-definition.schema.json"


def minimal(**extra: Any) -> dict[str, Any]:
    return {"entry": {"events": [{"domain": "condition"}]}, **extra}


def rule(*items: dict[str, Any], **group: Any) -> dict[str, Any]:
    return {"name": "r", "criteria": {"items": list(items), **group}}


def refused(data: Any) -> str:
    with pytest.raises(ValidationError) as err:
        parse_definition(data)
    assert err.value.status == 422 and err.value.exit_code == 65
    return err.value.message


def test_a_minimal_definition_gets_the_defaults() -> None:
    d = parse_definition(minimal())
    assert d.entry.occurrence == "first" and d.exit.type == "end_of_observation"
    assert d.observation.prior_days == 0 and d.inclusion_rules == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "a cohort definition is a JSON object"),
        ({"entry": {"events": []}}, "entry.events"),
        (minimal(format="hdhub.cohort/9"), "format"),
        (minimal(extra=1), "extra: Extra inputs are not permitted"),
        ({"entry": {"events": [{"domain": "lab"}]}}, "entry.events.0.domain"),
        ({"entry": {"events": [{"domain": "condition", "concept_set": "x"}]}}, "names the concept set 'x'"),
        ({"entry": {"events": [{"domain": "condition", "value": {"min": 1}}]}}, "apply to measurement"),
        (
            {"entry": {"events": [{"domain": "measurement", "value": {"min": 5, "max": 1}}]}},
            "min 5 is above max 1",
        ),
        ({"entry": {"events": [{"domain": "note", "text": "x"}]}}, "at least 2 characters"),
        (minimal(demographics={"age": {"min": 80, "max": 18}}), "age range min 80 is above max 18"),
        (minimal(demographics={"sex": ["f"]}), "demographics.sex.0"),
        (minimal(observation={"prior_days": -1}), "observation.prior_days"),
        (minimal(exit={"type": "drug_era", "concept_set": "nope"}), "exit names the concept set 'nope'"),
        (
            minimal(exit={"type": "fixed_offset", "days": -3}),
            "exit.days: Input should be greater than or equal to 0",
        ),
        (minimal(exit={"type": "soon"}), "exit"),
        # a non-finite bound would vanish through JSON and match every value
        *[
            ({"entry": {"events": [{"domain": "measurement", "value": {side: word}}]}}, why)
            for side, word, why in [
                ("min", "Infinity", "a valid number"),
                ("max", "-Infinity", "a valid number"),
                ("min", "NaN", "a valid number"),
                ("max", 1e999, "a finite number"),
            ]
        ],
        # JSON's own types: lax mode read false as 0, 1 as true and "5" as 5
        (minimal(exit={"type": "fixed_offset", "days": False}), "exit.days: Input should be a valid integer"),
        (minimal(concept_sets={"c": {"items": [{"concept_id": 1, "descendants": 1}]}}), "a valid boolean"),
        ({"entry": {"events": [{"domain": "measurement", "value": {"min": "5"}}]}}, "a valid number"),
        (minimal(demographics={"age": {"min": 18.0}}), "a valid integer"),
        ({"entry": {"events": [{"domain": "measurement", "units": [2**63]}]}}, "equal to 2147483647"),
        (minimal(concept_sets={"c": {"items": [{"concept_id": 10**30}]}}), "equal to 2147483647"),
        ({"entry": {"events": [{"domain": "note", "text": "ab\x00"}]}}, "control characters"),
        ({"entry": {"events": [{"domain": "note", "text": "a\nb"}]}}, "control characters"),
    ],
)
def test_malformed_definitions_name_the_problem(data: Any, message: str) -> None:
    assert message in refused(data)


def test_negative_and_inverted_windows_are_refused() -> None:
    drug = {"domain": "drug"}
    negative = minimal(inclusion_rules=[rule({"event": drug, "window": {"start": {"days": -30}}})])
    assert "inclusion_rules.0.criteria.items.0.window.start.days" in refused(negative)
    inverted = {"start": {"days": 10, "direction": "after"}, "end": {"days": 30, "direction": "before"}}
    message = refused(minimal(inclusion_rules=[rule({"event": drug, "window": inverted})]))
    assert "window starts after it ends (10 days after is later than 30 days before)" in message


def test_a_cycle_of_concept_sets_is_named() -> None:
    sets = {"a": {"include": ["b"]}, "b": {"include": ["c"]}, "c": {"include": ["a"]}}
    assert "in a cycle: a -> b -> c -> a" in refused(minimal(concept_sets=sets))
    assert "includes 'z'" in refused(minimal(concept_sets={"a": {"include": ["z"]}}))


def test_a_10000_item_concept_set_is_refused() -> None:
    items = [{"concept_id": i} for i in range(1, 10_001)]
    message = refused(minimal(concept_sets={"big": {"items": items}}))
    assert "concept_sets.big.items: List should have at most 1000 items" in message


def test_hostile_shapes_are_refused_without_crashing() -> None:
    deep = {"items": [{"event": {"domain": "drug"}}]}
    for _ in range(20):
        deep = {"items": [deep]}
    assert "nested deeper than 8 levels" in refused(
        minimal(inclusion_rules=[{"name": "d", "criteria": deep}])
    )
    assert "larger than 2 MB" in refused(b" " * 2_000_001)
    assert "not valid JSON" in refused("[" * 100_000)  # orjson's own depth limit, no RecursionError

    def nested(levels: int) -> dict[str, Any]:
        group: dict[str, Any] = {"items": [{"event": {"domain": "drug"}}]}
        for _ in range(levels - 1):
            group = {"items": [group]}
        return minimal(inclusion_rules=[{"name": "d", "criteria": group}])

    assert parse_definition(nested(8))  # the documented limit: 8 levels (7 before, by one)
    assert "nested deeper than 8 levels" in refused(nested(9))
    many = [{"event": {"domain": "drug"}} for _ in range(201)]
    assert "at most 200 items" in refused(minimal(inclusion_rules=[rule(*many)]))
    assert "at_least 3 of 1 items" in refused(
        minimal(inclusion_rules=[rule({"event": {"domain": "drug"}}, type="at_least", count=3)])
    )
    assert "needs a count" in refused(
        minimal(inclusion_rules=[rule({"event": {"domain": "drug"}}, type="at_most")])
    )
    assert "an item has 'event'" in refused(minimal(inclusion_rules=[rule({"evnt": {}})]))
    assert "always true" in refused(
        minimal(
            inclusion_rules=[
                rule({"event": {"domain": "drug"}, "occurrences": {"type": "at_least", "count": 0}})
            ]
        )
    )


def test_the_documented_schema_is_current_and_accepts_the_examples() -> None:
    """docs/cohort-definition.schema.json is generated (`hdhub cohort schema`); it must match."""
    schema = json_schema()
    assert json.loads(DOCS_SCHEMA.read_text()) == schema, "regenerate: hdhub cohort schema > " + str(
        DOCS_SCHEMA
    )
    from tests.cohorts.cases import POPULATION, SAMPLE

    for case in SAMPLE + POPULATION:
        jsonschema.validate(case.definition, schema)
        CohortDefinition.model_validate(case.definition)
