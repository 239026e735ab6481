"""Expiry: frozen at the end of the approval, deleted after the grace period, audit kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from hdhub.errors import Conflict
from hdhub.governance.projects import get_project
from hdhub.hub import Hub
from hdhub.security import tokens
from hdhub.security.users import get_user
from hdhub.workspaces.expiry import expire
from hdhub.workspaces.provision import provision
from tests.conftest import hdhub_ok


def test_freeze_then_delete(ws_hub: Hub) -> None:
    provision(ws_hub, "study-a", by="eve")
    with Session(ws_hub.catalog) as s, s.begin():
        project = get_project(s, "study-a")
        secret, _ = tokens.issue_token(
            s, get_user(s, "alice"), name="p", ttl=timedelta(days=1), project=project
        )
        ends = project.expires_at.replace(tzinfo=UTC)
    assert expire(ws_hub, now=ends - timedelta(days=1)).frozen == []
    report = expire(ws_hub, now=ends + timedelta(seconds=1))
    assert "study-a" in report.frozen and report.deleted == {}
    with Session(ws_hub.catalog) as s, s.begin(), pytest.raises(Exception, match="no longer valid"):
        tokens.resolve_token(s, secret)  # the token died with the workspace
    with pytest.raises(Conflict, match="expired"):
        provision(ws_hub, "study-a", by="eve")
    assert ws_hub.objects.versions("projects/study-a/")  # kept during the grace period
    later = ends + timedelta(days=31)
    report = expire(ws_hub, now=later)
    assert report.deleted["study-a"] > 0
    assert ws_hub.objects.versions("projects/study-a/") == []
    with Session(ws_hub.catalog) as s:
        project = get_project(s, "study-a")
        assert project.workspace_key is None and project.purged_at is not None  # key destroyed
        assert project.status == "expired"  # the project and its history stay


def test_cli_expire_is_audited(ws_home: Path) -> None:
    hdhub_ok("--home", str(ws_home), "project", "provision", "study-b")
    out = hdhub_ok("--home", str(ws_home), "project", "expire", "--grace-days", "0")
    assert out.strip() == "nothing to expire"
    hub = Hub.open(ws_home)
    try:
        with Session(hub.catalog) as s, s.begin():
            get_project(s, "study-b").expires_at = datetime.now(UTC) - timedelta(minutes=1)
    finally:
        hub.close()
    out = hdhub_ok("--home", str(ws_home), "project", "expire", "--grace-days", "0")
    assert "study-b: expired, workspace frozen" in out and "study-b: workspace deleted" in out
    out = hdhub_ok("--home", str(ws_home), "audit", "export")
    for action in ("project.provision", "project.freeze", "project.workspace-delete"):
        assert f'"{action}"' in out, action


def test_key_rotation_rewraps_project_keys_and_keeps_extracts_readable(ws_home: Path) -> None:
    from hdhub.workspaces.provision import current_manifest

    hdhub_ok("--home", str(ws_home), "project", "provision", "study-a")
    hdhub_ok("--home", str(ws_home), "objects", "rotate-key")
    hub = Hub.open(ws_home)
    try:
        from hdhub.workspaces.keys import project_key, project_store

        with Session(hub.catalog) as s:
            key = project_key(hub, s, get_project(s, "study-a"))
        manifest = current_manifest(hub, "study-a")
        raw = project_store(hub, key).get_bytes("projects/study-a/extract-1/person.parquet")
        assert len(raw) == manifest["tables"]["person"]["bytes"]
    finally:
        hub.close()


def test_closing_early_freezes_at_once(ws_hub: Hub) -> None:
    from hdhub.errors import Forbidden
    from hdhub.governance.projects import close

    provision(ws_hub, "study-a", by="eve")
    with Session(ws_hub.catalog) as s, s.begin():
        project = get_project(s, "study-a")
        with pytest.raises(Forbidden, match="only the principal investigator or the author"):
            close(s, project, by="bob")
        close(s, project, by="dr-martin")
        assert project.status == "closed" and project.frozen_at is not None
    with pytest.raises(Conflict, match="is closed"):
        provision(ws_hub, "study-a", by="eve")
    report = expire(ws_hub, now=datetime.now(UTC) + timedelta(days=31))
    assert report.deleted["study-a"] > 0 and ws_hub.objects.versions("projects/study-a/") == []
