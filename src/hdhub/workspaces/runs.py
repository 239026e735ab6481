"""Provisioning runs recorded in the catalog (``provisioning_runs``): what the project's page
shows — running, succeeded, failed with its error, interrupted — whichever server worker, or
``hdhub project provision`` on the command line, ran it, and after a server restart.

**One run at a time.** :func:`start_run` inserts the ``running`` row; a partial unique index
(one ``running`` row per project) makes a second start fail its INSERT, atomically, on
SQLite and PostgreSQL alike, from any process or host. The caller gets a Conflict naming
who started the run in progress and when.

**A run whose process died.** A run that is still going updates its ``heartbeat_at`` every
:data:`HEARTBEAT` (a small thread beside the provisioning, stopped when it ends). A
``running`` row whose heartbeat is older than :data:`STALE_AFTER` belongs to a process that
stopped — killed by a restart, a crash, a lost machine — and is *interrupted*: the page shows
it so at once, the next start of that project marks it so (in the transaction that inserts
the new run) and ``hdhub serve`` marks every such row so when it starts
(:func:`interrupt_stale`). This rule needs no knowledge of which process, worker, container
or host ran the provisioning, so it is right with several workers, several hosts sharing a
PostgreSQL catalog, and CLI runs; its cost is that a run killed by a restart shows as running
(with its last sign of life) for up to :data:`STALE_AFTER` before it can be started again.
The heartbeat is written with the clock of the host that runs the provisioning and compared
with the reader's: hosts must agree within minutes (NTP), far below :data:`STALE_AFTER`.
Only a process frozen longer than that (while still alive) could be taken for dead, and a
second run started. Both are then safe: each run reserves its own extract version when it
starts (:func:`next_version`; numbers are never reused), the clean-up at a run's start
spares the extracts of running runs, and only a run still ``running`` may switch the project
to its extract — the one taken for dead gets a Conflict when it wakes up, deletes its own
files and records its outcome.

The workspace itself is safe whatever happens: provisioning writes the new extract's files,
then switches the project to it in one catalog transaction at its very end, so a failed or
interrupted run leaves the workspace on its previous extract.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hdhub.catalog.models import Project, ProjectExtract, ProvisioningRun, aware, utcnow
from hdhub.errors import Conflict, HdhubError
from hdhub.hub import Hub

if TYPE_CHECKING:
    from hdhub.workspaces.provision import ExtractResult

log = logging.getLogger(__name__)

HEARTBEAT = dt.timedelta(seconds=30)
STALE_AFTER = dt.timedelta(minutes=5)
ERROR_CHARS = 2000  # the column's size
ORIGINS = ("web", "cli")
STOPPED = (
    f"the process running it stopped before the end (no sign of life for {STALE_AFTER.seconds // 60} min)"
)


@dataclass(frozen=True)
class RunStatus:
    """A provisioning run as the project's page shows it (``state`` as it is now: a
    ``running`` row without a recent heartbeat is ``interrupted``)."""

    id: int
    project: str
    by: str
    origin: str
    state: str  # running | succeeded | failed | interrupted
    started: dt.datetime
    heartbeat: dt.datetime
    finished: dt.datetime | None
    error: str | None
    version: int | None  # the extract made (succeeded runs)
    persons: int | None


def describe(exc: BaseException) -> str:
    """An error as a run records it (bounded to the column)."""
    if isinstance(exc, HdhubError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _stale_before(now: dt.datetime) -> dt.datetime:
    return now - STALE_AFTER


def _interrupt(s: Session, now: dt.datetime, *where: ColumnElement[bool]) -> int:
    """Mark ``running`` rows without a heartbeat since STALE_AFTER as interrupted (one UPDATE,
    whose condition PostgreSQL checks again on a row a heartbeat is updating)."""
    result = s.execute(
        update(ProvisioningRun)
        .where(ProvisioningRun.state == "running", ProvisioningRun.heartbeat_at < _stale_before(now), *where)
        .values(state="interrupted", finished_at=ProvisioningRun.heartbeat_at, error=STOPPED)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount  # type: ignore[attr-defined, no-any-return]


def interrupt_stale(catalog: Engine, now: dt.datetime | None = None) -> int:
    """At server start: every run left ``running`` by a process that stopped (no heartbeat
    for STALE_AFTER) becomes ``interrupted``. Returns how many."""
    with Session(catalog) as s, s.begin():
        return _interrupt(s, now or utcnow())


def start_run(hub: Hub, slug: str, by: str, origin: str) -> int:
    """Record a new ``running`` provisioning of ``slug`` (approved or active) and return its
    id; Conflict when one is running already. Atomic: see the module docstring."""
    from hdhub.workspaces.provision import check_provisionable

    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}")
    now = utcnow()
    try:
        with Session(hub.catalog) as s, s.begin():
            project = check_provisionable(s, slug)
            _interrupt(s, now, ProvisioningRun.project_id == project.id)
            run = ProvisioningRun(project_id=project.id, started_by=by, origin=origin, state="running",
                                  started_at=now, heartbeat_at=now,
                                  extract_version=next_version(s, project))  # fmt: skip
            s.add(run)
            s.flush()
            run_id = run.id
    except IntegrityError:
        current = latest_run(hub.catalog, slug)
        if current is not None and current.state == "running":
            via = " from the command line" if current.origin == "cli" else ""
            raise Conflict(
                f"project {slug!r} is being provisioned already: started by {current.by}{via} at "
                f"{current.started:%Y-%m-%d %H:%M:%S} UTC; wait for it to finish"
            ) from None
        raise Conflict(f"project {slug!r} is being provisioned already; try again") from None
    return run_id


def next_version(s: Session, project: Project) -> int:
    """The extract version a new run writes: above the current one, every extract recorded
    and every version an earlier run reserved, so two runs never write the same files (a run
    taken for stopped may still be alive)."""
    recorded = s.scalar(
        select(func.max(ProjectExtract.version)).where(ProjectExtract.project_id == project.id)
    )
    reserved = s.scalar(
        select(func.max(ProvisioningRun.extract_version)).where(ProvisioningRun.project_id == project.id)
    )
    return 1 + max(project.extract_version or 0, recorded or 0, reserved or 0)


def finish_run(catalog: Engine, run_id: int, state: str, *, version: int | None = None,
               error: str | None = None) -> None:  # fmt: skip
    """Record how a run ended (even if it was taken for dead meanwhile: the outcome is true).
    A run keeps the version it reserved whatever its outcome: numbers are never reused."""
    with Session(catalog) as s, s.begin():
        run = s.get(ProvisioningRun, run_id)
        if run is None:  # its project was deleted meanwhile
            return
        run.state, run.finished_at = state, utcnow()
        if version is not None:
            run.extract_version = version
        run.error = None if error is None else error[:ERROR_CHARS]


class Heartbeat:
    """While open, updates the run's ``heartbeat_at`` every HEARTBEAT from a daemon thread."""

    def __init__(self, catalog: Engine, run_id: int) -> None:
        self.catalog, self.run_id = catalog, run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"provision-heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT.total_seconds()):
            try:
                with Session(self.catalog) as s, s.begin():
                    s.execute(
                        update(ProvisioningRun)
                        .where(ProvisioningRun.id == self.run_id, ProvisioningRun.state == "running")
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # a busy catalog: the next beat tries again
                log.warning("provisioning run %s: heartbeat not recorded", self.run_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._stop.set()
        self._thread.join()


def run_provisioning(hub: Hub, run_id: int, slug: str, by: str) -> ExtractResult:
    """Provision ``slug`` for the run ``run_id`` (from :func:`start_run`), beating its heart
    meanwhile, and record the outcome; the provisioning's error is raised again."""
    from hdhub.workspaces import provision as prov

    try:
        with Heartbeat(hub.catalog, run_id):
            result = prov.provision(hub, slug, by=by, run=run_id)
    except Exception as exc:
        finish_run(hub.catalog, run_id, "failed", error=describe(exc))
        raise
    except BaseException as exc:  # Ctrl-C, SystemExit: stopped, not failed
        try:
            finish_run(hub.catalog, run_id, "interrupted", error=f"stopped: {describe(exc)}")
        except Exception:  # the heartbeat has stopped: it will be seen as interrupted anyway
            log.warning("provisioning run %s: end not recorded", run_id, exc_info=True)
        raise
    finish_run(hub.catalog, run_id, "succeeded", version=result.version)
    return result


def provision_recorded(hub: Hub, slug: str, by: str, origin: str = "cli") -> ExtractResult:
    """Start, run and record a provisioning in this thread (``hdhub project provision``)."""
    return run_provisioning(hub, start_run(hub, slug, by, origin), slug, by)


def latest_run(
    catalog_or_session: Engine | Session, slug: str, now: dt.datetime | None = None
) -> RunStatus | None:
    """The project's latest provisioning run, if any, as it stands now."""
    stmt = (
        select(ProvisioningRun, ProjectExtract.persons)
        .join(Project, Project.id == ProvisioningRun.project_id)
        .outerjoin(
            ProjectExtract,
            (ProjectExtract.project_id == ProvisioningRun.project_id)
            & (ProjectExtract.version == ProvisioningRun.extract_version),
        )
        .where(Project.slug == slug)
        .order_by(ProvisioningRun.id.desc())
        .limit(1)
    )
    if isinstance(catalog_or_session, Session):
        found = catalog_or_session.execute(stmt).first()
    else:
        with Session(catalog_or_session) as s:
            found = s.execute(stmt).first()
    if found is None:
        return None
    run, persons = found
    state, error, heartbeat = run.state, run.error, aware(run.heartbeat_at)
    if state == "running" and heartbeat < _stale_before(now or utcnow()):
        state, error = "interrupted", STOPPED
    return RunStatus(
        id=run.id, project=slug, by=run.started_by, origin=run.origin, state=state,
        started=aware(run.started_at), heartbeat=heartbeat,
        finished=aware(run.finished_at) if run.finished_at else None, error=error,
        version=run.extract_version if state == "succeeded" else None,  # a reservation otherwise
        persons=persons if state == "succeeded" else None,
    )  # fmt: skip
