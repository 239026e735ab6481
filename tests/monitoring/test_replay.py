"""Synthetic device streams (`hdhub synth --devices`) replayed: every injected episode raises
its alert, and normal streams raise none of the clinical rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import Alert, MonitoringDevice
from hdhub.hub import Hub
from hdhub.synth.devices import write_device_streams
from tests.conftest import build_population, hdhub_ok

EXPECTED = {
    "hypertensive_crisis": ("bp_grade", "urgent"),
    "atrial_fibrillation": ("irregular_rhythm", "medium"),
    "desaturation": ("desaturation", "high"),
    "fluid_retention": ("weight_gain", "high"),
}
RULES = {"bp_grade", "irregular_rhythm", "desaturation", "weight_gain", "tachycardia", "bradycardia"}


def test_episodes_raise_their_alerts_and_normal_streams_none(tmp_path: Path) -> None:
    home = build_population(tmp_path, 80, seed=5)
    end = dt.datetime.now(dt.UTC)
    streams = write_device_streams(tmp_path / "synth", share=0.4, seed=5, end=end)
    assert streams.devices >= 8 and all(streams.episodes.values()), streams
    out = hdhub_ok("--home", str(home), "monitoring", "replay", str(tmp_path / "synth" / "devices"))
    assert f"{streams.devices:,} devices" in out and "0 rejected" in " ".join(out.split())
    manifest = orjson.loads((tmp_path / "synth" / "devices" / "devices.json").read_bytes())
    hub = Hub.open(home)
    try:
        with Session(hub.catalog) as s:
            owner = dict(s.execute(select(MonitoringDevice.device_id, MonitoringDevice.person_key)).all())
            alerts: dict[str, set[tuple[str, str]]] = {}
            for a in s.scalars(select(Alert)):
                alerts.setdefault(a.person_key, set()).add((a.rule, a.severity))
    finally:
        hub.close()
    for entry in manifest:
        raised = alerts.get(owner[entry["device"]], set())
        if entry["episode"]:
            assert EXPECTED[entry["episode"]] in raised, (entry, raised)
        else:
            assert not {rule for rule, _ in raised} & RULES, (entry, raised)  # drift alone may appear


def test_streams_are_deterministic(tmp_path: Path) -> None:
    end = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    for name in ("a", "b"):
        site = tmp_path / name / "chu-nord"
        site.mkdir(parents=True)
        ipp = {"system": "https://hdhub.example/chu-nord/ipp", "value": "12345"}
        patient = {"resourceType": "Patient", "id": "p1", "identifier": [ipp]}
        (site / "Patient.ndjson").write_bytes(orjson.dumps(patient) + b"\n")
        write_device_streams(tmp_path / name, share=1.0, seed=3, end=end)
    a, b = (sorted((tmp_path / n / "devices").iterdir()) for n in ("a", "b"))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
