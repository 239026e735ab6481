"""Research projects over HTTP: requests, the committee's review, the public register.

Every step is an audit event naming the project (the middleware writes it). The register
is public — no login — as the CNIL asks of health data warehouses.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from hdhub.api.deps import DbSession as Db
from hdhub.api.deps import audit_context, get_hub, require
from hdhub.catalog.db import MAX_ROW_ID
from hdhub.catalog.models import Project
from hdhub.errors import Forbidden
from hdhub.governance import projects as gov
from hdhub.hub import Hub
from hdhub.security.authz import decide
from hdhub.security.principal import Principal
from hdhub.warehouse.connection import read_only

router = APIRouter(prefix="/api/v1", tags=["projects"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataItemIn(_Body):
    table: str = Field(max_length=64)
    columns: list[str] = Field(min_length=1, max_length=100)
    justification: str = Field(max_length=5_000)


class CohortRef(_Body):
    name: str = Field(max_length=200)
    version: int = Field(ge=1, le=MAX_ROW_ID)


class ProjectIn(_Body):
    slug: str = Field(max_length=48)
    title: str = Field(max_length=300)
    purpose: str = Field(max_length=20_000)
    legal_basis: str = Field(
        max_length=100, description="CNIL formality or reference methodology, e.g. MR-004"
    )
    principal_investigator: str = Field(max_length=150)
    members: list[str] = Field(default_factory=list, max_length=200)
    externals: list[str] = Field(default_factory=list, max_length=50)
    cohort: CohortRef | None = None
    data: list[DataItemIn] = Field(max_length=50)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    duration_months: int

    def to_request(self) -> gov.ProjectRequest:
        """The service's request (the API and the request form both send this)."""
        return gov.ProjectRequest(
            slug=self.slug, title=self.title, purpose=self.purpose, legal_basis=self.legal_basis,
            pi=self.principal_investigator, duration_months=self.duration_months,
            data=tuple(gov.DataItem(d.table, tuple(d.columns), d.justification) for d in self.data),
            members=tuple(self.members), externals=tuple(self.externals),
            cohort=(self.cohort.name, self.cohort.version) if self.cohort else None,
            date_from=self.date_from, date_to=self.date_to,
        )  # fmt: skip


class ReviewIn(_Body):
    vote: str | None = Field(None, description="approve, reject or changes")
    text: str | None = Field(None, max_length=20_000)


class DecisionIn(_Body):
    outcome: str = Field(description="approved, rejected or changes_requested")
    keep_dates: bool = Field(False, description="approval only: the extract keeps real dates (no shift)")


def view(s: Session, p: Project) -> dict[str, Any]:
    return {
        "project": p.slug,
        "title": p.title,
        "purpose": p.purpose,
        "legal_basis": p.legal_basis,
        "status": p.status,
        "principal_investigator": p.pi,
        "members": gov.members_of(s, p),
        "data": orjson.loads(p.data_request),
        "cohort": {"owner": p.cohort_owner, "name": p.cohort_name, "version": p.cohort_version}
        if p.cohort_name
        else None,
        "perimeter": orjson.loads(p.perimeter) if p.perimeter else None,
        "votes": gov.votes(s, p),
        "submitted_at": p.submitted_at.isoformat() if p.submitted_at else None,
        "decided_at": p.decided_at.isoformat() if p.decided_at else None,
        "expires_at": p.expires_at.isoformat() if p.expires_at else None,
    }


DECIDED = ("approved", "active", "expired", "closed")


def readable(s: Session, principal: Principal, p: Project) -> None:
    """Members and the author read their project; the committee and the DPO read any; those
    who provision workspaces read the approved ones (their perimeter)."""
    if principal.roles & {"committee", "dpo"}:
        return
    if p.status in DECIDED and decide(principal, "workspaces:provision").allowed:
        return
    if principal.name not in gov.members_of(s, p) and principal.name != p.created_by:
        raise Forbidden(f"{principal.name}: not a member of project {p.slug!r}")


