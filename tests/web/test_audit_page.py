"""The DPO's audit page: search, chain verification, ECS export; nobody else sees it."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.security import users
from tests.web.conftest import PASSWORD, Site
from tests.web.test_pages import sign_in


def test_the_dpo_searches_verifies_and_exports(site: Site) -> None:
    with Session(site.hub.catalog) as s, s.begin():
        users.create_user(s, "dpo", ["dpo"], password=PASSWORD)
    with TestClient(create_app(site.hub), base_url="http://hdhub.test") as doctor, \
            TestClient(create_app(site.hub), base_url="http://hdhub.test") as dpo:  # fmt: skip
        sign_in(doctor, "dr-lambert")
        doctor.get("/alerts")  # an access to find
        assert doctor.get("/audit").status_code == 403  # clinicians do not read the audit log
        sign_in(dpo, "dpo")
        page = dpo.get("/audit", params={"actor": "dr-lambert"})
        assert page.status_code == 200 and "GET /alerts" in page.text and "dr-lambert" in page.text
        assert "POST /login" in page.text
        verified = dpo.get("/audit", params={"verify": "1"})
        assert "audit chain intact" in verified.text
        export = dpo.get("/audit/export.ndjson", params={"actor": "dr-lambert"})
        assert export.status_code == 200
        lines = [orjson.loads(line) for line in export.content.splitlines()]
        assert lines and all(line["user"]["name"] == "dr-lambert" for line in lines)
        assert {line["event"]["action"] for line in lines} >= {"GET /alerts"}
