"""The web pages over HTTP: sign-in session, menu by role, the alert list, hostile requests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.catalog.models import Alert
from tests.web.conftest import PASSWORD, Site


@pytest.fixture
def browser(site: Site) -> TestClient:
    with TestClient(create_app(site.hub), base_url="http://hdhub.test") as client:
        yield client


def sign_in(client: TestClient, username: str, next_path: str = "/") -> None:
    r = client.post("/login", data={"username": username, "password": PASSWORD, "next": next_path},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert "hdhub_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_pages_need_a_session(browser: TestClient) -> None:
    r = browser.get("/alerts", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/alerts"
    bad = browser.post("/login", data={"username": "dr-lambert", "password": "nope"})
    assert bad.status_code == 401 and "Identifiant ou mot de passe incorrect" in bad.text
    assert "hdhub_session" not in bad.headers.get("set-cookie", "")


def test_a_clinician_acknowledges_an_alert(browser: TestClient, site: Site) -> None:
    sign_in(browser, "dr-lambert", "/alerts")
    page = browser.get("/alerts")
    assert page.status_code == 200 and "191/113 mm Hg" in page.text and "Acquitter" in page.text
    assert 'href="/alerts"' in page.text  # in the menu
    done = browser.post(f"/alerts/{site.alert_id}/ack", follow_redirects=False)
    assert done.status_code == 303
    with Session(site.hub.catalog) as s:
        alert = s.get(Alert, site.alert_id)
        assert (alert.status, alert.acknowledged_by) == ("acknowledged", "dr-lambert")
    english = browser.get("/alerts?status=acknowledged&lang=en")
    assert "Remote-monitoring alerts" in english.text and "acknowledged (dr-lambert)" in english.text


def test_the_menu_and_pages_follow_the_role(browser: TestClient, site: Site) -> None:
    sign_in(browser, "alice")
    home = browser.get("/")
    assert "alice" in home.text and 'href="/alerts"' not in home.text and 'href="/register"' in home.text
    forbidden = browser.get("/alerts")
    assert forbidden.status_code == 403 and "191/113" not in forbidden.text
    assert browser.post(f"/alerts/{site.alert_id}/ack", follow_redirects=False).status_code == 403


def test_hostile_requests(browser: TestClient, site: Site) -> None:
    # "/\t/host": a browser drops the tab, and the OIDC page's refresh went to //host
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example",
                   "/\n/evil.example"):  # fmt: skip
        r = browser.post("/login", data={"username": "dr-lambert", "password": PASSWORD, "next": target},
                         follow_redirects=False)  # fmt: skip
        assert r.headers["location"] == "/", target  # never an open redirect
    cross = browser.post(f"/alerts/{site.alert_id}/ack", headers={"origin": "https://evil.example"},
                         follow_redirects=False)  # fmt: skip
    assert cross.status_code == 403
    # "null": a cross-site form redirected here (307) could sign a victim into another account
    null = browser.post("/login", data={"username": "dr-lambert", "password": PASSWORD},
                        headers={"origin": "null"}, follow_redirects=False)  # fmt: skip
    assert null.status_code == 403 and "hdhub_session" not in null.headers.get("set-cookie", "")
    browser.cookies.set("hdhub_session", "hdh_forged", domain="hdhub.test")
    assert browser.get("/alerts", follow_redirects=False).status_code == 303  # a bad session is no session
    sign_in(browser, "dr-lambert")
    stolen = browser.cookies.get("hdhub_session", domain="hdhub.test")
    assert browser.post("/logout", follow_redirects=False).status_code == 303
    browser.cookies.clear()
    browser.cookies.set("hdhub_session", stolen, domain="hdhub.test")
    assert browser.get("/alerts", follow_redirects=False).status_code == 303  # signed out: revoked


def test_a_patients_vitals_as_charts(browser: TestClient, site: Site) -> None:
    sign_in(browser, "dr-lambert")
    alerts = browser.get("/alerts")
    person = "ab" * 20
    assert f'href="/monitoring/patients/{person}"' in alerts.text
    page = browser.get(f"/monitoring/patients/{person}")
    assert page.status_code == 200 and "Pression artérielle" in page.text
    assert page.text.count("<svg") == 1 and "<circle" in page.text  # the crisis ringed
    assert ">191<" in page.text and "grade 3 180" in page.text  # the values' table, the threshold
    assert "Valeurs (1)" in page.text and "built-in method" not in page.text
    sign_in(browser, "alice")
    assert browser.get(f"/monitoring/patients/{person}").status_code == 403


def test_the_warehouse_overview(tmp_path: Path) -> None:
    """On a loaded population: records, unmapped codes, sites, visits per year, the DQ report."""
    from tests.conftest import build_population, hdhub_ok

    home = build_population(tmp_path, 40, seed=3)
    hdhub_ok("--home", str(home), "dq")
    bad = tmp_path / "bad" / "Condition.ndjson"
    bad.parent.mkdir()
    bad.write_text('{"resourceType": "Condition", "id": "c1"\nnot json at all\n')
    hdhub_ok("--home", str(home), "ingest", "fhir", str(bad), "--site", "chu-nord")
    from hdhub.hub import Hub
    from hdhub.security import users

    hub = Hub.open(home)
    with Session(hub.catalog) as s, s.begin():
        users.create_user(s, "eve", ["data_engineer"], password=PASSWORD)
        users.create_user(s, "bob", ["researcher"], password=PASSWORD)
    try:
        with TestClient(create_app(hub), base_url="http://hdhub.test") as c:
            sign_in(c, "eve")
            page = c.get("/warehouse")
            assert page.status_code == 200 and "condition_occurrence" in page.text
            assert "chu-nord" in page.text and "<svg" in page.text and "dq-" in page.text
            link = re.search(r'href="(/warehouse/loads/[^"]+/errors.ndjson)"', page.text)
            assert link and "Derniers chargements" in page.text
            report = c.get(link.group(1))
            lines = [json.loads(line) for line in report.text.splitlines()]
            assert report.status_code == 200 and len(lines) == 2
            assert {e["file"] for e in lines} == {"Condition.ndjson"} and all(e["reason"] for e in lines)
            assert c.get("/warehouse/loads/no-such-load/errors.ndjson").status_code == 404
            sign_in(c, "bob")
            assert c.get("/warehouse").status_code == 403
            assert c.get(link.group(1)).status_code == 403
    finally:
        hub.close()


def test_a_browser_gets_error_pages_and_a_client_gets_json(browser: TestClient) -> None:
    sign_in(browser, "alice")
    html = {"accept": "text/html,application/xhtml+xml"}
    missing = browser.get("/projects/no-such-project", headers=html)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "<h1>404</h1>" in missing.text and 'href="/register"' in missing.text  # the layout and its menu
    nowhere = browser.get("/no/such/page", headers=html)
    assert nowhere.status_code == 404 and nowhere.headers["content-type"].startswith("text/html")
    cross_site = browser.post("/logout", headers=html | {"origin": "https://evil.example"})
    assert cross_site.status_code == 403 and "text/html" in cross_site.headers["content-type"]
    api = browser.get("/api/v1/projects/no-such-project", headers=html)  # the API answers JSON, always
    assert api.status_code in (401, 404) and api.json()["error"]["status"] == api.status_code
    assert browser.get("/projects/no-such-project").json()["error"]["code"] == "not_found"


def test_every_answer_forbids_framing_sniffing_and_caching(browser: TestClient) -> None:
    """Found by a review: no page said whether it may be framed (a sibling site could frame the
    admin pages, where SameSite cookies still go) or cached (patients' pages after sign-out)."""
    sign_in(browser, "dr-lambert")
    for path in ("/alerts", "/login", "/api/v1/auth/me", "/nowhere"):
        h = browser.get(path).headers
        assert h["x-frame-options"] == "SAMEORIGIN"
        assert "frame-ancestors 'self'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "same-origin"
        assert h["cache-control"] == "no-store", path
