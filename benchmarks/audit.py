"""Audit log throughput: single appends/s, batched appends/s and verification rate.

Target: >= 5,000 single appends/s on SQLite (embedded default). PostgreSQL is measured
too when it answers at 127.0.0.1:5432 (a throwaway database, dropped after).

    python benchmarks/audit.py [--events 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg

from hdhub.audit.log import AuditLog
from hdhub.catalog.migrate import upgrade
from hdhub.catalog.scratch import scratch_database
from hdhub.config.deployment import init_deployment
from hdhub.hub import Hub
from hdhub.security.principal import Principal

TARGET = 5_000
WHO = Principal(name="bench", roles=frozenset({"clinician"}), kind="user", source="10.0.0.1")


def measure(hub: Hub, n: int) -> dict[str, float]:
    log: AuditLog = hub.audit
    t0 = time.perf_counter()
    for i in range(n):
        log.record(
            WHO, "GET /fhir/r4/Patient/{id}", resource_type="Patient", resource_id=str(i), patient_id=str(i)
        )
    single = n / (time.perf_counter() - t0)
    batch = [AuditLog.event(WHO, "bulk.read", patient_id=str(i)) for i in range(n)]
    t0 = time.perf_counter()
    for start in range(0, n, 500):
        log.record_many(batch[start : start + 500])
    batched = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    report = log.verify()
    assert report.ok, report.message
    verify = report.checked / (time.perf_counter() - t0)
    return {"single": single, "batched": batched, "verify": verify}


def run(label: str, n: int, target: int | None = None, **urls: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        init_deployment(Path(tmp) / "d", **urls)
        hub = Hub.open(Path(tmp) / "d")
        upgrade(hub.catalog)
        r = measure(hub, n)
        hub.close()
    verdict = (
        "" if target is None else ("meets" if r["single"] >= target else "BELOW") + f" target {target:,}/s"
    )
    print(f"{label:12} {r['single']:>12,.0f} {r['batched']:>14,.0f} {r['verify']:>14,.0f}   {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    n = parser.parse_args().events
    print(f"{n:,} events each; figures are events per second")
    print(f"{'catalog':12} {'single/s':>12} {'batch500/s':>14} {'verify/s':>14}")
    run("SQLite", n, target=TARGET)
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=5).close()
    except psycopg.Error as exc:
        print(f"PostgreSQL   skipped ({type(exc).__name__})")
        return
    with scratch_database("hdhub_bench") as url:
        run("PostgreSQL", n, catalog_url=url)


if __name__ == "__main__":
    main()
