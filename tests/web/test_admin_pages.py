"""The administration pages over HTTP: who may see them, accounts and roles, tokens and
devices, sites and storage policies, hostile input, and what the pages are made of
(labelled inputs, th scope, headings in order, unique ids)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.catalog.models import ApiToken, AuditEvent, MonitoringDevice, Project, ProjectMember, User
from hdhub.config.settings import LifecycleRule
from hdhub.monitoring.devices import register_device
from hdhub.security import users
from hdhub.security.tokens import issue_token
from tests.web.conftest import PASSWORD, Site
from tests.web.test_pages import sign_in

PAGES = ("/admin", "/admin/users", "/admin/tokens", "/admin/sites", "/admin/policies")
FORMS = (
    ("/admin/users", {"username": "mallory", "roles": ["admin"], "password": PASSWORD}),
    ("/admin/users/alice/roles", {"roles": ["admin"]}),
    ("/admin/users/alice/disable", {}),
    ("/admin/users/alice/enable", {}),
    ("/admin/users/alice/password", {}),
    ("/admin/tokens/1/revoke", {}),
    ("/admin/devices/CUFF-9/revoke", {}),
)


@pytest.fixture
def admin_site(site: Site) -> Site:
    with Session(site.hub.catalog) as s, s.begin():
        users.create_user(s, "root-admin", ["admin"], password=PASSWORD)
        users.create_user(s, "dpo-1", ["dpo"], password=PASSWORD)
    return site


@pytest.fixture
def admin(admin_site: Site) -> Iterator[TestClient]:
    with client(admin_site) as c:
        sign_in(c, "root-admin")
        yield c


def client(site: Site) -> TestClient:
    return TestClient(create_app(site.hub), base_url="http://hdhub.test")


def user(site: Site, name: str) -> User | None:
    with Session(site.hub.catalog) as s:
        row = s.scalar(select(User).where(User.username == name))
        if row is not None:
            _ = row.role_names  # loaded before the session closes
        return row


def user_count(site: Site) -> int:
    with Session(site.hub.catalog) as s:
        return s.scalar(select(func.count()).select_from(User)) or 0


def api_token(c: TestClient, name: str, password: str = PASSWORD) -> str:
    r = c.post("/api/v1/auth/token", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def me(c: TestClient, token: str) -> int:
    return c.get("/api/v1/auth/me", headers={"authorization": f"Bearer {token}"}).status_code


def generated_password(page: str) -> str:
    found = re.search(r'<code id="generated-password">([^<]+)</code>', page)
    assert found, page
    return found.group(1)


def audited(site: Site, action: str, resource_id: str) -> list[AuditEvent]:
    with Session(site.hub.catalog) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action,
                                                       AuditEvent.resource_id == resource_id)))  # fmt: skip


class _Structure(HTMLParser):
    """What axe-core checks and a parser can see: labelled fields, th scope, headings, ids."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.label_for: set[str] = set()
        self.fields: list[str | None] = []
        self.described_by: list[str] = []
        self.headings: list[int] = []
        self.th_without_scope = 0
        self.buttons = 0
        self.button_names: list[str] = []
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"] or "")
        if tag == "label" and a.get("for"):
            self.label_for.add(a["for"] or "")
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.fields.append(a.get("id"))
        if a.get("aria-describedby"):
            self.described_by.append(a["aria-describedby"] or "")
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "th" and a.get("scope") not in ("col", "row"):
            self.th_without_scope += 1
        if tag == "button":
            self._in_button = True
            self.button_names.append(a.get("aria-label") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._in_button and data.strip() and self.button_names:
            self.button_names[-1] = self.button_names[-1] or data.strip()


def check_structure(text: str) -> None:
    page = _Structure()
    page.feed(text)
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert all(f and f in page.label_for for f in page.fields), "an input without its label"
    assert all(i in page.ids for i in page.described_by)
    assert page.headings and page.headings[0] == 1 and page.headings.count(1) == 1
    assert all(b <= a + 1 for a, b in zip(page.headings, page.headings[1:], strict=False)), page.headings
    assert page.th_without_scope == 0
    assert all(page.button_names), "a button without a name"


def test_the_pages_need_a_session(admin_site: Site) -> None:
    with client(admin_site) as c:
        for path in PAGES:
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}", path
        for path, data in FORMS:
            r = c.post(path, data=data, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    assert user(admin_site, "mallory") is None and user(admin_site, "alice").role_names == ["researcher"]


@pytest.mark.parametrize("name", ["dr-lambert", "alice", "dpo-1"])
def test_other_roles_get_403_everywhere(admin_site: Site, name: str) -> None:
    with client(admin_site) as c:
        sign_in(c, name)
        assert 'href="/admin"' not in c.get("/").text  # not in their menu
        for path in PAGES:
            r = c.get(path)
            assert r.status_code == 403 and "Accès refusé" in r.text and "root-admin" not in r.text, path
        for path, data in FORMS:
            assert c.post(path, data=data, follow_redirects=False).status_code == 403, path
    assert user(admin_site, "mallory") is None
    alice = user(admin_site, "alice")
    assert alice.role_names == ["researcher"] and not alice.disabled
    with client(admin_site) as c:  # her password unchanged
        assert (
            c.post(
                "/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False
            ).status_code
            == 303
        )
    with Session(admin_site.hub.catalog) as s:
        assert (
            s.scalar(select(MonitoringDevice.revoked_at).where(MonitoringDevice.device_id == "CUFF-9"))
            is None
        )
        assert (
            s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_not(None))) == 0
        )


