"""The object store interface, shared by the local-directory and S3 backends.

Semantics follow S3 with versioning and object lock: every put makes a new version;
``delete(key)`` adds a delete marker; ``delete(key, version_id)`` removes that version
for good, and is refused while the version is under retention or legal hold, whoever
asks. COMPLIANCE retention can only be extended; GOVERNANCE retention can be shortened
or removed with an explicit ``bypass_governance=True``.
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, Literal

from hdhub.errors import ObjectLocked, ValidationError
from hdhub.objects import crypto

RetentionMode = Literal["GOVERNANCE", "COMPLIANCE"]
RESERVED_PREFIX = ".hdhub/"
MAX_KEY_BYTES = 1024
CHUNK = 1 << 20
_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_META_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")


@dataclass(frozen=True)
class Retention:
    mode: RetentionMode
    until: datetime

    def __post_init__(self) -> None:
        if self.mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ValidationError(f"retention mode must be GOVERNANCE or COMPLIANCE, not {self.mode!r}")
        if self.until.tzinfo is None:
            object.__setattr__(self, "until", self.until.replace(tzinfo=UTC))


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    version_id: str
    size: int  # plaintext bytes
    created: datetime
    content_type: str = "application/octet-stream"
    storage_class: str = "STANDARD"
    retention: Retention | None = None
    legal_hold: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    is_latest: bool = True
    delete_marker: bool = False

    def locked(self, now: datetime | None = None) -> str | None:
        """Why this version may not be deleted now, or None."""
        if self.legal_hold:
            return "legal hold"
        now = now or datetime.now(UTC)
        if self.retention and self.retention.until > now:
            return f"{self.retention.mode} retention until {self.retention.until:%Y-%m-%d %H:%M} UTC"
        return None


@dataclass(frozen=True)
class PutOptions:
    content_type: str
    metadata: dict[str, str]
    storage_class: str
    retention: Retention | None
    legal_hold: bool


def check_key(key: str) -> str:
    """Refuse keys that could escape a directory, hide, or confuse listings."""
    if not isinstance(key, str) or not key:
        raise ValidationError("object key must be a non-empty string")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValidationError(f"object key longer than {MAX_KEY_BYTES} bytes")
    if _BAD_KEY_CHARS.search(key):
        raise ValidationError(f"object key {key[:80]!r} contains control characters or backslashes")
    if key.startswith(("/", RESERVED_PREFIX)) or key.endswith("/"):
        raise ValidationError(f"object key {key[:80]!r} must be relative and may not use {RESERVED_PREFIX}")
    for part in key.split("/"):
        if part in ("", ".", "..") or part.startswith("@"):
            raise ValidationError(f"object key {key[:80]!r} has an empty, '.', '..' or '@…' segment")
    return key


def check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Small, non-identifying labels only: they are stored in clear."""
    out = {}
    for name, value in (metadata or {}).items():
        if (
            not _META_NAME.match(name)
            or not isinstance(value, str)
            or len(value) > 256
            or not value.isascii()
        ):
            raise ValidationError(f"metadata {name!r}: names a-z0-9-, values up to 256 ASCII characters")
        out[name] = value
    if len(out) > 20:
        raise ValidationError("at most 20 metadata entries")
    return out


