"""`hdhub audit …`: verify the chain, export to a SIEM, seal the head."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path

import orjson
import typer

from hdhub.cli.context import console, new_app, state
from hdhub.errors import AuditChainBroken

app = new_app("Tamper-evident audit log.")


class Format(StrEnum):
    ecs = "ecs"
    fhir = "fhir"


@app.command()
def verify(ctx: typer.Context) -> None:
    """Check the hash chain and signed checkpoints; exit 2 naming the first bad entry."""
    st = state(ctx)
    decision = st.authorize("audit:verify")
    report = st.hub.audit.verify()
    st.audit(
        "audit.verify",
        decision,
        outcome="success" if report.ok else "failure",
        resource_type="audit_log",
        detail={"checked": report.checked, "first_bad": report.first_bad_seq},
    )
    if not report.ok:
        raise AuditChainBroken(report.message)
    console.print(report.message, highlight=False)


@app.command()
def export(
    ctx: typer.Context,
    format_: Format = typer.Option(
        Format.ecs, "--format", help="ecs: JSON lines for Elastic; fhir: a Bundle."
    ),
    since: str | None = typer.Option(None, help="From this date/time (ISO 8601, UTC)."),
    until: str | None = typer.Option(None, help="Up to this date/time (ISO 8601, UTC)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
) -> None:
    """Export events oldest first: ECS JSON lines (Elastic/Logstash) or a FHIR Bundle."""
    from hdhub.audit.ecs import to_ecs_line
    from hdhub.audit.fhir import to_audit_event

    st = state(ctx)
    decision = st.authorize("audit:export")
    if until and len(until) == 10:
        until += "T23:59:59.999999Z"
    events = st.hub.audit.iter_events(since=since, until=until)
    count = 0
    sink = open(output, "wb") if output else nullcontext(sys.stdout.buffer)  # noqa: SIM115
    with sink as out:
        if format_ is Format.ecs:
            for ev in events:
                out.write(to_ecs_line(ev))
                count += 1
        else:
            entries = [{"resource": to_audit_event(ev)} for ev in events]
            count = len(entries)
            bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
            out.write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
    st.audit(
        "audit.export",
        decision,
        resource_type="audit_log",
        detail={"format": format_.value, "events": count, "since": since, "until": until},
    )
    if output:
        console.print(f"exported {count} events to {output}")


@app.command()
def checkpoint(ctx: typer.Context) -> None:
    """Sign the current head of the chain now."""
    st = state(ctx)
    decision = st.authorize("audit:verify")
    cp = st.hub.audit.checkpoint()
    st.audit("audit.checkpoint", decision, resource_type="audit_log")
    console.print(f"signed checkpoint at entry {cp.seq}" if cp else "the audit log is empty")
