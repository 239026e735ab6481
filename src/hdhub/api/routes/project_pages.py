"""Research projects in the browser: the list (the committee's queue, or a member's own
projects), a project's request and reviews, and the committee's comment, vote and decision."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hdhub.api.deps import audit_context, get_hub
from hdhub.api.pages import render, same_origin, signed_in
from hdhub.api.routes.projects import readable, view
from hdhub.catalog.models import Project, ProjectMember, ProjectReview
from hdhub.errors import HdhubError
from hdhub.governance import projects as gov
from hdhub.security.authz import decide
from hdhub.security.principal import Principal

router = APIRouter(include_in_schema=False)
QUEUE_FIRST = {"submitted": 0, "under_review": 1, "changes_requested": 2}


def _row(p: Project) -> dict[str, Any]:
    return {
        "slug": p.slug, "title": p.title, "pi": p.pi, "status": p.status,
        "submitted": p.submitted_at.date().isoformat() if p.submitted_at else None,
        "expires": p.expires_at.date().isoformat() if p.expires_at else None,
    }  # fmt: skip


@router.get("/projects")
def projects_page(request: Request) -> Response:
    principal = signed_in(request, "projects:read")
    if not isinstance(principal, Principal):
        return principal
    with Session(get_hub(request).catalog) as s:
        stmt = select(Project)
        if principal.roles & {"committee", "dpo"}:
            stmt = stmt.where(Project.status != "draft")
        else:
            mine = select(ProjectMember.project_id).where(ProjectMember.username == principal.name)
            stmt = stmt.where(or_(Project.id.in_(mine), Project.created_by == principal.name))
        rows = sorted(s.scalars(stmt), key=lambda p: (QUEUE_FIRST.get(p.status, 9), p.slug))
        projects = [_row(p) for p in rows]
    return render(request, "projects.html.j2", principal, projects=projects)


def _project_page(request: Request, principal: Principal, slug: str, error: str | None = None,
                  status: int = 200, token: str | None = None) -> Response:  # fmt: skip
    from hdhub.workspaces import airlock

    hub = get_hub(request)
    with Session(hub.catalog) as s:
        p = gov.get_project(s, slug)
        readable(s, principal, p)
        rows = s.scalars(
            select(ProjectReview).where(ProjectReview.project_id == p.id).order_by(ProjectReview.id)
        )
        reviews = [
            {
                "reviewer": r.reviewer,
                "vote": r.vote,
                "text": r.text,
                "at": r.at.isoformat()[:16].replace("T", " "),
            }
            for r in rows
        ]
        member = principal.name in gov.members_of(s, p)
        outsider = not member and principal.name != p.created_by
        workspace = p.status == "active" and p.frozen_at is None and p.extract_version is not None
        checker = decide(principal, "releases:review").allowed
        releases = [r.to_json() for r in airlock.list_releases(hub, slug=slug)] if member or checker else []
        can_review = (decide(principal, "projects:review").allowed and outsider
                      and p.status in ("submitted", "under_review"))  # fmt: skip
        can_token = member and workspace and decide(principal, "workspaces:token").allowed
        return render(request, "project.html.j2", principal, status=status, p=view(s, p), reviews=reviews,
                      can_review=can_review, can_decide=can_review and p.status == "under_review",
                      error=error, can_token=can_token, token=token, releases=releases,
                      checker=checker)  # fmt: skip


@router.get("/projects/{slug}")
def project_page(request: Request, slug: str) -> Response:
    principal = signed_in(request, "projects:read")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    return _project_page(request, principal, slug)


@router.post("/projects/{slug}/review")
def review_page(
    request: Request,
    slug: str,
    text: Annotated[str, Form(max_length=20_000)] = "",
    vote: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    same_origin(request)
    principal = signed_in(request, "projects:review")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug,
                  detail={"vote": vote} if vote else None)  # fmt: skip
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            p = gov.get_project(s, slug)
            if p.status == "submitted":
                gov.start_review(s, p, principal.name)
            gov.review(s, p, principal.name, vote=vote or None, text=text or None)
    except HdhubError as exc:
        return _project_page(request, principal, slug, error=str(exc), status=exc.status)
    return RedirectResponse(f"/projects/{slug}", status_code=303)


@router.post("/projects/{slug}/decision")
def decision_page(request: Request, slug: str, outcome: Annotated[str, Form(max_length=24)]) -> Response:
    same_origin(request)
    principal = signed_in(request, "projects:review")
    if not isinstance(principal, Principal):
        return principal
    audit_context(
        request, resource_type="project", resource_id=slug, project_id=slug, detail={"outcome": outcome}
    )
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            gov.decide(s, gov.get_project(s, slug), principal.name, outcome)
    except HdhubError as exc:
        return _project_page(request, principal, slug, error=str(exc), status=exc.status)
    return RedirectResponse(f"/projects/{slug}", status_code=303)


@router.post("/projects/{slug}/token")
def token_page(request: Request, slug: str) -> Response:
    """A project token for the signed-in member, shown once (for hdhub.workspace.connect)."""
    from datetime import timedelta

    from hdhub.security.tokens import issue_token
    from hdhub.security.users import get_user

    same_origin(request)
    principal = signed_in(request, "workspaces:token")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    try:
        with Session(get_hub(request).catalog) as s, s.begin():
            user, project = get_user(s, principal.name), gov.get_project(s, slug)
            secret, _ = issue_token(s, user, name=f"project {slug}", ttl=timedelta(days=30), project=project)
    except HdhubError as exc:
        return _project_page(request, principal, slug, error=str(exc), status=exc.status)
    response = _project_page(request, principal, slug, token=secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/releases/{release_id}/review")
def release_review_page(request: Request, release_id: int, vote: Annotated[str, Form(max_length=8)],
                        text: Annotated[str, Form(max_length=20_000)] = "") -> Response:  # fmt: skip
    """An output checker approves or rejects a release request from the project page."""
    from hdhub.workspaces import airlock

    same_origin(request)
    principal = signed_in(request, "releases:review")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="release", resource_id=str(release_id), detail={"vote": vote})
    release = airlock.get_release(get_hub(request), release_id)
    try:
        airlock.review_release(get_hub(request), release_id, principal.name, vote, text or None)
    except HdhubError as exc:
        return _project_page(request, principal, release.project, error=str(exc), status=exc.status)
    return RedirectResponse(f"/projects/{release.project}", status_code=303)
