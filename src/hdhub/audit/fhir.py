"""Audit events as FHIR R4 AuditEvent resources (and searchset Bundles)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import orjson

from hdhub.catalog.models import AuditEvent

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
HDHUB_ACTIONS = "urn:hdhub:audit-action"
HDHUB_ROLES = "urn:hdhub:role"

_METHOD_ACTION = {"POST": "C", "GET": "R", "HEAD": "R", "PUT": "U", "PATCH": "U", "DELETE": "D"}
_VERB_ACTION = {
    "C": ("add", "create", "put", "issue", "load", "upload", "store", "init", "setup"),
    "R": ("get", "read", "list", "search", "export", "verify", "count", "view"),
    "U": ("update", "enable", "disable", "rotate", "retention", "transition", "lifecycle", "revoke"),
    "D": ("delete", "rm", "purge", "expire"),
}
_OUTCOME = {"success": "0", "denied": "4", "failure": "8"}


def fhir_action(action: str) -> str:
    """C/R/U/D/E from an HTTP method (``GET /x``) or the verb of a dotted action (``users.add``)."""
    method = action.split(" ", 1)[0]
    if method in _METHOD_ACTION:
        return _METHOD_ACTION[method]
    verb = action.rsplit(".", 1)[-1].lower()
    for code, verbs in _VERB_ACTION.items():
        if verb.startswith(verbs):
            return code
    return "E"


def _is_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def to_audit_event(ev: AuditEvent) -> dict[str, Any]:
    is_rest = ev.action.split(" ", 1)[0] in _METHOD_ACTION
    event_type = (
        {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
        if is_rest
        else {"system": DCM, "code": "110100", "display": "Application Activity"}
    )
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                    "code": "humanuser"
                    if ev.actor_type in ("user", "token", "oidc", "cli")
                    else "dataprocessor",
                }
            ]
        },
        "who": {"display": ev.actor},
        "requestor": True,
    }
    if ev.role:
        agent["role"] = [{"coding": [{"system": HDHUB_ROLES, "code": ev.role}]}]
    if ev.source:
        agent["network"] = {"address": ev.source, "type": "2" if _is_ip(ev.source) else "1"}
    entities: list[dict[str, Any]] = []
    if ev.patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{ev.patient_id}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if ev.resource_type or ev.resource_id:
        entities.append(
            {
                "what": {"display": "/".join(p for p in (ev.resource_type, ev.resource_id) if p)},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            }
        )
    if ev.project_id:
        entities.append(
            {
                "what": {"identifier": {"system": "urn:hdhub:project", "value": ev.project_id}},
                "type": {"system": ENTITY_TYPE, "code": "4", "display": "Other"},
                "name": "project",
            }
        )
    chain_detail = [
        {"type": "seq", "valueString": str(ev.seq)},
        {"type": "hash", "valueString": ev.hash},
        {"type": "prev_hash", "valueString": ev.prev_hash},
    ]
    if ev.detail:
        detail = orjson.loads(ev.detail)
        chain_detail += [{"type": str(k), "valueString": str(v)} for k, v in detail.items()]
    entities.append(
        {
            "type": {"system": ENTITY_TYPE, "code": "4", "display": "Other"},
            "name": "hdhub-audit",
            "detail": chain_detail,
        }
    )
    resource = {
        "resourceType": "AuditEvent",
        "id": str(ev.seq),
        "type": event_type,
        "subtype": [{"system": HDHUB_ACTIONS, "code": ev.action}],
        "action": fhir_action(ev.action),
        "recorded": ev.ts,
        "outcome": _OUTCOME.get(ev.outcome, "8"),
        "agent": [agent],
        "source": {
            "site": "hdhub",
            "observer": {"display": "hdhub"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    }
    if ev.outcome != "success":
        resource["outcomeDesc"] = ev.outcome
    return resource


def to_bundle(events: Sequence[AuditEvent], total: int, base_url: str = "") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "entry": [
            {
                "fullUrl": f"{base_url}/api/v1/audit/{ev.seq}",
                "resource": to_audit_event(ev),
                "search": {"mode": "match"},
            }
            for ev in events
        ],
    }
