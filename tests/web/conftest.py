"""A deployment with a clinician, a researcher and an alert waiting (for the web pages)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from hdhub.hub import Hub
from hdhub.monitoring.devices import register_device
from hdhub.monitoring.service import ingest
from hdhub.security import users
from tests.workspaces.conftest import workspace_template, ws_home, ws_hub  # noqa: F401 (for the workspace pages)

PASSWORD = "correct horse battery staple"
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"


@dataclass
class Site:
    hub: Hub
    alert_id: int


def crisis() -> dict:
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)).isoformat()
    quantity = {"system": UCUM, "code": "mm[Hg]", "unit": "mm[Hg]"}
    return {
        "resourceType": "Observation", "status": "final", "effectiveDateTime": when,
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": c}]}, "valueQuantity": quantity | {"value": v}}
            for c, v in (("8480-6", 191), ("8462-4", 113))
        ],
    }  # fmt: skip


@pytest.fixture
def site(local_hub: Hub) -> Iterator[Site]:
    with Session(local_hub.catalog) as s, s.begin():
        users.create_user(s, "dr-lambert", ["clinician"], password=PASSWORD)
        users.create_user(s, "alice", ["researcher"], password=PASSWORD)
        register_device(s, "CUFF-9", "ab" * 20)
    result = ingest(local_hub.catalog, "CUFF-9", [crisis()], "http")
    yield Site(local_hub, result.alerts[0])
