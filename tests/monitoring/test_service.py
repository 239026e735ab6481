"""Ingest, deduplication, rejections, rules and detectors, on both catalogs (SQLite, PostgreSQL)."""

from __future__ import annotations

import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.catalog.models import Alert, VitalRejection, VitalValue
from hdhub.monitoring.devices import enrol
from hdhub.monitoring.service import ingest
from tests.monitoring.conftest import Monitored, at, blood_pressure, heart_rate, rr_series, spo2, weight


def stored(m: Monitored) -> int:
    with Session(m.hub.catalog) as s:
        return s.scalar(select(func.count()).select_from(VitalValue).where(VitalValue.device_id == m.device))


def alerts(m: Monitored) -> list[Alert]:
    with Session(m.hub.catalog) as s:
        return list(s.scalars(select(Alert).where(Alert.person_key == m.person).order_by(Alert.id)))


def test_values_are_stored_and_replays_ignored(monitored: Monitored) -> None:
    batch = [blood_pressure(122, 78, at(10)), heart_rate(66, at(10)), spo2(97, at(10))]
    first = ingest(monitored.hub.catalog, monitored.device, batch, "http")
    assert (first.accepted, first.duplicates, first.rejected) == (4, 0, {})
    again = ingest(monitored.hub.catalog, monitored.device, batch + batch, "http")  # replayed, twice
    assert (again.accepted, again.duplicates) == (0, 8)
    assert stored(monitored) == 4 and alerts(monitored) == []


def test_refusals_are_counted_and_never_stored(monitored: Monitored) -> None:
    bad = [heart_rate(900), weight(-2), {"resourceType": "Observation"},
           {**heart_rate(70), "device": {"identifier": {"value": "not-me"}}}]  # fmt: skip
    result = ingest(monitored.hub.catalog, monitored.device, bad, "http")
    assert result.accepted == 0 and result.rejected == {
        "out_of_range": 2,
        "malformed": 1,
        "foreign_device": 1,
    }
    unknown = ingest(monitored.hub.catalog, "nobody", [heart_rate(70), heart_rate(71, at(1))], "mqtt")
    assert unknown.rejected == {"unknown_device": 2}
    assert stored(monitored) == 0
    with Session(monitored.hub.catalog) as s:
        assert s.scalar(select(func.count()).select_from(VitalValue)) == 0
        rows = s.execute(
            select(VitalRejection.reason, func.sum(VitalRejection.count)).group_by(VitalRejection.reason)
        )
        assert dict(rows.all()) == {
            "out_of_range": 2,
            "malformed": 1,
            "foreign_device": 1,
            "unknown_device": 2,
        }


def test_hypertension_grades_and_deduplication(monitored: Monitored) -> None:
    result = ingest(monitored.hub.catalog, monitored.device, [blood_pressure(186, 95, at(3))], "http")
    [alert] = alerts(monitored)
    assert result.alerts == [alert.id]
    assert (alert.rule, alert.severity, alert.status, alert.count) == ("bp_grade", "urgent", "open", 1)
    assert "186/95" in alert.message and "grade 3" in alert.message
    ingest(monitored.hub.catalog, monitored.device, [blood_pressure(150, 85, at(2))], "http")
    [alert] = alerts(monitored)  # the same open alert: counted, severity kept at its worst
    assert (alert.count, alert.severity) == (2, "urgent") and len(
        __import__("orjson").loads(alert.value_ids)
    ) == 4


def test_heart_rate_and_saturation_rules(monitored: Monitored) -> None:
    batch = [heart_rate(142, at(4)), heart_rate(38, at(3)), spo2(90, at(2)), spo2(95, at(1))]
    ingest(monitored.hub.catalog, monitored.device, batch, "http")
    found = {(a.rule, a.severity) for a in alerts(monitored)}
    assert found == {("tachycardia", "high"), ("bradycardia", "high"), ("desaturation", "high")}


def test_thresholds_per_patient(monitored: Monitored) -> None:
    with Session(monitored.hub.catalog) as s, s.begin():
        enrol(s, monitored.person, overrides={"tachycardia": {"medium": 150, "high": 180}})
    ingest(monitored.hub.catalog, monitored.device, [heart_rate(142, at(1))], "http")
    assert alerts(monitored) == []  # an athlete's own threshold


def test_weight_gain_only_for_heart_failure(monitored: Monitored) -> None:
    days = 24 * 60
    batch = [weight(80.0, at(3 * days)), weight(80.4, at(2 * days)), weight(82.3, at(10))]
    ingest(monitored.hub.catalog, monitored.device, batch, "http")
    assert alerts(monitored) == []
    with Session(monitored.hub.catalog) as s, s.begin():
        enrol(s, monitored.person, heart_failure=True)
    ingest(monitored.hub.catalog, monitored.device, [weight(82.4, at(5))], "http")
    [alert] = alerts(monitored)
    assert alert.rule == "weight_gain" and alert.severity == "high" and "+2.4 kg" in alert.message


