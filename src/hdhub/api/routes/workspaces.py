"""Project workspaces over HTTP.

Under ``/api/v1/workspaces/{slug}`` — the only routes a project token reaches (the app-wide
fence in :mod:`hdhub.api.deps` refuses it everything else) — members read their extract and
ask for releases. Outside it, with their own accounts, members take project tokens and
output checkers review release requests.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hdhub.api.deps import DbSession as Db
from hdhub.api.deps import audit_context, get_hub, read_body, require
from hdhub.errors import Forbidden, NotFound
from hdhub.governance import projects as gov
from hdhub.hub import Hub
from hdhub.security.authz import authorize
from hdhub.security.principal import Principal
from hdhub.security.tokens import issue_token
from hdhub.security.users import get_user
from hdhub.workspaces import airlock
from hdhub.workspaces.output_checks import MAX_RELEASE_BYTES

router = APIRouter(prefix="/api/v1/workspaces/{slug}", tags=["workspaces"])
admin_router = APIRouter(prefix="/api/v1", tags=["workspaces"])


def _member(request: Request, principal: Principal, action: str, slug: str) -> None:
    """The project token's own project only."""
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    request.state.decision = authorize(principal, action, project=slug)


@router.get("", summary="The workspace: the current extract's manifest")
def manifest(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("workspaces:read"))],
    slug: str,
) -> dict[str, Any]:
    from hdhub.workspaces.provision import current_manifest

    _member(request, principal, "workspaces:read", slug)
    return current_manifest(hub, slug)


@router.get("/files/{name}", summary="One file of the current extract (Parquet, DuckDB or the manifest)")
def extract_file(request: Request, hub: Annotated[Hub, Depends(get_hub)],
                 principal: Annotated[Principal, Depends(require("workspaces:read"))],
                 slug: str, name: str) -> StreamingResponse:  # fmt: skip
    from sqlalchemy.orm import Session

    from hdhub.workspaces.keys import project_key, project_store
    from hdhub.workspaces.provision import current_manifest

    _member(request, principal, "workspaces:read", slug)
    manifest = current_manifest(hub, slug)
    files = {t["file"] for t in manifest["tables"].values()} | {manifest["database"]["file"], "manifest.json"}
    if name not in files:
        raise NotFound(f"no file {name!r} in the extract of project {slug!r}")
    audit_context(request, detail={"file": name, "extract": manifest["version"]})
    with Session(hub.catalog) as s:
        key = project_key(hub, s, gov.get_project(s, slug))
    reader = project_store(hub, key).get(f"projects/{slug}/extract-{manifest['version']}/{name}")
    return StreamingResponse(
        iter(reader), media_type="application/octet-stream",
        headers={"Content-Length": str(reader.info.size), "Cache-Control": "no-store"},
    )  # fmt: skip


@router.post("/releases", status_code=201, summary="Ask to release a file from the workspace (the airlock)")
async def request_release(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("workspaces:release"))],
    slug: str,
    name: Annotated[str, Query(max_length=255)],
) -> JSONResponse:
    _member(request, principal, "workspaces:release", slug)
    data = await read_body(
        request, MAX_RELEASE_BYTES, f"a release request holds at most {MAX_RELEASE_BYTES} bytes"
    )
    release = airlock.request_release(hub, slug, principal.name, name, data)
    detail = {"file": release.name, "sha256": release.sha256, "checks": release.check_status}
    audit_context(request, resource_type="release", resource_id=str(release.id), detail=detail)
    return JSONResponse(release.to_json(), status_code=201)


@router.get("/releases", summary="The project's release requests")
def project_releases(request: Request, hub: Annotated[Hub, Depends(get_hub)],
                     principal: Annotated[Principal, Depends(require("workspaces:read"))],
                     slug: str) -> list[dict[str, Any]]:  # fmt: skip
    _member(request, principal, "workspaces:read", slug)
    return [r.to_json() for r in airlock.list_releases(hub, slug=slug)]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(30, ge=1, le=3650, description="Lifetime; never beyond the project's expiry")


@admin_router.post(
    "/projects/{slug}/tokens",
    status_code=201,
    summary="A project token for yourself: it reads this project's workspace and nothing else",
)
def project_token(
    request: Request,
    s: Db,
    principal: Annotated[Principal, Depends(require("workspaces:token"))],
    slug: str,
    body: TokenIn,
) -> JSONResponse:
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    project = gov.get_project(s, slug)
    secret, row = issue_token(s, get_user(s, principal.name), name=f"project {slug}",
                              ttl=timedelta(days=body.days), project=project)  # fmt: skip
    return JSONResponse({"token": secret, "project": slug, "expires_at": row.expires_at.isoformat()},
                        status_code=201)  # fmt: skip


class ReleaseReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vote: str = Field(description="approve or reject")
    text: str | None = Field(None, max_length=20_000)


@admin_router.get("/releases", summary="Release requests (output checkers)")
def releases(
    hub: Annotated[Hub, Depends(get_hub)],
    _p: Annotated[Principal, Depends(require("releases:review"))],
    status: Annotated[str | None, Query(pattern="^(pending|released|rejected)$")] = None,
) -> list[dict[str, Any]]:
    return [r.to_json() for r in airlock.list_releases(hub, status=status)]


@admin_router.post("/releases/{release_id}/reviews", summary="Approve or reject a release request")
def review(request: Request, hub: Annotated[Hub, Depends(get_hub)],
           principal: Annotated[Principal, Depends(require("releases:review"))],
           release_id: int, body: ReleaseReviewIn) -> dict[str, Any]:  # fmt: skip
    audit_context(request, resource_type="release", resource_id=str(release_id), detail={"vote": body.vote})
    release = airlock.review_release(hub, release_id, principal.name, body.vote, body.text)
    audit_context(request, project_id=release.project, detail={"status": release.status})
    return release.to_json()


@admin_router.get("/releases/{release_id}/file", summary="A release request's file, with its SHA-256")
def release_file(request: Request, s: Db, hub: Annotated[Hub, Depends(get_hub)],
                 principal: Annotated[Principal, Depends(require("releases:read"))],
                 release_id: int) -> Response:  # fmt: skip
    """Output checkers read it to decide; the project's members once it is released."""
    audit_context(request, resource_type="release", resource_id=str(release_id))
    release = airlock.get_release(hub, release_id)
    audit_context(request, project_id=release.project)
    checker = "committee" in principal.roles
    member = principal.name in gov.members_of(s, gov.get_project(s, release.project))
    if not (checker or (member and release.status == "released")):
        raise Forbidden(f"{principal.name}: release request {release_id} is not released to you")
    release, data = airlock.release_file(hub, release_id)
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{release.name}"',
        "X-Content-SHA256": release.sha256, "Cache-Control": "no-store"})  # fmt: skip
