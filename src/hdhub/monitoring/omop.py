# ruff: noqa: S608  (SQL from constants and the measures table of this package; values are bound)
"""``hdhub monitoring flush``: device values into OMOP ``measurement`` and ``device_exposure``.

Values wait in the catalog (``vital_values``), where the detectors read them; a flush (run
it every few minutes, like any ETL) writes those not yet in the warehouse, in one DuckDB
transaction:

- ``device_exposure``: one row per device and person, from its first to its latest value
  (``device_source_value`` = the device's identifier, ``device_type_concept_id`` 32865
  "Patient self-report": home readings are patient-generated), extended at each flush;
- ``measurement``: one row per value — the LOINC concept, the value in the stored UCUM unit,
  type 32865, the LOINC code and unit as source values — linked to its device's
  ``device_exposure`` through ``measurement_event_id`` when the vocabulary holds the CDM field
  concept ``device_exposure.device_exposure_id`` for ``meas_event_field_concept_id`` (a full
  Athena download does; without it the link is left empty rather than invented);
- R-R series are screened, not stored as measurements.

A value whose patient is not in the warehouse yet waits for the next flush. Each flushed
value's catalog id is recorded in the warehouse (``_hdhub_vital_rows``) in the same
transaction, so a flush interrupted between the two stores never writes a value twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hdhub.catalog.models import VitalValue, utcnow
from hdhub.monitoring.vitals import MEASURES, RR

PATIENT_SELF_REPORT = 32865
CHUNK = 200_000
_SETUP = (
    "CREATE TABLE IF NOT EXISTS _hdhub_vital_rows (vital_id BIGINT NOT NULL, measurement_id BIGINT NOT NULL)"
)


@dataclass
class FlushResult:
    measurements: int = 0
    devices: int = 0
    waiting: int = 0  # values whose patient is not in the warehouse yet
    linked: bool = False  # measurement_event_id set (the CDM field concept is in the vocabulary)


def _field_concept(db: Any) -> int | None:
    row = db.execute(
        "SELECT concept_id FROM concept WHERE lower(concept_name) = 'device_exposure.device_exposure_id' "
        "AND domain_id = 'Metadata' LIMIT 1"
    ).fetchone()
    return int(row[0]) if row else None


def _measures() -> pa.Table:
    codes = [c for c in MEASURES if c != RR]
    return pa.table({
        "code": codes,
        "concept_id": [MEASURES[c].concept_id for c in codes],
        "unit_concept_id": [MEASURES[c].unit_concept_id for c in codes],
        "unit": [MEASURES[c].unit for c in codes],
    })  # fmt: skip


def flush(catalog: Any, con: Any) -> FlushResult:
    """Write the catalog's unflushed values into the warehouse ``con`` (an Ibis DuckDB backend)."""
    db = con.con
    db.execute(_SETUP)
    field = _field_concept(db)
    result = FlushResult(linked=field is not None)
    db.register("_hdhub_measures", _measures())
    last_id = 0
    while True:
        with Session(catalog) as s:
            rows = s.execute(
                select(
                    VitalValue.id,
                    VitalValue.person_key,
                    VitalValue.device_id,
                    VitalValue.code,
                    VitalValue.value,
                    VitalValue.effective_at,
                )
                .where(VitalValue.flushed_at.is_(None), VitalValue.id > last_id)
                .order_by(VitalValue.id)
                .limit(CHUNK)
            ).all()
        if not rows:
            break
        last_id = rows[-1][0]
        columns = list(zip(*rows, strict=True))
        batch = pa.table({
            "vital_id": pa.array(columns[0], pa.int64()), "person_key": pa.array(columns[1], pa.string()),
            "device_id": pa.array(columns[2], pa.string()), "code": pa.array(columns[3], pa.string()),
            "value": pa.array(columns[4], pa.float64()),
            "taken": pa.array([dt.datetime.fromisoformat(t[:-1]) for t in columns[5]], pa.timestamp("us")),
        })  # fmt: skip
        done, written, devices, waiting = _write(db, batch, field)
        result.measurements += written
        result.devices += devices
        result.waiting += waiting
        with Session(catalog) as s, s.begin():
            for i in range(0, len(done), 10_000):
                s.execute(
                    update(VitalValue)
                    .where(VitalValue.id.in_(done[i : i + 10_000]))
                    .values(flushed_at=utcnow())
                )
    db.unregister("_hdhub_measures")
    return result


