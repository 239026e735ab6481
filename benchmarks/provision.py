"""Provisioning a project workspace: a 100,000-patient project from a 1,000,000-patient warehouse.

Builds (or reuses, with ``--dir``) the synthetic OMOP warehouse of ``benchmarks/cohorts.py``
(1,000,000 persons, 100 measurements, 5 conditions, 5 drug exposures and 5 visits each,
laid out by ``hdhub warehouse optimize``), opens an embedded deployment on it, approves a
project whose cohort is "a type 2 diabetes, heart failure or atrial fibrillation diagnosis"
(about 113,000 persons: more than the 100,000 of the target) with person, observation_period,
visit_occurrence, condition_occurrence, drug_exposure and measurement — every column — and
times ``hdhub project provision``: cohort, pseudonyms, date shifts, event-id remapping,
Parquet, the DuckDB mart, encryption under the project's key and the upload to the object
store. Then it provisions again (the
same pseudonyms; the previous extract deleted).

Second figure: the note de-identification rate on one core, on synthetic French notes
(``hdhub.synth.labelled_notes``), through the function provisioning uses.

Targets: provisioning the structured tables <= 60 s on 2 cores; >= 2,000 notes/s per core.

    python benchmarks/provision.py [--persons 1000000] [--dir DIR] [--notes 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TABLES = ("person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
          "measurement")  # fmt: skip
COHORT = {
    "entry": {"events": [{"domain": "condition", "concept_set": "cardiometabolic"}]},
    "concept_sets": {"cardiometabolic": {"items": [{"concept_id": c} for c in (201826, 316139, 313217)]}},
}


def cohorts_benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("bench_cohorts", HERE / "cohorts.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bench_cohorts"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def deployment(root: Path, warehouse: Path) -> Any:
    from sqlalchemy.orm import Session

    from hdhub.catalog.migrate import upgrade
    from hdhub.cohorts.definition import parse_definition
    from hdhub.cohorts.service import save_definition
    from hdhub.config.deployment import init_deployment
    from hdhub.governance import projects as gov
    from hdhub.hub import Hub
    from hdhub.security.users import create_user
    from hdhub.warehouse.schema import cdm_table

    init_deployment(root, warehouse_url=f"duckdb:///{warehouse}")
    hub = Hub.open(root)
    upgrade(hub.catalog)
    with Session(hub.catalog) as s, s.begin():
        create_user(s, "pi", ["clinician"])
        create_user(s, "researcher", ["researcher"])
        create_user(s, "committee", ["committee"])
    save_definition(hub.catalog, "researcher", "cardiometabolic", parse_definition(COHORT))
    data = tuple(
        gov.DataItem(t, tuple(c.name for c in cdm_table(t).columns), "The whole record of the cohort.")
        for t in TABLES
    )
    with Session(hub.catalog) as s, s.begin():
        p = gov.create_project(s, gov.ProjectRequest(
            slug="bench", title="Benchmark", purpose="Provisioning speed.", legal_basis="MR-004", pi="pi",
            duration_months=12, data=data, members=("researcher",), cohort=("cardiometabolic", 1)),
            created_by="researcher")  # fmt: skip
        gov.submit(s, p, by="researcher")
        gov.start_review(s, p, "committee")
        gov.review(s, p, "committee", vote="approve")
        gov.decide(s, p, "committee", "approved")
    return hub


def notes_rate(n: int) -> tuple[float, float]:
    """(notes/s on one core, mean characters per note): median of 3 runs after a warm-up."""
    from hdhub.privacy.note_deid import deidentify
    from hdhub.synth.labelled_notes import labelled_notes

    texts = [note.text for note in labelled_notes(n, seed=3)]
    for text in texts[:200]:
        deidentify(text, date_shift_days=-42)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        for text in texts:
            deidentify(text, date_shift_days=-42)
        runs.append(time.perf_counter() - started)
    return n / statistics.median(runs), sum(map(len, texts)) / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the warehouse here")
    parser.add_argument("--notes", type=int, default=2_000)
    args = parser.parse_args()

    from hdhub.workspaces.provision import provision

    with tempfile.TemporaryDirectory(prefix="hdhub-bench-provision-") as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cohorts-{args.persons}.duckdb"
        con = cohorts_benchmark().build_warehouse(path, args.persons)
        con.disconnect()
        hub = deployment(Path(tmp) / "home", path)
        try:
            first = provision(hub, "bench", by="benchmark")
            again = provision(hub, "bench", by="benchmark")
        finally:
            hub.close()
    rate, chars = notes_rate(args.notes)
    rows = sum(first.tables.values())
    print()
    tables = ", ".join(f"{t} {n:,}" for t, n in first.tables.items())
    print(f"warehouse: {args.persons:,} persons; project: {first.persons:,} persons, {rows:,} rows in "
          f"{len(first.tables)} tables ({tables})")  # fmt: skip
    print("| step | seconds | target |")
    print("|---|---|---|")
    print(f"| provision (first) | {first.seconds:.1f} | <= 60 |")
    print(f"| provision again (same pseudonyms, old extract deleted) | {again.seconds:.1f} | <= 60 |")
    print(f"| note de-identification, 1 core | {rate:,.0f} notes/s ({chars:,.0f} characters each) "
          "| >= 2,000 notes/s |")  # fmt: skip
    print(f"rows/s (first): {rows / first.seconds:,.0f}")


if __name__ == "__main__":
    main()
