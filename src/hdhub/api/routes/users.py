"""User administration (role admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from hdhub.api.deps import DbSession, audit_context, require
from hdhub.catalog.models import User, aware
from hdhub.security import users as user_service
from hdhub.security.passwords import MAX_PASSWORD_LENGTH
from hdhub.security.principal import Principal

router = APIRouter(prefix="/api/v1/users", tags=["users"])


class UserCreate(BaseModel):
    """``roles``: roles of persons (never "device"); ``password``: 12 to 1024 characters, none for an
    OIDC-only account (the checks of hdhub.security.users, shared with the CLI and the pages)."""

    username: str = Field(max_length=150)
    roles: list[str] = Field(min_length=1, max_length=10)
    password: str | None = Field(None, max_length=MAX_PASSWORD_LENGTH)
    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)


class UserUpdate(BaseModel):
    disabled: bool | None = None
    roles: list[str] | None = Field(None, min_length=1, max_length=10)
    password: str | None = Field(None, max_length=MAX_PASSWORD_LENGTH)


class UserPublic(BaseModel):
    """What the API shows of a user: never the password hash."""

    id: int
    username: str
    display_name: str | None
    email: str | None
    roles: list[str]
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            email=user.email,
            roles=user.role_names,
            disabled=user.disabled,
            created_at=aware(user.created_at),  # SQLite gives it back without its UTC offset
        )


@router.get("", response_model=list[UserPublic], summary="List users")
def list_users(
    session: DbSession, _: Annotated[Principal, Depends(require("users:read"))]
) -> list[UserPublic]:
    return [UserPublic.of(u) for u in user_service.list_users(session)]


@router.post("", response_model=UserPublic, status_code=201, summary="Create a user")
def create_user(
    request: Request,
    body: UserCreate,
    session: DbSession,
    _: Annotated[Principal, Depends(require("users:manage"))],
) -> UserPublic:
    audit_context(request, resource_type="user", resource_id=body.username)
    user = user_service.create_user(
        session,
        body.username,
        body.roles,
        password=body.password,
        display_name=body.display_name,
        email=body.email,
    )
    return UserPublic.of(user)


@router.patch("/{username}", response_model=UserPublic, summary="Disable, enable, change roles or password")
def update_user(
    request: Request,
    username: str,
    body: UserUpdate,
    session: DbSession,
    principal: Annotated[Principal, Depends(require("users:manage"))],
) -> UserPublic:
    audit_context(request, resource_type="user", resource_id=username)
    user = user_service.update_user(
        session,
        username,
        disabled=body.disabled,
        roles=body.roles,
        password=body.password,
        actor=principal.name,
    )
    return UserPublic.of(user)
