"""Every API request becomes one audit event and one set of Prometheus samples."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.concurrency import run_in_threadpool

from hdhub.api.errors import error_response
from hdhub.security.principal import Principal

UNAUDITED = ("/healthz", "/metrics", "/docs", "/redoc", "/openapi.json", "/favicon.ico", "/static/")


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hdhub_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "hdhub_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "hdhub_audit_write_failures_total",
            "Audit events that could not be written",
            registry=self.registry,
        )


def _outcome(status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "success" if status < 400 else "failure"


def install_middleware(app: FastAPI, metrics: HttpMetrics) -> None:
    @app.middleware("http")
    async def audit_and_measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        metrics.duration.labels(request.method, template).observe(time.perf_counter() - start)
        if request.url.path.startswith(UNAUDITED):
            return response
        source = request.client.host if request.client else None
        principal = getattr(request.state, "principal", None) or Principal.anonymous(source)
        decision = getattr(request.state, "decision", None)
        fields = dict(getattr(request.state, "audit_fields", None) or {})
        detail = fields.pop("detail", {}) | {
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
        }
        if request.url.query:
            detail["query"] = request.url.query[:500]
        try:
            await run_in_threadpool(
                app.state.hub.audit.record,
                principal,
                f"{request.method} {template}",
                role=decision.role if decision else None,
                outcome=_outcome(response.status_code),
                source=source,
                detail=detail,
                **fields,
            )
        except Exception:
            # No audit, no data: never return an answer whose access was not recorded.
            metrics.audit_failures.inc()
            return error_response(503, "audit_unavailable", "the audit log could not be written; try again")
        return response
