# ruff: noqa: E501  (ATLAS JSON reads best as exported, on long lines)
"""ATLAS (circe) cohort definitions: the supported subset imports and counts like its
hand-written hdhub twin; everything else is named, never dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.cohorts.atlas import UnsupportedAtlas, import_atlas
from hdhub.cohorts.definition import parse_any, parse_definition
from hdhub.cohorts.run import count_cohort

SINUSITIS, PHARYNGITIS, AMOX_500, HGB = 4283893, 4112343, 19073188, 3000963


def concept(concept_id: int) -> dict[str, Any]:
    return {"CONCEPT_ID": concept_id, "CONCEPT_NAME": "x", "STANDARD_CONCEPT": "S", "DOMAIN_ID": "Condition"}


# The shape ATLAS 2.x exports (circe-be 1.11): PascalCase keys, codesets by id.
ATLAS: dict[str, Any] = {
    "cdmVersionRange": ">=5.0.0",
    "ConceptSets": [
        {"id": 0, "name": "Sinusitis", "expression": {"items": [
            {"concept": concept(SINUSITIS), "isExcluded": False, "includeDescendants": True, "includeMapped": False}]}},
        {"id": 1, "name": "Amoxicillin", "expression": {"items": [{"concept": concept(AMOX_500)}]}},
        {"id": 2, "name": "Hemoglobin", "expression": {"items": [{"concept": concept(HGB)}]}},
    ],
    "PrimaryCriteria": {
        "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "OccurrenceStartDate": {"Value": "2005-01-01", "Op": "gte"}}}],
        "ObservationWindow": {"PriorDays": 180, "PostDays": 0},
        "PrimaryCriteriaLimit": {"Type": "All"},
    },
    "QualifiedLimit": {"Type": "All"},
    "ExpressionLimit": {"Type": "All"},
    "InclusionRules": [
        {"name": "adult or hemoglobin >= 12 in the year before", "expression": {
            "Type": "ANY",
            "CriteriaList": [{
                "Criteria": {"Measurement": {"CodesetId": 2, "ValueAsNumber": {"Value": 11.9, "Op": "gt"}}},
                "StartWindow": {"Start": {"Days": 365, "Coeff": -1}, "End": {"Days": 0, "Coeff": 1}},
                "Occurrence": {"Type": 2, "Count": 1}}],
            "DemographicCriteriaList": [{"Age": {"Value": 17, "Op": "gt"}}],
            "Groups": []}},
        {"name": "no amoxicillin in the 30 days after", "expression": {
            "Type": "ALL",
            "CriteriaList": [{
                "Criteria": {"DrugExposure": {"CodesetId": 1}},
                "StartWindow": {"Start": {"Days": 0, "Coeff": 1}, "End": {"Days": 30, "Coeff": 1}},
                "Occurrence": {"Type": 0, "Count": 0}}],
            "DemographicCriteriaList": [], "Groups": []}},
    ],
    "EndStrategy": {"DateOffset": {"DateField": "StartDate", "Offset": 14}},
    "CensoringCriteria": [],
    "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
    "CensorWindow": {},
}  # fmt: skip

TWIN: dict[str, Any] = {
    "name": "sinusitis",
    "concept_sets": {
        "Sinusitis": {"items": [{"concept_id": SINUSITIS, "descendants": True}]},
        "Amoxicillin": {"items": [{"concept_id": AMOX_500}]},
        "Hemoglobin": {"items": [{"concept_id": HGB}]},
    },
    "entry": {
        "events": [{"domain": "condition", "concept_set": "Sinusitis", "date_range": {"start": "2005-01-01"}}],
        "occurrence": "all",
    },
    "observation": {"prior_days": 180},
    "inclusion_rules": [
        {"name": "adult or hemoglobin >= 12 in the year before", "criteria": {"type": "any", "items": [
            {"event": {"domain": "measurement", "concept_set": "Hemoglobin", "value": {"min": 11.9, "min_exclusive": True}},
             "window": {"start": {"days": 365}, "end": {"days": 0, "direction": "after"}}},
            {"demographics": {"age": {"min": 18}}}]}},
        {"name": "no amoxicillin in the 30 days after", "criteria": {"items": [
            {"event": {"domain": "drug", "concept_set": "Amoxicillin"},
             "window": {"start": {"days": 0, "direction": "after"}, "end": {"days": 30, "direction": "after"}},
             "occurrences": {"type": "exactly", "count": 0}}]}},
    ],
    "exit": {"type": "fixed_offset", "days": 14},
}  # fmt: skip


def test_the_supported_subset_imports_to_its_twin() -> None:
    assert import_atlas(ATLAS, name="sinusitis") == parse_definition(TWIN)
    assert parse_any(json.dumps(ATLAS), name="sinusitis") == parse_definition(TWIN)


@pytest.mark.integration
def test_the_import_counts_like_the_twin(sample_warehouse: Any) -> None:
    imported = count_cohort(sample_warehouse, import_atlas(ATLAS))
    twin = count_cohort(sample_warehouse, parse_definition(TWIN))
    assert imported.persons == twin.persons > 0
    assert [r.remaining for r in imported.rules] == [r.remaining for r in twin.rules]


def test_every_unsupported_construct_is_named() -> None:
    atlas = json.loads(json.dumps(ATLAS))
    atlas["PrimaryCriteria"]["CriteriaList"].append({"DrugEra": {"CodesetId": 1}})
    atlas["PrimaryCriteria"]["CriteriaList"][0]["ConditionOccurrence"]["ConditionType"] = [{"CONCEPT_ID": 1}]
    rule = atlas["InclusionRules"][0]["expression"]
    rule["CriteriaList"][0]["Criteria"]["Measurement"]["ValueAsNumber"]["Op"] = "!bt"
    rule["CriteriaList"][0]["EndWindow"] = {"Start": {"Days": 1, "Coeff": -1}}
    rule["DemographicCriteriaList"][0]["Race"] = [{"CONCEPT_ID": 8527}]
    atlas["CensoringCriteria"] = [{"Death": {}}]
    atlas["EndStrategy"] = {"CustomEra": {"DrugCodesetId": 1, "GapDays": 30, "DaysSupplyOverride": 7}}
    with pytest.raises(UnsupportedAtlas) as err:
        import_atlas(atlas)
    message = err.value.message
    for named in (
        "entry event 2: DrugEra criteria",
        "entry event 1: ConditionOccurrence.ConditionType",
        "ValueAsNumber: operator '!bt'",
        "criterion 1: EndWindow",
        "demographic Race",
        "CensoringCriteria",
        "CustomEra.DaysSupplyOverride",
    ):
        assert named in message, named
    assert err.value.status == 422


def test_cli_import_atlas(tmp_path: Path) -> None:
    path = tmp_path / "sinusitis.json"
    path.write_text(json.dumps(ATLAS))
    r = CliRunner().invoke(app, ["cohort", "import-atlas", str(path)])
    assert r.exit_code == 0, r.output
    assert parse_definition(r.output) == parse_definition(TWIN)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**ATLAS, "CensoringCriteria": [{"Death": {}}]}))
    r = CliRunner().invoke(app, ["cohort", "import-atlas", str(bad)])
    assert r.exit_code == 65 and "CensoringCriteria" in r.output
