from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hdhub.config.settings import OidcSettings
from hdhub.errors import AuthenticationError, ConfigError
from hdhub.security.oidc import OidcVerifier

ISSUER = "https://sso.example-hospital.fr/realms/hdhub"


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def verifier(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> OidcVerifier:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    settings = OidcSettings(
        issuer=ISSUER,
        audience="hdhub",
        jwks="jwks.json",
        role_map={"hdhub-dpo": "dpo", "dim": "data_engineer"},
    )
    return OidcVerifier(settings, tmp_path)


def make_token(key: object, **overrides: object) -> str:
    claims = {
        "iss": ISSUER,
        "aud": "hdhub",
        "sub": "123",
        "preferred_username": "dr.martin",
        "exp": int(time.time()) + 300,
        "realm_access": {"roles": ["hdhub-dpo", "offline_access"]},
    }
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def test_valid_token_maps_roles(verifier: OidcVerifier, signing_key: rsa.RSAPrivateKey) -> None:
    p = verifier.verify(make_token(signing_key))
    assert p.name == "oidc:dr.martin" and p.kind == "oidc"
    assert p.roles == frozenset({"dpo"})  # offline_access is unmapped: grants nothing


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"iss": "https://evil.example"}, "(?i)issuer"),
        ({"aud": "other-app"}, "(?i)audience"),
    ],
)
def test_bad_claims_are_refused(
    verifier: OidcVerifier, signing_key: rsa.RSAPrivateKey, overrides: dict, message: str
) -> None:
    with pytest.raises(AuthenticationError, match=message):
        verifier.verify(make_token(signing_key, **overrides))


def test_token_signed_by_another_key_is_refused(verifier: OidcVerifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthenticationError, match="Signature verification failed"):
        verifier.verify(make_token(other))


def test_alg_none_and_hs256_confusion_are_refused(verifier: OidcVerifier, tmp_path: Path) -> None:
    unsigned = jwt.encode({"iss": ISSUER, "sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(AuthenticationError):
        verifier.verify(unsigned)
    # Classic key confusion: HMAC-sign with the (public) JWKS text as the secret.
    secret = (tmp_path / "jwks.json").read_bytes()
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "k1"})
    body = _b64({"iss": ISSUER, "aud": "hdhub", "sub": "x", "exp": int(time.time()) + 60})
    sig = base64.urlsafe_b64encode(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
    forged = f"{header}.{body}.{sig.rstrip(b'=').decode()}"
    with pytest.raises(AuthenticationError):
        verifier.verify(forged)


def test_garbage_is_refused(verifier: OidcVerifier) -> None:
    with pytest.raises(AuthenticationError):
        verifier.verify("a.b.c")


@pytest.mark.parametrize("role", ["superuser", "device"])
def test_role_map_to_a_role_no_person_holds_is_config_error(tmp_path: Path, role: str) -> None:
    (tmp_path / "j.json").write_text('{"keys": []}')
    with pytest.raises(ConfigError, match=f"cannot hold: {role}"):
        OidcVerifier(OidcSettings(issuer=ISSUER, jwks="j.json", role_map={"x": role}), tmp_path)
