"""`hdhub opposition …`: patients' objections to research use (the opposition registry).

An objection takes effect at once: every later count, cohort and extraction leaves the
person out. Patients are named by an identifier (IPP, INS …) found through the identity
store; the registry itself keeps only the warehouse's keyed hash of the person.
"""

from __future__ import annotations

import typer

from hdhub.cli.context import console, new_app, state

app = new_app("The opposition registry: patients who object to research use of their data.")

IDENTIFIER_HELP = "system|value, e.g. urn:oid:1.2.250.1.213.1.4.8|1740333… (the INS) or a site's IPP."


@app.command()
def add(ctx: typer.Context, identifier: str = typer.Argument(..., help=IDENTIFIER_HELP)) -> None:
    """Record the objection of the patient holding IDENTIFIER."""
    from hdhub.cohorts.service import persons_with_identifier, record_opposition

    st = state(ctx)
    decision = st.authorize("oppositions:manage")
    for key in persons_with_identifier(st.hub.identities, identifier):
        record_opposition(st.hub.catalog, key, st.principal.name)
        st.audit("opposition.add", decision, resource_type="research_opposition", patient_id=key)
        console.print(f"objection recorded for person {key[:12]}…", highlight=False)


@app.command()
def withdraw(ctx: typer.Context, identifier: str = typer.Argument(..., help=IDENTIFIER_HELP)) -> None:
    """Withdraw the objection of the patient holding IDENTIFIER (the record is kept)."""
    from hdhub.cohorts.service import persons_with_identifier, withdraw_opposition

    st = state(ctx)
    decision = st.authorize("oppositions:manage")
    for key in persons_with_identifier(st.hub.identities, identifier):
        n = withdraw_opposition(st.hub.catalog, key)
        st.audit("opposition.withdraw", decision, resource_type="research_opposition", patient_id=key,
                 detail={"withdrawn": n})  # fmt: skip
        console.print(f"person {key[:12]}…: {n} objection(s) withdrawn", highlight=False)


@app.command("count")
def count_(ctx: typer.Context) -> None:
    """How many persons object now."""
    from hdhub.cohorts.service import opposed_person_keys

    st = state(ctx)
    st.authorize("oppositions:manage")
    console.print(
        f"{len(opposed_person_keys(st.hub.catalog)):,} persons object to research use", highlight=False
    )
