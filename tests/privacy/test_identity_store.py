"""The identity store: encrypted at rest, found by identifier, idempotent, re-wrappable, audited."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hdhub.config.keys import load_keys, rotate_kek
from hdhub.errors import IntegrityError
from hdhub.hub import Hub
from hdhub.privacy.identity_store import IdentityRecord, IdentityStore
from tests.api.conftest import INS

IPP = "https://chu-nord.example/ipp"


def record(site: str, patient: str, person: str, family: str, ipp: str) -> IdentityRecord:
    return IdentityRecord(
        site,
        patient,
        person,
        {
            "name": [{"family": family, "given": ["Jeanne"]}],
            "telecom": [{"system": "phone", "value": "06 12 34 56 78"}],
            "identifier": [{"system": IPP, "value": ipp}, {"system": INS[0], "value": INS[1]}],
            "birthDate": "1950-03-02",
        },
    )


def test_identities_are_encrypted_found_by_identifier_and_idempotent(hub: Hub) -> None:
    store = hub.identities
    store.put_many([record("nord", "1" * 40, "9" * 40, "Dupont-Zzyzx", "000123")])
    store.put_many([record("sud", "2" * 40, "9" * 40, "Dupont-Zzyzx", "777")])
    store.put_many([record("nord", "1" * 40, "9" * 40, "Dupont-Zzyzx", "000123")])  # again: no new row
    with hub.catalog.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM patient_identities")).scalar() == 2
        raw = b"".join(bytes(r[0]) for r in conn.execute(text("SELECT ciphertext FROM patient_identities")))
        index = " ".join(
            r[0] for r in conn.execute(text("SELECT identifier_key FROM patient_identifier_index"))
        )
    assert b"Dupont" not in raw and b"000123" not in raw and "000123" not in index
    both = store.by_identifier(IPP, "000123")  # one site's IPP finds the person, with both sites
    assert [(x["site"], x["name"][0]["family"]) for x in both] == [
        ("nord", "Dupont-Zzyzx"),
        ("sud", "Dupont-Zzyzx"),
    ]
    assert store.by_identifier(IPP, "nope") == []


def test_a_ciphertext_moved_to_another_patient_does_not_decrypt(hub: Hub) -> None:
    store = hub.identities
    store.put_many(
        [record("nord", "1" * 40, "8" * 40, "A", "1"), record("nord", "3" * 40, "7" * 40, "B", "2")]
    )
    with hub.catalog.begin() as conn:
        row = conn.execute(
            text(
                "SELECT kek_id, wrapped_key, nonce, ciphertext FROM patient_identities WHERE patient_key = :k"
            ),
            {"k": "1" * 40},
        ).one()
        conn.execute(
            text(
                "UPDATE patient_identities SET kek_id=:a, wrapped_key=:b, nonce=:c, ciphertext=:d "
                "WHERE patient_key=:k"
            ),
            {"a": row[0], "b": row[1], "c": row[2], "d": row[3], "k": "3" * 40},
        )
    with pytest.raises(Exception) as exc:
        store.by_person("7" * 40)
    assert exc.type.__name__ in {"InvalidTag", IntegrityError.__name__}


def test_kek_rotation_rewraps_identities(hub: Hub) -> None:
    hub.identities.put_many([record("nord", "1" * 40, "9" * 40, "Rotated", "5")])
    rotate_kek(hub.settings.secrets_path)
    new_keys = load_keys(hub.settings.secrets_path)
    assert IdentityStore(hub.catalog, new_keys).rewrap() == 1
    # Readable with the new KEK alone.
    only_new = type(new_keys)(new_keys.kek, new_keys.pseudonym, new_keys.audit_signing)
    assert IdentityStore(hub.catalog, only_new).by_person("9" * 40)[0]["name"][0]["family"] == "Rotated"
