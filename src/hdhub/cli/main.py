"""Entry point of the ``hdhub`` command."""

from __future__ import annotations

from pathlib import Path

import typer

from hdhub import __version__
from hdhub.cli import (
    audit,
    cohort,
    deployment,
    dicom,
    dq,
    ingest,
    monitoring,
    objects,
    opposition,
    project,
    serve,
    synth,
    users,
    vocab,
    warehouse,
    workspace,
)
from hdhub.cli.context import new_app, state

app = new_app("hdhub: health data platform (FHIR, DICOM archive, OMOP warehouse, research, audit).")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hdhub {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", help="Deployment directory (else $HDHUB_HOME, else the current directory)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    st = state(ctx)
    st.home = home
    st.debug = debug


deployment.register(app)
serve.register(app)
synth.register(app)
dq.register(app)
app.add_typer(deployment.db_app, name="db")
app.add_typer(users.users_app, name="users")
app.add_typer(users.tokens_app, name="tokens")
app.add_typer(ingest.app, name="ingest")
app.add_typer(vocab.app, name="vocab")
app.add_typer(objects.app, name="objects")
app.add_typer(audit.app, name="audit")
app.add_typer(dicom.app, name="dicom")
app.add_typer(cohort.app, name="cohort")
app.add_typer(warehouse.app, name="warehouse")
app.add_typer(opposition.app, name="opposition")
app.add_typer(project.app, name="project")
app.add_typer(workspace.app, name="workspace")
app.add_typer(monitoring.app, name="monitoring")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
