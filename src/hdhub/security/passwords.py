"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hdhub.errors import ValidationError

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong user name costs the same time.
_DUMMY_HASH = _hasher.hash("hdhub-no-such-user")

# ANSSI's minimum for a password guarded by a rate-limited sign-in; the maximum keeps hashing
# from being used as a denial of service. The one rule for every password set (API, CLI, pages,
# demo): hash_password applies it.
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def check_password_policy(password: str) -> None:
    """ValidationError for a new password shorter than 12 characters or longer than 1024."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"password must have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """The hash of a new password, once it passes the policy."""
    check_password_policy(password)
    return _hasher.hash(password)


def rehash_password(password: str) -> str:
    """A new hash of a password that has just verified (current argon2 parameters): not checked
    against the policy, so an account made before it keeps signing in."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-shape check: also spends the hashing time when there is no hash."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
