"""Identities, roles, tokens, OIDC and the authorisation decision."""

from hdhub.security.authz import Decision, authorize, decide
from hdhub.security.principal import Principal
from hdhub.security.roles import POLICY, ROLES

__all__ = ["POLICY", "ROLES", "Decision", "Principal", "authorize", "decide"]