def test_an_admin_sees_every_page_in_both_languages(admin: TestClient) -> None:
    assert 'href="/admin"' in admin.get("/").text
    for lang, heading in (("fr", "Utilisateurs et rôles"), ("en", "Users and roles")):
        for path in PAGES:
            r = admin.get(f"{path}?lang={lang}")  # how fast: the walk-through's timings, BENCHMARKS.md
            assert r.status_code == 200, (path, r.text)
            assert f'<html lang="{lang}">' in r.text and heading in r.text  # the section menu
            assert r.headers["cache-control"] == "no-store"
            check_structure(r.text)
    overview = admin.get("/admin?lang=fr").text
    assert "4 comptes" in overview and "appareils actifs" in overview


def test_create_a_user_then_sign_in_as_them(admin_site: Site, admin: TestClient) -> None:
    r = admin.post("/admin/users", data={"username": "bob", "display_name": "Bob Martin",
                                         "roles": ["researcher", "committee"]})  # fmt: skip
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret = generated_password(r.text)
    assert len(secret) >= 20 and "Compte créé" in r.text
    assert secret not in admin.get("/admin/users").text  # shown once
    bob = user(admin_site, "bob")
    assert bob.role_names == ["committee", "researcher"] and bob.display_name == "Bob Martin"
    with client(admin_site) as c:
        r = c.post("/login", data={"username": "bob", "password": secret}, follow_redirects=False)
        assert r.status_code == 303
        assert "bob" in c.get("/").text and c.get("/projects").status_code == 200
    form = {"username": "carol", "roles": ["dpo"], "password": "un mot de passe sûr"}
    typed = admin.post("/admin/users", data=form, follow_redirects=False)
    assert typed.status_code == 303 and typed.headers["location"] == "/admin/users?done=created&user=carol"
    done = admin.get(typed.headers["location"]).text
    assert "Compte créé : <strong>carol</strong>" in done
    with client(admin_site) as c:
        assert c.post("/login", data={"username": "carol", "password": "un mot de passe sûr"},
                      follow_redirects=False).status_code == 303  # fmt: skip
    events = audited(admin_site, "POST /admin/users", "bob")
    assert [e.outcome for e in events] == ["success"] and events[0].actor == "root-admin"
    with Session(admin_site.hub.catalog) as s:
        details = " ".join(e.detail or "" for e in s.scalars(select(AuditEvent)))
    assert secret not in details and "un mot de passe sûr" not in details


