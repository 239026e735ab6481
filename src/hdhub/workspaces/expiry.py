"""Expiry: at the end of its approval a workspace is frozen, then deleted after a grace period.

``hdhub project expire`` (run it daily, e.g. from cron or a systemd timer):

1. an active project whose approval has ended becomes *expired* and its workspace is frozen:
   its project tokens stop working at once, nothing can be read, provisioned or released;
2. once the grace period has passed (default 30 days, for pending release requests and
   disputes), every file under the project's prefix is deleted for good and the project's
   key is destroyed — any copy left anywhere, backups included, can no longer be decrypted.

The project, its reviews, extracts' manifests and the audit trail stay in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import Project, aware, utcnow
from hdhub.hub import Hub
from hdhub.workspaces.keys import project_key, project_prefix, project_store

DEFAULT_GRACE_DAYS = 30


@dataclass
class ExpiryReport:
    frozen: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)  # project -> object versions removed


def expire(hub: Hub, *, grace_days: int = DEFAULT_GRACE_DAYS, now: datetime | None = None) -> ExpiryReport:
    now = now or datetime.now(UTC)
    report = ExpiryReport()
    with Session(hub.catalog) as s, s.begin():
        for p in s.scalars(select(Project).where(Project.status.in_(("approved", "active")))):
            if p.expires_at is not None and aware(p.expires_at) <= now:
                p.status, p.frozen_at = "expired", now
                report.frozen.append(p.slug)
    with Session(hub.catalog) as s, s.begin():
        due = s.scalars(
            select(Project).where(Project.frozen_at.is_not(None), Project.purged_at.is_(None))
        ).all()
        for p in due:
            if aware(p.frozen_at) + timedelta(days=grace_days) > now:  # type: ignore[arg-type]
                continue
            report.deleted[p.slug] = delete_workspace(hub, s, p)
    return report


def delete_workspace(hub: Hub, s: Session, project: Project) -> int:
    """Delete every file of the project's workspace, then destroy its key."""
    removed = 0
    if project.workspace_key is not None:
        store = project_store(hub, project_key(hub, s, project))
        for info in store.versions(project_prefix(project.slug)):
            store.delete(info.key, info.version_id)
            removed += 1
    project.workspace_key = None
    project.purged_at = utcnow()
    if project.frozen_at is None:
        project.frozen_at = project.purged_at
    return removed
