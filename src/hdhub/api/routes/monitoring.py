"""Remote monitoring over HTTP: devices post vitals; clinicians list, stream and acknowledge alerts."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from hdhub.api.deps import DbSession as Db
from hdhub.api.deps import audit_context, get_hub, read_body, require
from hdhub.catalog.models import aware
from hdhub.errors import Forbidden, ValidationError
from hdhub.hub import Hub
from hdhub.monitoring import service
from hdhub.monitoring.vitals import observations
from hdhub.security.principal import Principal

router = APIRouter(prefix="/api/v1", tags=["monitoring"])
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_OBSERVATIONS = 20_000
STREAM_POLL_SECONDS = 0.2


@router.post("/vitals", summary="A device's FHIR vital-signs Observations (one, an array or a Bundle)")
async def post_vitals(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("vitals:write"))],
) -> dict[str, Any]:
    if principal.device is None:
        raise Forbidden("vitals come from a device, with its own device token")
    raw = await read_body(request, MAX_BATCH_BYTES, f"a vitals batch holds at most {MAX_BATCH_BYTES} bytes")
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(service.ingester(hub.catalog), _ingest, hub, principal.device, raw)
    audit_context(request, resource_type="device", resource_id=principal.device,
                  detail={"accepted": result.accepted, "duplicates": result.duplicates,
                          "rejected": result.rejected})  # fmt: skip
    return result.to_json()


def _ingest(hub: Hub, device: str, raw: bytes) -> service.IngestResult:
    """Decode, check and store a request's body (in the ingester's thread: decoding 100 kB of
    JSON holds the interpreter for a millisecond, which the event loop should not)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict | list):
        raise ValidationError("the body must be an Observation, a JSON array of them or a Bundle")
    count = len(observations(body))
    if count > MAX_OBSERVATIONS:
        raise ValidationError(f"at most {MAX_OBSERVATIONS} observations per request, not {count}")
    return service.ingest(hub.catalog, device, body, "http")


STATUS = Query(pattern="^(open|acknowledged)$")
SEVERITY = Query(pattern="^(low|medium|high|urgent)$")


@router.get("/alerts", summary="Alerts, newest first: filter by status, severity and patient")
def list_alerts(
    request: Request,
    s: Db,
    _p: Annotated[Principal, Depends(require("alerts:read"))],
    status: Annotated[str | None, STATUS] = None,
    severity: Annotated[str | None, SEVERITY] = None,
    patient: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    audit_context(request, patient_id=patient)
    rows = service.list_alerts(s, status=status, severity=severity, patient=patient, limit=limit)
    return [service.alert_view(s, a) for a in rows]


@router.get("/alerts/stream", summary="Alerts as they are raised or change (Server-Sent Events)")
async def stream_alerts(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    _p: Annotated[Principal, Depends(require("alerts:read"))],
    severity: Annotated[str | None, SEVERITY] = None,
    seconds: Annotated[
        float, Query(gt=0, le=3600, description="Close after this long (clients reconnect)")
    ] = 300,
) -> StreamingResponse:
    return alert_stream(request, hub, severity, seconds)


def alert_stream(request: Request, hub: Hub, severity: str | None, seconds: float) -> StreamingResponse:
    """Alerts raised or changed from now on, as Server-Sent Events (for the API and the alert page)."""
    started = dt.datetime.now(dt.UTC)

    def poll(since: dt.datetime) -> list[dict[str, Any]]:
        with Session(hub.catalog) as s:
            rows = service.list_alerts(s, severity=severity, since=since, limit=500)
            return [service.alert_view(s, a) | {"_updated": a.updated_at} for a in rows]

    async def events() -> AsyncIterator[bytes]:
        since = started
        sent: dict[int, tuple[int, str, str]] = {}
        deadline = asyncio.get_running_loop().time() + seconds
        yield b"retry: 1000\n\n"
        while asyncio.get_running_loop().time() < deadline:
            for alert in await asyncio.to_thread(poll, since - dt.timedelta(seconds=2)):
                updated = alert.pop("_updated")
                since = max(since, aware(updated))
                state = (alert["count"], alert["status"], alert["severity"])
                if sent.get(alert["id"]) == state:
                    continue  # the 2 s overlap re-reads what was already sent
                sent[alert["id"]] = state
                yield b"event: alert\nid: %d\ndata: %s\n\n" % (alert["id"], orjson.dumps(alert))
            if await request.is_disconnected():
                return
            await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/alerts/{alert_id}", summary="One alert with the values that raised it")
def get_alert(request: Request, s: Db, _p: Annotated[Principal, Depends(require("alerts:read"))],
              alert_id: int) -> dict[str, Any]:  # fmt: skip
    alert = service.get_alert(s, alert_id)
    audit_context(request, resource_type="alert", resource_id=str(alert_id), patient_id=alert.person_key)
    return service.alert_view(s, alert, values=True)


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert")
def acknowledge(request: Request, s: Db, principal: Annotated[Principal, Depends(require("alerts:ack"))],
                alert_id: int) -> dict[str, Any]:  # fmt: skip
    alert = service.acknowledge(s, alert_id, principal.name)
    audit_context(request, resource_type="alert", resource_id=str(alert_id), patient_id=alert.person_key)
    return service.alert_view(s, alert)


@router.get("/monitoring/rejections", summary="Refused device messages, counted by reason")
def rejections(
    hub: Annotated[Hub, Depends(get_hub)], _p: Annotated[Principal, Depends(require("monitoring:manage"))]
) -> dict[str, int]:
    return service.rejection_counts(hub.catalog)
