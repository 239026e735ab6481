"""Research projects: the request, its lifecycle, the committee's review, the public register.

draft → submitted → under_review → approved / rejected / changes_requested → active →
expired / closed; changes_requested goes back to submitted. A request names its purpose,
legal basis (a CNIL formality or reference methodology, e.g. MR-004), its principal
investigator (a clinician of the group), members, a saved cohort definition, the data
requested (OMOP tables and columns, each with a justification), a date range and a duration.
Committee members comment and vote; nobody reviews a project they belong to; the approval
fixes the perimeter. Each function changes one project in the caller's session; the caller
authorises and audits (CLI and API alike).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import CohortDefinitionRecord, Project, ProjectMember, ProjectReview, utcnow
from hdhub.errors import Conflict, Forbidden, NotFound, ValidationError
from hdhub.security.users import get_user

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"submitted"}),
    "submitted": frozenset({"under_review"}),
    "under_review": frozenset({"approved", "rejected", "changes_requested"}),
    "changes_requested": frozenset({"submitted"}),
    "approved": frozenset({"active"}),
    "active": frozenset({"expired", "closed"}),
    "rejected": frozenset(),
    "expired": frozenset(),
    "closed": frozenset(),
}
VOTES = ("approve", "reject", "changes")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{2,47}\Z")
MAX_MONTHS = 120


@dataclass(frozen=True)
class DataItem:
    table: str
    columns: tuple[str, ...]
    justification: str


@dataclass(frozen=True)
class ProjectRequest:
    slug: str
    title: str
    purpose: str
    legal_basis: str
    pi: str
    duration_months: int
    data: tuple[DataItem, ...]
    members: tuple[str, ...] = ()
    externals: tuple[str, ...] = ()  # partners outside the group, under the PI
    cohort: tuple[str, int] | None = None  # (name, version) of the creator's saved definition
    date_from: dt.date | None = None
    date_to: dt.date | None = None


def _check_data(items: tuple[DataItem, ...]) -> list[dict[str, Any]]:
    from hdhub.warehouse.schema import cdm_table

    if not items:
        raise ValidationError("the request names no data: give tables and columns, each with a justification")
    out = []
    for item in items:
        table = cdm_table(item.table)  # NotFound names an unknown table
        known = {c.name for c in table.columns}
        unknown = sorted(set(item.columns) - known)
        if unknown:
            raise ValidationError(f"{table.name}: no column {', '.join(unknown)} in OMOP CDM 5.4")
        if not item.columns:
            raise ValidationError(f"{table.name}: name the columns requested")
        if len(item.justification.strip()) < 10:
            raise ValidationError(f"{table.name}: justify the request (at least a sentence)")
        out.append(
            {"table": table.name, "columns": list(item.columns), "justification": item.justification.strip()}
        )
    return out


def _checked(s: Session, r: ProjectRequest, owner: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The request's data items and members once every rule holds (the slug aside); ``owner``
    is the author, whose saved cohort definition the request names."""
    for field, value, limit in (
        ("title", r.title, 300),
        ("purpose", r.purpose, 20_000),
        ("legal_basis", r.legal_basis, 100),
    ):
        if not value.strip() or len(value) > limit:
            raise ValidationError(f"{field}: 1 to {limit} characters")
    if not 1 <= r.duration_months <= MAX_MONTHS:
        raise ValidationError(f"duration_months: 1 to {MAX_MONTHS}")
    if r.date_from and r.date_to and r.date_from > r.date_to:
        raise ValidationError("the date range ends before it starts")
    pi = get_user(s, r.pi)
    if pi.disabled or "clinician" not in pi.role_names:
        raise ValidationError(
            f"the principal investigator {r.pi!r} must be an enabled clinician of the group"
        )
    for name in r.members:
        if get_user(s, name).disabled:
            raise ValidationError(f"member {name!r} is disabled")
    data = _check_data(r.data)
    if r.cohort is not None:
        name, version = r.cohort
        found = s.scalar(
            select(CohortDefinitionRecord.id).where(
                CohortDefinitionRecord.owner == owner,
                CohortDefinitionRecord.name == name,
                CohortDefinitionRecord.version == version,
            )
        )
        if found is None:
            raise NotFound(f"no saved cohort definition {name!r} version {version} of {owner}")
    members = (
        {r.pi: "pi"} | {m: "member" for m in r.members if m != r.pi} | {e: "external" for e in r.externals}
    )
    return data, members


