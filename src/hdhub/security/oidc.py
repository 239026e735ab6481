"""OIDC bearer tokens (Keycloak-style hospital SSO): JWTs verified against a JWKS.

The JWKS comes from a file (air-gapped deployments) or an https URL (fetched and
cached by PyJWT). Roles come from a claim (dotted path, e.g. ``realm_access.roles``)
and are mapped to hdhub roles by ``oidc.role_map``; an IdP role without a mapping
grants nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt

from hdhub.config.settings import OidcSettings
from hdhub.errors import AuthenticationError, ConfigError
from hdhub.security.principal import Principal
from hdhub.security.users import PERSON_ROLES, refused_roles


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class OidcVerifier:
    def __init__(self, settings: OidcSettings, home: Path) -> None:
        if not (settings.issuer and settings.jwks):
            raise ConfigError("OIDC needs both oidc.issuer and oidc.jwks")
        bad = refused_roles(list(settings.role_map.values()))
        if bad:
            raise ConfigError(
                f"oidc.role_map maps to role(s) a person's account cannot hold: {', '.join(bad)} "
                f"(one of: {', '.join(PERSON_ROLES)})"
            )
        self.settings = settings
        self._client: jwt.PyJWKClient | None = None
        self._keyset: jwt.PyJWKSet | None = None
        if settings.jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(settings.jwks, cache_keys=True, lifespan=300, timeout=5)
        else:
            path = Path(settings.jwks)
            path = path if path.is_absolute() else home / path
            try:
                self._keyset = jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8"))
            except (OSError, jwt.PyJWKSetError, ValueError) as exc:
                raise ConfigError(f"cannot read OIDC JWKS {path}: {exc}") from None

    def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as exc:
                raise AuthenticationError(f"cannot find the token's signing key: {exc}") from None
        assert self._keyset is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.DecodeError:
            raise AuthenticationError("malformed bearer token") from None
        for key in self._keyset.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise AuthenticationError("token signed by an unknown key")

    def claims(self, token: str, audience: str | None = None) -> dict[str, Any]:
        """The verified claims of a JWT from the IdP (signature, issuer, expiry, audience:
        ``audience`` or else ``oidc.audience``)."""
        key = self._signing_key(token)
        audience = audience or self.settings.audience
        try:
            return jwt.decode(
                token,
                key,
                algorithms=self.settings.algorithms,
                issuer=self.settings.issuer,
                audience=audience,
                options={"require": ["exp", "iss", "sub"], "verify_aud": audience is not None},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid bearer token: {exc}") from None

    def roles(self, claims: dict[str, Any]) -> frozenset[str]:
        """The hdhub roles the IdP's roles map to (an unmapped IdP role grants nothing)."""
        idp_roles = _claim(claims, self.settings.roles_claim) or []
        if isinstance(idp_roles, str):
            idp_roles = idp_roles.split()
        return frozenset(self.settings.role_map[r] for r in idp_roles if r in self.settings.role_map)

    def username(self, claims: dict[str, Any]) -> str:
        """The IdP user as an hdhub name: ``oidc:<name>`` (local account names never hold a colon)."""
        return f"oidc:{_claim(claims, self.settings.username_claim) or claims['sub']}"

    def verify(self, token: str, source: str | None = None) -> Principal:
        claims = self.claims(token)
        return Principal(name=self.username(claims), roles=self.roles(claims), kind="oidc", source=source)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("hdh_")
