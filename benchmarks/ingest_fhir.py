"""FHIR R4 bulk ingest into OMOP on DuckDB: resources per second end to end, and peak memory.

Generates synthetic populations with `hdhub synth` (3 sites), then loads each site with
`load_fhir` in a child process (so peak memory is measured per load) and prints
resources/s (read, parsed, validated, mapped through the vocabulary tables, written,
committed) and the peak resident memory. Two sizes show how memory grows with input.
Then runs `hdhub dq`'s checks on the loaded warehouse and prints how long they take.
Target: >= 250,000 resources/s on 2 cores, memory flat as input grows.

    python benchmarks/ingest_fhir.py [--patients 25000 100000] [--dir /tmp/hdhub-bench]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 250_000


def child(out: Path, site: str, warehouse: str) -> None:
    from hdhub.ingest.fhir import load_fhir
    from hdhub.warehouse import connect

    con = connect(warehouse)
    started = time.perf_counter()
    report = load_fhir(con, [out / site], site=site, secret=b"b" * 32)
    seconds = time.perf_counter() - started
    con.disconnect()
    read = sum(c.read for c in report.types.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps({"resources": read, "seconds": seconds, "peak_mb": peak, "errors": len(report.errors)}))


def dq_child(warehouse: str) -> None:
    from hdhub.warehouse import connect
    from hdhub.warehouse.dq import run_checks

    con = connect(warehouse)
    report = run_checks(con.con)
    con.disconnect()
    rows = sum(n for t, n in report.row_counts.items() if t not in ("concept", "concept_relationship"))
    print(json.dumps({"checks": len(report.results), "seconds": report.seconds, "rows": rows}))


def run(root: Path, patients: int) -> None:
    from hdhub.synth import generate

    out = root / f"synth-{patients}"
    started = time.perf_counter()
    report = generate(out, patients=patients, sites=3, seed=1)
    gen = time.perf_counter() - started
    size = sum(f.stat().st_size for f in out.rglob("*.ndjson")) / 1e9
    warehouse = f"duckdb:///{root}/w-{patients}.duckdb"
    total, seconds, peak = 0, 0.0, 0
    for site in report.sites:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(out), site, warehouse],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        total, seconds, peak = total + r["resources"], seconds + r["seconds"], max(peak, r["peak_mb"])
    rate = total / seconds
    figures = f"{patients:>9,} {total:>12,} {size:>7.2f} GB {gen:>7.1f} s {seconds:>8.1f} s"
    print(f"{figures} {rate:>12,.0f} {peak:>9,} MB   {rate / TARGET:.2f}x target")
    shutil.rmtree(out)
    proc = subprocess.run(
        [sys.executable, __file__, "--dq", warehouse], capture_output=True, text=True, check=True
    )
    dq = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'':>9} hdhub dq: {dq['checks']} checks on {dq['rows']:,} OMOP rows in {dq['seconds']:.1f} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--dq":
        dq_child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--dir", type=Path, default=None, help="scratch space (made if missing)")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print("3 sites per population; each site loaded by a child process (peak = largest site load)")
        print(
            f"{'patients':>9} {'resources':>12} {'ndjson':>10} {'generate':>9} {'ingest':>10} "
            f"{'resources/s':>12} {'peak RSS':>12}"
        )
        for n in args.patients:
            run(Path(tmp), n)


if __name__ == "__main__":
    main()
