"""`hdhub ingest …`: load data into the warehouse."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hdhub.cli.context import CliState, console, new_app, state

if TYPE_CHECKING:
    from hdhub.ingest.fhir.load import FhirLoadReport
    from hdhub.ingest.omop_csv import LoadReport

app = new_app("Load data into the warehouse.")


@app.command()
def omop(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        ..., help="Directory of OMOP CDM 5.4 CSV files (TABLE.csv or TABLE.csv.gz)."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace the tables present instead of appending."),
) -> None:
    """Load an OMOP CDM 5.4 CSV export, all-or-nothing, and print rows per table."""
    from hdhub.ingest.omop_csv import load_omop_csv

    st = state(ctx)
    decision = st.authorize("warehouse:load")
    try:
        report = load_omop_csv(st.hub.warehouse, directory, replace=replace)
    except Exception as exc:
        st.audit(
            "warehouse.load",
            decision,
            outcome="failure",
            resource_type="omop_csv",
            resource_id=str(directory.resolve()),
            detail={"error": str(exc)[:500]},
        )
        raise
    st.audit(
        "warehouse.load",
        decision,
        resource_type="omop_csv",
        resource_id=str(directory.resolve()),
        detail={"rows": report.rows, "replace": replace},
    )
    show_csv_load(report, f"OMOP CDM 5.4 load from {directory}")


def show_csv_load(report: LoadReport, title: str) -> None:
    """Rows per table of an OMOP CSV load (CDM tables or vocabulary)."""
    table = Table("table", "file", "rows", title=title)
    for name, rows in report.rows.items():
        table.add_row(name, report.files[name], f"{rows:,}")
    console.print(table)
    console.print(
        f"{report.total:,} rows in {len(report.rows)} tables, {report.seconds:.1f} s", highlight=False
    )


@contextmanager
def load_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars on standard error while a load runs (only on a terminal)."""
    bars = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update


def load_site(
    st: CliState,
    paths: list[Path],
    site: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> FhirLoadReport:
    """One audited FHIR load from ``site`` into the deployment's warehouse."""
    from hdhub.ingest.fhir import load_fhir

    decision = st.authorize("warehouse:load")
    hub = st.hub
    try:
        report = load_fhir(
            hub.warehouse,
            paths,
            site=site,
            secret=hub.keys.pseudonym,
            objects=hub.objects,
            identities=hub.identities,
            merge_systems=tuple(hub.settings.ingest.merge_identifier_systems),
            progress=progress,
        )
    except Exception as exc:
        st.audit(
            "warehouse.load-fhir",
            decision,
            outcome="failure",
            resource_type="fhir",
            resource_id=site,
            detail={"error": str(exc)[:500]},
        )
        raise
    st.audit(
        "warehouse.load-fhir",
        decision,
        resource_type="fhir",
        resource_id=site,
        detail={
            "load_id": report.load_id,
            "tables": report.tables,
            "rejected": len(report.errors),
            "read": sum(c.read for c in report.types.values()),
            "error_report": report.error_report,
        },
    )
    return report


@app.command()
def fhir(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(
        ..., help="FHIR Bulk NDJSON files (.ndjson, .ndjson.gz), Bundles (.json), or directories."
    ),
    site: str = typer.Option(..., "--site", help="Code of the hospital the files come from (e.g. chu-nord)."),
) -> None:
    """Load FHIR R4 resources from one site into the OMOP warehouse (atomic, idempotent)."""
    st = state(ctx)
    with load_progress() as progress:
        report = load_site(st, paths, site, progress)
    table = Table(
        "resource",
        "read",
        "loaded",
        "already loaded",
        "rejected",
        "unmapped code",
        "not mapped yet",
        title=f"FHIR load {report.load_id} from site {site}",
    )
    for name in sorted(report.types):
        c = report.types[name]
        table.add_row(
            name, *(f"{n:,}" for n in (c.read, c.loaded, c.already, c.rejected, c.unmapped, c.not_mapped_yet))
        )
    console.print(table)
    rows = ", ".join(f"{t} {n:,}" for t, n in report.tables.items() if n)
    console.print(
        f"{report.files} files loaded, {report.files_skipped} already loaded; rows: {rows or 'none'}; "
        f"{report.seconds:.1f} s",
        highlight=False,
    )
    if report.errors:
        first = report.errors[0]
        console.print(
            f"{len(report.errors)} rejected, e.g. {first['file']} line {first['line']}: {first['reason']}; "
            f"full report: hdhub objects get {report.error_report}",
            highlight=False,
        )


def import_dicom(st: CliState, paths: list[Path], *, restart: bool = False, progress: Any = None,
                 **detail: Any) -> Any:  # fmt: skip
    """One audited DICOM folder import (``hdhub ingest dicom`` and the demo's images)."""
    from hdhub.imaging.migration import import_tree
    from hdhub.imaging.reach import reached

    decision = st.authorize("imaging:write")
    report = import_tree(st.hub, paths, restart=restart, progress=progress)
    st.audit(
        "imaging.store",
        decision,
        **reached(
            report.studies,
            report.patients,
            files=report.files,
            stored=report.stored,
            already=report.already,
            refused=sum(report.refused.values()),
            error_report=report.error_report,
            **detail,
        ),
    )
    return report


@app.command()
def dicom(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="DICOM files or directories (any file name)."),
    restart: bool = typer.Option(
        False, "--restart", help="Ignore what an interrupted run of the same paths already did."
    ),
) -> None:
    """Store DICOM instances (e.g. a PACS export tree) in the imaging archive, byte for byte.

    Parallel; an interrupted run resumes where it stopped; refused files are listed in a
    CSV report kept in the object store."""
    st = state(ctx)
    with load_progress() as progress:
        report = import_dicom(st, paths, restart=restart, progress=progress)
    refused = sum(report.refused.values())
    if report.resumed:
        console.print(f"resumed: {report.resumed} files done by the interrupted run", highlight=False)
    for o in report.examples:
        console.print(f"refused {o.source}: {o.reason}", highlight=False, soft_wrap=True, markup=False)
    rate = report.files / report.seconds if report.seconds else 0
    console.print(
        f"{report.stored} instances stored ({len(report.studies)} studies), {report.already} already "
        f"stored, {refused} refused; {report.seconds:.1f} s, {rate:,.0f} files/s",
        highlight=False,
    )
    if refused:
        kinds = ", ".join(f"{kind} {n}" for kind, n in report.refused.most_common())
        console.print(
            f"refused: {kinds}; full report: hdhub objects get {report.error_report}", highlight=False
        )
    if refused and not report.stored and not report.already:
        raise typer.Exit(65)
