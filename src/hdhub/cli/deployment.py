"""`hdhub init` and `hdhub db …`."""

from __future__ import annotations

from pathlib import Path

import typer

from hdhub.cli.context import console, new_app, state

db_app = new_app("Catalog database schema.")


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        directory: Path = typer.Argument(..., help="Deployment directory to create."),
        catalog_url: str | None = typer.Option(None, help="Catalog URL (default sqlite:///catalog.db)."),
        warehouse_url: str | None = typer.Option(
            None, help="Warehouse URL (default duckdb:///warehouse.duckdb)."
        ),
        objects_url: str | None = typer.Option(None, help="Objects URL (default file:objects)."),
    ) -> None:
        """Create a deployment: hdhub.toml and the 0600 secret key files."""
        from hdhub.config.deployment import init_deployment

        settings = init_deployment(
            directory, catalog_url=catalog_url, warehouse_url=warehouse_url, objects_url=objects_url
        )
        console.print(f"Created deployment in [bold]{settings.home}[/bold]")
        console.print(f"  config:  {settings.home / 'hdhub.toml'}")
        console.print(f"  secrets: {settings.secrets_path} (mode 0600; back them up, separately from data)")
        console.print(f"Next: hdhub --home {settings.home} db upgrade")


@db_app.command()
def upgrade(ctx: typer.Context, revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the catalog schema (Alembic)."""
    from hdhub.catalog.migrate import upgrade as run_upgrade

    st = state(ctx)
    st.authorize("system:serve")
    reached = run_upgrade(st.hub.catalog, revision)
    console.print(f"catalog at revision {reached}")


@db_app.command()
def current(ctx: typer.Context) -> None:
    """Show the catalog's schema revision and the latest one this version knows."""
    from hdhub.catalog.migrate import current_revision, head_revision

    st = state(ctx)
    console.print(f"current: {current_revision(st.hub.catalog) or '(empty)'}; head: {head_revision()}")
