"""Appending to and searching the audit log.

Appends are serialised so concurrent writers (threads, the server and a CLI command)
never fork the chain: a process-wide lock plus, in the database, ``BEGIN IMMEDIATE`` on
SQLite or a transaction-scoped advisory lock on PostgreSQL. The head (last seq and
hash) is read inside that lock.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.sql import Select

from hdhub.audit.chain import (
    GENESIS,
    canonical_detail,
    checkpoint_message,
    entry_hash,
    format_ts,
    public_key_id,
)
from hdhub.audit.verify import VerifyReport, verify_chain
from hdhub.catalog.db import writer_lock
from hdhub.catalog.models import AuditCheckpoint, AuditEvent
from hdhub.errors import ValidationError
from hdhub.security.principal import Principal

OUTCOMES = ("success", "failure", "denied")
PG_LOCK_KEY = 0x68646875_62617564  # "hdhubaud": one advisory lock for the chain head
_LIMITS = {
    "actor": 200,
    "role": 40,
    "action": 100,
    "resource_type": 100,
    "resource_id": 500,
    "patient_id": 200,
    "project_id": 200,
    "source": 100,
}

_events = AuditEvent.__table__
_checkpoints = AuditCheckpoint.__table__
_SQLITE = sqlite_dialect(paramstyle="named")
# Compiled once from the models, then run on the held DBAPI connection.
_SQLITE_HEAD = str(
    select(_events.c.seq, _events.c.hash)
    .order_by(_events.c.seq.desc())
    .limit(1)
    .compile(dialect=_SQLITE, compile_kwargs={"literal_binds": True})
)
_SQLITE_INSERT_EVENT = str(insert(_events).compile(dialect=_SQLITE))
_SQLITE_INSERT_CHECKPOINT = str(insert(_checkpoints).compile(dialect=_SQLITE))


def _when(value: str | datetime | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return format_ts(value)


class AuditLog:
    def __init__(
        self, engine: Engine, signing_key: Ed25519PrivateKey, *, checkpoint_every: int = 1000
    ) -> None:
        self.engine = engine
        self.signing_key = signing_key
        self.public_key = signing_key.public_key()
        self.key_id = public_key_id(self.public_key)
        self.checkpoint_every = checkpoint_every
        self._lock = threading.Lock()
        self._sqlite = engine.dialect.name == "sqlite"
        self._raw: Any = None

    # Writing ----------------------------------------------------------------------
    @staticmethod
    def event(
        principal: Principal | None,
        action: str,
        *,
        role: str | None = None,
        outcome: str = "success",
        resource_type: str | None = None,
        resource_id: str | None = None,
        patient_id: str | None = None,
        project_id: str | None = None,
        source: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build (and check) one event's fields; ``record_many`` takes a list of these."""
        if outcome not in OUTCOMES:
            raise ValidationError(f"audit outcome must be one of {OUTCOMES}, not {outcome!r}")
        principal = principal or Principal.system("unknown")
        fields: dict[str, Any] = {
            "actor": principal.name,
            "actor_type": principal.kind,
            "role": role if role is not None else (min(principal.roles) if principal.roles else None),
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "patient_id": patient_id,
            "project_id": project_id,
            "outcome": outcome,
            "source": source if source is not None else principal.source,
            "detail": canonical_detail(detail),
        }
        for key, limit in _LIMITS.items():
            if fields[key] is not None:
                fields[key] = str(fields[key])[:limit]
        return fields

    def record(self, principal: Principal | None, action: str, **kwargs: Any) -> int:
        """Append one event; returns its sequence number."""
        return self._append([self.event(principal, action, **kwargs)])[0]

    def record_many(self, events: Iterable[Mapping[str, Any]]) -> list[int]:
        """Append several events (built with :meth:`event`) in one transaction."""
        rows = [dict(e) for e in events]
        return self._append(rows) if rows else []

    def checkpoint(self) -> AuditCheckpoint | None:
        """Sign the current head now (also done automatically every N events)."""
        with self._lock, self.engine.connect() as conn:
            conn = self._begin(conn)
            try:
                head = self._head(conn)
                if head[0] == 0:
                    self._end(conn, commit=False)
                    return None
                existing = conn.execute(select(_checkpoints).where(_checkpoints.c.seq == head[0])).first()
                if existing is None:
                    conn.execute(insert(_checkpoints), [self._sign(*head)])
                self._end(conn, commit=True)
            except BaseException:
                self._end(conn, commit=False)
                raise
        return AuditCheckpoint(**self._sign(*head))

    def _sign(self, seq: int, hash_hex: str) -> dict[str, Any]:
        signature = self.signing_key.sign(checkpoint_message(seq, hash_hex))
        return {
            "seq": seq,
            "hash": hash_hex,
            "ts": format_ts(datetime.now(UTC)),
            "key_id": self.key_id,
            "signature": base64.b64encode(signature).decode("ascii"),
        }

    def _begin(self, conn: Connection) -> Connection:
        if self._sqlite:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
        return conn

    def _end(self, conn: Connection, *, commit: bool) -> None:
        if self._sqlite:
            conn.exec_driver_sql("COMMIT" if commit else "ROLLBACK")
        elif commit:
            conn.commit()
        else:
            conn.rollback()

    @staticmethod
    def _head(conn: Connection) -> tuple[int, str]:
        row = conn.execute(
            select(_events.c.seq, _events.c.hash).order_by(_events.c.seq.desc()).limit(1)
        ).first()
        return (row[0], row[1]) if row else (0, GENESIS)

    def _append(self, rows: list[dict[str, Any]]) -> list[int]:
        if self._sqlite:
            return self._append_sqlite(rows)
        with self._lock, self.engine.connect() as conn:
            conn = self._begin(conn)
            try:
                seq, prev = self._head(conn)
                checkpoints = self._chain(rows, seq, prev)
                conn.execute(insert(_events), rows)
                if checkpoints:
                    conn.execute(insert(_checkpoints), checkpoints)
                self._end(conn, commit=True)
            except BaseException:
                self._end(conn, commit=False)
                raise
        return [r["seq"] for r in rows]

    def _chain(self, rows: list[dict[str, Any]], seq: int, prev: str) -> list[dict[str, Any]]:
        """Number, timestamp and hash ``rows`` after the head (seq, prev); returns due checkpoints."""
        ts = format_ts(datetime.now(UTC))
        checkpoints = []
        for row in rows:
            seq += 1
            row["seq"], row["ts"], row["prev_hash"] = seq, ts, prev
            row["hash"] = prev = entry_hash(prev, row)
            if seq % self.checkpoint_every == 0:
                checkpoints.append(self._sign(seq, prev))
        return checkpoints

    def _append_sqlite(self, rows: list[dict[str, Any]]) -> list[int]:
        """The embedded hot path: one held DBAPI connection, BEGIN IMMEDIATE, four statements."""
        with self._lock, writer_lock(self.engine):
            if self._raw is None:
                self._raw = self.engine.raw_connection()
                self._raw.driver_connection.isolation_level = None  # we issue BEGIN/COMMIT
            cur = self._raw.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                head = cur.execute(_SQLITE_HEAD).fetchone()
                checkpoints = self._chain(rows, *(head or (0, GENESIS)))
                cur.executemany(_SQLITE_INSERT_EVENT, rows)
                if checkpoints:
                    cur.executemany(_SQLITE_INSERT_CHECKPOINT, checkpoints)
                cur.execute("COMMIT")
            except BaseException:
                if self._raw.driver_connection.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return [r["seq"] for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    # Reading ----------------------------------------------------------------------
    def _filtered(
        self,
        stmt: Select[Any],
        *,
        patient: str | None = None,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
    ) -> Select[Any]:
        c = _events.c
        for column, value in (
            (c.patient_id, patient),
            (c.actor, actor),
            (c.project_id, project),
            (c.action, action),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if (lo := _when(since)) is not None:
            stmt = stmt.where(c.ts >= lo)
        if (hi := _when(until)) is not None:
            stmt = stmt.where(c.ts <= hi)
        return stmt

    def search(self, *, limit: int = 100, offset: int = 0, **filters: Any) -> list[AuditEvent]:
        """Events matching the filters, newest first."""
        stmt = self._filtered(select(_events), **filters).order_by(_events.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [AuditEvent(**r._mapping) for r in conn.execute(stmt.offset(offset))]

    def count(self, **filters: Any) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                self._filtered(select(func.count()).select_from(_events), **filters)
            ).scalar_one()

    def iter_events(
        self, *, since: str | datetime | None = None, until: str | datetime | None = None, page: int = 5000
    ) -> Iterable[AuditEvent]:
        """Oldest first, streamed page by page (for exports)."""
        last = 0
        while True:
            stmt = self._filtered(select(_events), since=since, until=until).where(_events.c.seq > last)
            with self.engine.connect() as conn:
                rows = [
                    AuditEvent(**r._mapping) for r in conn.execute(stmt.order_by(_events.c.seq).limit(page))
                ]
            yield from rows
            if len(rows) < page:
                return
            last = rows[-1].seq

    def verify(self) -> VerifyReport:
        return verify_chain(self.engine, self.public_key, checkpoint_every=self.checkpoint_every)
