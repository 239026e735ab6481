# ruff: noqa: E501  (ATLAS JSON reads best as exported, on long lines)
"""ATLAS (circe) cohort definitions: the supported subset imports and counts like its
hand-written hdhub twin; everything else is named, never dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.cohorts.atlas import InvalidAtlas, UnsupportedAtlas, import_atlas
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


def atlas_with(field: str, value: Any) -> dict[str, Any]:
    """ATLAS with one field, by its path (ConceptSets[0].name), set to value."""
    atlas = json.loads(json.dumps(ATLAS))
    *parents, last = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", field)]
    target = atlas
    for key in parents:
        target = target[key]
    target[last] = value
    return atlas


START_DATE = "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.OccurrenceStartDate"
RULE = "InclusionRules[0].expression"
VALUE = f"{RULE}.CriteriaList[0].Criteria.Measurement.ValueAsNumber"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"ConceptSets": [1], "PrimaryCriteria": {}}, "ConceptSets[0] must be an object"),
        ({"ConceptSets": 5, "PrimaryCriteria": {}}, "ConceptSets must be a list"),
        ({"PrimaryCriteria": []}, "PrimaryCriteria must be an object"),
        ({"PrimaryCriteria": {"CriteriaList": "x"}}, "PrimaryCriteria.CriteriaList must be a list"),
        (atlas_with(START_DATE, {"Op": "lt", "Value": "0001-01-01"}), f"{START_DATE}.Value: lt 0001-01-01 leaves no date"),
        (atlas_with(START_DATE, {"Op": "gt", "Value": "9999-12-31"}), f"{START_DATE}.Value: gt 9999-12-31 leaves no date"),
        (atlas_with(START_DATE, {"Op": "gte", "Value": 20200101}), f"{START_DATE}.Value must be a date 'YYYY-MM-DD'"),
        (atlas_with(START_DATE, {"Op": "gte", "Value": "2023-02-30"}), f"{START_DATE}.Value must be a date 'YYYY-MM-DD'"),
        (atlas_with(START_DATE, {"Op": "gte", "Value": "20200101"}), f"{START_DATE}.Value must be a date 'YYYY-MM-DD'"),
        (atlas_with(START_DATE, "2020-01-01"), f"{START_DATE} must be an object"),
        (atlas_with(START_DATE + ".Op", ["gte"]), f"{START_DATE}.Op must be a string"),
        (atlas_with(f"{RULE}.CriteriaList[0].StartWindow.Start.Coeff", "x"), "StartWindow.Start.Coeff must be an integer"),
        (atlas_with(f"{RULE}.CriteriaList[0].Occurrence.Type", []), f"{RULE}.CriteriaList[0].Occurrence.Type must be an integer"),
        (atlas_with("CollapseSettings.EraPad", "1"), "CollapseSettings.EraPad must be an integer"),
        (atlas_with("PrimaryCriteria.CriteriaList[0]", {"ConditionOccurrence": [1]}), "CriteriaList[0].ConditionOccurrence must be an object"),
        (atlas_with("PrimaryCriteria.CriteriaList[0].ConditionOccurrence.CodesetId", [0]), "ConditionOccurrence.CodesetId must be an integer"),
        (atlas_with("ConceptSets[0].name", ["a"]), "ConceptSets[0].name must be a string"),
        (atlas_with("ConceptSets[0].expression.items[0].includeDescendants", "yes"), "items[0].includeDescendants must be true or false"),
        (atlas_with("InclusionRules[0].name", 5), "InclusionRules[0].name must be a string"),
        (atlas_with(f"{RULE}.DemographicCriteriaList[0].Age.Value", [1]), "DemographicCriteriaList[0].Age.Value must be an integer"),
        (atlas_with(f"{RULE}.DemographicCriteriaList[0].Gender", [5]), "DemographicCriteriaList[0].Gender[0] must be an object"),
        (atlas_with("EndStrategy", "x"), "EndStrategy must be an object"),
        (atlas_with("EndStrategy.DateOffset.Offset", 1.5), "EndStrategy.DateOffset.Offset must be an integer"),
        (atlas_with(VALUE, {"Op": "gt", "Value": "NaN"}), f"{VALUE}.Value must be a number"),
        (atlas_with(VALUE, {"Op": "gt", "Value": "Infinity"}), f"{VALUE}.Value must be a number"),
        (atlas_with(VALUE, {"Op": "bt", "Value": 1, "Extent": True}), f"{VALUE}.Extent must be a number"),
    ],
)  # fmt: skip
def test_malformed_atlas_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAtlas) as err:
        parse_any(json.dumps(data).encode(), name="x")
    assert field in err.value.message
    assert err.value.message.startswith("invalid ATLAS definition: ") and err.value.status == 422


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_refused(number: float) -> None:
    with pytest.raises(InvalidAtlas, match=re.escape(f"{VALUE}.Value must be a finite number")):
        import_atlas(atlas_with(VALUE, {"Op": "gt", "Value": number}))


def test_groups_nested_beyond_the_limit_are_named_not_followed() -> None:
    group: dict[str, Any] = {"Type": "ALL", "DemographicCriteriaList": [{"Age": {"Value": 17, "Op": "gt"}}]}
    for _ in range(400):  # deeper than the stack would allow, were they followed
        group = {"Type": "ALL", "Groups": [group]}
    with pytest.raises(UnsupportedAtlas, match="groups nested deeper than 8 levels"):
        import_atlas(atlas_with("InclusionRules[0].expression", group))


def test_unknown_codes_are_named_not_guessed() -> None:
    with pytest.raises(UnsupportedAtlas, match="criterion 1: occurrence type 3"):
        import_atlas(atlas_with(f"{RULE}.CriteriaList[0].Occurrence.Type", 3))
    with pytest.raises(UnsupportedAtlas, match=re.escape("EndStrategy.DateOffset.DateField Start")):
        import_atlas(atlas_with("EndStrategy.DateOffset.DateField", "Start"))


def test_cli_malformed_atlas_exits_65(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(atlas_with(START_DATE, {"Op": "lt", "Value": "0001-01-01"})))
    r = CliRunner().invoke(app, ["cohort", "import-atlas", str(bad)])
    assert r.exit_code == 65, r.output
    assert f"{START_DATE}.Value" in r.output
    assert "internal error" not in r.output and "Traceback" not in r.output
