"""`hdhub project …`: provisioning approved projects' workspaces, project tokens, expiry."""

from __future__ import annotations

from datetime import timedelta

import typer

from hdhub.cli.context import console, new_app, state

app = new_app("Research projects' workspaces: provisioning, project tokens, expiry.")


@app.command()
def provision(ctx: typer.Context, project: str = typer.Argument(..., help="The project's slug.")) -> None:
    """Build (or rebuild) PROJECT's workspace from its approved perimeter, pseudonymised.

    Recorded as a provisioning run in the catalog, so the project's page shows it; refused
    while another provisioning of PROJECT is running (from the page or another command)."""
    from hdhub.workspaces.runs import provision_recorded

    st = state(ctx)
    decision = st.authorize("workspaces:provision")
    result = provision_recorded(st.hub, project, st.principal.name, origin="cli")
    detail = {"version": result.version, "persons": result.persons,
              "excluded_by_opposition": result.excluded_by_opposition, "tables": result.tables}  # fmt: skip
    st.audit("project.provision", decision, resource_type="project", resource_id=project, project_id=project,
             detail=detail)  # fmt: skip
    console.print(
        f"project {project}: extract {result.version}, {result.persons:,} persons "
        f"({result.excluded_by_opposition:,} excluded by opposition), "
        + ", ".join(f"{t} {n:,}" for t, n in result.tables.items())
        + (f"; {result.notes:,} notes de-identified" if result.notes else "")
        + f" in {result.seconds:.1f} s",
        highlight=False,
    )


@app.command()
def token(
    ctx: typer.Context,
    project: str = typer.Argument(..., help="The project's slug."),
    user: str = typer.Option(..., "--user", help="The member the token is for."),
    days: int = typer.Option(30, min=1, max=3650, help="Lifetime (never beyond the project's expiry)."),
) -> None:
    """Issue a project token: it reads PROJECT's workspace and nothing else (printed once)."""
    from sqlalchemy.orm import Session

    from hdhub.governance.projects import get_project
    from hdhub.security.tokens import issue_token
    from hdhub.security.users import get_user

    st = state(ctx)
    decision = st.authorize("tokens:manage")
    with Session(st.hub.catalog) as s, s.begin():
        p = get_project(s, project)
        secret, row = issue_token(
            s, get_user(s, user), name=f"project {project}", ttl=timedelta(days=days), project=p
        )
        expires = row.expires_at
    st.audit("project.token", decision, resource_type="project", resource_id=project, project_id=project,
             detail={"user": user})  # fmt: skip
    console.print(secret, highlight=False)
    console.print(f"expires {expires:%Y-%m-%d %H:%M} UTC", style="dim", highlight=False)


@app.command()
def expire(
    ctx: typer.Context,
    grace_days: int = typer.Option(
        30, min=0, max=3650, help="Days a frozen workspace is kept before deletion."
    ),
) -> None:
    """Freeze the workspaces of projects whose approval ended; delete those frozen for GRACE_DAYS."""
    from hdhub.workspaces.expiry import expire as run

    st = state(ctx)
    decision = st.authorize("workspaces:expire")
    report = run(st.hub, grace_days=grace_days)
    for slug in report.frozen:
        st.audit("project.freeze", decision, resource_type="project", resource_id=slug, project_id=slug)
        console.print(f"project {slug}: expired, workspace frozen", highlight=False)
    for slug, n in report.deleted.items():
        st.audit("project.workspace-delete", decision, resource_type="project", resource_id=slug,
                 project_id=slug, detail={"objects": n})  # fmt: skip
        console.print(
            f"project {slug}: workspace deleted ({n} object versions), key destroyed", highlight=False
        )
    if not (report.frozen or report.deleted):
        console.print("nothing to expire", highlight=False)
