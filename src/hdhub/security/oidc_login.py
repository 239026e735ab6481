"""Browser sign-in through the hospital's OIDC provider: the authorization code flow with PKCE.

``start`` sends the browser to the IdP with a fresh ``state``, ``nonce`` and PKCE verifier,
kept in a short-lived cookie signed with a key derived from the deployment's secret (so any
worker process can check it, and nothing is stored server-side). ``finish`` checks the
returned ``state`` against that cookie, exchanges the code at the token endpoint (with the
verifier, and the client secret for a confidential client), verifies the ID token (signature
against the JWKS, issuer, audience = our client id, expiry, nonce) and maps the IdP's roles.

The IdP user becomes an hdhub account named ``oidc:<name>`` (the name bearer tokens give it
too; local account names never hold a colon, so an IdP user can never take over a local
account). Its roles are the IdP's mapped roles, refreshed at each sign-in; an administrator
who disables it in hdhub stops it signing in, whatever the IdP says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hdhub.catalog.models import User
from hdhub.config.settings import OidcSettings
from hdhub.errors import AuthenticationError, ConfigError, Forbidden
from hdhub.security.oidc import OidcVerifier
from hdhub.security.users import set_roles

STATE_TTL_S = 600
_TIMEOUT = httpx.Timeout(10.0)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SignedIn:
    username: str
    roles: list[str]
    display_name: str | None
    email: str | None
    next: str


class BrowserSignIn:
    def __init__(self, settings: OidcSettings, home: Path, verifier: OidcVerifier, secret: bytes) -> None:
        if not settings.client_id:
            raise ConfigError("browser sign-in needs oidc.client_id")
        self.settings = settings
        self.verifier = verifier
        self._key = hmac.new(secret, b"hdhub-oidc-login-state", hashlib.sha256).digest()
        self._client_secret: str | None = None
        if settings.client_secret_file:
            path = Path(settings.client_secret_file)
            path = path if path.is_absolute() else home / path
            try:
                self._client_secret = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read oidc.client_secret_file {path}: {exc}") from None
        self._endpoints: dict[str, str] | None = None

    # -- the provider's endpoints ---------------------------------------------------------
    def endpoints(self) -> dict[str, str]:
        if self._endpoints is None:
            found = {
                "authorization_endpoint": self.settings.authorization_endpoint,
                "token_endpoint": self.settings.token_endpoint,
            }
            if not all(found.values()):
                url = f"{str(self.settings.issuer).rstrip('/')}/.well-known/openid-configuration"
                try:
                    response = httpx.get(url, timeout=_TIMEOUT)
                    response.raise_for_status()
                    document = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise AuthenticationError(f"the sign-in provider cannot be reached: {exc}") from None
                found = {k: v or document.get(k) for k, v in found.items()}
            if not all(isinstance(v, str) and v.startswith(("https://", "http://")) for v in found.values()):
                raise ConfigError("the OIDC provider names no authorization or token endpoint")
            self._endpoints = {k: str(v) for k, v in found.items()}
        return self._endpoints

    # -- the signed state cookie ----------------------------------------------------------
    def _seal(self, payload: dict[str, Any]) -> str:
        body = _b64(orjson.dumps(payload))
        return f"{body}.{_b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())}"

    def _open(self, cookie: str | None) -> dict[str, Any]:
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            raise AuthenticationError("the sign-in was not started here, or took too long; start again")
        body, mac = cookie.split(".")
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            raise AuthenticationError("the sign-in state was tampered with; start again")
        payload = orjson.loads(_unb64(body))
        if payload.get("exp", 0) < time.time():
            raise AuthenticationError("the sign-in took too long; start again")
        return payload

    # -- the flow -------------------------------------------------------------------------
    def start(self, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """The IdP's authorization URL to send the browser to, and the state cookie to set."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid profile email",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        cookie = self._seal(
            {"state": state, "nonce": nonce, "verifier": verifier, "next": next_path,
             "exp": int(time.time()) + STATE_TTL_S}
        )  # fmt: skip
        return f"{self.endpoints()['authorization_endpoint']}?{query}", cookie

    def finish(self, code: str, state: str, cookie: str | None, redirect_uri: str) -> SignedIn:
        """Check the IdP's answer and return who signed in (AuthenticationError otherwise)."""
        pending = self._open(cookie)
        if not hmac.compare_digest(state.encode(), str(pending["state"]).encode()):
            raise AuthenticationError("the sign-in state does not match; start again")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": str(self.settings.client_id),
            "code_verifier": pending["verifier"],
        }
        if self._client_secret:
            form["client_secret"] = self._client_secret
        try:
            response = httpx.post(self.endpoints()["token_endpoint"], data=form, timeout=_TIMEOUT)
        except httpx.HTTPError as exc:
            raise AuthenticationError(f"the sign-in provider cannot be reached: {exc}") from None
        if response.status_code != 200:
            raise AuthenticationError(f"the sign-in provider refused the code (HTTP {response.status_code})")
        try:
            id_token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError("the sign-in provider returned no ID token") from None
        claims = self.verifier.claims(str(id_token), audience=self.settings.client_id)
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), str(pending["nonce"]).encode()):
            raise AuthenticationError("the ID token's nonce does not match; start again")
        roles = sorted(self.verifier.roles(claims))
        if not roles:
            raise Forbidden("your account at the sign-in provider has no hdhub role")
        return SignedIn(
            username=self.verifier.username(claims),
            roles=roles,
            display_name=claims.get("name"),
            email=claims.get("email"),
            next=str(pending.get("next") or "/"),
        )


def oidc_account(session: Session, who: SignedIn) -> User:
    """The hdhub account of an IdP user: created at first sign-in, its roles refreshed at each
    one; a disabled account stays disabled (Forbidden)."""
    user = session.scalar(select(User).where(User.username == who.username))
    if user is None:
        user = User(username=who.username, display_name=who.display_name, email=who.email, password_hash=None)
        session.add(user)
    elif user.disabled:
        raise Forbidden("this account is disabled in hdhub")
    elif user.password_hash is not None:
        raise Forbidden("a local account holds this name")
    user.display_name = who.display_name or user.display_name
    user.email = who.email or user.email
    session.flush()
    return set_roles(session, who.username, who.roles)
