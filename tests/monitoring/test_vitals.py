"""What a device may send, and why anything else is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdhub.monitoring.vitals import DIASTOLIC, SYSTOLIC, WEIGHT, parse
from tests.monitoring.conftest import at, blood_pressure, heart_rate, observation, rr_series, spo2, weight


def reasons(body: object, device: str = "cuff-1") -> list[str]:
    return [r.reason for r in parse(body, device).rejections]


def test_a_bundle_of_valid_vitals() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": blood_pressure(128, 82)}, {"resource": heart_rate(64)}, {"resource": spo2(97)},
        {"resource": observation("29463-7", 81500, "g")}, {"resource": rr_series([800, 810, 790] * 12)},
    ]}  # fmt: skip
    parsed = parse(bundle, "cuff-1")
    assert parsed.rejections == []
    values = {v.code: v.value for v in parsed.vitals}
    assert values[SYSTOLIC] == 128 and values[DIASTOLIC] == 82 and values[WEIGHT] == pytest.approx(81.5)
    assert len(parsed.vitals) == 6
    when = parsed.vitals[0].effective
    assert when.tzinfo is not None and abs(dt.datetime.now(dt.UTC) - when) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (heart_rate(900), "out_of_range"),
        (weight(-3), "out_of_range"),
        (spo2(104), "out_of_range"),
        (blood_pressure(400, 80), "out_of_range"),
        (observation("8867-4", 70, "bpm"), "unknown_unit"),
        (observation("29463-7", 80, "stone"), "unknown_unit"),
        (observation("8310-5", 37, "Cel"), "unsupported_code"),
        (observation("8867-4", 70, "/min", when="2024-01-01"), "malformed"),
        (observation("8867-4", 70, "/min", when="2024-01-01T10:00:00"), "malformed"),
        (observation("8867-4", 70, "/min", when="yesterday at noon, roughly"), "malformed"),
        (heart_rate(70, when=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()), "future"),
        (heart_rate(70, when="0001-01-05T00:00:00+00:00"), "too_old"),  # a 500 in the baselines before
        (heart_rate(70, when=(dt.datetime.now(dt.UTC) - dt.timedelta(days=400)).isoformat()), "too_old"),
        (observation("8867-4", None), "malformed"),
        (observation("8867-4", 70, "/min", status="entered-in-error"), "malformed"),
        ({**heart_rate(70), "valueQuantity": {"value": "70", "code": "/min", "system": "http://unitsofmeasure.org"}},
         "malformed"),
        (observation("85354-9", component=[]), "malformed"),
        (rr_series([800] * 4), "malformed"),
        (rr_series([80] * 40), "out_of_range"),
        ({"resourceType": "Patient"}, "malformed"),
        ("a string", "malformed"),
        ({**heart_rate(70), "device": {"identifier": {"value": "someone-else"}}}, "foreign_device"),
        ({**heart_rate(70), "device": {"reference": "Device/someone-else"}}, "foreign_device"),
    ],
)  # fmt: skip
def test_refusals_name_their_reason(body: object, reason: str) -> None:
    parsed = parse([body], "cuff-1")
    assert parsed.vitals == [] and [r.reason for r in parsed.rejections] == [reason]
    assert parsed.rejections[0].detail


def test_the_device_may_name_itself() -> None:
    parsed = parse({**heart_rate(70), "device": {"identifier": {"value": "cuff-1"}}}, "cuff-1")
    assert len(parsed.vitals) == 1 and parsed.rejections == []


def test_a_mixed_batch_keeps_the_good_values() -> None:
    parsed = parse([heart_rate(70), heart_rate(900), weight(80, at(5))], "cuff-1")
    assert len(parsed.vitals) == 2 and reasons([heart_rate(900)]) == ["out_of_range"]


@pytest.mark.parametrize(
    "change",
    [
        {"status": []},
        {"status": {}},
        {"code": {"coding": 5}},
        {"code": {"coding": True}},
        {"valueQuantity": {"value": 70, "system": "http://unitsofmeasure.org", "code": []}},
        {"valueQuantity": {"value": 10**400, "system": "http://unitsofmeasure.org", "code": "/min"}},
        {"effectiveDateTime": "0001-01-01T00:30:00+01:00"},
        {"effectiveDateTime": "9999-12-31T23:30:00-01:00"},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "component": 7},
    ],
)
def test_wrong_json_types_refuse_the_observation_not_the_batch(change: dict[str, object]) -> None:
    """Found by fuzzing: each raised (a 500 over HTTP; over MQTT, the whole batch refused)."""
    parsed = parse([{**heart_rate(70), **change}, weight(80)], "cuff-1")
    assert [v.code for v in parsed.vitals] == [WEIGHT]
    assert len(parsed.rejections) == 1 and parsed.rejections[0].detail


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["status", "code", "effectiveDateTime", "effectivePeriod", "valueQuantity", "component",
     "valueSampledData", "device", "resourceType"]
)  # fmt: skip


@given(st.lists(st.dictionaries(FIELDS, JSON, max_size=4), max_size=5))
@settings(max_examples=300, deadline=None)
def test_any_json_gets_a_value_or_a_reason_per_observation(changes: list[dict[str, object]]) -> None:
    for change in changes:
        parsed = parse([{**blood_pressure(120, 80), **change}], "cuff-1")
        if parsed.rejections:
            assert parsed.vitals == [] and len(parsed.rejections) == 1 and parsed.rejections[0].detail
        else:
            assert parsed.vitals
