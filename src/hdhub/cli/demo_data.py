"""The demo's data: a synthetic hospital group, loaded as a data team would load it."""

from __future__ import annotations

import time
from typing import Any

from hdhub.cli.context import CliState, console


def load_demo_data(st: CliState, patients: int, seed: int = 1) -> None:
    """On an empty warehouse: the built-in vocabulary, ``hdhub synth`` (3 sites), one FHIR
    load per site and a data-quality report; each step audited like its own command."""
    from hdhub.cli.ingest import load_site
    from hdhub.ingest.omop_csv import load_omop_csv
    from hdhub.synth import generate
    from hdhub.warehouse import BUILTIN_VOCABULARY
    from hdhub.warehouse.dq import run_checks, write_report

    hub: Any = st.hub
    db = hub.warehouse.con
    if db.execute("SELECT count(*) FROM person").fetchone()[0]:
        console.print("demo data already loaded (the warehouse has persons)")
        return
    started = time.perf_counter()
    load = st.authorize("warehouse:load")
    vocab = load_omop_csv(hub.warehouse, BUILTIN_VOCABULARY, replace=True, schema="VOCAB")
    st.audit(
        "vocab.load", load, resource_type="vocabulary", resource_id="builtin", detail={"rows": vocab.rows}
    )
    out = hub.settings.home / "synth"
    synth = generate(out, patients=patients, sites=3, seed=seed)
    loaded: dict[str, int] = {}
    for site in synth.sites:
        report = load_site(st, load, [out / site], site)
        for table, n in report.tables.items():
            loaded[table] = loaded.get(table, 0) + n
    persons = db.execute("SELECT count(*) FROM person").fetchone()[0]
    console.print(
        f"demo data: {patients:,} synthetic patients at {len(synth.sites)} sites ({', '.join(synth.sites)}), "
        f"{synth.total:,} FHIR resources -> {persons:,} persons, "
        f"{sum(loaded.values()):,} OMOP rows in {time.perf_counter() - started:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    read = st.authorize("warehouse:read")
    dq = run_checks(db)
    _, html_path = write_report(dq, hub.settings.home / "reports")
    st.audit("warehouse.dq", read, resource_type="warehouse", resource_id="omop", detail=dq.status_counts)
    counts = dq.status_counts
    console.print(
        f"data quality: {counts['pass']} checks passed, {counts['fail']} failed: {html_path}",
        highlight=False,
        soft_wrap=True,
    )