def _write(db: Any, batch: pa.Table, field: int | None) -> tuple[list[int], int, int, int]:
    """One chunk in one transaction: (catalog ids done, measurements written, new devices,
    values waiting for their patient)."""
    db.register("_hdhub_vitals", batch)
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _hdhub_v AS SELECT v.*, p.person_id FROM _hdhub_vitals v "
            "LEFT JOIN person p ON p.person_source_value = v.person_key "
            "WHERE v.vital_id NOT IN (SELECT vital_id FROM _hdhub_vital_rows)"
        )
        waiting = db.execute("SELECT count(*) FROM _hdhub_v WHERE person_id IS NULL").fetchone()[0]
        new_devices = db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT device_id, person_id FROM _hdhub_v "
            "WHERE person_id IS NOT NULL) d "
            "WHERE NOT EXISTS (SELECT 1 FROM device_exposure e WHERE e.device_source_value = d.device_id "
            "AND e.person_id = d.person_id)"
        ).fetchone()[0]
        db.execute(
            "INSERT INTO device_exposure (device_exposure_id, person_id, device_concept_id, "
            "device_exposure_start_date, "
            "device_exposure_start_datetime, device_exposure_end_date, device_exposure_end_datetime, "
            "device_type_concept_id, device_source_value, device_source_concept_id) "
            "SELECT (SELECT coalesce(max(device_exposure_id), 0) FROM device_exposure) "
            "+ row_number() OVER (ORDER BY device_id, person_id), person_id, 0, "
            "min(taken)::DATE, min(taken), "
            f"max(taken)::DATE, max(taken), {PATIENT_SELF_REPORT}, device_id, 0 FROM _hdhub_v d "
            "WHERE person_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM device_exposure e "
            "WHERE e.device_source_value = d.device_id AND e.person_id = d.person_id) "
            "GROUP BY device_id, person_id"
        )
        db.execute(
            "UPDATE device_exposure e SET "
            "device_exposure_end_date = GREATEST(e.device_exposure_end_date, l.last::DATE), "
            "device_exposure_end_datetime = GREATEST(e.device_exposure_end_datetime, l.last) "
            "FROM (SELECT device_id, person_id, max(taken) AS last FROM _hdhub_v WHERE person_id IS NOT NULL "
            "GROUP BY device_id, person_id) l "
            "WHERE e.device_source_value = l.device_id AND e.person_id = l.person_id"
        )
        link = "e.device_exposure_id" if field is not None else "NULL"
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _hdhub_m AS SELECT v.vital_id, "
            "(SELECT coalesce(max(measurement_id), 0) FROM measurement) "
            "+ row_number() OVER (ORDER BY v.vital_id) AS measurement_id, v.person_id, "
            "m.concept_id, v.taken, v.value, m.unit_concept_id, v.code, m.unit, "
            f"{link} AS event_id FROM _hdhub_v v JOIN _hdhub_measures m USING (code) "
            "JOIN device_exposure e ON e.device_source_value = v.device_id AND e.person_id = v.person_id "
            "WHERE v.person_id IS NOT NULL"
        )
        db.execute(
            "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, "
            "measurement_datetime, measurement_type_concept_id, value_as_number, unit_concept_id, "
            "measurement_source_value, measurement_source_concept_id, unit_source_value, "
            "measurement_event_id, "
            "meas_event_field_concept_id) SELECT measurement_id, person_id, concept_id, taken::DATE, taken, "
            f"{PATIENT_SELF_REPORT}, value, unit_concept_id, code, 0, unit, event_id, "
            f"{field if field is not None else 'NULL'} FROM _hdhub_m"
        )
        written = db.execute("SELECT count(*) FROM _hdhub_m").fetchone()[0]
        db.execute(
            "INSERT INTO _hdhub_vital_rows SELECT vital_id, measurement_id FROM _hdhub_m "
            "UNION ALL SELECT vital_id, 0 FROM _hdhub_v WHERE person_id IS NOT NULL AND code NOT IN "
            "(SELECT code FROM _hdhub_measures)"
        )
        done = [
            r[0] for r in db.execute("SELECT vital_id FROM _hdhub_v WHERE person_id IS NOT NULL").fetchall()
        ]
        done += [r[0] for r in db.execute(
            "SELECT vital_id FROM _hdhub_vitals WHERE vital_id IN (SELECT vital_id FROM _hdhub_vital_rows) "
            "AND vital_id NOT IN (SELECT vital_id FROM _hdhub_v)").fetchall()]  # fmt: skip
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    finally:
        db.unregister("_hdhub_vitals")
    return done, written, new_devices, waiting
