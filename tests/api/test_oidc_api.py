"""OIDC bearer tokens through the API, with the JWKS served over real HTTP on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from hdhub.api.app import create_app
from hdhub.config.deployment import init_deployment
from hdhub.hub import Hub

ISSUER = "https://sso.chu-exemple.fr/realms/hdhub"


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(idp_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "idp-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/realms/hdhub/protocol/openid-connect/certs"
    server.shutdown()


@pytest.fixture
def client(tmp_path: Path, jwks_url: str) -> Iterator[tuple[TestClient, Hub]]:
    from hdhub.catalog.migrate import upgrade

    home = tmp_path / "d"
    init_deployment(home)
    with (home / "hdhub.toml").open("a") as fh:
        fh.write(
            f'\n[oidc]\nissuer = "{ISSUER}"\naudience = "hdhub"\njwks = "{jwks_url}"\n'
            'role_map = { "hdhub-admins" = "admin", "dim" = "data_engineer" }\n'
        )
    hub = Hub.open(home)
    upgrade(hub.catalog)
    with TestClient(create_app(hub)) as c:
        yield c, hub
    hub.close()


def token(key: rsa.RSAPrivateKey, roles: list[str], **claims: object) -> str:
    body = {
        "iss": ISSUER,
        "aud": "hdhub",
        "sub": "f3a1",
        "preferred_username": "m.durand",
        "exp": int(time.time()) + 300,
        "realm_access": {"roles": roles},
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "idp-1"})


def test_oidc_admin_is_allowed_and_audited(
    client: tuple[TestClient, Hub], idp_key: rsa.RSAPrivateKey
) -> None:
    c, hub = client
    r = c.get("/api/v1/users", headers={"Authorization": f"Bearer {token(idp_key, ['hdhub-admins'])}"})
    assert r.status_code == 200, r.text
    ev = hub.audit.search(limit=1)[0]
    assert (ev.actor, ev.actor_type, ev.role) == ("oidc:m.durand", "oidc", "admin")


def test_oidc_wrong_role_is_403_and_bad_tokens_401(
    client: tuple[TestClient, Hub], idp_key: rsa.RSAPrivateKey
) -> None:
    c, _hub = client
    r = c.get("/api/v1/users", headers={"Authorization": f"Bearer {token(idp_key, ['dim'])}"})
    assert r.status_code == 403
    r = c.get(
        "/api/v1/users", headers={"Authorization": f"Bearer {token(idp_key, ['hdhub-admins'], iss='x')}"}
    )
    assert r.status_code == 401
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = c.get("/api/v1/users", headers={"Authorization": f"Bearer {token(stranger, ['hdhub-admins'])}"})
    assert r.status_code == 401


def test_jwt_refused_when_oidc_is_off(local_hub: Hub, idp_key: rsa.RSAPrivateKey) -> None:
    with TestClient(create_app(local_hub)) as c:
        r = c.get("/api/v1/users", headers={"Authorization": f"Bearer {token(idp_key, ['hdhub-admins'])}"})
    assert r.status_code == 401 and "not enabled" in r.json()["error"]["message"]
