"""Finding concepts of the loaded vocabulary by id, code or label (the cohort explorer's search)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hdhub.cohorts.concepts import describe_concepts, search_concepts
from hdhub.errors import ValidationError
from hdhub.warehouse import connect

T2DM, E11, E119, HBA1C, OLD, INSULIN = 201826, 1567956, 45561952, 3004410, 4000001, 21600713
CONCEPTS = [
    (T2DM, "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S", "44054006", None),
    (E11, "Type 2 diabetes mellitus", "Condition", "ICD10", "3-char nonbill code", None, "E11", None),
    (E119, "Type 2 diabetes mellitus without complications", "Condition", "ICD10CM", "5-char", None, "E11.9",
     None),
    (HBA1C, "Hemoglobin A1c/Hemoglobin.total in Blood", "Measurement", "LOINC", "Lab Test", "S", "4548-4",
     None),
    (OLD, "Diabetes 100% (old code)", "Condition", "SNOMED", "Clinical Finding", None, "99999", "D"),
    (INSULIN, "INSULINS AND ANALOGUES", "Drug", "ATC", "ATC 3rd", "C", "A10A", None),
]  # fmt: skip


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    con = connect("duckdb:///:memory:")
    for row in CONCEPTS:
        con.con.execute(
            "INSERT INTO concept VALUES (?, ?, ?, ?, ?, ?, ?, DATE '2002-01-31', DATE '2099-12-31', ?)",
            list(row),
        )
    # E11 and E11.9 map to T2DM; the old code did, no longer (an invalid relationship is not shown)
    for source, end, invalid in (
        (E11, "2099-12-31", None),
        (E119, "2099-12-31", None),
        (OLD, "2010-12-31", "D"),
    ):
        con.con.execute(
            "INSERT INTO concept_relationship VALUES (?, ?, 'Maps to', DATE '2002-01-31', ?::DATE, ?)",
            [source, T2DM, end, invalid],
        )
    yield con
    con.disconnect()


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["concept_id"] for r in rows]


def test_by_label_standard_concepts_first(con: Any) -> None:
    rows = search_concepts(con, "  type 2 DIABETES ")
    assert ids(rows) == [T2DM, E11, E119]  # standard first, then shorter names
    assert rows[0]["vocabulary_id"] == "SNOMED" and rows[0]["concept_code"] == "44054006"
    assert rows[0]["maps_to"] == [] and rows[1]["maps_to"] == [
        {"concept_id": T2DM, "concept_name": rows[0]["concept_name"]}
    ]
    # standard, classification, non-standard, then the invalid ones
    assert ids(search_concepts(con, "diab")) == [T2DM, E11, E119, OLD]
    assert search_concepts(con, "diab")[-1]["maps_to"] == []  # its relationship is invalid


def test_by_code_or_id_the_exact_match_first(con: Any) -> None:
    assert ids(search_concepts(con, "E11")) == [E11, E119]  # exact code, then codes starting with it
    assert ids(search_concepts(con, "e11.9")) == [E119]
    assert ids(search_concepts(con, "44054006")) == [T2DM]
    assert ids(search_concepts(con, str(HBA1C))) == [HBA1C]
    assert ids(search_concepts(con, "4548-4")) == [HBA1C]
    assert ids(search_concepts(con, "a10a")) == [INSULIN]
    assert ids(search_concepts(con, "9")) == [OLD]  # one digit: an id, or the start of a code


def test_domain_and_limit(con: Any) -> None:
    assert ids(search_concepts(con, "in", domain="measurement")) == [HBA1C]
    assert ids(search_concepts(con, "in", domain="drug")) == [INSULIN]
    assert len(search_concepts(con, "diab", limit=2)) == 2
    assert ids(search_concepts(con, "diab", domain="death")) == [T2DM, E11, E119, OLD]  # not narrowed


def test_no_wildcards_and_no_injection(con: Any) -> None:
    assert search_concepts(con, "%_") == []
    assert ids(search_concepts(con, "100%")) == [OLD]
    assert search_concepts(con, "'; DROP TABLE concept; --") == []
    assert search_concepts(con, "\u00b2\u00b3") == [] and search_concepts(con, "9" * 150) == []
    assert len(search_concepts(con, "diab")) == 4


@pytest.mark.parametrize(
    ("query", "options", "message"),
    [
        ("", {}, "at least 2 characters"),
        ("a", {}, "at least 2 characters"),
        ("\u00b2", {}, "at least 2 characters"),
        ("x" * 201, {}, "at most 200 characters"),
        ("diab", {"domain": "Condition"}, "unknown domain"),
        ("diab", {"limit": 0}, "between 1 and 100"),
        ("diab", {"limit": 101}, "between 1 and 100"),
    ],
)
def test_refused_searches(con: Any, query: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        search_concepts(con, query, **options)


def test_describe_concepts(con: Any) -> None:
    found = describe_concepts(con, {T2DM, HBA1C, 424242})
    assert set(found) == {T2DM, HBA1C} and found[HBA1C]["concept_code"] == "4548-4"
    assert describe_concepts(con, set()) == {}
