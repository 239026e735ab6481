"""POST /api/v1/cohorts/count and saved definitions: disclosure control, opposition, limits."""

from __future__ import annotations

from typing import Any

import pytest

from hdhub.cohorts.service import record_opposition
from tests.api.conftest import PERSON_KEYS, T2DM, Api

T2DM_DEFINITION: dict[str, Any] = {
    "name": "t2dm",
    "concept_sets": {"t2dm": {"items": [{"concept_id": T2DM}]}},
    "entry": {"events": [{"domain": "condition", "concept_set": "t2dm"}]},
}


def count(api: Api, role: str, body: dict[str, Any]) -> Any:
    return api.client.post("/api/v1/cohorts/count", json=body, headers=api.as_role(role))


def test_exact_for_data_engineers_obfuscated_for_researchers(api: Api) -> None:
    exact = count(api, "data_engineer", {"definition": T2DM_DEFINITION})
    assert exact.status_code == 200, exact.text
    body = exact.json()
    assert body["exact"] is True and body["persons"] == 25 and body["entry"] == 25
    assert body["breakdowns"]["site"] == [{"site": "nord", "persons": 25}]
    assert sum(c["persons"] for c in body["breakdowns"]["sex_age"]) == 25

    noisy = count(api, "researcher", {"definition": T2DM_DEFINITION}).json()
    assert noisy["exact"] is False and noisy["threshold"] == 10
    assert isinstance(noisy["persons"], int) and noisy["persons"] >= 10 and abs(noisy["persons"] - 25) <= 6
    # small cells are hidden: one site cell of 25 is shown, every sex/age cell is below 10
    assert all(c["persons"] == "< 10" for c in noisy["breakdowns"]["sex_age"])
    # asking again gives the same numbers: nothing to average
    again = count(api, "researcher", {"definition": {**T2DM_DEFINITION, "name": "renamed"}}).json()
    assert again["persons"] == noisy["persons"] and again["fingerprint"] == noisy["fingerprint"]


def test_small_counts_are_hidden_below_the_threshold(api: Api) -> None:
    one_person = {**T2DM_DEFINITION, "demographics": {"age": {"min": 74}}}  # person 1, born 1941
    r = count(api, "researcher", {"definition": one_person}).json()
    assert r["persons"] == "< 10"
    assert count(api, "data_engineer", {"definition": one_person}).json()["persons"] == 1


def test_repeating_the_same_question_is_rate_limited(api: Api) -> None:
    limit = api.hub.settings.cohorts.max_repeats
    for i in range(limit):
        # the name changes, the logic does not: still the same question
        r = count(api, "researcher", {"definition": {**T2DM_DEFINITION, "name": f"try {i}"}})
        assert r.status_code == 200
    r = count(api, "researcher", {"definition": T2DM_DEFINITION})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    # another question, and exact counts, are not limited
    other = {**T2DM_DEFINITION, "observation": {"prior_days": 30}}
    assert count(api, "researcher", {"definition": other}).status_code == 200
    assert count(api, "data_engineer", {"definition": T2DM_DEFINITION}).status_code == 200


def test_opposition_excludes_persons_from_every_count_at_once(api: Api) -> None:
    before = count(api, "data_engineer", {"definition": T2DM_DEFINITION}).json()["persons"]
    for key in PERSON_KEYS[:3]:  # persons 1-3 have diabetes
        record_opposition(api.hub.catalog, key, "dpo")
    record_opposition(api.hub.catalog, PERSON_KEYS[39], "dpo")  # person 40 has not
    after = count(api, "data_engineer", {"definition": T2DM_DEFINITION}).json()
    assert (before, after["persons"], after["entry"]) == (25, 22, 22)


