"""Envelope encryption of objects: AES-256-GCM in streamed segments, SHA-256 trailer.

Stored bytes of one object version (the same on every backend):

    header (84 bytes)   magic "HDHOBJ\\0\\1" | segment shift (1) | KEK id (8) |
                        wrap nonce (12) | data key wrapped by the KEK (48) | nonce prefix (7)
    segments            each plaintext segment (2**shift bytes, the last one shorter, maybe
                        empty) sealed with AES-256-GCM under the data key; nonce =
                        prefix (7) | segment counter (4, big-endian) | last flag (1)
    trailer (32 bytes)  SHA-256 of everything before it

A fresh 256-bit data key per object; the counter and last flag in the nonce detect
reordered, dropped or truncated segments (the STREAM construction). The trailer lets a
fixity check run without keys and makes any bit flip an error even before decryption.
Because the header has a fixed size, the plaintext size follows from the stored size.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hdhub.errors import ConfigError, IntegrityError

MAGIC = b"HDHOBJ\x00\x01"
SEGMENT_SHIFT = 20  # 1 MiB plaintext segments
TAG = 16
TRAILER = 32
_HEADER = struct.Struct(">8sB8s12s48s7s")
HEADER_SIZE = _HEADER.size  # 84
_WRAP_AAD = b"hdhub-object-data-key-v1"


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by one KEK; rotation replaces it without touching the object."""

    kek_id: str  # 16 hex characters
    nonce: bytes
    wrapped: bytes

    def to_json(self) -> dict[str, str]:
        return {"kek_id": self.kek_id, "nonce": self.nonce.hex(), "wrapped": self.wrapped.hex()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> WrappedKey:
        return cls(data["kek_id"], bytes.fromhex(data["nonce"]), bytes.fromhex(data["wrapped"]))


@dataclass(frozen=True)
class Header:
    shift: int
    key: WrappedKey
    prefix: bytes

    def pack(self) -> bytes:
        kid = bytes.fromhex(self.key.kek_id)
        return _HEADER.pack(MAGIC, self.shift, kid, self.key.nonce, self.key.wrapped, self.prefix)

    @classmethod
    def unpack(cls, raw: bytes, where: str) -> Header:
        if len(raw) < HEADER_SIZE:
            raise IntegrityError(f"{where}: stored object is truncated (no header)")
        magic, shift, kid, nonce, wrapped, prefix = _HEADER.unpack(raw[:HEADER_SIZE])
        if magic != MAGIC or not 12 <= shift <= 26:
            raise IntegrityError(f"{where}: not an hdhub encrypted object (bad header)")
        return cls(shift, WrappedKey(kid.hex(), nonce, wrapped), prefix)


def wrap_key(data_key: bytes, keyring: dict[str, bytes]) -> WrappedKey:
    """Wrap under the current KEK (the keyring's first entry)."""
    kek_id, kek = next(iter(keyring.items()))
    nonce = os.urandom(12)
    return WrappedKey(kek_id, nonce, AESGCM(kek).encrypt(nonce, data_key, _WRAP_AAD))


def unwrap_key(key: WrappedKey, keyring: dict[str, bytes], where: str) -> bytes:
    kek = keyring.get(key.kek_id)
    if kek is None:
        raise ConfigError(
            f"{where}: its data key is wrapped by KEK {key.kek_id}, which is not in the keyring"
        )
    try:
        return AESGCM(kek).decrypt(key.nonce, key.wrapped, _WRAP_AAD)
    except InvalidTag:
        raise IntegrityError(f"{where}: the wrapped data key does not authenticate") from None


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes | memoryview]:
    """Segments of exactly ``size`` bytes (the last one shorter), slicing without copies."""
    buf = bytearray()
    for chunk in chunks:
        view = memoryview(chunk)
        if buf:
            take = size - len(buf)
            buf += view[:take]
            view = view[take:]
            if len(buf) < size:
                continue
            yield bytes(buf)
            buf = bytearray()
        while len(view) >= size:
            yield view[:size]
            view = view[size:]
        buf += view
    yield bytes(buf)


