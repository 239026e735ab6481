from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.hub import Hub
from hdhub.privacy.identity_store import IdentityRecord
from hdhub.security import tokens, users
from hdhub.security.roles import ROLES

PASSWORD = "correct horse battery staple"
PERSON_KEY = "ab" * 20  # a person in the identity store of every test deployment
INS = ("urn:oid:1.2.250.1.213.1.4.8", "180017512345678")


@dataclass
class Api:
    client: TestClient
    hub: Hub
    tokens: dict[str, str]  # role -> bearer secret of a user holding only that role

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
    with TestClient(create_app(hub), client=("10.1.2.3", 50000)) as client:
        yield Api(client, hub, secrets)
