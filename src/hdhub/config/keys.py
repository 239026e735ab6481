"""Secret key files: generation (mode 0600) and safe loading.

Three secrets live in the deployment's ``secrets/`` directory, each a base64 line:

- ``objects-kek.key``: the key-encryption key that wraps every object's data key;
  earlier ones, kept after a rotation until every data key is re-wrapped, live in
  ``objects-kek.retired/<key id>.key``;
- ``pseudonym-hmac.key``: the HMAC secret behind pseudonyms;
- ``audit-signing.key``: the Ed25519 key that signs audit checkpoints.

A key file that is missing, malformed, or readable by group or others is a start-up
error: hdhub never runs with a secret it cannot trust to be secret.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hdhub.errors import ConfigError

KEK_FILE = "objects-kek.key"
KEK_RETIRED_DIR = "objects-kek.retired"
PSEUDONYM_FILE = "pseudonym-hmac.key"
AUDIT_FILE = "audit-signing.key"
KEY_BYTES = 32


def key_id(key: bytes) -> str:
    """A short public identifier of a symmetric key (never the key itself)."""
    return hashlib.sha256(b"hdhub-key-id:" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Keys:
    kek: bytes
    pseudonym: bytes
    audit_signing: Ed25519PrivateKey
    retired_keks: tuple[bytes, ...] = field(default=())

    @property
    def keyring(self) -> dict[str, bytes]:
        """Every KEK we can unwrap with, by key id; the current one first."""
        ring = {key_id(self.kek): self.kek}
        for old in self.retired_keks:
            ring.setdefault(key_id(old), old)
        return ring

    @property
    def audit_public(self) -> Ed25519PublicKey:
        return self.audit_signing.public_key()


def _write_secret(path: Path, raw: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(base64.b64encode(raw).decode("ascii") + "\n")
    os.chmod(path, 0o600)  # umask cannot widen it, but be explicit


def generate_secrets(secrets_dir: Path) -> list[Path]:
    """Create the three key files; refuses to overwrite an existing one."""
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    written = []
    for name in (KEK_FILE, PSEUDONYM_FILE, AUDIT_FILE):
        path = secrets_dir / name
        if path.exists():
            raise ConfigError(f"{path} already exists; refusing to overwrite a secret")
        _write_secret(path, secrets.token_bytes(KEY_BYTES))
        written.append(path)
    return written


def read_secret(path: Path) -> bytes:
    """Read one key file, refusing a missing, unsafe or malformed one."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"secret {path} is missing: run `hdhub init` or restore it from backup") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"secret {path} is not a regular file")
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise ConfigError(
            f"secret {path} is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`"
        )
    try:
        raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"secret {path} is not a base64 key") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"secret {path} must hold {KEY_BYTES} bytes, found {len(raw)}")
    return raw


def load_keys(secrets_dir: Path) -> Keys:
    retired_dir = secrets_dir / KEK_RETIRED_DIR
    retired = tuple(read_secret(p) for p in sorted(retired_dir.glob("*.key"))) if retired_dir.is_dir() else ()
    return Keys(
        kek=read_secret(secrets_dir / KEK_FILE),
        pseudonym=read_secret(secrets_dir / PSEUDONYM_FILE),
        audit_signing=Ed25519PrivateKey.from_private_bytes(read_secret(secrets_dir / AUDIT_FILE)),
        retired_keks=retired,
    )


def rotate_kek(secrets_dir: Path) -> tuple[bytes, bytes]:
    """Make a new current KEK; the old one moves to the retired directory. Returns (old, new)."""
    current = secrets_dir / KEK_FILE
    old = read_secret(current)
    retired_dir = secrets_dir / KEK_RETIRED_DIR
    retired_dir.mkdir(mode=0o700, exist_ok=True)
    retired_path = retired_dir / f"{key_id(old)}.key"
    if not retired_path.exists():
        _write_secret(retired_path, old)
    new = secrets.token_bytes(KEY_BYTES)
    tmp = secrets_dir / (KEK_FILE + ".new")
    tmp.unlink(missing_ok=True)
    _write_secret(tmp, new)
    os.replace(tmp, current)
    return old, new


def retire_kek(secrets_dir: Path, old_key_id: str) -> None:
    """Forget a retired KEK once no data key is wrapped by it any more."""
    (secrets_dir / KEK_RETIRED_DIR / f"{old_key_id}.key").unlink(missing_ok=True)
