"""Patients' devices and their tokens, and the patients enrolled in monitoring.

A device is registered for one patient (found through the identity store, kept as the
warehouse's keyed person hash) and gets a token — ``hdd_`` + 256 random bits, shown once,
stored as SHA-256. Over HTTP the token is the device's credential and names it; over MQTT
the topic names the device (``hdhub/devices/<device id>/vitals``) and the broker
authenticates it (Mosquitto: a password or client certificate per device and an ACL
``pattern write hdhub/devices/%u/vitals``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import MonitoredPatient, MonitoringDevice
from hdhub.errors import AuthenticationError, Conflict, NotFound, ValidationError
from hdhub.monitoring.rules import thresholds

DEVICE_TOKEN_PREFIX = "hdd_"  # noqa: S105 (public prefix, not a secret)
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def register_device(s: Session, device_id: str, person_key: str, kind: str | None = None) -> str:
    """Register a device for a person; returns its token (shown once)."""
    if not DEVICE_ID.match(device_id):
        raise ValidationError("device id: 1-64 letters, digits or . _ : - (it names an MQTT topic level)")
    if s.scalar(select(MonitoringDevice.id).where(MonitoringDevice.device_id == device_id)) is not None:
        raise Conflict(f"device {device_id!r} is already registered")
    secret = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    s.add(MonitoringDevice(device_id=device_id, person_key=person_key, kind=kind, token_hash=_digest(secret)))
    s.flush()
    return secret


def revoke_device(s: Session, device_id: str) -> None:
    row = s.scalar(select(MonitoringDevice).where(MonitoringDevice.device_id == device_id))
    if row is None:
        raise NotFound(f"no device {device_id!r}")
    row.revoked_at = row.revoked_at or datetime.now(UTC)


def resolve_device_token(s: Session, secret: str) -> MonitoringDevice:
    """The live device of a bearer token, or AuthenticationError."""
    if not secret.startswith(DEVICE_TOKEN_PREFIX) or len(secret) > 100:
        raise AuthenticationError("invalid device token")
    row = s.scalar(select(MonitoringDevice).where(MonitoringDevice.token_hash == _digest(secret)))
    if row is None or row.revoked_at is not None:
        raise AuthenticationError("invalid or revoked device token")
    return row


def enrol(s: Session, person_key: str, *, heart_failure: bool = False,
          overrides: dict[str, dict[str, float]] | None = None) -> MonitoredPatient:  # fmt: skip
    """Enrol (or update) a patient: heart failure turns the weight rule on; ``overrides``
    are the patient's own thresholds (checked against the rules' names)."""
    thresholds(overrides)
    row = s.get(MonitoredPatient, person_key)
    if row is None:
        row = MonitoredPatient(person_key=person_key, heart_failure=heart_failure, thresholds="{}")
        s.add(row)
    row.heart_failure = heart_failure
    current = orjson.loads(row.thresholds or "{}")
    for rule, values in (overrides or {}).items():
        current.setdefault(rule, {}).update(values)
    row.thresholds = orjson.dumps(current).decode()
    s.flush()
    return row
