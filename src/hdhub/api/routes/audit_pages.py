"""The DPO's audit page: search events by patient, user, project and dates; verify the chain;
export what the search found as ECS JSON lines (for Elastic, a SIEM)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from hdhub.api.deps import get_hub
from hdhub.api.pages import render, signed_in
from hdhub.security.principal import Principal

router = APIRouter(include_in_schema=False)
PAGE = 200
FIELDS = ("patient", "actor", "project", "since", "until")
MAX_EXPORT = 1_000_000


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip()[:200] for k in FIELDS}


def _search_args(f: dict[str, str]) -> dict[str, Any]:
    args: dict[str, Any] = {k: v or None for k, v in f.items() if k in ("patient", "actor", "project")}
    args["since"] = f"{f['since']}T00:00:00" if f["since"] else None
    args["until"] = f"{f['until']}T23:59:59.999999" if f["until"] else None
    return args


@router.get("/audit")
def audit_page(request: Request) -> Response:
    principal = signed_in(request, "audit:read")
    if not isinstance(principal, Principal):
        return principal
    f = _filters(request)
    log = get_hub(request).audit
    args = _search_args(f)
    report = log.verify() if request.query_params.get("verify") == "1" else None
    return render(request, "audit.html.j2", principal, f=f, events=log.search(limit=PAGE, **args),
                  total=log.count(**args), report=report,
                  query=urlencode({k: v for k, v in f.items() if v}))  # fmt: skip


@router.get("/audit/export.ndjson")
def audit_export(request: Request) -> Response:
    principal = signed_in(request, "audit:export")
    if not isinstance(principal, Principal):
        return principal
    from hdhub.audit.ecs import to_ecs_line

    log = get_hub(request).audit
    args = _search_args(_filters(request))

    def lines() -> Iterator[bytes]:
        offset = 0
        while offset < MAX_EXPORT:
            events = log.search(limit=5_000, offset=offset, **args)
            if not events:
                return
            for event in events:
                yield to_ecs_line(event)
            offset += len(events)

    headers = {"Content-Disposition": 'attachment; filename="audit-ecs.ndjson"'}
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)
