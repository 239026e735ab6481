from __future__ import annotations

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
from hdhub.privacy.identity_store import IdentityRecord
from hdhub.security import tokens, users
from hdhub.security.roles import ROLES

PASSWORD = "correct horse battery staple"
PERSON_KEY = "ab" * 20  # a person in the identity store of every test deployment
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


@pytest.fixture
def api(hub: Hub) -> Iterator[Api]:
    secrets: dict[str, str] = {}
    with Session(hub.catalog) as s, s.begin():
        for role in ROLES:
            user = users.create_user(s, f"user-{role.replace('_', '-')}", [role], password=PASSWORD)
            secrets[role], _ = tokens.issue_token(s, user, name="test", ttl=timedelta(hours=1))
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
