"""`hdhub ingest …`: load data into the warehouse."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hdhub.cli.context import console, new_app, state

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
    table = Table("table", "file", "rows", title=f"OMOP CDM 5.4 load from {directory}")
    for name, rows in report.rows.items():
        table.add_row(name, report.files[name], f"{rows:,}")
    console.print(table)
    console.print(
        f"{report.total:,} rows in {len(report.rows)} tables, {report.seconds:.1f} s", highlight=False
    )
