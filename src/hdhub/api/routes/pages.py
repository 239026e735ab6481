"""The web interface's pages: sign-in, the home page and its menu, the alert list.

Every page goes through the same policy as the API (``decide``). A page needing a sign-in
sends the browser to ``/login`` (303); a signed-in user whose roles do not allow a page gets
a 403 page. Form posts are refused when their Origin is another site (the session cookie is
``SameSite=Strict`` already).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from hdhub.api.deps import DbSession, audit_context, get_hub
from hdhub.api.pages import (
    SESSION_COOKIE,
    render,
    same_origin,
    session_principal,
    signed_in,
    to_login,
)
from hdhub.api.routes.monitoring import alert_stream
from hdhub.errors import AuthenticationError, RateLimited
from hdhub.hub import Hub
from hdhub.monitoring import service
from hdhub.security.authz import decide
from hdhub.security.principal import Principal
from hdhub.security.tokens import issue_token, resolve_token, revoke_token
from hdhub.security.users import authenticate, principal_for

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path of this site (never //host or a scheme): no open redirect. Control characters
    and spaces are refused too: a browser drops tabs and newlines from a URL, so "/\t/host" in a
    page's refresh or link became "//host"."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and all(" " < c != "\x7f" for c in target)
    ):
        return target
    return "/"


def _sso(request: Request) -> str | None:
    """The identity provider's name for the "Sign in with" link, when browser sign-in is on."""
    sign_in = getattr(request.app.state, "oidc_login", None)
    return sign_in.settings.provider_name if sign_in is not None else None


@router.get("/")
def home(request: Request) -> Response:
    principal = session_principal(request)
    if principal is None:
        return to_login(request)
    return render(request, "home.html.j2", principal)


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html.j2", session_principal(request), next=safe_next(next), error=False,
                  username="", sso=_sso(request))  # fmt: skip


@router.post("/login")
def login(
    request: Request,
    s: DbSession,
    hub: Annotated[Hub, Depends(get_hub)],
    username: Annotated[str, Form(max_length=150)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    same_origin(request)
    audit_context(request, resource_type="user", resource_id=username[:150])
    try:
        user = authenticate(s, username, password, hub.settings.security)
    except (AuthenticationError, RateLimited) as exc:
        status, error = (401, "bad_login") if isinstance(exc, AuthenticationError) else (429, "slow_down")
        return render(request, "login.html.j2", None, status=status, next=safe_next(next), error=error,
                      username=username, sso=_sso(request))  # fmt: skip
    request.state.principal = principal_for(
        user, kind="web", source=request.client.host if request.client else None
    )
    ttl = timedelta(hours=hub.settings.security.token_ttl_hours)
    secret, _row = issue_token(s, user, name="web session", ttl=ttl)
    response = RedirectResponse(safe_next(next), status_code=303)
    secure = request.url.scheme == "https"
    age = int(ttl.total_seconds())
    response.set_cookie(SESSION_COOKIE, secret, max_age=age, httponly=True, samesite="strict", secure=secure)
    return response


@router.post("/logout")
def logout(request: Request, s: DbSession) -> Response:
    same_origin(request)
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        try:
            row = resolve_token(s, secret)
            request.state.principal = principal_for(row.user, kind="web")
            revoke_token(s, secret)
        except AuthenticationError:
            pass
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/alerts")
def alerts_page(request: Request, status: str = "open", severity: str = "") -> Response:
    principal = signed_in(request, "alerts:read")
    if not isinstance(principal, Principal):
        return principal
    status = status if status in ("open", "acknowledged") else ""
    severity = severity if severity in ("urgent", "high", "medium", "low") else ""
    with Session(get_hub(request).catalog) as s:
        rows = service.list_alerts(s, status=status or None, severity=severity or None, limit=500)
        alerts = [service.alert_view(s, a) for a in rows]
    can_ack = decide(principal, "alerts:ack").allowed
    return render(request, "alerts.html.j2", principal, alerts=alerts, status_filter=status,
                  severity_filter=severity, can_ack=can_ack)  # fmt: skip


@router.get("/alerts/live")
def alerts_live(
    request: Request, severity: str = "", seconds: Annotated[float, Query(gt=0, le=300)] = 300
) -> Response:
    """The alert page's live feed: alerts raised or changed, as Server-Sent Events (for five
    minutes at most; the browser reconnects)."""
    principal = signed_in(request, "alerts:read")
    if not isinstance(principal, Principal):
        return principal
    severity = severity if severity in ("urgent", "high", "medium", "low") else ""
    return alert_stream(request, get_hub(request), severity or None, seconds)


@router.post("/alerts/{alert_id}/ack")
def acknowledge_page(request: Request, s: DbSession, alert_id: int) -> Response:
    same_origin(request)
    principal = signed_in(request, "alerts:ack")
    if not isinstance(principal, Principal):
        return principal
    alert = service.acknowledge(s, alert_id, principal.name)
    audit_context(request, resource_type="alert", resource_id=str(alert_id), patient_id=alert.person_key)
    return RedirectResponse("/alerts", status_code=303)
