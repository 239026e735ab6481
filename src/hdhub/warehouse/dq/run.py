"""Run the data-quality checks against a warehouse and collect one result per check."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hdhub import __version__
from hdhub.warehouse._omop_cdm54 import CDM_VERSION
from hdhub.warehouse.dq.checks import Check, all_checks
from hdhub.warehouse.schema import ALL_TABLES

PASS, FAIL, NOT_APPLICABLE, ERROR = "pass", "fail", "not_applicable", "error"


@dataclass
class CheckResult:
    check: Check
    status: str
    violated_rows: int | None = None
    denominator_rows: int | None = None
    note: str = ""
    seconds: float = 0.0

    @property
    def violated_pct(self) -> float | None:
        if not self.denominator_rows or self.violated_rows is None:
            return None
        return 100.0 * self.violated_rows / self.denominator_rows

    def to_dict(self) -> dict[str, Any]:
        c = self.check
        return {
            "id": c.id,
            "check_name": c.name,
            "level": c.level,
            "category": c.category,
            "subcategory": c.subcategory,
            "table": c.table,
            "field": c.field,
            "concept_id": c.concept_id,
            "unit_concept_id": c.unit_concept_id,
            "description": c.description,
            "threshold_pct": c.threshold,
            "status": self.status,
            "violated_rows": self.violated_rows,
            "denominator_rows": self.denominator_rows,
            "violated_pct": None if self.violated_pct is None else round(self.violated_pct, 4),
            "note": self.note,
            "seconds": round(self.seconds, 4),
            "count_sql": c.count_sql,
            "violating_rows_sql": c.rows_sql,
        }


@dataclass
class DqReport:
    started: datetime
    finished: datetime
    results: list[CheckResult] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    @property
    def status_counts(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.results)
        return {s: counts.get(s, 0) for s in (PASS, FAIL, NOT_APPLICABLE, ERROR)}

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status in (FAIL, ERROR)]

    def overview(self) -> dict[str, Any]:
        by_category: dict[str, dict[str, int]] = {}
        for r in self.results:
            cat = by_category.setdefault(r.check.category, {PASS: 0, FAIL: 0, NOT_APPLICABLE: 0, ERROR: 0})
            cat[r.status] += 1
        applicable = sum(1 for r in self.results if r.status in (PASS, FAIL))
        passed = self.status_counts[PASS]
        return {
            "checks": len(self.results),
            **self.status_counts,
            "pass_pct": round(100.0 * passed / applicable, 1) if applicable else None,
            "by_category": by_category,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "hdhub_version": __version__,
            "cdm_version": CDM_VERSION,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "seconds": round(self.seconds, 3),
            "overview": self.overview(),
            "row_counts": self.row_counts,
            "checks": [r.to_dict() for r in self.results],
        }


def _row_counts(db: Any, tables: set[str]) -> dict[str, int]:
    names = [name for name in ALL_TABLES if name in tables]
    return {name: db.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in names}


def run_checks(
    db: Any,
    checks: list[Check] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DqReport:
    """Run ``checks`` (default: all) on a DuckDB connection; read-only, one query per check.

    A check is not applicable when its table (or a table it needs, such as the
    vocabulary) is missing or empty; a query that fails is reported as an error with
    the database's message, and the run goes on.
    """
    checks = all_checks() if checks is None else checks
    started = datetime.now(UTC)
    listed = db.execute("SELECT table_name FROM information_schema.tables").fetchall()
    existing = {row[0].lower() for row in listed}
    counts = _row_counts(db, existing)
    report = DqReport(started=started, finished=started, row_counts=counts)
    for i, check in enumerate(checks):
        report.results.append(_run_one(db, check, existing, counts))
        if progress is not None:
            progress(i + 1, len(checks))
    report.finished = datetime.now(UTC)
    return report


def _run_one(db: Any, check: Check, existing: set[str], counts: dict[str, int]) -> CheckResult:
    if check.name != "cdmTable":
        missing = [t for t in (check.table, *check.needs) if t not in existing]
        if missing:
            return CheckResult(check, NOT_APPLICABLE, note=f"no table {missing[0]}")
        empty = [t for t in check.needs if counts.get(t, 0) == 0]
        if empty:
            return CheckResult(check, NOT_APPLICABLE, note=f"{empty[0]} is empty")
        if counts.get(check.table, 0) == 0 and check.name != "measurePersonCompleteness":
            return CheckResult(check, NOT_APPLICABLE, 0, 0, note=f"{check.table} is empty")
    t0 = time.perf_counter()
    try:
        violated, denominator = db.execute(check.count_sql).fetchone()
    except Exception as exc:  # a database error is a finding about the warehouse, not a crash
        note = str(exc).splitlines()[0][:300]
        return CheckResult(check, ERROR, note=note, seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    if denominator == 0:
        return CheckResult(check, NOT_APPLICABLE, 0, 0, note="no rows in scope", seconds=seconds)
    failed = 100.0 * violated / denominator > check.threshold
    return CheckResult(check, FAIL if failed else PASS, int(violated), int(denominator), seconds=seconds)
