"""The one authorisation decision function. Every route and CLI command goes through it."""

from __future__ import annotations

from dataclasses import dataclass

from hdhub.errors import AuthenticationError, Forbidden
from hdhub.security.principal import Principal
from hdhub.security.roles import POLICY


@dataclass(frozen=True)
class Decision:
    allowed: bool
    action: str
    role: str | None  # the role that granted it
    reason: str


def decide(principal: Principal, action: str, *, project: str | None = None) -> Decision:
    """Deny by default: unknown actions, anonymous callers and missing roles are refused.

    ``project`` scopes the decision to one research project: the principal must be a
    member of it (checked once projects exist; until then no project is granted).
    """
    allowed_roles = POLICY.get(action)
    if allowed_roles is None:
        return Decision(False, action, None, f"unknown action {action!r}")
    if principal.kind == "anonymous":
        return Decision(False, action, None, "authentication required")
    if project is not None and project not in principal.projects:
        return Decision(False, action, None, f"not a member of project {project!r}")
    granted = sorted(principal.roles & allowed_roles)
    if not granted:
        return Decision(False, action, None, f"role(s) {sorted(principal.roles)} may not {action}")
    return Decision(True, action, granted[0], "granted")


def authorize(principal: Principal, action: str, *, project: str | None = None) -> Decision:
    """Like :func:`decide` but raises ``AuthenticationError``/``Forbidden`` on deny."""
    decision = decide(principal, action, project=project)
    if not decision.allowed:
        if principal.kind == "anonymous":
            raise AuthenticationError("authentication required")
        raise Forbidden(f"{principal.name}: {decision.reason}")
    return decision
