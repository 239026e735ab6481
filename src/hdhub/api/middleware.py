"""Every API request becomes one audit event and one set of Prometheus samples."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hdhub.api.errors import error_for, error_response
from hdhub.security.principal import Principal

log = logging.getLogger(__name__)
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


# On every answer: no framing by another origin (clickjacking: hdhub's forms in a frame of a
# sibling site of the same registrable domain, where SameSite cookies still go), no content
# sniffing, page URLs (which may hold an IPP) never sent to other sites; and, unless the route
# chose otherwise, nothing kept in a browser's or proxy's cache.
SECURITY_HEADERS = [
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
FRAME_ANCESTORS = b"frame-ancestors 'self'"


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    out = headers + [h for h in SECURITY_HEADERS if h[0] not in names]
    if b"content-security-policy" not in names:
        out.append((b"content-security-policy", FRAME_ANCESTORS))
    if b"cache-control" not in names:
        out.append((b"cache-control", b"no-store"))
    return out


def _outcome(status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "success" if status < 400 else "failure"


def install_middleware(app: FastAPI, metrics: HttpMetrics) -> None:
    app.add_middleware(AuditAndMeasure, metrics=metrics)


class AuditAndMeasure:
    """Plain ASGI middleware (no response re-streaming): when the route's answer starts, the
    request's audit event is written first; if it cannot be, a 503 goes out instead. A route
    that fails with an unexpected exception answers a JSON 500 through here, so that it too is
    audited and counted (Starlette's own 500 would pass outside, unrecorded). Every answer gets
    the security headers above."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request = Request(scope)
        replaced = started = False

        async def send_audited(message: Message) -> None:
            nonlocal replaced, started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = with_security_headers(list(message.get("headers", [])))
                if not await self._record(request, message["status"], start):
                    replaced = True
                    failure = error_response(
                        503, "audit_unavailable", "the audit log could not be written; try again"
                    )
                    await failure(scope, receive, send)
                    return
            elif replaced:
                return  # the route's body is dropped: its access was not recorded
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception:
            if started:  # a streamed answer broke off: nothing more can be said to the client
                raise
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            failure = await error_for(request, 500, "internal", "internal error (logged and audited)")
            await failure(scope, receive, send_audited)

    async def _record(self, request: Request, status: int, start: float) -> bool:
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(request.method, template, str(status)).inc()
        self.metrics.duration.labels(request.method, template).observe(time.perf_counter() - start)
        if request.url.path.startswith(UNAUDITED):
            return True
        source = request.client.host if request.client else None
        principal = getattr(request.state, "principal", None) or Principal.anonymous(source)
        decision = getattr(request.state, "decision", None)
        fields = dict(getattr(request.state, "audit_fields", None) or {})
        detail = fields.pop("detail", {}) | {
            "method": request.method,
            "path": request.url.path,
            "status": status,
        }
        if request.url.query:  # a sign-in callback's code and state are never kept
            detail["query"] = "(redacted)" if fields.pop("redact_query", False) else request.url.query[:500]
        try:
            await run_in_threadpool(
                request.app.state.hub.audit.record,
                principal,
                f"{request.method} {template}",
                role=decision.role if decision else None,
                outcome=_outcome(status),
                source=source,
                detail=detail,
                **fields,
            )
        except Exception:
            # No audit, no data: never return an answer whose access was not recorded.
            self.metrics.audit_failures.inc()
            return False
        return True
