"""Liveness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from hdhub.api.deps import get_hub, require
from hdhub.hub import Hub
from hdhub.security.principal import Principal

router = APIRouter(tags=["platform"])


@router.get("/healthz", summary="Liveness and catalog reachability (no authentication)")
def healthz(hub: Annotated[Hub, Depends(get_hub)]) -> dict[str, str]:
    with hub.catalog.connect() as conn:
        conn.execute(text("select 1"))
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics (role admin)", response_class=Response)
def metrics(request: Request, _: Annotated[Principal, Depends(require("metrics:read"))]) -> Response:
    registry = request.app.state.metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # `serve --workers N`: every worker's samples
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
