"""Request dependencies: the catalog session, the caller, and the authorisation gate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from hdhub.errors import AuthenticationError, Forbidden, PayloadTooLarge
from hdhub.hub import Hub
from hdhub.monitoring.devices import DEVICE_TOKEN_PREFIX
from hdhub.security.authz import authorize
from hdhub.security.oidc import looks_like_jwt
from hdhub.security.principal import Principal
from hdhub.security.tokens import check_token
from hdhub.security.users import principal_of


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def db_session(request: Request) -> Iterator[Session]:
    with Session(get_hub(request).catalog) as session, session.begin():
        yield session


# Function scope: the transaction ends when the route returns, before the audit middleware
# appends (one SQLite writer at a time) and before the response is sent.
DbSession = Annotated[Session, Depends(db_session, scope="function")]


def current_principal(request: Request) -> Principal:
    """Resolve the Authorization header once per request (cached on request.state)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    source = request.client.host if request.client else None
    header = request.headers.get("authorization", "")
    if not header:
        principal = Principal.anonymous(source)
    else:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            raise AuthenticationError("use an 'Authorization: Bearer <token>' header")
        credentials = credentials.strip()
        if credentials.startswith(DEVICE_TOKEN_PREFIX):
            from hdhub.monitoring.devices import resolve_device_token

            with Session(get_hub(request).catalog) as session:
                device = resolve_device_token(session, credentials)
                principal = Principal(name=f"device:{device.device_id}", roles=frozenset({"device"}),
                                      kind="device", source=source, device=device.device_id)  # fmt: skip
        elif looks_like_jwt(credentials):
            verifier = request.app.state.oidc
            if verifier is None:
                raise AuthenticationError("OIDC bearer tokens are not enabled on this server")
            principal = verifier.verify(credentials, source=source)
        else:
            with Session(get_hub(request).catalog) as session, session.begin():
                live = check_token(session, credentials)
            principal = principal_of(live.username, live.roles, live.user_id, "token", source, live.project)
    request.state.principal = principal
    return principal


WORKSPACE_ROUTES = "/api/v1/workspaces/{slug}"


def project_fence(request: Request) -> None:
    """App-wide dependency: a project token reaches its own project's workspace routes and
    nothing else — every other route, public ones included, answers 403. Being app-wide, it
    covers routes added later without anyone remembering to."""
    if not request.headers.get("authorization"):
        return
    try:
        principal = current_principal(request)
    except AuthenticationError:
        return  # the route decides: public routes ignore the header, the others refuse it
    scope = principal.scope_project
    if scope is None:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    if not path.startswith(WORKSPACE_ROUTES) or request.path_params.get("slug") != scope:
        raise Forbidden(f"{principal.name}: a token of project {scope!r} reads only that project's workspace")


def require(action: str) -> Callable[..., Principal]:
    """Dependency: the caller, once the one decision function has allowed ``action``."""

    def gate(request: Request) -> Principal:
        principal = current_principal(request)
        decision = authorize(principal, action)
        request.state.decision = decision
        return principal

    gate.__name__ = f"require_{action.replace(':', '_').replace('-', '_')}"
    return gate


def audit_context(request: Request, **fields: Any) -> None:
    """Let a route add patient/project/resource details to its request's audit event."""
    current = getattr(request.state, "audit_fields", None) or {}
    current.update({k: v for k, v in fields.items() if v is not None})
    request.state.audit_fields = current


async def read_body(request: Request, limit: int, too_large: str) -> bytes:
    """The request body, refused with 413 ``too_large`` as soon as it exceeds ``limit`` bytes
    (a declared Content-Length above it is refused before reading anything)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdecimal() or int(declared) > limit):
        raise PayloadTooLarge(too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(too_large)
    return bytes(body)
