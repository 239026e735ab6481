"""Lifecycle rules (transition to a colder class, expiration), applied on demand.

``hdhub objects lifecycle run`` evaluates every rule against every stored version on
either backend; it is meant to run daily (cron, systemd timer). Expiration removes a
version for good, and never one under retention or legal hold: those are reported as
skipped and retried on the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hdhub.config.settings import LifecycleRule
from hdhub.errors import ObjectLocked
from hdhub.objects.base import ObjectStore


@dataclass
class LifecycleReport:
    transitioned: list[tuple[str, str, str]] = field(default_factory=list)  # key, version, class
    expired: list[tuple[str, str]] = field(default_factory=list)
    skipped_locked: list[tuple[str, str, str]] = field(default_factory=list)  # key, version, why


def apply_lifecycle(
    store: ObjectStore, rules: Sequence[LifecycleRule], *, now: datetime | None = None, dry_run: bool = False
) -> LifecycleReport:
    now = now or datetime.now(UTC)
    report = LifecycleReport()
    for rule in rules:
        for version in store.versions(rule.prefix):
            if version.delete_marker:
                continue
            age_days = (now - version.created).total_seconds() / 86400
            if rule.expire_after_days is not None and age_days >= rule.expire_after_days:
                why = store.head(version.key, version.version_id).locked(now)
                if why is None and not dry_run:
                    try:
                        store.delete(version.key, version.version_id)
                    except ObjectLocked as exc:
                        why = exc.message
                if why:
                    report.skipped_locked.append((version.key, version.version_id, why))
                else:
                    report.expired.append((version.key, version.version_id))
                continue
            due = rule.transition_after_days is not None and age_days >= rule.transition_after_days
            if due and version.storage_class != rule.storage_class:
                if not dry_run:
                    store.transition(version.key, version.version_id, rule.storage_class)
                report.transitioned.append((version.key, version.version_id, rule.storage_class))
    return report
