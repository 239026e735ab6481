"""Browser sign-in through an OIDC provider: a real one on loopback (authorization code + PKCE).

The provider here is small but strict: single-use codes bound to the client, the redirect URI
and the PKCE challenge; ID tokens signed with its RSA key, served as a JWKS over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.api.app import create_app
from hdhub.catalog.migrate import upgrade
from hdhub.catalog.models import AuditEvent, User
from hdhub.config.deployment import init_deployment
from hdhub.hub import Hub
from hdhub.security import users

CLIENT_ID, CLIENT_SECRET = "hdhub-web", "s3cret-of-the-client"


@dataclass
class Provider:
    url: str
    key: rsa.RSAPrivateKey
    claims: dict[str, Any] = field(default_factory=dict)  # the next signed-in user's claims
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_nonce: bool = False


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [{**jwk, "kid": "idp-1", "use": "sig", "alg": "RS256"}]}
    state = Provider("", key)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict | None = None, location: str | None = None) -> None:
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                u = state.url
                self._send(200, {"issuer": u, "authorization_endpoint": f"{u}/authorize",
                                 "token_endpoint": f"{u}/token"})  # fmt: skip
            elif url.path == "/jwks":
                self._send(200, jwks)
            elif url.path == "/authorize":  # the user consents at once
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
                code = secrets.token_urlsafe(16)
                state.codes[code] = q | {"claims": dict(state.claims)}
                self._send(
                    302, location=f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
                )
            else:
                self._send(404)

        def do_POST(self) -> None:
            form = {
                k: v[0]
                for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
            }
            grant = state.codes.pop(form.get("code", ""), None)  # single use
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            )
            if (
                grant is None
                or form.get("client_id") != CLIENT_ID
                or form.get("client_secret") != CLIENT_SECRET
                or form.get("redirect_uri") != grant["redirect_uri"]
                or challenge.rstrip(b"=").decode() != grant["code_challenge"]
            ):
                self._send(400, {"error": "invalid_grant"})
                return
            now = int(time.time())
            claims = {"iss": state.url, "aud": CLIENT_ID, "sub": "u-42", "iat": now, "exp": now + 300,
                      "nonce": "forged" if state.bad_nonce else grant["nonce"]} | grant["claims"]  # fmt: skip
            token = jwt.encode(claims, state.key, algorithm="RS256", headers={"kid": "idp-1"})
            self._send(200, {"access_token": "at", "token_type": "Bearer", "id_token": token})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


@pytest.fixture
def hub(tmp_path: Path, provider: Provider) -> Iterator[Hub]:
    home = tmp_path / "d"
    init_deployment(home)
    (home / "secrets" / "oidc-client").write_text(CLIENT_SECRET + "\n")
    with (home / "hdhub.toml").open("a") as fh:
        fh.write(
            f'\n[oidc]\nissuer = "{provider.url}"\njwks = "{provider.url}/jwks"\nclient_id = "{CLIENT_ID}"\n'
            'client_secret_file = "secrets/oidc-client"\nprovider_name = "Keycloak CHU"\n'
            'role_map = { "cardio" = "clinician", "dim" = "data_engineer" }\n'
        )
    h = Hub.open(home)
    upgrade(h.catalog)
    yield h
    h.close()


@pytest.fixture
def browser(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), base_url="http://hdhub.test") as client:
        yield client


def to_provider(browser: TestClient, next_path: str = "/") -> str:
    """Start the sign-in; returns the provider's redirect back to us (a path with its query)."""
    start = browser.get(f"/login/oidc?next={next_path}", follow_redirects=False)
    assert start.status_code == 303 and "hdhub_oidc=" in start.headers["set-cookie"]
    back = httpx.get(start.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    location = urlsplit(back.headers["location"])
    assert location.netloc == "hdhub.test" and location.path == "/login/oidc/callback"
    return f"{location.path}?{location.query}"


def test_a_clinician_signs_in_with_the_provider(browser: TestClient, hub: Hub, provider: Provider) -> None:
    login = browser.get("/login")
    assert "Se connecter avec Keycloak CHU" in login.text
    provider.claims = {
        "preferred_username": "dr.house",
        "name": "Gregory House",
        "realm_access": {"roles": ["cardio", "x"]},
    }
    done = browser.get(to_provider(browser, "/alerts"))
    assert done.status_code == 200, done.text
    assert 'http-equiv="refresh" content="0;url=/alerts"' in done.text
    assert "HttpOnly" in done.headers["set-cookie"] and "SameSite=strict" in done.headers["set-cookie"]
    assert browser.get("/alerts").status_code == 200  # the session works
    with Session(hub.catalog) as s:
        user = s.scalar(select(User).where(User.username == "oidc:dr.house"))
        assert user is not None and user.password_hash is None and user.role_names == ["clinician"]
        events = s.scalars(select(AuditEvent).where(AuditEvent.action.like("GET /login/oidc/callback"))).all()
        assert events and all("code=" not in json.dumps(e.detail) for e in events)  # the code is not kept
    # The IdP changes the user's roles: the next sign-in follows.
    provider.claims["realm_access"] = {"roles": ["dim"]}
    browser.cookies.clear()
    assert browser.get(to_provider(browser)).status_code == 200
    assert browser.get("/alerts").status_code == 403 and browser.get("/warehouse").status_code != 403


def test_the_callback_refuses_what_it_did_not_start(browser: TestClient, provider: Provider) -> None:
    provider.claims = {"preferred_username": "eve", "realm_access": {"roles": ["cardio"]}}
    back = to_provider(browser)
    browser.cookies.delete("hdhub_oidc")  # another browser's answer
    assert browser.get(back).status_code == 401
    back = to_provider(browser)
    path, query = back.split("?")
    forged = {k: v[0] for k, v in parse_qs(query).items()} | {"state": "guessed"}
    assert browser.get(f"{path}?{urlencode(forged)}").status_code == 401
    # A tampered state cookie.
    to_provider(browser)
    cookie = browser.cookies.get("hdhub_oidc")
    browser.cookies.set("hdhub_oidc", cookie[:-4] + "AAAA", domain="hdhub.test", path="/login/oidc/callback")
    assert browser.get(back).status_code == 401
    assert browser.get("/login/oidc/callback?error=access_denied").status_code == 401
    assert browser.get("/alerts", follow_redirects=False).status_code == 303  # never signed in


def test_a_replayed_code_or_a_forged_nonce_signs_nobody_in(browser: TestClient, provider: Provider) -> None:
    provider.claims = {"preferred_username": "mallory", "realm_access": {"roles": ["cardio"]}}
    back = to_provider(browser)
    cookie = browser.cookies.get("hdhub_oidc")
    assert browser.get(back).status_code == 200
    browser.cookies.clear()
    browser.cookies.set("hdhub_oidc", cookie, domain="hdhub.test", path="/login/oidc/callback")
    assert browser.get(back).status_code == 401  # the provider spent the code
    provider.bad_nonce = True
    try:
        browser.cookies.clear()
        assert browser.get(to_provider(browser)).status_code == 401
    finally:
        provider.bad_nonce = False


def test_no_role_or_a_disabled_account_is_refused(browser: TestClient, hub: Hub, provider: Provider) -> None:
    provider.claims = {"preferred_username": "visitor", "realm_access": {"roles": ["unmapped"]}}
    refused = browser.get(to_provider(browser))
    assert refused.status_code == 403 and "hdhub" in refused.text
    provider.claims = {"preferred_username": "dr.gone", "realm_access": {"roles": ["cardio"]}}
    assert browser.get(to_provider(browser)).status_code == 200
    with Session(hub.catalog) as s, s.begin():
        users.set_disabled(s, "oidc:dr.gone", True)
    browser.cookies.clear()
    assert browser.get(to_provider(browser)).status_code == 403
    assert browser.get("/alerts", follow_redirects=False).status_code == 303


def test_without_a_client_id_there_is_no_provider_sign_in(local_hub: Hub) -> None:
    with TestClient(create_app(local_hub)) as client:
        assert "Se connecter avec" not in client.get("/login").text
        assert client.get("/login/oidc", follow_redirects=False).status_code == 404
