"""A monitored patient's vitals in the browser: one chart per measure over the last days,
with the patient's thresholds and the values that raised alerts ringed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.api.charts import Point, time_series
from hdhub.api.deps import audit_context, get_hub
from hdhub.api.pages import TEXT, language, render, signed_in
from hdhub.catalog.models import Alert, MonitoredPatient, VitalValue
from hdhub.monitoring.rules import thresholds
from hdhub.monitoring.vitals import DIASTOLIC, HEART_RATE, SPO2, SPO2_PULSE, SYSTOLIC, WEIGHT
from hdhub.security.principal import Principal

router = APIRouter(include_in_schema=False)
DAYS = 30
# chart: (title key, unit, series codes and names, thresholds from the rules' configuration)
CHARTS = (
    ("chart_bp", "mm Hg", ((SYSTOLIC, "systolic"), (DIASTOLIC, "diastolic")),
     lambda c: [("grade 1", c["bp_grade"]["grade1_sys"]), ("grade 3", c["bp_grade"]["grade3_sys"])]),
    ("chart_hr", "/min", ((HEART_RATE, "heart rate"),),
     lambda c: [("tachy", c["tachycardia"]["medium"]), ("brady", c["bradycardia"]["medium"])]),
    ("chart_spo2", "%", ((SPO2, "SpO2"), (SPO2_PULSE, "SpO2")),
     lambda c: [("NEWS2", c["desaturation"]["high"])]),
    ("chart_weight", "kg", ((WEIGHT, "weight"),), lambda c: []),
)  # fmt: skip


@router.get("/monitoring/patients/{person_key}")
def patient_vitals(request: Request, person_key: str) -> Response:
    principal = signed_in(request, "alerts:read")
    if not isinstance(principal, Principal):
        return principal
    audit_context(request, resource_type="monitored_patient", patient_id=person_key[:64])
    lang = language(request)
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=DAYS)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    with Session(get_hub(request).catalog) as s:
        patient = s.get(MonitoredPatient, person_key)
        config = thresholds(orjson.loads(patient.thresholds) if patient else None)
        marked = {i for ids in s.scalars(select(Alert.value_ids).where(Alert.person_key == person_key))
                  for i in orjson.loads(ids)}  # fmt: skip
        rows = s.execute(
            select(VitalValue.id, VitalValue.code, VitalValue.value, VitalValue.effective_at)
            .where(VitalValue.person_key == person_key, VitalValue.effective_at >= since)
            .order_by(VitalValue.effective_at)
        ).all()
    by_code: dict[str, list[Point]] = {}
    for vid, code, value, at in rows:
        by_code.setdefault(code, []).append(Point(dt.datetime.fromisoformat(at[:-1]), value, vid in marked))
    charts: list[dict[str, Any]] = []
    for key, unit, codes, limits in CHARTS:
        series = [(name, by_code[code]) for code, name in codes if by_code.get(code)]
        if not series:
            continue
        table: dict[str, list[str]] = {}
        for k, (_, points) in enumerate(series):
            for p in points:
                table.setdefault(p.at.strftime("%Y-%m-%d %H:%M"), [""] * len(series))[k] = f"{p.value:g}"
        charts.append({
            "title": TEXT[key][lang], "svg": time_series(TEXT[key][lang], unit, series, limits(config)),
            "names": [name for name, _ in series],
            "rows": [{"at": at, "values": values} for at, values in sorted(table.items())],
        })  # fmt: skip
    return render(request, "patient_vitals.html.j2", principal, patient=person_key, charts=charts,
                  heart_failure=bool(patient and patient.heart_failure))  # fmt: skip
