"""Canonical encoding of audit entries, their hashes, and checkpoint messages.

hash(entry) = SHA-256( prev_hash || "\\n" || canonical JSON of the entry's fields )

The canonical JSON has sorted keys and no insignificant whitespace (orjson), and
includes ``seq`` and ``ts``, so moving an entry changes its hash. The genesis entry's
``prev_hash`` is 64 zeros.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "ts",
    "actor",
    "actor_type",
    "role",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "project_id",
    "outcome",
    "source",
    "detail",
)


def format_ts(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with microseconds: 2026-11-24T10:00:00.000000Z (27 chars)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_detail(detail: Mapping[str, Any] | None) -> str | None:
    if not detail:
        return None
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    payload = orjson.dumps({k: fields[k] for k in HASHED_FIELDS}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + payload).hexdigest()


def checkpoint_message(seq: int, entry_hash_hex: str) -> bytes:
    return f"hdhub-audit-checkpoint:v1:{seq}:{entry_hash_hex}".encode("ascii")


def public_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
