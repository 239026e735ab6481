"""Provisioning runs in the catalog (hdhub.workspaces.runs): one running per project, atomically
on SQLite and PostgreSQL; runs of a stopped process interrupted; the CLI's runs recorded."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hdhub.catalog.models import Project, ProvisioningRun, utcnow
from hdhub.errors import Conflict
from hdhub.hub import Hub
from hdhub.workspaces import runs
from tests.workspaces.test_cli import hdhub


def approved(hub: Hub, slug: str) -> int:
    """An approved project with a perimeter (what start_run checks), straight in the catalog."""
    with Session(hub.catalog) as s, s.begin():
        p = Project(slug=slug, title=slug, purpose="Test.", legal_basis="MR-004", pi="dr-x",
                    status="approved", data_request="[]", duration_months=12, perimeter='{"data": []}',
                    created_by="alice")  # fmt: skip
        s.add(p)
        s.flush()
        return p.id


def states(hub: Hub, slug: str) -> list[str]:
    with Session(hub.catalog) as s:
        return list(
            s.scalars(
                select(ProvisioningRun.state)
                .join(Project, Project.id == ProvisioningRun.project_id)
                .where(Project.slug == slug)
                .order_by(ProvisioningRun.id)
            )
        )


def age(hub: Hub, run_id: int, minutes: float) -> None:
    then = utcnow() - dt.timedelta(minutes=minutes)
    with Session(hub.catalog) as s, s.begin():
        s.execute(update(ProvisioningRun).where(ProvisioningRun.id == run_id).values(heartbeat_at=then))


def test_one_running_provisioning_per_project(hub: Hub) -> None:
    """On SQLite and PostgreSQL: the partial unique index refuses a second running row, and
    only that (finished runs pile up; another project runs alongside)."""
    project_id = approved(hub, "p-one")
    approved(hub, "p-two")
    first = runs.start_run(hub, "p-one", "eve", "web")
    with pytest.raises(Conflict, match="'p-one' is being provisioned already: started by eve at"):
        runs.start_run(hub, "p-one", "frank", "cli")
    runs.start_run(hub, "p-two", "eve", "web")
    with pytest.raises(IntegrityError), Session(hub.catalog) as s, s.begin():  # the index itself
        s.add(ProvisioningRun(project_id=project_id, started_by="x", origin="cli", state="running"))
    runs.finish_run(hub.catalog, first, "failed", error="boom")
    second = runs.start_run(hub, "p-one", "frank", "cli")
    runs.finish_run(hub.catalog, second, "succeeded", version=1)
    runs.start_run(hub, "p-one", "eve", "web")
    assert states(hub, "p-one") == ["failed", "succeeded", "running"]
    latest = runs.latest_run(hub.catalog, "p-one")
    assert latest is not None and (latest.state, latest.by, latest.origin) == ("running", "eve", "web")


def test_concurrent_starts_let_exactly_one_run(hub: Hub) -> None:
    approved(hub, "p-race")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            runs.start_run(hub, "p-race", "eve", "web")
            outcomes.append("started")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused"] * 5 + ["started"]
    assert states(hub, "p-race") == ["running"]


def test_a_run_without_heartbeat_is_interrupted(hub: Hub) -> None:
    approved(hub, "p-dead")
    approved(hub, "p-alive")
    dead = runs.start_run(hub, "p-dead", "eve", "web")
    alive = runs.start_run(hub, "p-alive", "eve", "cli")
    age(hub, dead, minutes=runs.STALE_AFTER.total_seconds() / 60 + 1)
    age(hub, alive, minutes=runs.STALE_AFTER.total_seconds() / 60 - 1)  # late, not dead
    seen = runs.latest_run(hub.catalog, "p-dead")
    assert seen is not None and seen.state == "interrupted" and "stopped before the end" in (seen.error or "")
    assert runs.interrupt_stale(hub.catalog) == 1
    assert runs.interrupt_stale(hub.catalog) == 0
    assert states(hub, "p-dead") == ["interrupted"] and states(hub, "p-alive") == ["running"]
    with Session(hub.catalog) as s:
        row = s.get(ProvisioningRun, dead)
        assert row is not None and row.finished_at == row.heartbeat_at  # its last sign of life
    # A start marks its own project's dead run in the same transaction, then runs.
    alive_again = runs.start_run(hub, "p-dead", "eve", "web")
    age(hub, alive_again, minutes=60)
    runs.start_run(hub, "p-dead", "frank", "web")
    assert states(hub, "p-dead") == ["interrupted", "interrupted", "running"]


def test_a_running_provisioning_beats_and_records_its_outcome(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hdhub.workspaces.provision import ExtractResult

    approved(hub, "p-beat")
    monkeypatch.setattr(runs, "HEARTBEAT", dt.timedelta(seconds=0.05))

    def slow(hub: Hub, slug: str, by: str, run: int | None = None) -> ExtractResult:
        time.sleep(0.5)
        return ExtractResult(slug, 7, "prefix/", 10, 0, {}, 0.5)

    monkeypatch.setattr("hdhub.workspaces.provision.provision", slow)
    result = runs.provision_recorded(hub, "p-beat", "eve", origin="cli")
    assert result.version == 7
    with Session(hub.catalog) as s:
        row = s.scalar(select(ProvisioningRun))
        assert row is not None and (row.state, row.extract_version, row.error) == ("succeeded", 7, None)
        assert row.heartbeat_at > row.started_at and row.finished_at is not None

    def interrupted(hub: Hub, slug: str, by: str, run: int | None = None) -> ExtractResult:
        raise KeyboardInterrupt

    monkeypatch.setattr("hdhub.workspaces.provision.provision", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runs.provision_recorded(hub, "p-beat", "eve")
    last = runs.latest_run(hub.catalog, "p-beat")
    assert last is not None and (last.state, last.error) == ("interrupted", "stopped: KeyboardInterrupt")


def test_errors_are_bounded() -> None:
    assert len(runs.describe(RuntimeError("x" * 10_000))) == runs.ERROR_CHARS
    assert runs.describe(Conflict("project 'p' is frozen")) == "project 'p' is frozen"
    column = ProvisioningRun.__table__.c.error.type
    assert isinstance(column, sa.String) and column.length == runs.ERROR_CHARS


def test_the_cli_records_its_runs_and_waits_its_turn(ws_home: Path) -> None:
    hub = Hub.open(ws_home)
    try:
        run_id = runs.start_run(hub, "study-a", "eve", "web")  # the page's run, in progress
        r = hdhub("--home", str(ws_home), "project", "provision", "study-a")
        assert r.exit_code != 0 and "is being provisioned already: started by eve" in r.output
        runs.finish_run(hub.catalog, run_id, "interrupted", error="stopped by the test")
        r = hdhub("--home", str(ws_home), "project", "provision", "study-a")
        assert r.exit_code == 0, r.output
        run = runs.latest_run(hub.catalog, "study-a")
        # Version 1 stays the interrupted run's: a run taken for stopped may still be writing it.
        assert run is not None and (run.state, run.origin, run.version) == ("succeeded", "cli", 2)
        assert run.persons and run.by
    finally:
        hub.close()
