"""Sign-in: the OAuth2 password flow exchanges local credentials for an expiring API token."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from hdhub.api.deps import DbSession, audit_context, current_principal, get_hub
from hdhub.hub import Hub
from hdhub.security.principal import Principal
from hdhub.security.tokens import issue_token
from hdhub.security.users import authenticate, principal_for

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (OAuth2 token type, not a secret)
    expires_in: int


class Me(BaseModel):
    name: str
    kind: str
    roles: list[str]


@router.post("/token", response_model=TokenResponse, summary="Exchange user name and password for a token")
def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: DbSession,
    hub: Annotated[Hub, Depends(get_hub)],
) -> TokenResponse:
    audit_context(request, resource_type="user", resource_id=form.username[:150])
    user = authenticate(session, form.username, form.password, hub.settings.security)
    source = request.client.host if request.client else None
    request.state.principal = principal_for(user, source=source)  # the audit event names who signed in
    ttl = timedelta(hours=hub.settings.security.token_ttl_hours)
    secret, _row = issue_token(session, user, name="password-flow", ttl=ttl)
    return TokenResponse(access_token=secret, expires_in=int(ttl.total_seconds()))


@router.get("/me", response_model=Me, summary="Who the bearer token belongs to")
def me(principal: Annotated[Principal, Depends(current_principal)]) -> Me:
    from hdhub.errors import AuthenticationError

    if principal.kind == "anonymous":
        raise AuthenticationError("authentication required")
    return Me(name=principal.name, kind=principal.kind, roles=sorted(principal.roles))
