"""The output airlock: results leave a workspace only through here.

A member asks to release a file (``hdhub workspace release-request P FILE`` or the API with
the project token). The automatic statistical disclosure checks
(:mod:`hdhub.workspaces.output_checks`: minimum cell count, dominance, p % rule, as in
ACRO/SACRO) mark it pass, fail or review; the file waits, encrypted under the project's key.
Two output checkers other than the author must approve it — a single rejection ends the
request, and a file failing the checks cannot be approved (the researcher fixes the table
and asks again). A released file is copied out of the project prefix, so it survives the
workspace's deletion, and carries its SHA-256. Every step is audited by the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.db import is_row_id
from hdhub.catalog.models import Project, ReleaseRequest, ReleaseReview, utcnow
from hdhub.errors import Conflict, Forbidden, NotFound, ValidationError
from hdhub.hub import Hub
from hdhub.workspaces.keys import project_key, project_prefix, project_store
from hdhub.workspaces.output_checks import check_bytes

APPROVALS_NEEDED = 2
VOTES = ("approve", "reject")


@dataclass(frozen=True)
class Release:
    id: int
    project: str
    name: str
    status: str  # pending | released | rejected
    check_status: str  # pass | fail | review
    checks: list[dict[str, Any]]
    sha256: str
    size: int
    author: str
    approvals: list[str]

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _open_project(s: Session, slug: str) -> Project:
    from hdhub.governance.projects import get_project

    project = get_project(s, slug)
    if project.status != "active" or project.frozen_at is not None:
        raise Conflict(f"project {slug!r} has no open workspace")
    return project


def _view(s: Session, row: ReleaseRequest, slug: str) -> Release:
    approvals = list(
        s.scalars(
            select(ReleaseReview.reviewer).where(
                ReleaseReview.release_id == row.id, ReleaseReview.vote == "approve"
            )
        )
    )
    checks = orjson.loads(row.checks)
    return Release(row.id, slug, row.name, row.status, row.check_status, checks["checks"], row.sha256,
                   row.size, row.author, approvals)  # fmt: skip


def request_release(hub: Hub, slug: str, author: str, name: str, data: bytes) -> Release:
    """Check a file and keep it, encrypted, until two output checkers decide."""
    result = check_bytes(name, data)  # ValidationError for a hostile name, 413 when too large
    with Session(hub.catalog) as s, s.begin():
        project = _open_project(s, slug)
        key = project_key(hub, s, project)
        row = ReleaseRequest(
            project_id=project.id, author=author, name=result.name, object_key="", sha256=result.sha256,
            size=len(data), checks=orjson.dumps(result.to_json()).decode(), check_status=result.status,
            status="pending",
        )  # fmt: skip
        s.add(row)
        s.flush()
        row.object_key = f"{project_prefix(slug)}releases/{row.id}/{result.name}"
        project_store(hub, key).put(row.object_key, data, content_type="application/octet-stream")
        return _view(s, row, slug)


def _release_row(s: Session, release_id: int) -> tuple[ReleaseRequest, Project]:
    row = s.get(ReleaseRequest, release_id) if is_row_id(release_id) else None
    if row is None:
        raise NotFound(f"no release request {release_id}")
    return row, s.get(Project, row.project_id)  # type: ignore[return-value]


def review_release(hub: Hub, release_id: int, reviewer: str, vote: str, text: str | None = None) -> Release:
    """An output checker's decision; the second approval releases the file."""
    if vote not in VOTES:
        raise ValidationError(f"vote: one of {', '.join(VOTES)}")
    with Session(hub.catalog) as s, s.begin():
        row, project = _release_row(s, release_id)
        if reviewer == row.author:
            raise Forbidden(f"{reviewer}: the author of a release request may not review it")
        if row.status != "pending":
            raise Conflict(f"release request {release_id} is already {row.status}")
        if vote == "approve" and row.check_status == "fail":
            raise Conflict(
                f"release request {release_id} fails the disclosure checks: it cannot be approved; "
                "the author fixes the table and asks again"
            )
        done = s.scalar(
            select(ReleaseReview.id).where(
                ReleaseReview.release_id == row.id, ReleaseReview.reviewer == reviewer
            )
        )
        if done is not None:
            raise Conflict(f"{reviewer} has already reviewed release request {release_id}")
        s.add(ReleaseReview(release_id=row.id, reviewer=reviewer, vote=vote, text=text))
        s.flush()
        view = _view(s, row, project.slug)
        if vote == "reject":
            row.status, row.decided_at = "rejected", utcnow()
        elif len(view.approvals) >= APPROVALS_NEEDED:
            key = project_key(hub, s, project)
            data = project_store(hub, key).get_bytes(row.object_key)
            if hashlib.sha256(data).hexdigest() != row.sha256:
                raise Conflict(f"release request {release_id}: the stored file no longer matches its SHA-256")
            hub.objects.put(released_key(project.slug, row), data, content_type="application/octet-stream",
                            metadata={"sha256": row.sha256})  # fmt: skip
            row.status, row.decided_at = "released", utcnow()
        return _view(s, row, project.slug)


def released_key(slug: str, row: ReleaseRequest) -> str:
    return f"releases/{slug}/{row.id}/{row.name}"


def get_release(hub: Hub, release_id: int) -> Release:
    with Session(hub.catalog) as s:
        row, project = _release_row(s, release_id)
        return _view(s, row, project.slug)


def list_releases(hub: Hub, *, slug: str | None = None, status: str | None = None) -> list[Release]:
    with Session(hub.catalog) as s:
        stmt = select(ReleaseRequest, Project.slug).join(Project, Project.id == ReleaseRequest.project_id)
        if slug:
            stmt = stmt.where(Project.slug == slug)
        if status:
            stmt = stmt.where(ReleaseRequest.status == status)
        return [_view(s, row, p) for row, p in s.execute(stmt.order_by(ReleaseRequest.id))]


def release_file(hub: Hub, release_id: int) -> tuple[Release, bytes]:
    """The file: from the project's prefix while pending (for checkers), from the release
    area once released."""
    with Session(hub.catalog) as s:
        row, project = _release_row(s, release_id)
        view = _view(s, row, project.slug)
        if row.status == "released":
            return view, hub.objects.get_bytes(released_key(project.slug, row))
        if row.status == "rejected":
            raise Conflict(f"release request {release_id} was rejected")
        key = project_key(hub, s, project)
        return view, project_store(hub, key).get_bytes(row.object_key)