def test_change_roles_disable_enable_and_reset_a_password(admin_site: Site, admin: TestClient) -> None:
    with client(admin_site) as alice:
        sign_in(alice, "alice")
        token = api_token(alice, "alice")
        assert alice.get("/warehouse").status_code == 403
        r = admin.post("/admin/users/alice/roles", data={"roles": ["researcher", "data_engineer"]},
                       follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/admin/users?done=roles&user=alice"
        assert user(admin_site, "alice").role_names == ["data_engineer", "researcher"]
        assert 'href="/warehouse"' in alice.get("/").text  # her open session has the new roles
        assert audited(admin_site, "POST /admin/users/{username}/roles", "alice")[0].outcome == "success"

        r = admin.post("/admin/users/alice/disable", follow_redirects=False)
        assert r.status_code == 303 and user(admin_site, "alice").disabled
        assert "désactivé" in admin.get(r.headers["location"]).text
        assert alice.get("/", follow_redirects=False).status_code == 303  # her session is dead
        assert me(alice, token) == 401  # and so is her API token
        assert alice.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 401

        assert admin.post("/admin/users/alice/enable", follow_redirects=False).status_code == 303
        assert not user(admin_site, "alice").disabled

        reset = admin.post("/admin/users/alice/password")
        assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
        secret = generated_password(reset.text)
        assert alice.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 401
        assert alice.post("/login", data={"username": "alice", "password": secret},
                          follow_redirects=False).status_code == 303  # fmt: skip


def test_an_admin_cannot_lock_themselves_out(admin_site: Site, admin: TestClient) -> None:
    r = admin.post("/admin/users/root-admin/disable")
    assert r.status_code == 409 and "Vous ne pouvez pas désactiver votre propre compte" in r.text
    r = admin.post("/admin/users/root-admin/roles?lang=en", data={"roles": ["dpo"]})
    assert r.status_code == 409 and "You cannot remove your own admin role" in r.text
    assert not user(admin_site, "root-admin").disabled
    assert user(admin_site, "root-admin").role_names == ["admin"]
    ok = admin.post("/admin/users/root-admin/roles", data={"roles": ["admin", "dpo"]}, follow_redirects=False)
    assert ok.status_code == 303 and user(admin_site, "root-admin").role_names == ["admin", "dpo"]
    with Session(admin_site.hub.catalog) as s, s.begin():  # the service refuses it too, whoever calls
        for change in ({"disabled": True}, {"roles": ["dpo"]}):
            with pytest.raises(Exception, match="your own"):
                users.update_user(s, "root-admin", actor="root-admin", **change)


def test_revoke_an_api_token_and_a_device(admin_site: Site, admin: TestClient) -> None:
    with Session(admin_site.hub.catalog) as s, s.begin():
        device_secret = register_device(s, "WATCH-2", "cd" * 20, "watch")
        project = Project(slug="etude-hta", title="HTA", purpose="p", legal_basis="MR-004", pi="dr-lambert",
                          status="active", data_request="[]", duration_months=12,
                          created_by="alice")  # fmt: skip
        s.add(project)
        s.flush()
        s.add(ProjectMember(project_id=project.id, username="alice", role="member"))
        issue_token(
            s, users.get_user(s, "alice"), name="project etude-hta", ttl=timedelta(days=1), project=project
        )
    with client(admin_site) as api:
        token = api_token(api, "alice")
        assert me(api, token) == 200
        vitals = {"authorization": f"Bearer {device_secret}", "content-type": "application/fhir+json"}
        assert api.post("/api/v1/vitals", headers=vitals, content=b"[]").status_code != 401
        page = admin.get("/admin/tokens")
        assert token not in page.text and token[:12] in page.text and "alice" in page.text
        assert "WATCH-2" in page.text and "cdcdcdcdcd…" in page.text and "cd" * 20 not in page.text
        listed = html.unescape(page.text)
        assert "jeton d'API" in listed and 'href="/projects/etude-hta"' in listed and "session web" in listed
        with Session(admin_site.hub.catalog) as s:
            token_id = s.scalar(select(ApiToken.id).where(ApiToken.name == "password-flow"))
        r = admin.post(f"/admin/tokens/{token_id}/revoke", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/admin/tokens?done=token"
        assert "Jeton révoqué" in admin.get(r.headers["location"]).text
        assert me(api, token) == 401  # the API refuses it from now on
        assert f'id="token-{token_id}"' not in admin.get("/admin/tokens").text  # live ones only
        assert "révoqué" in admin.get("/admin/tokens?all=1").text
        event = audited(admin_site, "POST /admin/tokens/{token_id}/revoke", str(token_id))[0]
        assert event.resource_type == "api_token" and event.outcome == "success" and "alice" in event.detail

        r = admin.post("/admin/devices/WATCH-2/revoke", follow_redirects=False)
        assert r.status_code == 303
        assert api.post("/api/v1/vitals", headers=vitals, content=b"[]").status_code == 401
        event = audited(admin_site, "POST /admin/devices/{device_id}/revoke", "WATCH-2")[0]
        assert event.resource_type == "device" and event.patient_id == "cd" * 20
        assert admin.post("/admin/tokens/999999/revoke").status_code == 404
        assert admin.post(f"/admin/tokens/{2**70}/revoke").status_code == 404
        assert admin.post("/admin/devices/NOPE/revoke").status_code == 404


def test_revoking_the_own_session_signs_out(admin_site: Site, admin: TestClient) -> None:
    with Session(admin_site.hub.catalog) as s:
        own = s.scalar(select(ApiToken.id).join(User).where(User.username == "root-admin"))
    assert admin.post(f"/admin/tokens/{own}/revoke", follow_redirects=False).status_code == 303
    assert admin.get("/admin", follow_redirects=False).status_code == 303


HOSTILE = (
    ({"username": "alice", "roles": ["researcher"]}, 409, "already exists"),
    ({"username": "eve", "roles": ["superuser"]}, 422, "Rôle inconnu"),
    ({"username": "eve", "roles": ["device"]}, 422, "Rôle inconnu"),
    ({"username": "eve"}, 422, "Choisissez au moins un rôle"),
    ({"username": "e" * 151, "roles": ["dpo"]}, 422, "invalid user name"),
    ({"username": "eve", "display_name": "E" * 201, "roles": ["dpo"]}, 422, "display name too long"),
    ({"username": "eve", "roles": ["dpo"], "password": "p" * 1025}, 422, "Mot de passe trop long"),
    ({"username": "<script>alert(1)</script>", "roles": ["dpo"]}, 422, "invalid user name"),
    ({"username": "", "roles": ["dpo"]}, 422, "invalid user name"),
)


@pytest.mark.parametrize(("form", "status", "message"), HOSTILE)
def test_hostile_input_is_refused_with_a_clear_message(
    admin_site: Site, admin: TestClient, form: dict, status: int, message: str
) -> None:
    before = user_count(admin_site)
    r = admin.post("/admin/users", data=form | {"password": form.get("password", "secret-typed-here")})
    text = html.unescape(r.text)
    assert r.status_code == status and message in text and "Rien n'a été enregistré" in text
    assert 'role="alert"' in r.text and "<script>alert" not in r.text
    assert "secret-typed-here" not in r.text and "p" * 1025 not in r.text  # never echoed
    assert user_count(admin_site) == before
    check_structure(r.text)


def test_more_hostile_requests(admin_site: Site, admin: TestClient) -> None:
    r = admin.post("/admin/users/alice/roles", data={"roles": ["researcher", "<b>root</b>"]})
    assert r.status_code == 422 and "&lt;b&gt;root&lt;/b&gt;" in r.text
    assert admin.post("/admin/users/alice/roles", data={}).status_code == 422
    assert admin.post("/admin/users/nobody/disable").status_code == 404
    assert user(admin_site, "alice").role_names == ["researcher"]
    shown = admin.post("/admin/users", data={"username": "dave", "display_name": "<script>alert(1)</script>",
                                             "roles": ["dpo"], "password": PASSWORD})  # fmt: skip
    assert shown.status_code == 200 and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert "<script>" not in shown.text
    spoofed = admin.get("/admin/users?done=created&user=<i>ghost</i>")
    assert "Compte créé" not in spoofed.text  # a message only about an account that exists
    cross = {"origin": "https://evil.example"}
    for path, data in FORMS:
        assert admin.post(path, data=data, headers=cross, follow_redirects=False).status_code == 403, path
    assert user(admin_site, "mallory") is None and user(admin_site, "alice").role_names == ["researcher"]
    with Session(admin_site.hub.catalog) as s:
        assert (
            s.scalar(select(MonitoringDevice.revoked_at).where(MonitoringDevice.device_id == "CUFF-9"))
            is None
        )


def test_sites_from_the_warehouse(admin_site: Site, admin: TestClient) -> None:
    import duckdb

    from hdhub.warehouse.connection import connect

    empty = admin.get("/admin/sites")  # nothing loaded: no warehouse file yet
    assert empty.status_code == 200 and "Entrepôt indisponible" in empty.text and "Aucun site" in empty.text
    url = admin_site.hub.settings.warehouse_url_resolved
    path = Path(url.removeprefix("duckdb:///"))
    duckdb.connect(str(path)).close()  # a file without tables yet
    bare = admin.get("/admin/sites")
    assert bare.status_code == 200 and "Aucun site" in bare.text and "Aucun établissement" in bare.text
    path.unlink()
    con = connect(url)
    con.con.execute("INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, "
                    "ethnicity_concept_id) SELECT i, 0, 1950, 0, 0 FROM range(1, 4) t(i)")  # fmt: skip
    con.con.execute(
        "INSERT INTO person_site VALUES (1, 'chu-nord'), (2, 'chu-nord'), (2, 'chu-sud'), (3, 'chu-sud')"
    )
    con.con.execute("INSERT INTO care_site (care_site_id, care_site_name, care_site_source_value) "
                    "VALUES (7, 'Cardiologie <B>', 'UF-1201')")  # fmt: skip
    con.disconnect()
    r = admin.get("/admin/sites")
    assert r.status_code == 200 and "chu-nord" in r.text and "chu-sud" in r.text
    assert re.search(r"chu-nord</code></th><td>2<", r.text) and "Cardiologie &lt;B&gt;" in r.text
    assert re.search(r"compte une fois\)</dt><dd>3<", r.text)
    assert "2 sites" in admin.get("/admin").text
    check_structure(r.text)


def test_storage_policies_from_the_settings(admin_site: Site, admin: TestClient) -> None:
    r = admin.get("/admin/policies")
    assert r.status_code == 200
    for category in ("dicom", "video", "pathology", "document"):
        assert f"<code>{category}</code>" in r.text
    assert "20 ans après le dernier séjour" in r.text and "GOVERNANCE" in r.text
    assert "après 90 jours" in r.text and "hdhub.toml" in r.text and "Aucune règle" in r.text
    admin_site.hub.settings.objects.lifecycle = [LifecycleRule(prefix="exports/", transition_after_days=30,
                                                               expire_after_days=3650)]  # fmt: skip
    english = admin.get("/admin/policies?lang=en")
    assert "<code>exports/</code>" in english.text and "COLD, after 30 days" in english.text
    assert "after 3650 days" in english.text and "restart the server" in english.text


def test_the_sign_in_page_slows_guessing_down_and_a_new_password_ends_the_delay(
    admin_site: Site, admin: TestClient
) -> None:
    with client(admin_site) as c:
        for _ in range(5):
            r = c.post("/login", data={"username": "alice", "password": "wrong guess!"})
            assert r.status_code == 401 and "Identifiant ou mot de passe incorrect" in r.text
        r = c.post("/login", data={"username": "alice", "password": PASSWORD})
        assert r.status_code == 429 and "Trop d'échecs de connexion" in html.unescape(r.text)
        r = c.post("/login?lang=en", data={"username": "alice", "password": PASSWORD})
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
        # An administrator's new password ends the delay.
        reset = admin.post("/admin/users/alice/password")
        assert reset.status_code == 200
        secret = generated_password(reset.text)
        r = c.post("/login", data={"username": "alice", "password": secret}, follow_redirects=False)
        assert r.status_code == 303