def _fill(project: Project, r: ProjectRequest, data: list[dict[str, Any]], owner: str) -> None:
    project.title, project.purpose = r.title.strip(), r.purpose.strip()
    project.legal_basis, project.pi = r.legal_basis.strip(), r.pi
    project.cohort_owner = owner if r.cohort else None
    project.cohort_name = r.cohort[0] if r.cohort else None
    project.cohort_version = r.cohort[1] if r.cohort else None
    project.data_request = orjson.dumps(data).decode()
    project.date_from = r.date_from.isoformat() if r.date_from else None
    project.date_to = r.date_to.isoformat() if r.date_to else None
    project.duration_months = r.duration_months


def create_project(s: Session, request: ProjectRequest, created_by: str) -> Project:
    """A draft project; the PI must be an enabled clinician, members existing users."""
    r = request
    if not SLUG.match(r.slug):
        raise ValidationError("slug: 3-48 lowercase letters, digits or '-'")
    if s.scalar(select(Project.id).where(Project.slug == r.slug)) is not None:
        raise Conflict(f"a project {r.slug!r} already exists")
    data, members = _checked(s, r, created_by)
    project = Project(slug=r.slug, status="draft", created_by=created_by)
    _fill(project, r, data, created_by)
    s.add(project)
    s.flush()
    s.add_all(ProjectMember(project_id=project.id, username=u, role=role) for u, role in members.items())
    s.flush()
    return project


EDITABLE = ("draft", "changes_requested")


def update_project(s: Session, project: Project, request: ProjectRequest, by: str) -> None:
    """The author rewrites a draft, or a request the committee sent back, under the rules of
    :func:`create_project` (the slug stays; the request's is ignored). Reviews are kept."""
    if by != project.created_by:
        raise Forbidden(f"{by}: only the author edits project {project.slug!r}")
    if project.status not in EDITABLE:
        raise Conflict(f"project {project.slug!r} is {project.status}: it can no longer be edited")
    data, members = _checked(s, request, project.created_by)
    _fill(project, request, data, project.created_by)
    current = {
        m.username: m for m in s.scalars(select(ProjectMember).where(ProjectMember.project_id == project.id))
    }
    for username, row in current.items():
        if username not in members:
            s.delete(row)
        else:
            row.role = members[username]
    s.add_all(
        ProjectMember(project_id=project.id, username=u, role=role)
        for u, role in members.items()
        if u not in current
    )
    s.flush()


def get_project(s: Session, slug: str) -> Project:
    project = s.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        raise NotFound(f"no project {slug!r}")
    return project


def members_of(s: Session, project: Project) -> dict[str, str]:
    rows = s.execute(
        select(ProjectMember.username, ProjectMember.role).where(ProjectMember.project_id == project.id)
    )
    return {username: role for username, role in rows}


def _move(project: Project, to: str) -> None:
    if to not in TRANSITIONS[project.status]:
        raise Conflict(f"project {project.slug!r} is {project.status}: it cannot become {to}")
    project.status = to


def submit(s: Session, project: Project, by: str) -> None:
    """The PI or the author submits a draft, or a request the committee sent back."""
    if by not in (project.pi, project.created_by):
        raise Forbidden(
            f"{by}: only the principal investigator or the author submits project {project.slug!r}"
        )
    _move(project, "submitted")
    project.submitted_at = utcnow()


def _check_reviewer(s: Session, project: Project, reviewer: str) -> None:
    if reviewer in members_of(s, project) or reviewer == project.created_by:
        raise Forbidden(f"{reviewer} belongs to project {project.slug!r} and may not review it")


def start_review(s: Session, project: Project, reviewer: str) -> None:
    _check_reviewer(s, project, reviewer)
    _move(project, "under_review")


