"""`hdhub serve` and `hdhub demo`."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.cli.context import console, state
from hdhub.errors import ConfigError

DEMO_DIR = "hdhub-demo"
DEMO_ADMIN = "demo-admin"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_servable(hub: object, host: str) -> None:
    """Refuse to start on an unmigrated catalog, or exposed beyond loopback without an admin."""
    from hdhub.catalog.migrate import current_revision, head_revision
    from hdhub.catalog.models import User, UserRole

    current, head = current_revision(hub.catalog), head_revision()  # type: ignore[attr-defined]
    if current != head:
        raise ConfigError(
            f"catalog schema is at {current or 'nothing'}, expected {head}: run `hdhub db upgrade`"
        )
    if not _is_loopback(host):
        with Session(hub.catalog) as session:  # type: ignore[attr-defined]
            admin = session.scalar(
                select(User.id).join(UserRole).where(UserRole.role == "admin", User.disabled.is_(False))
            )
        if admin is None:
            raise ConfigError(
                f"refusing to listen on {host} with no enabled admin account: create one with "
                "`hdhub users add NAME --role admin`, or listen on 127.0.0.1"
            )


def _interrupt_stale_runs(hub: object) -> None:
    """Provisioning runs left running by a process that stopped (their heartbeat is older than
    runs.STALE_AFTER: a previous server, a killed command) become interrupted, once per start,
    before any worker. Runs still beating — another server on this catalog, a CLI run — are left
    alone: see hdhub.workspaces.runs."""
    from hdhub.workspaces.runs import interrupt_stale

    if n := interrupt_stale(hub.catalog):  # type: ignore[attr-defined]
        console.print(f"{n} provisioning run(s) of a stopped process marked interrupted", highlight=False)


def run_server(hub: object, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    from hdhub.api.app import create_app
    from hdhub.catalog.checkpoints import Checkpoints
    from hdhub.heap import freeze_startup_heap, load_lazy_modules

    check_servable(hub, host)
    _interrupt_stale_runs(hub)
    console.print(f"hdhub serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    if workers > 1:  # one process per worker, each opening the deployment itself
        from hdhub.cli.serve_workers import serve_workers

        serve_workers(str(hub.settings.home), host, port, workers)  # type: ignore[attr-defined]
        return
    app = create_app(hub)
    hub.imaging_workers.start()  # type: ignore[attr-defined]
    checkpoints = Checkpoints(hub.catalog).start()  # type: ignore[attr-defined]
    load_lazy_modules()
    freeze_startup_heap()
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True,  # type: ignore[arg-type]
                    forwarded_allow_ips=hub.settings.server.trusted_proxies)  # type: ignore[attr-defined]  # fmt: skip
    finally:
        checkpoints.stop()
        hub.imaging_workers.close()  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        ctx: typer.Context,
        host: str | None = typer.Option(None, help="Listen address (default from [server] host)."),
        port: int | None = typer.Option(None, help="TCP port (default from [server] port)."),
        workers: int = typer.Option(1, min=1, max=64, help="Worker processes (one per core for throughput)."),
    ) -> None:
        """Serve the HTTP API (and, as they land, FHIR, DICOMweb and the web UI)."""
        st = state(ctx)
        st.authorize("system:serve")
        settings = st.hub.settings
        run_server(st.hub, host or settings.server.host, port or settings.server.port, workers)

    @app.command()
    def demo(
        ctx: typer.Context,
        port: int = typer.Option(8000, help="TCP port."),
        serve_: bool = typer.Option(True, "--serve/--no-serve", help="Serve after setting up."),
        patients: int = typer.Option(
            3000, "--patients", min=0, help="Synthetic patients loaded into an empty warehouse (0: none)."
        ),
        live: bool = typer.Option(
            True, "--live/--no-live", help="While serving, home devices keep sending readings (new alerts)."
        ),
    ) -> None:
        """Set up a demo deployment (./hdhub-demo unless --home): a synthetic hospital group
        loaded into the warehouse (first run only), then serve it on 127.0.0.1."""
        from hdhub.catalog.migrate import upgrade
        from hdhub.cli.demo_data import demo_accounts, demo_monitoring, demo_projects, load_demo_data
        from hdhub.cli.demo_imaging import demo_imaging
        from hdhub.config.deployment import init_deployment
        from hdhub.config.settings import CONFIG_FILE
        from hdhub.security import users as user_service

        st = state(ctx)
        home = (st.home or Path.cwd() / DEMO_DIR).resolve()
        if not (home / CONFIG_FILE).exists():
            init_deployment(home)
            console.print(f"created demo deployment in {home}")
        st.home = home
        decision = st.authorize("users:manage")
        hub = st.hub
        upgrade(hub.catalog)
        password = secrets.token_urlsafe(12)
        with Session(hub.catalog) as session, session.begin():
            try:
                user_service.set_password(session, DEMO_ADMIN, password)
                user_service.set_disabled(session, DEMO_ADMIN, False)
            except Exception:
                user_service.create_user(
                    session,
                    DEMO_ADMIN,
                    ["admin", "data_engineer", "dpo"],
                    password=password,
                    display_name="Demo administrator",
                )
        st.audit("demo.setup", decision, resource_type="user", resource_id=DEMO_ADMIN)
        accounts = demo_accounts(st)
        if patients:
            load_demo_data(st, patients)
            demo_projects(st)
            demo_monitoring(st)
            demo_imaging(st)
        console.print("\n[bold]Demo accounts[/bold] (password reset at every `hdhub demo`):")
        console.print(
            f"  {DEMO_ADMIN:16} password: {password}   roles: admin, data_engineer, dpo", highlight=False
        )
        for name, secret, roles in accounts:
            console.print(f"  {name:16} password: {secret}   roles: {', '.join(roles)}", highlight=False)
        console.print(
            f"\nGet a token:  curl -s -d 'username={DEMO_ADMIN}&password={password}' "
            f"http://127.0.0.1:{port}/api/v1/auth/token",
            highlight=False,
            soft_wrap=True,  # one line, so it can be copied
        )
        if serve_:
            from hdhub.synth.live_devices import LiveFeed

            feed = LiveFeed(hub.catalog).start() if live and patients else None
            try:
                run_server(hub, "127.0.0.1", port)
            finally:
                if feed is not None:
                    feed.close()