def test_saved_definitions_are_versioned_and_private(api: Api) -> None:
    researcher = api.as_role("researcher")
    r1 = api.client.post("/api/v1/cohorts", json={"definition": T2DM_DEFINITION}, headers=researcher)
    assert r1.status_code == 201 and r1.json()["version"] == 1 and r1.json()["name"] == "t2dm"
    same = api.client.post("/api/v1/cohorts", json={"definition": T2DM_DEFINITION}, headers=researcher)
    assert same.json()["version"] == 1  # unchanged: no new version
    changed = {**T2DM_DEFINITION, "demographics": {"sex": ["female"]}}
    r2 = api.client.post("/api/v1/cohorts", json={"definition": changed}, headers=researcher)
    assert r2.json()["version"] == 2
    listed = api.client.get("/api/v1/cohorts", headers=researcher).json()
    assert [(d["name"], d["version"]) for d in listed] == [("t2dm", 2), ("t2dm", 1)]
    v1 = api.client.get("/api/v1/cohorts/t2dm?version=1", headers=researcher).json()
    assert "demographics" not in v1["definition"]
    latest = api.client.get("/api/v1/cohorts/t2dm", headers=researcher).json()
    assert latest["version"] == 2 and latest["definition"]["demographics"] == {"sex": ["female"]}
    # counting a saved version by name
    r = count(api, "researcher", {"name": "t2dm", "version": 1})
    assert (
        r.status_code == 200
        and r.json()["fingerprint"]
        == count(api, "researcher", {"name": "t2dm", "version": 1}).json()["fingerprint"]
    )
    # another user sees none of it
    engineer = api.as_role("data_engineer")
    assert api.client.get("/api/v1/cohorts", headers=engineer).json() == []
    assert api.client.get("/api/v1/cohorts/t2dm", headers=engineer).status_code == 404
    assert count(api, "data_engineer", {"name": "t2dm"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"definition": {**T2DM_DEFINITION, "concept_sets": {"t2dm": {"items": [{"concept_id": 99999999}]}}}},
         422, "concept 99999999 is not in the loaded vocabulary"),
        ({"definition": {**T2DM_DEFINITION, "inclusion_rules": [{"name": "w", "criteria": {"items": [
            {"event": {"domain": "drug"}, "window": {"start": {"days": -5}}}]}}]}}, 422, "window.start.days"),
        ({"definition": {**T2DM_DEFINITION, "concept_sets": {"a": {"include": ["b"]}, "b": {"include": ["a"]},
            "t2dm": {"items": [{"concept_id": T2DM}]}}}}, 422, "cycle: a -> b -> a"),
        ({"definition": {**T2DM_DEFINITION, "concept_sets": {"t2dm": {"items": [
            {"concept_id": i} for i in range(1, 10_001)]}}}}, 422, "at most 1000 items"),
        ({"definition": [1, 2]}, 422, "a cohort definition is a JSON object"),
        ({"definition": T2DM_DEFINITION, "name": "t2dm"}, 422, "either 'definition' or the 'name'"),
        ({"definition": T2DM_DEFINITION, "limit": 3}, 422, "unknown field(s): limit"),
        ({"definition": T2DM_DEFINITION, "breakdowns": "yes"}, 422, "'breakdowns' is true or false"),
    ],
)  # fmt: skip
def test_bad_definitions_get_a_clear_4xx(api: Api, body: dict[str, Any], status: int, message: str) -> None:
    r = count(api, "researcher", body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def test_malformed_and_oversized_bodies(api: Api) -> None:
    headers = api.as_role("researcher") | {"content-type": "application/json"}
    r = api.client.post("/api/v1/cohorts/count", content=b'{"definition": {', headers=headers)
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"]
    r = api.client.post("/api/v1/cohorts/count", content=b"[" * 200_000, headers=headers)
    assert r.status_code == 422
    r = api.client.post("/api/v1/cohorts/count", content=b" " * 2_000_001, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = api.client.post(
        "/api/v1/cohorts", json={"name": "../etc", "definition": T2DM_DEFINITION}, headers=headers
    )
    assert r.status_code == 422 and "name:" in r.json()["error"]["message"]


def test_a_busy_or_missing_warehouse_is_a_503(api: Api) -> None:
    from pathlib import Path

    Path(api.hub.settings.warehouse_url_resolved.removeprefix("duckdb:///")).unlink()
    r = count(api, "data_engineer", {"definition": T2DM_DEFINITION})
    assert r.status_code == 503 and "empty" in r.json()["error"]["message"]
