"""Audit events as Elastic Common Schema (ECS 8.11) documents, one JSON object per line."""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson

from hdhub.audit.fhir import fhir_action
from hdhub.catalog.models import AuditEvent

ECS_VERSION = "8.11.0"
_TYPE = {"C": "creation", "R": "access", "U": "change", "D": "deletion", "E": "info"}


def _category(action: str) -> list[str]:
    if "/auth/" in action or action.startswith("auth."):
        return ["authentication"]
    if "/users" in action or action.startswith(("users.", "tokens.")):
        return ["iam"]
    if action.split(" ", 1)[0].isupper():
        return ["web"]
    return ["database"]


def to_ecs(ev: AuditEvent) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": ev.ts,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "category": _category(ev.action),
            "type": [_TYPE[fhir_action(ev.action)]] if ev.outcome != "denied" else ["denied"],
            "action": ev.action,
            "outcome": "success" if ev.outcome == "success" else "failure",
            "sequence": ev.seq,
            "id": str(ev.seq),
            "dataset": "hdhub.audit",
            "provider": "hdhub",
            "hash": ev.hash,
        },
        "user": {"name": ev.actor, **({"roles": [ev.role]} if ev.role else {})},
        "hdhub": {
            "audit": {
                "seq": ev.seq,
                "prev_hash": ev.prev_hash,
                "hash": ev.hash,
                "actor_type": ev.actor_type,
                "outcome": ev.outcome,
                "resource_type": ev.resource_type,
                "resource_id": ev.resource_id,
                "patient_id": ev.patient_id,
                "project_id": ev.project_id,
                "detail": orjson.loads(ev.detail) if ev.detail else None,
            }
        },
        "labels": {k: v for k, v in (("patient_id", ev.patient_id), ("project_id", ev.project_id)) if v},
    }
    if ev.source:
        try:
            ipaddress.ip_address(ev.source)
            doc["source"] = {"ip": ev.source}
        except ValueError:
            doc["source"] = {"address": ev.source}
    return doc


def to_ecs_line(ev: AuditEvent) -> bytes:
    return orjson.dumps(to_ecs(ev)) + b"\n"
