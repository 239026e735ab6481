"""`hdhub vocab …`: OMOP standardised vocabularies (OHDSI Athena downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hdhub.cli.context import CliState, new_app, state

if TYPE_CHECKING:
    from hdhub.ingest.omop_csv import LoadReport

app = new_app("OMOP vocabularies (OHDSI Athena).")


@app.command()
def load(
    ctx: typer.Context,
    directory: Path | None = typer.Argument(
        None, help="An unzipped Athena download (CONCEPT.csv, CONCEPT_RELATIONSHIP.csv …)."
    ),
    builtin: bool = typer.Option(
        False, "--builtin", help="Load hdhub's small built-in vocabulary (the codes of `hdhub synth`)."
    ),
) -> None:
    """Load an Athena vocabulary download, replacing the vocabulary tables it contains (all-or-nothing)."""
    from hdhub.warehouse import BUILTIN_VOCABULARY

    if (directory is None) == (not builtin):
        raise typer.BadParameter("give either a DIRECTORY or --builtin")
    directory = BUILTIN_VOCABULARY if directory is None else directory
    from hdhub.cli.ingest import show_csv_load

    report = load_vocabulary(state(ctx), directory)
    show_csv_load(report, f"Vocabulary load from {directory}")


def load_vocabulary(st: CliState, directory: Path) -> LoadReport:
    """One audited vocabulary load (replacing the vocabulary tables the directory holds)."""
    from hdhub.ingest.omop_csv import load_omop_csv

    decision = st.authorize("warehouse:load")
    try:
        report = load_omop_csv(st.hub.warehouse, directory, replace=True, schema="VOCAB")
    except Exception as exc:
        st.audit(
            "vocab.load",
            decision,
            outcome="failure",
            resource_type="vocabulary",
            resource_id=str(directory.resolve()),
            detail={"error": str(exc)[:500]},
        )
        raise
    st.audit(
        "vocab.load",
        decision,
        resource_type="vocabulary",
        resource_id=str(directory.resolve()),
        detail={"rows": report.rows},
    )
    return report


@app.command()
def ancestors(
    ctx: typer.Context,
    replace: bool = typer.Option(False, "--replace", help="Rebuild even if concept_ancestor has rows."),
) -> None:
    """Derive concept_ancestor from the 'Is a' relationships, for vocabularies that lack it
    (Eunomia samples): "include descendants" in cohort definitions needs it."""
    from hdhub.cli.context import console
    from hdhub.warehouse.ancestors import build_concept_ancestor

    st = state(ctx)
    decision = st.authorize("warehouse:load")
    written = build_concept_ancestor(st.hub.warehouse, replace=replace)
    st.audit("vocab.ancestors", decision, resource_type="vocabulary", resource_id="concept_ancestor",
             detail={"rows": written})  # fmt: skip
    if written:
        console.print(
            f"concept_ancestor: {written:,} rows derived from 'Is a' relationships", highlight=False
        )
    else:
        console.print("concept_ancestor already has rows (use --replace to rebuild)", highlight=False)
