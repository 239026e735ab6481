"""`hdhub warehouse …`: maintenance of the OMOP warehouse."""

from __future__ import annotations

import typer

from hdhub.cli.context import console, new_app, state

app = new_app("The OMOP warehouse: physical layout.")


@app.command()
def optimize(
    ctx: typer.Context,
    table: list[str] = typer.Option(None, "--table", help="Only this event table (repeatable)."),
) -> None:
    """Sort the event tables by concept, person and date, so cohort queries read only the
    concepts they ask for (run after large loads; results never change, only speed)."""
    from hdhub.warehouse.layout import CLUSTER_KEYS, optimize_layout

    unknown = sorted(set(table or []) - set(CLUSTER_KEYS))
    if unknown:
        raise typer.BadParameter(f"not an event table: {', '.join(unknown)}", param_hint="--table")
    st = state(ctx)
    decision = st.authorize("warehouse:load")

    def show(name: str, rows: int, seconds: float) -> None:
        console.print(f"{name}: {rows:,} rows sorted in {seconds:.1f} s", highlight=False)

    timings = optimize_layout(st.hub.warehouse, table or None, progress=show)
    st.audit("warehouse.optimize", decision, resource_type="warehouse", resource_id="omop",
             detail={t: round(s, 2) for t, s in timings.items()})  # fmt: skip
