"""Cohorts over HTTP: counts with disclosure control, saved and versioned definitions.

A count opens the warehouse read-only for the request (the API never takes DuckDB's write
lock, so loads keep working); the caller's definitions are theirs alone. The cohort explorer
pages (``cohort_pages``) count, save and load through the same functions as these routes
(:func:`count_definition`, :func:`save_named`, :func:`load_saved`), so a page never shows
more than the API would to the same user; the concept search (``GET /api/v1/concepts``) is the
page's :func:`~hdhub.cohorts.concepts.search_concepts`, for the same callers (``cohorts:count``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from hdhub.api.deps import audit_context, get_hub, read_body, require
from hdhub.catalog.db import MAX_ROW_ID
from hdhub.catalog.models import CohortDefinitionRecord
from hdhub.cohorts.concepts import (
    MAX_QUERY_LENGTH,
    MAX_SEARCH_LIMIT,
    OMOP_DOMAINS,
    SEARCH_LIMIT,
    search_concepts,
)
from hdhub.cohorts.definition import MAX_DEFINITION_BYTES, NAME_PATTERN, CohortDefinition, parse_definition
from hdhub.cohorts.service import count_for, get_definition, list_definitions, record_summary, save_definition
from hdhub.errors import ValidationError
from hdhub.hub import Hub
from hdhub.security.principal import Principal
from hdhub.warehouse.connection import read_only

router = APIRouter(prefix="/api/v1/cohorts", tags=["cohorts"])
concepts_router = APIRouter(prefix="/api/v1/concepts", tags=["cohorts"])
DOMAIN_HELP = f"Only concepts for events of this domain: one of {', '.join(OMOP_DOMAINS)}."


def count_definition(
    request: Request, hub: Hub, principal: Principal, definition: CohortDefinition, *, breakdowns: bool = True
) -> dict[str, Any]:
    """What ``principal`` may see of the counts (exact, or obfuscated and rate-limited; the
    opposition registry left out), the count named in the request's audit event."""
    with read_only(hub.settings.warehouse_url_resolved) as con:
        result = count_for(hub, con, principal, definition, breakdowns=breakdowns)
    audit_context(
        request,
        resource_type="cohort",
        resource_id=result["fingerprint"][:16],
        detail={"exact": result["exact"], "persons": result["persons"]},
    )
    return result


def save_named(
    request: Request, hub: Hub, principal: Principal, name: Any, definition: CohortDefinition
) -> CohortDefinitionRecord:
    """A new version of the principal's definition ``name`` (none when unchanged)."""
    if not isinstance(name, str) or re.fullmatch(NAME_PATTERN, name) is None:
        raise ValidationError("name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    row = save_definition(hub.catalog, principal.name, name, definition)
    audit_context(request, resource_type="cohort_definition", resource_id=f"{name}@{row.version}")
    return row


def load_saved(
    request: Request, hub: Hub, principal: Principal, name: str, version: int | None = None
) -> CohortDefinitionRecord:
    """One of the principal's saved definitions (the latest version without ``version``)."""
    row = get_definition(hub.catalog, principal.name, name, version)
    audit_context(request, resource_type="cohort_definition", resource_id=f"{name}@{row.version}")
    return row


async def json_body(request: Request) -> Any:
    """The request's JSON body (a definition is at most MAX_DEFINITION_BYTES)."""
    body = await read_body(
        request, MAX_DEFINITION_BYTES, f"the body is larger than {MAX_DEFINITION_BYTES // 1_000_000} MB"
    )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the body is not valid JSON: {exc}") from None


Body = Annotated[Any, Depends(json_body)]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("the body is a JSON object")
    return body


@router.post(
    "/count", summary="Count a cohort: persons, attrition per rule, breakdowns (obfuscated unless entitled)"
)
def count(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("cohorts:count"))],
    body: Body,
) -> dict[str, Any]:
    """Body: ``{"definition": {…}}`` (hdhub.cohort/1), or ``{"name": …, "version": n}`` for one
    of the caller's saved definitions (latest version without ``version``); optional
    ``"breakdowns": false``."""
    body = _object(body)
    unknown = set(body) - {"definition", "name", "version", "breakdowns"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if ("definition" in body) == ("name" in body):
        raise ValidationError("give either 'definition' or the 'name' of a saved definition")
    if "definition" in body:
        definition = parse_definition(body["definition"])
    else:
        version = body.get("version", 1)
        if not isinstance(body["name"], str) or type(version) is not int or not 1 <= version <= MAX_ROW_ID:
            raise ValidationError(f"'name' is a string and 'version' an integer from 1 to {MAX_ROW_ID}")
        row = get_definition(hub.catalog, principal.name, body["name"], body.get("version"))
        definition = parse_definition(row.definition)
    breakdowns = body.get("breakdowns", True)
    if not isinstance(breakdowns, bool):
        raise ValidationError("'breakdowns' is true or false")
    return count_definition(request, hub, principal, definition, breakdowns=breakdowns)


@router.post("", status_code=201, summary="Save a definition as a new version of one of your named cohorts")
def save(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("cohorts:define"))],
    body: Body,
) -> JSONResponse:
    body = _object(body)
    if set(body) - {"name", "definition"} or "definition" not in body:
        raise ValidationError('the body is {"name": …, "definition": {…}}')
    definition = parse_definition(body["definition"])
    row = save_named(request, hub, principal, body.get("name") or definition.name, definition)
    return JSONResponse(record_summary(row), status_code=201)


@router.get("", summary="Your saved cohort definitions (every version)")
def mine(
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("cohorts:define"))],
) -> list[dict[str, Any]]:
    return [record_summary(r) for r in list_definitions(hub.catalog, principal.name)]


@router.get("/{name}", summary="One of your saved definitions (the latest version, or ?version=n)")
def one(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("cohorts:define"))],
    name: str,
    version: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> dict[str, Any]:
    row = load_saved(request, hub, principal, name, version)
    return {**record_summary(row), "definition": orjson.loads(row.definition)}


@concepts_router.get("", summary="Find concepts of the loaded vocabulary by id, code or label")
def concepts(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    _: Annotated[Principal, Depends(require("cohorts:count"))],
    q: Annotated[str, Query(max_length=MAX_QUERY_LENGTH, description="An id, a code or words of a label.")],
    domain: Annotated[str | None, Query(max_length=20, description=DOMAIN_HELP)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT)] = SEARCH_LIMIT,
) -> list[dict[str, Any]]:
    """The cohort explorer's search: exact id or code first, then standard concepts,
    classification concepts, the others; a non-standard concept lists the standard concepts it
    'Maps to'. At least 2 characters (or a concept id), at most 200; at most 100 results."""
    audit_context(request, resource_type="concept", detail={"domain": domain} if domain else None)
    with read_only(hub.settings.warehouse_url_resolved) as con:
        return search_concepts(con, q, domain=domain, limit=limit)
