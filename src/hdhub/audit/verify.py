"""Verifying the audit chain: names the first entry that is not what was written.

Checks, streaming the log in seq order: seq starts at 1 with no gaps; each entry's
``prev_hash`` is the previous entry's hash; each entry's hash recomputes from its
fields; every checkpoint's Ed25519 signature is valid and matches the entry it seals;
no checkpoint lies beyond the last entry (truncation); and the entries after the last
checkpoint are fewer than ``checkpoint_every`` (deleted checkpoints).

Someone who can write to the database can recompute every hash after an edit, but not
sign: the first checkpoint after the edit then no longer matches.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select

from hdhub.audit.chain import GENESIS, HASHED_FIELDS, checkpoint_message, entry_hash
from hdhub.catalog.models import AuditCheckpoint, AuditEvent

_events = AuditEvent.__table__
_checkpoints = AuditCheckpoint.__table__
PAGE = 10_000


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    checkpoints_verified: int = 0
    unsealed_tail: int = 0

    @property
    def message(self) -> str:
        if self.ok:
            return (
                f"audit chain intact: {self.checked} entries, {self.checkpoints_verified} signed "
                f"checkpoints, {self.unsealed_tail} entries after the last checkpoint"
            )
        return f"audit chain broken at entry {self.first_bad_seq}: {self.reason}"


def _signature_ok(public_key: Ed25519PublicKey, seq: int, hash_hex: str, signature_b64: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), checkpoint_message(seq, hash_hex))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def verify_chain(engine: Engine, public_key: Ed25519PublicKey, *, checkpoint_every: int) -> VerifyReport:
    with engine.connect() as conn:
        checkpoints = {r.seq: r for r in conn.execute(select(_checkpoints))}

    def broken(seq: int, reason: str, checked: int, sealed: int) -> VerifyReport:
        return VerifyReport(False, checked, seq, reason, sealed)

    expected, prev, checked, sealed, last_sealed = 1, GENESIS, 0, 0, 0
    cols = [_events.c[name] for name in (*HASHED_FIELDS, "prev_hash", "hash")]
    while True:
        with engine.connect() as conn:
            stmt = select(*cols).where(_events.c.seq >= expected).order_by(_events.c.seq).limit(PAGE)
            rows = conn.execute(stmt).all()
        for row in rows:
            fields = row._mapping
            seq = fields["seq"]
            if seq != expected:
                return broken(
                    expected, f"entries {expected}..{seq - 1} are missing (deleted)", checked, sealed
                )
            if fields["prev_hash"] != prev:
                reason = "previous-hash link broken (an entry before it was deleted, inserted or reordered)"
                return broken(seq, reason, checked, sealed)
            if entry_hash(prev, fields) != fields["hash"]:
                return broken(
                    seq, "content does not match its hash (edited, inserted or reordered)", checked, sealed
                )
            cp = checkpoints.get(seq)
            if cp is not None:
                if not _signature_ok(public_key, cp.seq, cp.hash, cp.signature):
                    return broken(seq, "checkpoint signature is invalid (forged checkpoint)", checked, sealed)
                if cp.hash != fields["hash"]:
                    reason = (
                        f"does not match the signed checkpoint: entries {last_sealed + 1}..{seq} "
                        "were rewritten and re-hashed"
                    )
                    return broken(seq, reason, checked, sealed)
                sealed += 1
                last_sealed = seq
            prev = fields["hash"]
            expected += 1
            checked += 1
        if len(rows) < PAGE:
            break
    last = expected - 1
    beyond = sorted(s for s in checkpoints if s > last)
    if beyond:
        reason = f"log truncated: a checkpoint seals entry {beyond[0]} but the last entry is {last}"
        return broken(last + 1, reason, checked, sealed)
    tail = last - last_sealed
    if tail >= checkpoint_every:
        reason = f"{tail} entries after entry {last_sealed} have no signed checkpoint (checkpoints deleted?)"
        return broken(last_sealed + 1, reason, checked, sealed)
    return VerifyReport(True, checked, checkpoints_verified=sealed, unsealed_tail=tail)
