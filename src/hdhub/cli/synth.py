"""`hdhub synth`: a synthetic French hospital group as FHIR Bulk NDJSON."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from hdhub.cli.context import console


def register(app: typer.Typer) -> None:
    @app.command()
    def synth(
        out: Path = typer.Argument(..., help="Output directory (one sub-directory per site)."),
        patients: int = typer.Option(1000, "--patients", help="Number of patients."),
        sites: int = typer.Option(3, "--sites", help="Number of hospitals (1-8)."),
        seed: int = typer.Option(1, "--seed", help="Random seed: the same seed gives the same files."),
        compress: bool = typer.Option(False, "--gzip", help="Write .ndjson.gz files."),
    ) -> None:
        """Generate synthetic patients (French identifiers, stays, labs, vitals, drugs, notes)."""
        from hdhub.synth import generate

        started = time.perf_counter()
        report = generate(out, patients=patients, sites=sites, seed=seed, compress=compress)
        seconds = time.perf_counter() - started
        console.print(
            f"{report.patients:,} patients, {report.total:,} resources in {len(report.sites)} sites "
            f"({', '.join(report.sites)}) written to {out} in {seconds:.1f} s",
            highlight=False,
        )
        console.print(f"Load each site with: hdhub ingest fhir {out}/<site> --site <site>", highlight=False)
