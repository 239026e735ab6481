"""The data engineers' warehouse overview, in the spirit of OHDSI Achilles: records and
unmapped codes per table, persons per site, visits per year and site, the latest data-quality
report. Read-only on the warehouse (a load in progress answers 503)."""

# ruff: noqa: S608  (table and column names come from the constants of this module)
from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from hdhub.api.charts import Point, time_series
from hdhub.api.deps import audit_context, get_hub
from hdhub.api.pages import TEXT, add_texts, language, render, signed_in
from hdhub.errors import NotFound
from hdhub.security.principal import Principal
from hdhub.warehouse.connection import read_only

router = APIRouter(include_in_schema=False)
# table, its concept column (unmapped = 0), its source value column
TABLES = (
    ("person", None, None),
    ("visit_occurrence", "visit_concept_id", "visit_source_value"),
    ("condition_occurrence", "condition_concept_id", "condition_source_value"),
    ("measurement", "measurement_concept_id", "measurement_source_value"),
    ("observation", "observation_concept_id", "observation_source_value"),
    ("drug_exposure", "drug_concept_id", "drug_source_value"),
    ("procedure_occurrence", "procedure_concept_id", "procedure_source_value"),
    ("device_exposure", "device_concept_id", "device_source_value"),
    ("note", None, None),
)


LOAD_ACTION = "warehouse.load-fhir"

add_texts({
    "wh_loads": {"fr": "Derniers chargements", "en": "Latest loads"},
    "wh_site": {"fr": "Site", "en": "Site"},
    "wh_read": {"fr": "Ressources lues", "en": "Resources read"},
    "wh_loaded": {"fr": "Lignes OMOP ajoutées", "en": "OMOP rows added"},
    "wh_rejected": {"fr": "Rejetées", "en": "Rejected"},
    "wh_report": {"fr": "Rapport d'erreurs", "en": "Error report"},
    "wh_no_loads": {"fr": "Aucun chargement : lancer hdhub ingest fhir.",
                    "en": "No load yet: run hdhub ingest fhir."},
})  # fmt: skip


def _latest_loads(hub: Any, limit: int = 10) -> list[dict[str, Any]]:
    """The latest FHIR loads, from their audit events (who, when, what came in, the error report)."""
    loads = []
    for event in hub.audit.search(action=LOAD_ACTION, limit=limit):
        detail = orjson.loads(event.detail) if event.detail else {}
        loads.append({
            "when": event.ts[:16].replace("T", " "), "site": event.resource_id or "", "by": event.actor,
            "outcome": event.outcome, "load_id": detail.get("load_id", ""), "read": detail.get("read"),
            "rows": sum((detail.get("tables") or {}).values()), "rejected": detail.get("rejected", 0),
            "report": bool(detail.get("error_report")), "error": detail.get("error"),
        })  # fmt: skip
    return loads


def _latest_dq(home: Any) -> dict[str, Any] | None:
    reports = sorted((home / "reports").glob("dq-*.json"))
    if not reports:
        return None
    data = orjson.loads(reports[-1].read_bytes())
    return {
        "finished": data.get("finished", ""),
        "overview": data.get("overview", {}),
        "file": reports[-1].name,
    }


@router.get("/warehouse")
def warehouse_page(request: Request) -> Response:
    principal = signed_in(request, "warehouse:read")
    if not isinstance(principal, Principal):
        return principal
    hub = get_hub(request)
    tables, unmapped = [], []
    with read_only(hub.settings.warehouse_url_resolved) as con:
        db = con.con
        for table, concept, source in TABLES:
            rows = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            missing = (
                db.execute(f"SELECT count(*) FROM {table} WHERE {concept} = 0").fetchone()[0]
                if concept
                else None
            )
            tables.append({"table": table, "rows": rows, "unmapped": missing})
            if concept and missing:
                top = db.execute(f"SELECT {source}, count(*) FROM {table} WHERE {concept} = 0 GROUP BY 1 "
                                 "ORDER BY 2 DESC LIMIT 5").fetchall()  # fmt: skip
                unmapped += [{"table": table, "code": code or "", "rows": n} for code, n in top]
        by_site = db.execute(
            "SELECT site, count(DISTINCT person_id) FROM person_site GROUP BY site ORDER BY site"
        ).fetchall()
        sites = [{"site": site, "persons": n} for site, n in by_site]
        per_year = db.execute(
            "SELECT coalesce(s.site, 'unknown'), year(v.visit_start_date) AS y, count(*) "
            "FROM visit_occurrence v LEFT JOIN person_site s USING (person_id) "
            "WHERE v.visit_start_date IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    series: dict[str, list[Point]] = {}
    for site, year, n in per_year:
        series.setdefault(site, []).append(Point(dt.datetime(int(year), 7, 1), float(n)))
    lang = language(request)
    chart = (
        time_series(TEXT["visits_per_year"][lang], TEXT["visits"][lang], list(series.items()))
        if series
        else ""
    )
    return render(request, "warehouse.html.j2", principal, tables=tables, unmapped=unmapped[:25], sites=sites,
                  visits_chart=chart, dq=_latest_dq(hub.settings.home), loads=_latest_loads(hub))  # fmt: skip


@router.get("/warehouse/loads/{load_id}/errors.ndjson")
def load_errors(request: Request, load_id: str) -> Response:
    """A load's error report (file, line, resource type, reason per rejected resource), as stored
    in the landing zone next to the files received."""
    principal = signed_in(request, "warehouse:read")
    if not isinstance(principal, Principal):
        return principal
    hub = get_hub(request)
    for event in hub.audit.search(action=LOAD_ACTION, limit=1000):
        detail = orjson.loads(event.detail) if event.detail else {}
        if detail.get("load_id") == load_id and detail.get("error_report"):
            audit_context(request, resource_type="fhir-load", resource_id=load_id)
            body = hub.objects.get_bytes(detail["error_report"])
            return Response(body, media_type="application/x-ndjson", headers={
                "Content-Disposition": f'attachment; filename="errors-{load_id}.ndjson"',
                "Cache-Control": "no-store"})  # fmt: skip
    raise NotFound(f"no error report for load {load_id[:80]!r}")