def test_weight_gain_counts_only_the_window(monitored: Monitored) -> None:
    with Session(monitored.hub.catalog) as s, s.begin():
        enrol(s, monitored.person, heart_failure=True)
    days = 24 * 60
    batch = [
        weight(77.0, at(10 * days)),
        weight(80.0, at(2 * days)),
        weight(80.3, at(1 * days)),
        weight(80.5, at(5)),
    ]
    ingest(monitored.hub.catalog, monitored.device, batch, "http")
    assert alerts(monitored) == []  # +3.5 kg, but over ten days: not fluid retention


def test_drift_from_the_patients_own_baseline(monitored: Monitored) -> None:
    rng = random.Random(3)
    baseline = [heart_rate(round(58 + rng.gauss(0, 2)), at(60 * (30 - i))) for i in range(30)]
    ingest(monitored.hub.catalog, monitored.device, baseline, "http")
    assert alerts(monitored) == []
    ingest(
        monitored.hub.catalog, monitored.device, [heart_rate(88, at(1))], "http"
    )  # normal for most, not here
    [alert] = alerts(monitored)
    assert alert.rule == "drift_8867-4" and alert.severity == "low"


def test_irregular_rhythm_screening(monitored: Monitored) -> None:
    rng = random.Random(5)
    sinus = [800 + 25 * (i % 4 - 1.5) + rng.gauss(0, 5) for i in range(128)]
    ingest(monitored.hub.catalog, monitored.device, [rr_series(sinus, at(20))], "http")
    assert alerts(monitored) == []
    af = [rng.uniform(400, 1100) for _ in range(128)]
    ingest(monitored.hub.catalog, monitored.device, [rr_series(af, at(10))], "http")
    [alert] = alerts(monitored)
    assert alert.rule == "irregular_rhythm" and "confirm on an ECG" in alert.message


def test_an_alert_names_the_stored_values_that_raised_it(monitored: Monitored) -> None:
    """The rules run before the write, on values not yet stored: the alert still names the
    rows they were stored as."""
    when = at(3)
    ingest(
        monitored.hub.catalog,
        monitored.device,
        [heart_rate(70, at(4)), blood_pressure(188, 96, when)],
        "http",
    )
    [alert] = alerts(monitored)
    with Session(monitored.hub.catalog) as s:
        rows = s.execute(
            select(VitalValue.id, VitalValue.code, VitalValue.value).where(
                VitalValue.id.in_(__import__("orjson").loads(alert.value_ids))
            )
        ).all()
    assert sorted((code, value) for _, code, value in rows) == [("8462-4", 96.0), ("8480-6", 188.0)]


def test_replays_in_a_message_raise_nothing_and_its_new_values_do(monitored: Monitored) -> None:
    crisis = blood_pressure(190, 112, at(3))
    ingest(monitored.hub.catalog, monitored.device, [crisis], "http")
    [bp] = alerts(monitored)
    assert bp.count == 1
    result = ingest(monitored.hub.catalog, monitored.device, [crisis, heart_rate(150, at(1))], "http")
    assert (result.accepted, result.duplicates) == (1, 2)
    by_rule = {a.rule: a for a in alerts(monitored)}
    assert by_rule["bp_grade"].count == 1  # the replayed crisis is not a second reading
    tachycardia = by_rule["tachycardia"]
    with Session(monitored.hub.catalog) as s:
        [value] = s.scalars(select(VitalValue.value).where(
            VitalValue.id.in_(__import__("orjson").loads(tachycardia.value_ids))))  # fmt: skip
    assert value == 150.0


def test_drift_judges_the_latest_new_value_when_the_latest_is_a_replay(monitored: Monitored) -> None:
    """The rules ran before the write on the message's latest heart rate (60, usual); it was a
    replay, so they run again on what the write stored: the 89."""
    rng = random.Random(3)
    baseline = [heart_rate(round(58 + rng.gauss(0, 2)), at(60 * (30 - i))) for i in range(30)]
    ingest(monitored.hub.catalog, monitored.device, baseline, "http")
    latest = heart_rate(60, at(1))
    ingest(monitored.hub.catalog, monitored.device, [latest], "http")
    ingest(monitored.hub.catalog, monitored.device, [heart_rate(89, at(2)), latest], "http")
    [alert] = alerts(monitored)
    assert alert.rule == "drift_8867-4" and "89" in alert.message
