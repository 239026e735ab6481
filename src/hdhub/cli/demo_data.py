"""The demo's data: a synthetic hospital group, loaded as a data team would load it."""

from __future__ import annotations

import time
from typing import Any

from hdhub.cli.context import CliState, console


def load_demo_data(st: CliState, patients: int, seed: int = 1) -> None:
    """On an empty warehouse: the built-in vocabulary, ``hdhub synth`` (3 sites), one FHIR
    load per site and a data-quality report; each step audited like its own command."""
    from hdhub.cli.dq import check_warehouse
    from hdhub.cli.ingest import load_site
    from hdhub.cli.vocab import load_vocabulary
    from hdhub.synth import generate
    from hdhub.warehouse import BUILTIN_VOCABULARY

    hub: Any = st.hub
    db = hub.warehouse.con
    if db.execute("SELECT count(*) FROM person").fetchone()[0]:
        console.print("demo data already loaded (the warehouse has persons)")
        return
    started = time.perf_counter()
    load_vocabulary(st, BUILTIN_VOCABULARY)
    out = hub.settings.home / "synth"
    synth = generate(out, patients=patients, sites=3, seed=seed)
    loaded: dict[str, int] = {}
    for site in synth.sites:
        report = load_site(st, [out / site], site)
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
    dq, _, html_path = check_warehouse(st)
    counts = dq.status_counts
    console.print(
        f"data quality: {counts['pass']} checks passed, {counts['fail']} failed: {html_path}",
        highlight=False,
        soft_wrap=True,
    )
