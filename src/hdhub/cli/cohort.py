"""`hdhub cohort …`: count a cohort definition, save versions, materialise, show its SQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from hdhub.cli.context import console, new_app, state
from hdhub.errors import ValidationError

app = new_app("Patient cohorts: counts with disclosure control, saved definitions, materialised cohorts.")

MAX_FILE_BYTES = 2_000_000


def read_definition(file: Path) -> Any:
    """Parse a cohort definition file: hdhub.cohort/1, or an ATLAS (circe) cohort definition."""
    from hdhub.cohorts.definition import parse_any

    return parse_any(_read(file), name=file.stem)


def _read(file: Path) -> bytes:
    if str(file) == "-":
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    else:
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                raise ValidationError(f"{file}: larger than {MAX_FILE_BYTES // 1_000_000} MB")
            data = file.read_bytes()
        except OSError as exc:
            raise ValidationError(f"cannot read {file}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(f"{file}: larger than {MAX_FILE_BYTES // 1_000_000} MB")
    return data


@app.command()
def count(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="A cohort definition (hdhub.cohort/1 or ATLAS JSON); - reads stdin."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    no_breakdowns: bool = typer.Option(False, "--no-breakdowns", help="Persons and attrition only."),
) -> None:
    """Count the persons of a cohort: attrition per inclusion rule, breakdowns by sex, age band and site."""
    from hdhub.cohorts.service import count_for

    st = state(ctx)
    definition = read_definition(file)
    decision = st.authorize("cohorts:count")
    result = count_for(st.hub, st.hub.warehouse, st.principal, definition, breakdowns=not no_breakdowns)
    st.audit(
        "cohort.count",
        decision,
        resource_type="cohort",
        resource_id=result["fingerprint"][:16],
        detail={"name": definition.name, "exact": result["exact"], "persons": result["persons"]},
    )
    if as_json:
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    show_result(definition, result)


def show_result(definition: Any, result: dict[str, Any]) -> None:
    title = definition.name or "cohort"
    note = "exact" if result["exact"] else f"obfuscated: noise, counts below {result['threshold']} hidden"
    console.print(
        f"{title}: {result['persons']} persons ({note}), {result['seconds']:.2f} s", highlight=False
    )
    table = Table(title="Attrition")
    for col in ("step", "meets the rule", "remaining"):
        table.add_column(col, justify="left" if col == "step" else "right")
    table.add_row("entry events", "", str(result["entry"]))
    for r in result["attrition"]:
        table.add_row(r["rule"], str(r["met"]), str(r["remaining"]))
    console.print(table)
    cells = result["breakdowns"]
    if cells["sex_age"]:
        t = Table(title="By sex and age band at index")
        for col in ("sex", "age", "persons"):
            t.add_column(col, justify="right" if col == "persons" else "left")
        for c in cells["sex_age"]:
            t.add_row(c["sex"], f"{c['age_band']}-{c['age_band'] + 9}", str(c["persons"]))
        console.print(t)
    if cells["site"]:
        t = Table(title="By site")
        t.add_column("site")
        t.add_column("persons", justify="right")
        for c in cells["site"]:
            t.add_row(c["site"], str(c["persons"]))
        console.print(t)


@app.command()
def save(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A cohort definition (JSON)."),
    name: str | None = typer.Option(None, "--name", help="Name to save under (default: the definition's)."),
) -> None:
    """Save a definition as a new version under its name (unchanged: no new version)."""
    from hdhub.cohorts.service import save_definition

    st = state(ctx)
    definition = read_definition(file)
    decision = st.authorize("cohorts:define")
    label = name or definition.name
    if not label:
        raise ValidationError("the definition has no name: give --name")
    row = save_definition(st.hub.catalog, st.principal.name, label, definition)
    st.audit("cohort.save", decision, resource_type="cohort_definition", resource_id=f"{label}@{row.version}")
    console.print(f"saved {label!r} version {row.version}", highlight=False)


@app.command()
def materialise(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A cohort definition (JSON)."),
    cohort_id: int = typer.Option(
        ..., "--cohort-id", help="cohort_definition_id of the rows in OMOP cohort."
    ),
) -> None:
    """Write the cohort's rows into the OMOP cohort table (replacing that cohort id's rows)."""
    from hdhub.cohorts.service import materialise as write_rows

    st = state(ctx)
    definition = read_definition(file)
    decision = st.authorize("cohorts:materialise")
    rows = write_rows(st.hub.warehouse, st.hub.catalog, definition, cohort_id)
    st.audit("cohort.materialise", decision, resource_type="cohort", resource_id=str(cohort_id),
             detail={"rows": rows})  # fmt: skip
    console.print(f"cohort {cohort_id}: {rows:,} rows written to the OMOP cohort table", highlight=False)


@app.command()
def sql(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A cohort definition (JSON)."),
    dialect: str = typer.Option("duckdb", "--dialect", help="duckdb, postgres or pyspark."),
) -> None:
    """Print the SQL of the definition's count for an engine (concept sets resolved here)."""
    from hdhub.cohorts.compiler import compile_cohort, unbound_tables
    from hdhub.cohorts.concepts import resolve_concept_sets
    from hdhub.cohorts.sql import DIALECTS, to_sql

    if dialect not in DIALECTS:
        raise typer.BadParameter(f"one of {', '.join(DIALECTS)}", param_hint="--dialect")
    st = state(ctx)
    definition = read_definition(file)
    st.authorize("cohorts:count")
    compiled = compile_cohort(
        definition, resolve_concept_sets(st.hub.warehouse, definition), unbound_tables()
    )
    typer.echo(to_sql(compiled.summary(), dialect, lists=compiled.lists))


@app.command("import-atlas")
def import_atlas(
    file: Path = typer.Argument(..., help="An ATLAS cohort definition (JSON exported from ATLAS or WebAPI)."),
    name: str | None = typer.Option(None, "--name", help="Name of the definition (default: the file's)."),
) -> None:
    """Print the hdhub definition of an ATLAS one; exit 65 naming every construct hdhub cannot carry."""
    from hdhub.cohorts.atlas import import_atlas as convert
    from hdhub.cohorts.definition import load_json
    from hdhub.cohorts.service import canonical

    definition = convert(load_json(_read(file)), name=name or file.stem)
    typer.echo(orjson.dumps(orjson.loads(canonical(definition)), option=orjson.OPT_INDENT_2).decode())


@app.command()
def schema() -> None:
    """Print the JSON Schema of the definition format."""
    from hdhub.cohorts.definition import json_schema

    typer.echo(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode())
