"""``hdhub monitoring replay DIR``: register the devices of a ``devices.json`` and send their
streams (what ``hdhub synth --devices`` writes), as if the devices had sent them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import MonitoringDevice
from hdhub.errors import ValidationError
from hdhub.monitoring.devices import enrol, register_device
from hdhub.monitoring.service import ingest

BATCH = 1_000


@dataclass
class ReplayResult:
    devices: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: set[int] = field(default_factory=set)
    unknown_patients: list[str] = field(default_factory=list)


def replay_streams(hub: Any, directory: Path) -> ReplayResult:
    """Register each device for its patient (found through the identity store), enrol the
    patient, and ingest the device's NDJSON stream in batches."""
    manifest_path = directory / "devices.json"
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValidationError(f"{manifest_path}: {exc}") from None
    result = ReplayResult()
    for entry in manifest:
        found = sorted({r["person_key"] for r in hub.identities.lookup(entry["patient"])})
        if len(found) != 1:
            result.unknown_patients.append(entry["patient"])
            continue
        with Session(hub.catalog) as s, s.begin():
            known = s.scalar(select(MonitoringDevice.id).where(MonitoringDevice.device_id == entry["device"]))
            if known is None:
                register_device(s, entry["device"], found[0], entry.get("kind"))
            enrol(s, found[0], heart_failure=bool(entry.get("heart_failure")))
        lines = (directory / f"{entry['device']}.ndjson").read_bytes().splitlines()
        observations = [orjson.loads(line) for line in lines if line.strip()]
        for i in range(0, len(observations), BATCH):
            outcome = ingest(hub.catalog, entry["device"], observations[i : i + BATCH], "replay")
            result.accepted += outcome.accepted
            result.duplicates += outcome.duplicates
            result.rejected += sum(outcome.rejected.values())
            result.alerts.update(outcome.alerts)
        result.devices += 1
    return result
