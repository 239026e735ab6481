"""`hdhub dq`: data-quality checks of the warehouse, as JSON and HTML reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from hdhub.cli.context import CliState, console, err_console, state

if TYPE_CHECKING:
    from hdhub.warehouse.dq import DqReport

SHOWN_FAILURES = 40


def check_warehouse(st: CliState, output: Path | None = None) -> tuple[DqReport, Path, Path]:
    """One audited run of the checks; the reports go to ``output`` (default HOME/reports)."""
    from hdhub.warehouse.dq import run_checks, write_report

    decision = st.authorize("warehouse:read")
    hub = st.hub
    report = run_checks(hub.warehouse.con)
    json_path, html_path = write_report(report, output or hub.settings.home / "reports")
    st.audit(
        "warehouse.dq",
        decision,
        resource_type="warehouse",
        resource_id="omop",
        detail={**report.status_counts, "report": str(json_path.resolve())},
    )
    return report, json_path, html_path


def register(app: typer.Typer) -> None:
    @app.command()
    def dq(
        ctx: typer.Context,
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Directory for the reports (default: HOME/reports)."
        ),
        strict: bool = typer.Option(False, "--strict", help="Exit with status 1 when any check fails."),
    ) -> None:
        """Check the warehouse (required fields, keys, concept domains, plausible values and
        units, dates in observation periods …) and write dq-<time>.json and .html."""
        from hdhub.warehouse.dq import FAIL

        st = state(ctx)
        report, json_path, html_path = check_warehouse(st, output)
        counts = report.status_counts
        failed = report.failed
        if failed:
            table = Table(title="Failed checks")
            for name in ("check", "table.field", "violated", "of rows", "%"):
                numeric = name in ("violated", "of rows", "%")
                table.add_column(name, overflow="fold", justify="right" if numeric else "left")
            for r in failed[:SHOWN_FAILURES]:
                c = r.check
                where = c.table + (f".{c.field}" if c.field else "")
                if c.concept_id is not None:
                    where += f" [{c.concept_id}]"
                table.add_row(
                    c.name if r.status == FAIL else f"{c.name} (error: {r.note})",
                    where,
                    "" if r.violated_rows is None else f"{r.violated_rows:,}",
                    "" if r.denominator_rows is None else f"{r.denominator_rows:,}",
                    "" if r.violated_pct is None else f"{r.violated_pct:.2f}",
                )
            console.print(table)
            if len(failed) > SHOWN_FAILURES:
                console.print(f"… and {len(failed) - SHOWN_FAILURES} more in the report", highlight=False)
        console.print(
            f"{len(report.results)} checks in {report.seconds:.1f} s: {counts['pass']} passed, "
            f"{counts['fail']} failed, {counts['error']} errors, {counts['not_applicable']} not applicable",
            highlight=False,
        )
        console.print(f"reports: {json_path}\n         {html_path}", highlight=False)
        if strict and failed:
            err_console.print(f"{len(failed)} checks failed", highlight=False)
            raise typer.Exit(1)