def review(
    s: Session, project: Project, reviewer: str, *, vote: str | None = None, text: str | None = None
) -> ProjectReview:
    """A comment (text) or a vote (approve / reject / changes, with an optional text)."""
    _check_reviewer(s, project, reviewer)
    if project.status != "under_review":
        raise Conflict(f"project {project.slug!r} is {project.status}, not under review")
    if vote is not None and vote not in VOTES:
        raise ValidationError(f"vote: one of {', '.join(VOTES)}")
    if vote is None and not (text or "").strip():
        raise ValidationError("a review is a vote or a comment")
    row = ProjectReview(
        project_id=project.id, reviewer=reviewer, kind="vote" if vote else "comment", vote=vote, text=text
    )
    s.add(row)
    s.flush()
    return row


def votes(s: Session, project: Project) -> dict[str, str]:
    """Each reviewer's latest vote."""
    rows = s.scalars(
        select(ProjectReview)
        .where(ProjectReview.project_id == project.id, ProjectReview.kind == "vote")
        .order_by(ProjectReview.id)
    )
    return {r.reviewer: r.vote for r in rows if r.vote}


def decide(s: Session, project: Project, by: str, outcome: str, *, keep_dates: bool = False) -> None:
    """The committee's decision. Approval needs a majority of approving votes and fixes the
    perimeter: the cohort version, tables and columns, dates, the expiry, and whether the
    extract keeps real dates (``keep_dates``; by default each patient's dates are shifted)."""
    _check_reviewer(s, project, by)
    if outcome not in ("approved", "rejected", "changes_requested"):
        raise ValidationError("outcome: approved, rejected or changes_requested")
    if project.status != "under_review":
        raise Conflict(f"project {project.slug!r} is {project.status}: it cannot become {outcome}")
    if outcome == "approved":
        cast = list(votes(s, project).values())
        if not cast or cast.count("approve") * 2 <= len(cast):
            raise Conflict(
                f"project {project.slug!r}: approval needs a majority of approving votes "
                f"({cast.count('approve')} of {len(cast)})"
            )
    _move(project, outcome)
    project.decided_at = utcnow()
    if outcome == "approved":
        project.expires_at = project.decided_at + dt.timedelta(days=round(project.duration_months * 30.44))
        cohort = {
            "owner": project.cohort_owner,
            "name": project.cohort_name,
            "version": project.cohort_version,
        }
        project.perimeter = orjson.dumps(
            {
                "cohort": cohort if project.cohort_name else None,
                "data": orjson.loads(project.data_request),
                "date_from": project.date_from,
                "date_to": project.date_to,
                "keep_dates": keep_dates,
                "expires_at": project.expires_at.isoformat(),
            }
        ).decode()  # fmt: skip


def close(s: Session, project: Project, by: str) -> None:
    """The PI or the author ends an active (or approved) project early: its workspace is
    frozen at once and deleted after the grace period, as at expiry (hdhub.workspaces.expiry)."""
    if by not in (project.pi, project.created_by):
        raise Forbidden(
            f"{by}: only the principal investigator or the author closes project {project.slug!r}"
        )
    if project.status == "approved":
        project.status = "active"  # approved but never provisioned: closing is still allowed
    _move(project, "closed")
    project.frozen_at = utcnow()


def register(s: Session) -> list[dict[str, Any]]:
    """The public register (CNIL transparency): every project once submitted."""
    rows = s.scalars(
        select(Project).where(Project.status != "draft").order_by(Project.submitted_at, Project.id)
    )
    return [
        {
            "project": p.slug,
            "title": p.title,
            "purpose": p.purpose,
            "principal_investigator": p.pi,
            "legal_basis": p.legal_basis,
            "status": p.status,
            "submitted": p.submitted_at.date().isoformat() if p.submitted_at else None,
            "decided": p.decided_at.date().isoformat() if p.decided_at else None,
            "expires": p.expires_at.date().isoformat() if p.expires_at else None,
        }
        for p in rows
    ]
