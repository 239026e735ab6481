"""`hdhub dicom …`: the DIMSE side of the imaging archive."""

from __future__ import annotations

import typer

from hdhub.cli.context import console, new_app, state

app = new_app("DICOM networking (DIMSE) and archive management.")


def _destination(text: str) -> tuple[str, tuple[str, int]]:
    ae, eq, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    if not (eq and colon and ae and host and port.isdecimal()):
        raise typer.BadParameter(f"{text!r}: expected AE=host:port, e.g. VIEWER=10.0.0.5:11112")
    return ae, (host, int(port))


@app.command()
def scp(
    ctx: typer.Context,
    port: int = typer.Option(11112, help="TCP port."),
    host: str = typer.Option("127.0.0.1", help="Listen address."),
    aet: str = typer.Option("HDHUB", help="The archive's AE title."),
    allow: list[str] = typer.Option(..., "--allow", help="A calling AE title allowed to associate (repeat)."),
    move_dest: list[str] = typer.Option(
        [], "--move-dest", help="A C-MOVE destination, AE=host:port (repeat); no other is sent to."
    ),
) -> None:
    """Serve C-ECHO, C-STORE, C-FIND and C-MOVE to the allowed AE titles."""
    from hdhub.heap import freeze_startup_heap
    from hdhub.imaging.dimse import ScpConfig, serve

    st = state(ctx)
    decision = st.authorize("imaging:write")
    hub = st.hub
    config = ScpConfig(aet, list(allow), dict(_destination(d) for d in move_dest))
    st.audit("imaging.scp-start", decision, resource_type="dicom", resource_id=f"{aet}@{host}:{port}")
    console.print(f"DICOM SCP {aet} listening on {host}:{port}; callers: {', '.join(allow)}", highlight=False)
    freeze_startup_heap()
    serve(hub, config, host, port)


@app.command()
def reject(
    ctx: typer.Context,
    study: str = typer.Argument(..., help="Study Instance UID."),
    series: str | None = typer.Option(None, "--series", help="Only this series."),
    instance: str | None = typer.Option(None, "--instance", help="Only this instance (with --series)."),
    reason: str = typer.Option(
        "quality",
        "--reason",
        help="quality (113001), safety (113037), worklist (113038) or retention (113039).",
    ),
) -> None:
    """Reject instances (IHE IOCM): hidden from every query now, purged by the storage policy."""
    from hdhub.imaging.reach import reached
    from hdhub.imaging.rejection import REASONS, reason_code
    from hdhub.imaging.rejection import reject as reject_instances

    st = state(ctx)
    decision = st.authorize("imaging:write")
    code = reason_code(reason)
    report = reject_instances(st.hub.catalog, study, series, instance, code)
    st.audit(
        "imaging.reject",
        decision,
        **reached(
            report.studies or [study],
            report.patients,
            instances=report.instances,
            reason=code,
            series=series,
            instance=instance,
        ),
    )
    console.print(f"{report.instances} instances rejected ({code} {REASONS[code]})", highlight=False)


@app.command("apply-policies")
def apply_policies(ctx: typer.Context) -> None:
    """Apply the imaging storage policies now (run daily): extend locks to each patient's last
    stay, move old objects to the cold class, purge rejected instances their lock allows."""
    from hdhub.imaging.policies import apply_policies as apply
    from hdhub.imaging.reach import reached

    st = state(ctx)
    decision = st.authorize("imaging:write")
    report = apply(st.hub)
    st.audit(
        "imaging.apply-policies",
        decision,
        **reached(
            [],
            report.patients,
            extended=report.extended,
            transitioned=report.transitioned,
            purged=report.purged,
            kept_locked=len(report.kept_locked),
        ),
    )
    console.print(
        f"locks extended: {report.extended}; moved to cold storage: {report.transitioned}; "
        f"rejected instances purged: {report.purged}, kept (still locked): {len(report.kept_locked)}",
        highlight=False,
    )
    for key, why in report.kept_locked[:20]:
        console.print(f"kept {key}: {why}", highlight=False, markup=False)