def encrypt(
    chunks: Iterable[bytes], keyring: dict[str, bytes], shift: int = SEGMENT_SHIFT
) -> Iterator[bytes]:
    """Stored bytes for a plaintext stream, produced segment by segment."""
    data_key = AESGCM.generate_key(256)
    header = Header(shift, wrap_key(data_key, keyring), os.urandom(7)).pack()
    digest = hashlib.sha256(header)
    yield header
    aes = AESGCM(data_key)
    pending: bytes | memoryview | None = None
    counter = 0
    for segment in _rechunk(chunks, 1 << shift):
        if pending is not None:  # a later segment exists, so this one is not the last
            sealed = aes.encrypt(_nonce(header[-7:], counter, False), pending, None)
            digest.update(sealed)
            yield sealed
            counter += 1
        pending = segment
    sealed = aes.encrypt(_nonce(header[-7:], counter, True), pending or b"", None)
    digest.update(sealed)
    yield sealed
    yield digest.digest()


def stored_segment(shift: int = SEGMENT_SHIFT) -> int:
    """Bytes of one full stored segment: backends read in these units."""
    return (1 << shift) + TAG


def plaintext_size(stored_size: int, shift: int = SEGMENT_SHIFT) -> int:
    body = stored_size - HEADER_SIZE - TRAILER
    full = (1 << shift) + TAG
    segments = max(1, -(-body // full))
    return body - TAG * segments


def decrypt(
    chunks: Iterable[bytes],
    stored_size: int,
    keyring: dict[str, bytes],
    where: str,
    override: WrappedKey | None = None,
) -> Iterator[bytes]:
    """Plaintext of stored bytes, verified segment by segment and against the trailer."""
    stream = iter(chunks)
    buf = bytearray()

    def take(n: int) -> bytes:
        if not buf:  # fast path: the backend reads whole segments
            chunk = next(stream, b"")
            if len(chunk) == n:
                return chunk
            buf.extend(chunk)
        while len(buf) < n:
            try:
                buf.extend(next(stream))
            except StopIteration:
                raise IntegrityError(f"{where}: stored object is shorter than recorded") from None
        out = bytes(buf[:n])
        del buf[:n]
        return out

    raw_header = take(HEADER_SIZE)
    header = Header.unpack(raw_header, where)
    key = override if override is not None else header.key
    aes = AESGCM(unwrap_key(key, keyring, where))
    digest = hashlib.sha256(raw_header)
    body = stored_size - HEADER_SIZE - TRAILER
    full = (1 << header.shift) + TAG
    count = max(1, -(-body // full))
    if body < TAG or body - (count - 1) * full < TAG:
        raise IntegrityError(f"{where}: stored object has an impossible size")
    for i in range(count):
        last = i == count - 1
        sealed = take(body - (count - 1) * full if last else full)
        digest.update(sealed)
        try:
            plain = aes.decrypt(_nonce(header.prefix, i, last), sealed, None)
        except InvalidTag:
            raise IntegrityError(
                f"{where}: segment {i} fails authentication (corrupted or tampered)"
            ) from None
        if plain or last:
            yield plain
    trailer = take(TRAILER)
    if trailer != digest.digest():
        raise IntegrityError(f"{where}: SHA-256 mismatch (stored object corrupted)")
    for extra in stream:
        if extra:
            raise IntegrityError(f"{where}: stored object is longer than recorded")


def segment_span(size: int, shift: int, first: int, last: int) -> tuple[int, int, int]:
    """Where segments ``first``..``last`` of a ``size``-byte plaintext are stored:
    (offset, length, count of segments in the object)."""
    plain, full = 1 << shift, (1 << shift) + TAG
    count = size // plain + 1  # the last segment holds the rest: from 0 to plain - 1 bytes
    offset = HEADER_SIZE + first * full
    end = HEADER_SIZE + last * full + (full if last < count - 1 else size - last * plain + TAG)
    return offset, end - offset, count


def decrypt_segments(
    stored: bytes,
    header: Header,
    keyring: dict[str, bytes],
    where: str,
    first: int,
    count: int,
    override: WrappedKey | None = None,
) -> Iterator[bytes]:
    """Plaintext of consecutive stored segments starting at ``first`` (a ranged read).

    Each segment authenticates on its own, and its nonce binds its position and whether it
    is the last: a segment moved, cut or replaced fails. The whole-object trailer is not
    read, so a ranged read does not check segments outside the range."""
    aes = AESGCM(unwrap_key(override if override is not None else header.key, keyring, where))
    full = (1 << header.shift) + TAG
    index, pos = first, 0
    while pos < len(stored):
        sealed = stored[pos : pos + full]
        try:
            yield aes.decrypt(_nonce(header.prefix, index, index == count - 1), sealed, None)
        except InvalidTag:
            raise IntegrityError(
                f"{where}: segment {index} fails authentication (corrupted or tampered)"
            ) from None
        index, pos = index + 1, pos + full


def read_header(raw: bytes, where: str) -> Header:
    return Header.unpack(raw, where)
