"""One exception hierarchy for hdhub.

Each error carries a stable ``code`` and the HTTP ``status`` it maps to. The library
raises these; the API renders them as one JSON shape and the CLI as one line with a
non-zero exit code (see ``hdhub.api.errors`` and ``hdhub.cli.context``).
"""

from __future__ import annotations


class HdhubError(Exception):
    """Base class: a problem the user can understand and act on."""

    code = "error"
    status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HdhubError):
    """Settings, secrets or deployment directory are missing or unsafe."""

    code = "config"
    status = 500
    exit_code = 78  # EX_CONFIG


class ValidationError(HdhubError):
    """Input that does not conform (a file, a request body, a parameter)."""

    code = "invalid"
    status = 422
    exit_code = 65  # EX_DATAERR


class NotFound(HdhubError):
    code = "not_found"
    status = 404
    exit_code = 66


class Conflict(HdhubError):
    code = "conflict"
    status = 409
    exit_code = 65


class AuthenticationError(HdhubError):
    """No credentials, or credentials that do not verify."""

    code = "unauthenticated"
    status = 401
    exit_code = 77  # EX_NOPERM


class Forbidden(HdhubError):
    """Authenticated, but the authorisation decision is deny."""

    code = "forbidden"
    status = 403
    exit_code = 77


class ObjectLocked(HdhubError):
    """A retention period or a legal hold protects this object version."""

    code = "object_locked"
    status = 409
    exit_code = 73


class IntegrityError(HdhubError):
    """Stored bytes do not match their recorded checksum or fail authentication."""

    code = "integrity"
    status = 500
    exit_code = 74  # EX_IOERR


class AuditChainBroken(HdhubError):
    code = "audit_chain_broken"
    status = 500
    exit_code = 2


class RateLimited(HdhubError):
    """Too many requests of one kind from one caller; try again later."""

    code = "rate_limited"
    status = 429
    exit_code = 75  # EX_TEMPFAIL


class PayloadTooLarge(HdhubError):
    """A request body or file above the size the operation accepts."""

    code = "payload_too_large"
    status = 413
    exit_code = 65
