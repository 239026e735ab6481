from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.hub import Hub
from hdhub.imaging import media
from hdhub.imaging.store import store_instance
from hdhub.monitoring.devices import register_device
from hdhub.privacy.identity_store import IdentityRecord
from hdhub.security import tokens, users

PASSWORD = "correct horse battery staple"
PERSON_KEY = "ab" * 20  # a person in the identity store of every test deployment
DEVICE = "cuff-0001"  # a device of PERSON_KEY in every test deployment
INS = ("urn:oid:1.2.250.1.213.1.4.8", "180017512345678")
# A DICOM instance in the imaging archive of every test deployment.
STUDY, SERIES, INSTANCE = (
    "1.2.826.0.1.3680043.10.1",
    "1.2.826.0.1.3680043.10.1.1",
    "1.2.826.0.1.3680043.10.1.1.1",
)
MR_SMALL = Path(pydicom.data.get_testdata_file("MR_small.dcm"))


def dicom_instance(study: str, series: str, sop: str, **attributes: str) -> bytes:
    """MR_small.dcm (pydicom's test data) with other UIDs and attributes, as file bytes."""
    ds = pydicom.dcmread(MR_SMALL)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buf = BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@dataclass
class Api:
    client: TestClient
    hub: Hub
    tokens: dict[str, str]  # role -> bearer secret of a user holding only that role
    media_id: str = ""  # a complete non-DICOM object of patient 4MR1

    def as_role(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}


# The warehouse of every test deployment: 40 persons at site "nord", 25 of them with type 2
# diabetes (concept 201826) in 2015; person_source_value = PERSON_KEYS[person_id - 1].
T2DM = 201826
PERSON_KEYS = [f"{i:040x}" for i in range(1, 41)]


@pytest.fixture(scope="session")
def warehouse_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once, copied into each deployment (creating 41 tables takes 0.4 s)."""
    from hdhub.warehouse import connect

    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    con = connect(f"duckdb:///{path}")
    db = con.con
    db.execute(
        "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, "
        "ethnicity_concept_id, person_source_value) "
        "SELECT i, CASE WHEN i % 2 = 0 THEN 8532 ELSE 8507 END, 1940 + i, 0, 0, "
        "lpad(printf('%x', i), 40, '0') FROM range(1, 41) t(i)"
    )
    db.execute(
        "INSERT INTO observation_period SELECT i, i, DATE '2010-01-01', DATE '2024-12-31', 32817 "
        "FROM range(1, 41) t(i)"
    )
    db.execute(
        "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, "
        f"condition_start_date, condition_type_concept_id) SELECT i, i, {T2DM}, DATE '2015-06-01', 32817 "
        "FROM range(1, 26) t(i)"
    )
    db.execute("INSERT INTO person_site SELECT i, 'nord' FROM range(1, 41) t(i)")
    db.execute(
        f"INSERT INTO concept VALUES ({T2DM}, 'Type 2 diabetes mellitus', 'Condition', 'SNOMED', "
        "'Clinical Finding', 'S', '44054006', DATE '2002-01-31', DATE '2099-12-31', NULL)"
    )
    con.disconnect()
    return path


@pytest.fixture
def api(hub: Hub, warehouse_template: Path) -> Iterator[Api]:
    shutil.copyfile(warehouse_template, hub.settings.warehouse_url_resolved.removeprefix("duckdb:///"))
    secrets: dict[str, str] = {}
    with Session(hub.catalog) as s, s.begin():
        for role in users.PERSON_ROLES:
            user = users.create_user(s, f"user-{role.replace('_', '-')}", [role], password=PASSWORD)
            secrets[role], _ = tokens.issue_token(s, user, name="test", ttl=timedelta(hours=1))
        # A device acts with its own device token (bound to one patient), not a user's.
        secrets["device"] = register_device(s, DEVICE, PERSON_KEY, "test cuff")
    hub.identities.put_many(
        [
            IdentityRecord(
                "nord",
                "cd" * 20,
                PERSON_KEY,
                {
                    "name": [{"family": "Martin", "given": ["Jeanne"]}],
                    "identifier": [{"system": INS[0], "value": INS[1]}],
                },
            )
        ]
    )
    assert (
        store_instance(hub.catalog, hub.objects, dicom_instance(STUDY, SERIES, INSTANCE)).status == "stored"
    )
    document = media.create_upload(hub, size=0, category="document", patient_id="4MR1", created_by="test")
    with TestClient(create_app(hub), client=("10.1.2.3", 50000)) as client:
        yield Api(client, hub, secrets, document.id)
