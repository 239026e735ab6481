"""Patients' identifying data, from the encrypted identity store (roles clinician, dpo).

Researchers, data engineers and admins never read it: the warehouse they work on holds
keyed hashes only. Every read is audited with the patient it names.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from hdhub.api.deps import audit_context, get_hub, require
from hdhub.errors import NotFound, ValidationError
from hdhub.hub import Hub
from hdhub.security.principal import Principal

router = APIRouter(prefix="/api/v1/identities", tags=["identities"])


@router.get("", summary="Find a patient by identifier (system|value), e.g. an IPP or the INS")
def find(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    _: Annotated[Principal, Depends(require("identities:read"))],
    identifier: Annotated[str, Query(max_length=400, description="system|value")],
) -> list[dict[str, Any]]:
    found = hub.identities.lookup(identifier)
    persons = sorted({f["person_key"] for f in found})
    audit_context(request, resource_type="PatientIdentity", patient_id=",".join(persons) or None)
    if not found:
        raise NotFound("no patient holds this identifier")
    return found


@router.get("/{person_key}", summary="Every site's identity of one warehouse person (person_source_value)")
def by_person(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    _: Annotated[Principal, Depends(require("identities:read"))],
    person_key: str,
) -> list[dict[str, Any]]:
    if len(person_key) != 40 or not all(c in "0123456789abcdef" for c in person_key):
        raise ValidationError("person key: 40 lowercase hexadecimal characters (person_source_value)")
    audit_context(request, resource_type="PatientIdentity", resource_id=person_key, patient_id=person_key)
    found = hub.identities.by_person(person_key)
    if not found:
        raise NotFound("no identity for this person")
    return found
