"""FHIR vital-signs Observations as devices send them, and a deployment with a device."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from hdhub.catalog.models import User, UserRole
from hdhub.hub import Hub
from hdhub.monitoring.devices import register_device
from hdhub.security import tokens, users

LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"


def at(minutes_ago: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)).isoformat()


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def coded(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}]}


def observation(
    code: str, value: float | None = None, unit: str = "", when: str | None = None, **extra: Any
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "effectiveDateTime": when or at(),
        "code": coded(code),
    }
    if value is not None:
        obs["valueQuantity"] = quantity(value, unit)
    return obs | extra


def blood_pressure(systolic: float, diastolic: float, when: str | None = None) -> dict[str, Any]:
    components = [
        {"code": coded("8480-6"), "valueQuantity": quantity(systolic, "mm[Hg]")},
        {"code": coded("8462-4"), "valueQuantity": quantity(diastolic, "mm[Hg]")},
    ]
    return observation("85354-9", when=when, component=components)


def heart_rate(value: float, when: str | None = None) -> dict[str, Any]:
    return observation("8867-4", value, "/min", when)


def weight(value: float, when: str | None = None) -> dict[str, Any]:
    return observation("29463-7", value, "kg", when)


def spo2(value: float, when: str | None = None) -> dict[str, Any]:
    return observation("59408-5", value, "%", when)


def rr_series(intervals: list[float], when: str | None = None) -> dict[str, Any]:
    data = " ".join(f"{x:.0f}" for x in intervals)
    sampled = {"origin": {"value": 0, "code": "ms"}, "period": 0, "dimensions": 1, "data": data}
    return observation("8637-1", when=when, valueSampledData=sampled)


@dataclass
class Monitored:
    hub: Hub
    device: str
    token: str
    person: str


@pytest.fixture
def monitored(hub: Hub) -> Monitored:
    device, person = f"cuff-{secrets.token_hex(4)}", "ab" * 20
    with Session(hub.catalog) as s, s.begin():
        token = register_device(s, device, person, "blood pressure cuff")
    return Monitored(hub, device, token, person)


def bearer(m: Monitored, role: str) -> dict[str, str]:
    """The Authorization header of a new user holding ``role`` (``device``: an account from before
    accounts were refused that role, written straight into the catalog)."""
    with Session(m.hub.catalog) as s, s.begin():
        name = f"{role}-{secrets.token_hex(3)}"
        if role in users.PERSON_ROLES:
            user = users.create_user(s, name, [role])
        else:
            user = User(username=name, roles=[UserRole(role=role)])
            s.add(user)
            s.flush()
        secret, _ = tokens.issue_token(s, user, name="t", ttl=timedelta(hours=1))
    return {"Authorization": f"Bearer {secret}"}