def iter_source(data: bytes | BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    if hasattr(data, "read"):
        while chunk := data.read(CHUNK):  # type: ignore[union-attr]
            yield chunk
        return
    yield from data  # type: ignore[misc]


class ObjectReader:
    """Plaintext of one version, streamed; iterate it or ``read()`` it whole."""

    def __init__(self, info: ObjectInfo, chunks: Iterator[bytes]) -> None:
        self.info = info
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def read(self) -> bytes:
        return b"".join(self._chunks)

    def readinto_file(self, fh: io.BufferedIOBase | BinaryIO) -> int:
        n = 0
        for chunk in self._chunks:
            fh.write(chunk)
            n += len(chunk)
        return n


RANGE_WINDOW = 8  # segments (1 MiB each) read per request of a ranged read


class ObjectStore(ABC):
    """Versioned, lockable, encrypted object storage."""

    url: str

    def __init__(self, keyring: dict[str, bytes]) -> None:
        if not keyring:
            raise ValidationError("the object store needs at least one key-encryption key")
        self.keyring = dict(keyring)

    # --- operations every backend implements --------------------------------------------
    @abstractmethod
    def _put(self, key: str, stored: Iterator[bytes], options: PutOptions) -> ObjectInfo:
        """Write already-encrypted bytes atomically as a new version of a checked key."""

    @abstractmethod
    def head(self, key: str, version_id: str | None = None) -> ObjectInfo: ...

    @abstractmethod
    def get(self, key: str, version_id: str | None = None) -> ObjectReader: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Latest version of every key under ``prefix`` that is not deleted."""

    @abstractmethod
    def versions(self, prefix: str = "") -> list[ObjectInfo]:
        """Every version and delete marker under ``prefix``, newest first per key."""

    @abstractmethod
    def _delete_marker(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def _delete_version(self, info: ObjectInfo, bypass_governance: bool = False) -> None: ...

    @abstractmethod
    def _write_lock(
        self, info: ObjectInfo, retention: Retention | None, legal_hold: bool, bypass_governance: bool
    ) -> None: ...

    @abstractmethod
    def transition(self, key: str, version_id: str, storage_class: str) -> ObjectInfo: ...

    @abstractmethod
    def _stored_header(self, info: ObjectInfo) -> tuple[crypto.Header, crypto.WrappedKey | None]:
        """The in-object header and the rotation override of its wrapped key, if any."""

    @abstractmethod
    def _write_key_override(self, info: ObjectInfo, key: crypto.WrappedKey) -> None: ...

    @abstractmethod
    def _read_stored(self, info: ObjectInfo, offset: int, length: int) -> bytes:
        """``length`` stored (encrypted) bytes of a version, from ``offset``."""

    # --- shared behaviour -----------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes | BinaryIO | Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        storage_class: str = "STANDARD",
        retention: Retention | None = None,
        legal_hold: bool = False,
    ) -> ObjectInfo:
        """Encrypt and store ``data`` (bytes, a binary file, or an iterable of chunks) as a new version."""
        check_key(key)
        options = PutOptions(
            content_type[:200], check_metadata(metadata), storage_class, retention, legal_hold
        )
        return self._put(key, crypto.encrypt(iter_source(data), self.keyring), options)

    def get_range(
        self, key: str, start: int, end: int, version_id: str | None = None
    ) -> tuple[ObjectInfo, Iterator[bytes]]:
        """Plaintext bytes ``start`` to ``end`` (inclusive) of a version, reading only the
        segments that hold them (HTTP Range requests: video seeking, slide tiles)."""
        info = self.head(key, version_id)
        if not 0 <= start <= end < info.size:
            raise ValidationError(f"range {start}-{end} is outside {key} ({info.size} bytes)")
        header, override = self._stored_header(info)
        plain = 1 << header.shift
        first, last = start // plain, end // plain
        where = f"{key} version {info.version_id}"

        def chunks() -> Iterator[bytes]:  # read RANGE_WINDOW segments at a time
            skip, remaining = start - first * plain, end - start + 1
            for window in range(first, last + 1, RANGE_WINDOW):
                window_last = min(window + RANGE_WINDOW - 1, last)
                offset, length, count = crypto.segment_span(info.size, header.shift, window, window_last)
                stored = self._read_stored(info, offset, length)
                for segment in crypto.decrypt_segments(
                    stored, header, self.keyring, where, window, count, override
                ):
                    piece = segment[skip : skip + remaining]
                    skip, remaining = 0, remaining - len(piece)
                    if piece:
                        yield piece

        return info, chunks()

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        return self.get(key, version_id).read()

    def delete(
        self, key: str, version_id: str | None = None, *, bypass_governance: bool = False
    ) -> ObjectInfo:
        """Without a version: a delete marker. With one: remove it for good, unless locked.

        ``bypass_governance`` lets a privileged caller remove a version whose only lock is a
        GOVERNANCE retention (S3 semantics); COMPLIANCE retention and legal holds always hold."""
        check_key(key)
        if version_id is None:
            return self._delete_marker(key)
        info = self.head(key, version_id)
        why = info.locked()
        governance_only = (
            not info.legal_hold and info.retention is not None and info.retention.mode == "GOVERNANCE"
        )
        if why and not (bypass_governance and governance_only):
            raise ObjectLocked(f"{key} version {version_id} is protected by {why}; it cannot be deleted")
        self._delete_version(info, bypass_governance=bool(why))
        return info

    def set_retention(
        self, key: str, version_id: str, retention: Retention | None, *, bypass_governance: bool = False
    ) -> ObjectInfo:
        info = self.head(key, version_id)
        current = info.retention
        now = datetime.now(UTC)
        if current and current.until > now:
            shorter = retention is None or retention.until < current.until
            if current.mode == "COMPLIANCE" and (shorter or retention.mode != "COMPLIANCE"):  # type: ignore[union-attr]
                raise ObjectLocked(f"{key} version {version_id}: COMPLIANCE retention can only be extended")
            if current.mode == "GOVERNANCE" and shorter and not bypass_governance:
                raise ObjectLocked(
                    f"{key} version {version_id}: shortening GOVERNANCE retention needs bypass_governance"
                )
        self._write_lock(info, retention, info.legal_hold, bypass_governance)
        return self.head(key, version_id)

    def set_legal_hold(self, key: str, version_id: str, on: bool) -> ObjectInfo:
        info = self.head(key, version_id)
        self._write_lock(info, info.retention, on, False)
        return self.head(key, version_id)

    def rewrap(self, keyring: dict[str, bytes] | None = None, *, skip_prefix: str | None = None) -> int:
        """Re-wrap every data key under the current KEK; object bytes are not rewritten.

        ``skip_prefix`` leaves out objects under their own keys (project workspaces)."""
        if keyring is not None:
            self.keyring = dict(keyring)
        current = next(iter(self.keyring))
        done = 0
        for info in self.versions():
            if info.delete_marker or (skip_prefix and info.key.startswith(skip_prefix)):
                continue
            header, override = self._stored_header(info)
            effective = override or header.key
            if effective.kek_id == current:
                continue
            where = f"{info.key} version {info.version_id}"
            data_key = crypto.unwrap_key(effective, self.keyring, where)
            self._write_key_override(info, crypto.wrap_key(data_key, self.keyring))
            done += 1
        return done

    def _decrypt(
        self, info: ObjectInfo, chunks: Iterable[bytes], stored_size: int, override: crypto.WrappedKey | None
    ) -> Iterator[bytes]:
        where = f"{info.key} version {info.version_id}"
        return crypto.decrypt(chunks, stored_size, self.keyring, where, override)
