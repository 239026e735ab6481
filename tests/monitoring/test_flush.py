"""Device values into OMOP: measurement rows linked to a device_exposure per device, once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.catalog.models import VitalValue
from hdhub.hub import Hub
from hdhub.synth.devices import write_device_streams
from tests.conftest import build_population, hdhub_ok


def test_flush_writes_each_value_once(tmp_path: Path) -> None:
    home = build_population(tmp_path, 40, seed=9)
    streams = write_device_streams(tmp_path / "synth", share=0.3, seed=9, end=dt.datetime.now(dt.UTC))
    hdhub_ok("--home", str(home), "monitoring", "replay", str(tmp_path / "synth" / "devices"))
    warehouse = str(home / "warehouse.duckdb")
    with duckdb.connect(warehouse, read_only=True) as db:
        before = db.execute("SELECT count(*) FROM measurement").fetchone()[0]
    out = " ".join(hdhub_ok("--home", str(home), "monitoring", "flush").split())
    hub = Hub.open(home)
    try:
        with Session(hub.catalog) as s:
            values = s.scalar(select(func.count()).select_from(VitalValue).where(VitalValue.code != "8637-1"))
            pending = s.scalar(
                select(func.count()).select_from(VitalValue).where(VitalValue.flushed_at.is_(None))
            )
    finally:
        hub.close()
    assert f"{values:,} measurements and {streams.devices:,} new device exposures written" in out, out
    assert pending == 0
    with duckdb.connect(warehouse, read_only=True) as db:
        assert db.execute("SELECT count(*) FROM measurement").fetchone()[0] == before + values
        devices = db.execute(
            "SELECT count(*), count(DISTINCT device_source_value) FROM device_exposure "
            "WHERE device_type_concept_id = 32865"
        ).fetchone()
        assert devices == (streams.devices, streams.devices)
        rows = db.execute(
            "SELECT m.measurement_concept_id, m.unit_source_value, m.measurement_datetime BETWEEN "
            "e.device_exposure_start_datetime AND e.device_exposure_end_datetime FROM measurement m "
            "JOIN device_exposure e ON e.person_id = m.person_id WHERE m.measurement_type_concept_id = 32865"
        ).fetchall()
        assert (
            rows and all(r[2] for r in rows) and {r[0] for r in rows} >= {3004249, 3012888, 3027018, 3025315}
        )
    again = " ".join(hdhub_ok("--home", str(home), "monitoring", "flush").split())
    assert again.startswith("0 measurements and 0 new device exposures written")
