"""Browser sign-in with the configured OIDC provider (``/login/oidc``; see security.oidc_login).

The callback ends on a small page that moves on to the wanted path itself: the browser
arrives from the IdP's site, and a ``SameSite=Strict`` session cookie set on such a
cross-site navigation is only sent from the next, same-site, one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from hdhub.api.deps import DbSession, audit_context, get_hub
from hdhub.api.pages import SESSION_COOKIE, TEXT, add_texts, language, render
from hdhub.api.routes.pages import safe_next
from hdhub.errors import AuthenticationError, Forbidden, NotFound
from hdhub.security.oidc_login import BrowserSignIn, oidc_account
from hdhub.security.tokens import issue_token
from hdhub.security.users import principal_for

router = APIRouter(include_in_schema=False)
STATE_COOKIE = "hdhub_oidc"
CALLBACK = "/login/oidc/callback"

add_texts({
    "sign_in_with": {"fr": "Se connecter avec", "en": "Sign in with"},
    "signed_in": {"fr": "Connecté", "en": "Signed in"},
    "continue": {"fr": "Continuer", "en": "Continue"},
    "sso_failed": {"fr": "La connexion a échoué", "en": "Sign-in failed"},
})  # fmt: skip


def browser_sign_in(request: Request) -> BrowserSignIn:
    sign_in: BrowserSignIn | None = getattr(request.app.state, "oidc_login", None)
    if sign_in is None:
        raise NotFound("sign-in with an identity provider is not configured")
    return sign_in


def _redirect_uri(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


@router.get("/login/oidc")
def oidc_start(request: Request, next: Annotated[str, Query(max_length=500)] = "/") -> Response:
    sign_in = browser_sign_in(request)
    url, cookie = sign_in.start(_redirect_uri(request), safe_next(next))
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the browser must send it back on the IdP's top-level redirect to us.
    response.set_cookie(STATE_COOKIE, cookie, max_age=600, httponly=True, samesite="lax", path=CALLBACK,
                        secure=request.url.scheme == "https")  # fmt: skip
    return response


@router.get(CALLBACK, name="oidc_callback")
def oidc_callback(
    request: Request,
    s: DbSession,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    audit_context(request, resource_type="user", redact_query=True)
    sign_in = browser_sign_in(request)
    lang = language(request)
    try:
        if error or not code or not state:
            raise AuthenticationError(f"the sign-in provider answered: {error or 'no code'}")
        who = sign_in.finish(code, state, request.cookies.get(STATE_COOKIE), _redirect_uri(request))
        user = oidc_account(s, who)
    except (AuthenticationError, Forbidden) as exc:
        status = 403 if isinstance(exc, Forbidden) else 401
        response = render(request, "message.html.j2", None, status=status, heading=TEXT["sso_failed"][lang],
                          text=str(exc))  # fmt: skip
        response.delete_cookie(STATE_COOKIE, path=CALLBACK)
        return response
    request.state.principal = principal_for(
        user, kind="web", source=request.client.host if request.client else None
    )
    audit_context(request, resource_id=user.username)
    hub = get_hub(request)
    ttl = timedelta(hours=hub.settings.security.token_ttl_hours)
    secret, _row = issue_token(s, user, name="web session (oidc)", ttl=ttl)
    target = safe_next(who.next)
    response = render(request, "message.html.j2", request.state.principal, heading=TEXT["signed_in"][lang],
                      text=user.username, refresh=target, link=target)  # fmt: skip
    response.delete_cookie(STATE_COOKIE, path=CALLBACK)
    response.set_cookie(SESSION_COOKIE, secret, max_age=int(ttl.total_seconds()), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
    return response
