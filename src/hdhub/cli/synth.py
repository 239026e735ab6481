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
        devices: float = typer.Option(
            0.0,
            "--devices",
            min=0,
            max=1,
            help="Share of the first site's patients with home devices (streams).",
        ),
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
        if devices:
            from hdhub.synth.devices import write_device_streams

            streams = write_device_streams(out, share=devices, seed=seed)
            episodes = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in streams.episodes.items())
            console.print(
                f"{streams.devices:,} home devices, {streams.observations:,} observations ({episodes}) in "
                f"{out}/devices; after loading: hdhub monitoring replay {out}/devices",
                highlight=False,
            )
