"""The administration pages under the account rules shared with the API and the CLI: a typed
password of 12 to 1024 characters, generated ones that pass, no account with the device role."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.catalog.models import User
from hdhub.security import users
from hdhub.security.passwords import check_password_policy
from tests.web.conftest import PASSWORD, Site
from tests.web.test_pages import sign_in


@pytest.fixture
def admin(site: Site) -> Iterator[TestClient]:
    with Session(site.hub.catalog) as s, s.begin():
        users.create_user(s, "root-admin", ["admin"], password=PASSWORD)
    with TestClient(create_app(site.hub), base_url="http://hdhub.test") as c:
        sign_in(c, "root-admin")
        yield c


def user_count(site: Site) -> int:
    with Session(site.hub.catalog) as s:
        return s.scalar(select(func.count()).select_from(User)) or 0


def test_a_typed_password_shorter_than_twelve_characters_is_refused(site: Site, admin: TestClient) -> None:
    before = user_count(site)
    r = admin.post("/admin/users", data={"username": "carol", "roles": ["dpo"], "password": "x" * 11})
    text = html.unescape(r.text)
    assert r.status_code == 422 and "password must have at least 12 characters" in text
    assert "Rien n'a été enregistré" in text and "x" * 11 not in r.text  # never echoed
    assert user_count(site) == before
    r = admin.post(
        "/admin/users",
        data={"username": "carol", "roles": ["dpo"], "password": "x" * 12},
        follow_redirects=False,
    )
    assert r.status_code == 303 and user_count(site) == before + 1


def test_the_form_says_the_bounds(admin: TestClient) -> None:
    page = admin.get("/admin/users").text
    field = re.search(r'<input id="new-user-password"[^>]*>', page).group(0)
    assert 'minlength="12"' in field and 'maxlength="1024"' in field
    assert "12 caractères au moins" in page


def test_generated_passwords_pass_the_policy(site: Site, admin: TestClient) -> None:
    created = admin.post("/admin/users", data={"username": "bob", "roles": ["committee"]})
    reset = admin.post("/admin/users/alice/password")
    for r in (created, reset):
        assert r.status_code == 200
        check_password_policy(html.unescape(re.search(r'id="generated-password">([^<]+)<', r.text).group(1)))


def test_the_page_refuses_the_device_role_by_the_apis_rule(site: Site, admin: TestClient) -> None:
    r = admin.post("/admin/users/alice/roles", data={"roles": ["researcher", "device"]})
    assert r.status_code == 422 and "Rôle inconnu ou qu'un compte ne peut pas recevoir" in html.unescape(
        r.text
    )
    with Session(site.hub.catalog) as s:
        assert users.get_user(s, "alice").role_names == ["researcher"]
