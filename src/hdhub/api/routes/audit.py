"""The audit log as FHIR R4 AuditEvent resources (roles admin, dpo)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from hdhub.api.deps import get_hub, require
from hdhub.catalog.db import MAX_ROW_ID
from hdhub.errors import ValidationError
from hdhub.hub import Hub
from hdhub.security.principal import Principal

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

FHIR_JSON = "application/fhir+json"
_PREFIXES = ("ge", "le", "gt", "lt", "eq")
_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def _on_the_calendar(value: str) -> bool:
    """2026-02-30 and 24:61 have the form but no day or time (they compared as text before)."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _date_bounds(values: list[str]) -> tuple[str | None, str | None]:
    """FHIR date search: ``date=ge2026-01-01&date=lt2026-02-01``; a bare date means that day."""
    since = until = None
    for raw in values:
        prefix, value = (raw[:2], raw[2:]) if raw[:2] in _PREFIXES else ("eq", raw)
        if not _DATE.fullmatch(value) or not _on_the_calendar(value):
            raise ValidationError(f"date={raw[:60]!r}: expected e.g. ge2026-01-01 or 2026-01-01T10:00:00Z")
        if prefix in ("ge", "gt"):
            since = value
        elif prefix in ("le", "lt"):
            until = value + ("T23:59:59.999999Z" if len(value) == 10 and prefix == "le" else "")
        else:
            since = value
            until = value + ("T23:59:59.999999Z" if len(value) == 10 else "")
    return since, until


@router.get("", summary="Search audit events (FHIR Bundle of AuditEvent)")
def search_audit(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    _: Annotated[Principal, Depends(require("audit:read"))],
    patient: Annotated[str | None, Query(max_length=200)] = None,
    user: Annotated[str | None, Query(max_length=200, description="agent (user name)")] = None,
    project: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    date: Annotated[list[str] | None, Query(description="ge/le/gt/lt/eq-prefixed dates")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=MAX_ROW_ID)] = 0,
) -> JSONResponse:
    from hdhub.audit.fhir import to_bundle

    if patient and patient.startswith("Patient/"):
        patient = patient.removeprefix("Patient/")
    since, until = _date_bounds(date or [])
    filters = {
        "patient": patient,
        "actor": user,
        "project": project,
        "action": action,
        "since": since,
        "until": until,
    }
    events = hub.audit.search(**filters, limit=count, offset=offset)
    total = hub.audit.count(**filters)
    bundle = to_bundle(events, total=total, base_url=str(request.base_url).rstrip("/"))
    return JSONResponse(bundle, media_type=FHIR_JSON)
