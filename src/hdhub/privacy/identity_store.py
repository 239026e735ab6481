"""The identity store: patients' directly identifying data, apart from clinical data.

French rules for health data warehouses (CNIL, "référentiel entrepôts de données de
santé") ask that identifying data be kept separately from the pseudonymised clinical
data. hdhub keeps names, addresses, telecom, identifiers and birth date here, in the
catalog, encrypted row by row (AES-256-GCM, a data key per row wrapped by the KEK, the
row's key as associated data, so a ciphertext cannot be moved to another patient). The
warehouse holds only keyed hashes. A blind index (keyed hashes of ``system|value``) finds
a patient by IPP or INS without decrypting anything. Reading is a separate permission
(``identities:read``), and every read is audited by the caller.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hdhub.catalog.models import PatientIdentifierIndex, PatientIdentity
from hdhub.config.keys import Keys
from hdhub.errors import ValidationError
from hdhub.objects.crypto import WrappedKey, unwrap_key, wrap_key


@dataclass(frozen=True)
class IdentityRecord:
    """One patient as one site knows them."""

    site: str
    patient_key: str  # keyed hash of (site, Patient id)
    person_key: str  # the warehouse person's person_source_value
    data: dict[str, Any] = field(
        default_factory=dict
    )  # name, address, telecom, identifier, birthDate, gender

    def identifiers(self) -> list[tuple[str, str]]:
        out = []
        for ident in self.data.get("identifier") or []:
            if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
                out.append((str(ident["system"]), str(ident["value"])))
        return out


class IdentityStore:
    def __init__(self, engine: Engine, keys: Keys) -> None:
        self.engine, self.keys = engine, keys

    def identifier_key(self, system: str, value: str) -> str:
        return hashlib.sha256(
            f"{self.keys.pseudonym.hex()}|identifier|{system}|{value}".encode()
        ).hexdigest()[:40]

    def put_many(self, records: Iterable[IdentityRecord]) -> int:
        """Insert or replace each patient's identity (idempotent: the same record twice
        leaves one row)."""
        rows, index = [], []
        for rec in records:
            data_key = AESGCM.generate_key(256)
            nonce = os.urandom(12)
            wrapped = wrap_key(data_key, self.keys.keyring)
            rows.append(
                {
                    "patient_key": rec.patient_key,
                    "person_key": rec.person_key,
                    "site": rec.site,
                    "kek_id": wrapped.kek_id,
                    "wrapped_key": wrapped.nonce + wrapped.wrapped,
                    "nonce": nonce,
                    "ciphertext": AESGCM(data_key).encrypt(
                        nonce, orjson.dumps(rec.data), rec.patient_key.encode()
                    ),
                    "updated_at": datetime.now(UTC),
                }
            )
            index += [
                {"identifier_key": self.identifier_key(s, v), "patient_key": rec.patient_key}
                for s, v in set(rec.identifiers())
            ]
        if not rows:
            return 0
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        with Session(self.engine) as session, session.begin():
            for start in range(0, len(rows), 5000):
                chunk = rows[start : start + 5000]
                stmt = insert(PatientIdentity).values(chunk)
                updated = {c: stmt.excluded[c] for c in chunk[0] if c != "patient_key"}
                session.execute(stmt.on_conflict_do_update(index_elements=["patient_key"], set_=updated))
                keys = [r["patient_key"] for r in chunk]
                session.execute(
                    delete(PatientIdentifierIndex).where(PatientIdentifierIndex.patient_key.in_(keys))
                )
            for start in range(0, len(index), 5000):
                session.execute(
                    insert(PatientIdentifierIndex)
                    .values(index[start : start + 5000])
                    .on_conflict_do_nothing()
                )
        return len(rows)

    def _decrypt(self, row: PatientIdentity) -> dict[str, Any]:
        wrapped = WrappedKey(row.kek_id, row.wrapped_key[:12], row.wrapped_key[12:])
        data_key = unwrap_key(wrapped, self.keys.keyring, f"identity {row.patient_key}")
        plain = AESGCM(data_key).decrypt(row.nonce, row.ciphertext, row.patient_key.encode())
        return {
            "site": row.site,
            "patient_key": row.patient_key,
            "person_key": row.person_key,
            **orjson.loads(plain),
        }

    def by_person(self, person_key: str) -> list[dict[str, Any]]:
        """Every site's identity of one warehouse person (person_source_value)."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(PatientIdentity)
                .where(PatientIdentity.person_key == person_key)
                .order_by(PatientIdentity.site)
            ).all()
            return [self._decrypt(r) for r in rows]

    def lookup(self, identifier: str) -> list[dict[str, Any]]:
        """:meth:`by_identifier` of ``system|value`` text (ValidationError when malformed)."""
        system, sep, value = identifier.rpartition("|")
        if not sep or not system or not value:
            raise ValidationError(
                "identifier: expected system|value, e.g. urn:oid:1.2.250.1.213.1.4.8|1740333..."
            )
        return self.by_identifier(system, value)

    def by_identifier(self, system: str, value: str) -> list[dict[str, Any]]:
        """Patients holding identifier ``system|value``, with every site's identity of their person."""
        with Session(self.engine) as session:
            persons = session.scalars(
                select(PatientIdentity.person_key)
                .join(
                    PatientIdentifierIndex, PatientIdentifierIndex.patient_key == PatientIdentity.patient_key
                )
                .where(PatientIdentifierIndex.identifier_key == self.identifier_key(system, value))
                .distinct()
            ).all()
        return [ident for person in sorted(persons) for ident in self.by_person(person)]

    def rewrap(self) -> int:
        """Re-wrap every row's data key under the current KEK (after a KEK rotation)."""
        current = next(iter(self.keys.keyring))
        n = 0
        with Session(self.engine) as session, session.begin():
            for row in session.scalars(select(PatientIdentity).where(PatientIdentity.kek_id != current)):
                key = unwrap_key(
                    WrappedKey(row.kek_id, row.wrapped_key[:12], row.wrapped_key[12:]),
                    self.keys.keyring,
                    f"identity {row.patient_key}",
                )
                new = wrap_key(key, self.keys.keyring)
                row.kek_id, row.wrapped_key = new.kek_id, new.nonce + new.wrapped
                n += 1
        return n
