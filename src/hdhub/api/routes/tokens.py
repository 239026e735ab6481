"""API and device tokens over HTTP: list them (never a secret nor a hash) and revoke them.

The administration pages (``admin_pages``) revoke through the same functions
(:func:`hdhub.security.tokens.revoke_token_id`, :func:`hdhub.monitoring.devices.revoke_device`)
under the same actions, and each request is audited the same way (resource ``api_token`` or
``device``). Every user but a device may list and revoke their own tokens (sign out elsewhere);
someone else's token is "not found" to them, like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from hdhub.api.deps import DbSession, audit_context, require
from hdhub.catalog.models import MonitoringDevice, aware
from hdhub.monitoring.devices import revoke_device
from hdhub.security import tokens as token_service
from hdhub.security.principal import Principal

router = APIRouter(prefix="/api/v1", tags=["tokens"])

LIST_MAX = 500  # as the administration page
USERNAME_MAX = 150  # as the users route
DEVICE_ID_MAX = 64


class TokenPublic(BaseModel):
    """What the API shows of a token: never its secret nor its hash."""

    id: int
    user: str
    name: str
    kind: str  # web (a browser's session) | project (a project token) | api
    prefix: str
    project: str | None
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    status: str  # active | expired | revoked

    @classmethod
    def of(cls, t: token_service.TokenInfo) -> TokenPublic:
        return cls(
            id=t.id, user=t.user, name=t.name, kind=t.kind, prefix=t.prefix, project=t.project,
            created_at=t.created_at, expires_at=t.expires_at, last_used_at=t.last_used_at,
            revoked_at=t.revoked_at, status=t.status,
        )  # fmt: skip


class DevicePublic(BaseModel):
    """A patient's device: never its token (nor its patient)."""

    device_id: str
    kind: str | None
    created_at: datetime
    revoked_at: datetime | None
    status: str  # active | revoked


Inactive = Annotated[bool, Query(alias="all", description="Revoked and expired ones too.")]
Limit = Annotated[int, Query(ge=1, le=LIST_MAX, description=f"At most {LIST_MAX}, newest first.")]


def _revoked(session: DbSession, token_id: int, owner: str | None = None) -> TokenPublic:
    row = token_service.revoke_token_id(session, token_id, owner=owner)
    session.flush()
    return TokenPublic.of(token_service.token_info(session, row.id))


# --------------------------------------------------------------------------- every user's tokens


@router.get("/tokens", response_model=list[TokenPublic], summary="Tokens of every user (admin)")
def list_tokens(
    request: Request,
    session: DbSession,
    _: Annotated[Principal, Depends(require("tokens:manage"))],
    user: Annotated[str | None, Query(max_length=USERNAME_MAX, description="Only this user's.")] = None,
    include_inactive: Inactive = False,
    limit: Limit = 100,
) -> list[TokenPublic]:
    audit_context(request, resource_type="api_token", detail={"user": user} if user else None)
    found = token_service.token_overview(
        session, include_inactive=include_inactive, limit=limit, username=user
    )
    return [TokenPublic.of(t) for t in found]


@router.delete("/tokens/{token_id}", response_model=TokenPublic, summary="Revoke any token (admin)")
def revoke_token(
    request: Request,
    session: DbSession,
    token_id: int,
    _: Annotated[Principal, Depends(require("tokens:manage"))],
) -> TokenPublic:
    """Revoke an API token, a project token or a web session: refused from the next request on
    (already revoked: unchanged)."""
    audit_context(request, resource_type="api_token", resource_id=str(token_id))
    token = _revoked(session, token_id)
    audit_context(request, detail={"user": token.user})
    return token


# ------------------------------------------------------------------------------- your own tokens


@router.get("/tokens/mine", response_model=list[TokenPublic], summary="Your own tokens and sessions")
def list_my_tokens(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(require("tokens:self"))],
    include_inactive: Inactive = False,
    limit: Limit = 100,
) -> list[TokenPublic]:
    audit_context(request, resource_type="api_token")
    found = token_service.token_overview(
        session, include_inactive=include_inactive, limit=limit, username=principal.name
    )
    return [TokenPublic.of(t) for t in found]


@router.delete("/tokens/mine/{token_id}", response_model=TokenPublic, summary="Revoke one of your tokens")
def revoke_my_token(
    request: Request,
    session: DbSession,
    token_id: int,
    principal: Annotated[Principal, Depends(require("tokens:self"))],
) -> TokenPublic:
    """Revoke one of your own tokens or sessions (the one in use included); another user's
    token is 404, as one that does not exist."""
    audit_context(request, resource_type="api_token", resource_id=str(token_id))
    return _revoked(session, token_id, owner=principal.name)


# ------------------------------------------------------------------------------ patients' devices


@router.get("/devices", response_model=list[DevicePublic], summary="Patients' devices, newest first")
def list_devices(
    request: Request,
    session: DbSession,
    _: Annotated[Principal, Depends(require("monitoring:manage"))],
    include_inactive: Inactive = False,
    limit: Limit = 100,
) -> list[DevicePublic]:
    audit_context(request, resource_type="device")
    stmt = select(MonitoringDevice).order_by(MonitoringDevice.created_at.desc(), MonitoringDevice.id.desc())
    if not include_inactive:
        stmt = stmt.where(MonitoringDevice.revoked_at.is_(None))
    return [_device(d) for d in session.scalars(stmt.limit(limit))]


@router.delete("/devices/{device_id}", response_model=DevicePublic, summary="Revoke a patient's device")
def revoke_device_token(
    request: Request,
    session: DbSession,
    device_id: Annotated[str, Path(max_length=DEVICE_ID_MAX)],
    _: Annotated[Principal, Depends(require("monitoring:manage"))],
) -> DevicePublic:
    """Revoke a device: its token and its MQTT messages are refused from now on."""
    audit_context(request, resource_type="device", resource_id=device_id)
    revoke_device(session, device_id)
    row = session.scalar(select(MonitoringDevice).where(MonitoringDevice.device_id == device_id))
    audit_context(request, patient_id=row.person_key)  # type: ignore[union-attr]
    return _device(row)  # type: ignore[arg-type]


def _device(d: MonitoringDevice) -> DevicePublic:
    return DevicePublic(
        device_id=d.device_id, kind=d.kind, created_at=aware(d.created_at),
        revoked_at=aware(d.revoked_at) if d.revoked_at else None,
        status="revoked" if d.revoked_at else "active",
    )  # fmt: skip