@router.post("/projects", status_code=201, summary="Request a research project (a draft)")
def create(request: Request, s: Db, principal: Annotated[Principal, Depends(require("projects:request"))],
           body: ProjectIn) -> JSONResponse:  # fmt: skip
    p = gov.create_project(s, body.to_request(), created_by=principal.name)
    audit_context(request, resource_type="project", resource_id=p.slug, project_id=p.slug)
    return JSONResponse(view(s, p), status_code=201)


@router.get("/projects/{slug}", summary="A project: request, members, votes, perimeter")
def read(request: Request, s: Db, principal: Annotated[Principal, Depends(require("projects:read"))],
         slug: str) -> dict[str, Any]:  # fmt: skip
    p = gov.get_project(s, slug)
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    readable(s, principal, p)
    return view(s, p)


@router.post("/projects/{slug}/submit", summary="Submit a draft (or a request sent back) to the committee")
def submit(request: Request, s: Db, principal: Annotated[Principal, Depends(require("projects:request"))],
           slug: str) -> dict[str, Any]:  # fmt: skip
    p = gov.get_project(s, slug)
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    gov.submit(s, p, by=principal.name)
    return view(s, p)


@router.post(
    "/projects/{slug}/reviews",
    status_code=201,
    summary="Comment or vote (committee members outside the project)",
)
def review(request: Request, s: Db, principal: Annotated[Principal, Depends(require("projects:review"))],
           slug: str, body: ReviewIn) -> JSONResponse:  # fmt: skip
    p = gov.get_project(s, slug)
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug,
                  detail={"vote": body.vote} if body.vote else None)  # fmt: skip
    if p.status == "submitted":  # the first review opens it
        gov.start_review(s, p, principal.name)
    gov.review(s, p, principal.name, vote=body.vote, text=body.text)
    return JSONResponse(view(s, p), status_code=201)


@router.post("/projects/{slug}/decision", summary="The committee's decision; approval fixes the perimeter")
def decision(request: Request, s: Db, principal: Annotated[Principal, Depends(require("projects:review"))],
             slug: str, body: DecisionIn) -> dict[str, Any]:  # fmt: skip
    p = gov.get_project(s, slug)
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug,
                  detail={"outcome": body.outcome})  # fmt: skip
    gov.decide(s, p, principal.name, body.outcome, keep_dates=body.keep_dates)
    return view(s, p)


@router.post("/projects/{slug}/close", summary="The PI or the author closes the project early")
def close(request: Request, s: Db, principal: Annotated[Principal, Depends(require("projects:request"))],
          slug: str) -> dict[str, Any]:  # fmt: skip
    p = gov.get_project(s, slug)
    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    gov.close(s, p, by=principal.name)
    return view(s, p)


@router.get("/register", summary="The public register of research projects (no login)")
def public_register(s: Db) -> list[dict[str, Any]]:
    return gov.register(s)


page_router = APIRouter(tags=["projects"])


@page_router.get("/register", response_class=HTMLResponse, summary="The public register as a page (no login)")
def register_page(request: Request, s: Db) -> HTMLResponse:
    """Public: anyone reads it; a signed-in browser sees its menu around it (never required)."""
    from hdhub.api.pages import render, session_principal

    principal = session_principal(request)  # before the register's query: one SQLite writer at a time
    return render(request, "register.html.j2", principal, projects=gov.register(s))


@router.post("/projects/{slug}/count", summary="Exact counts of an approved project's cohort (its members)")
def project_count(
    request: Request,
    hub: Annotated[Hub, Depends(get_hub)],
    principal: Annotated[Principal, Depends(require("projects:count"))],
    slug: str,
) -> dict[str, Any]:
    from hdhub.cohorts.service import project_count as count

    audit_context(request, resource_type="project", resource_id=slug, project_id=slug)
    with read_only(hub.settings.warehouse_url_resolved) as con:
        result = count(hub, con, principal, slug)
    audit_context(
        request, detail={"persons": result["persons"], "excluded": result["excluded_by_opposition"]}
    )
    return result
