from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from hdhub.audit.chain import entry_hash
from hdhub.audit.log import AuditLog
from hdhub.errors import ValidationError
from hdhub.hub import Hub
from hdhub.security.principal import Principal

ALICE = Principal(name="alice", roles=frozenset({"clinician"}), kind="user", source="10.0.0.5")


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record(ALICE, "fhir.read", resource_type="Patient", resource_id=f"p{i}", patient_id=f"p{i % 3}")


def small_log(hub: Hub, every: int = 5) -> AuditLog:
    return AuditLog(hub.catalog, hub.keys.audit_signing, checkpoint_every=every)


def sql(hub: Hub, statement: str, **params: object) -> None:
    with hub.catalog.begin() as conn:
        conn.execute(text(statement), params)


def test_intact_chain_verifies(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 12)
    report = log.verify()
    assert report.ok, report.message
    assert (report.checked, report.checkpoints_verified, report.unsealed_tail) == (12, 2, 2)


def test_entries_link_to_previous_hash(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 3)
    first, second = sorted(log.search(), key=lambda e: e.seq)[:2]
    assert first.prev_hash == "0" * 64 and second.prev_hash == first.hash
    assert len(first.ts) == 27 and first.ts.endswith("Z")


def test_edited_entry_is_named(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 12)
    sql(hub, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7")
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 7 and "edited" in report.reason


def test_deleted_entry_is_named(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 12)
    sql(hub, "DELETE FROM audit_events WHERE seq = 4")
    report = log.verify()
    assert report.first_bad_seq == 4 and "missing" in report.reason


def test_reordered_entries_are_named(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 12)
    # Swap the contents of entries 3 and 4, keeping their positions.
    sql(hub, "UPDATE audit_events SET seq = -3 WHERE seq = 3")
    sql(hub, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
    sql(hub, "UPDATE audit_events SET seq = 4 WHERE seq = -3")
    report = log.verify()
    assert report.first_bad_seq == 3


def test_inserted_entry_is_named(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 6)
    # Shift entries 4.. up by one and slip a forged entry in at 4.
    for seq in (6, 5, 4):
        sql(hub, "UPDATE audit_events SET seq = :n WHERE seq = :o", n=seq + 1, o=seq)
    sql(
        hub,
        "INSERT INTO audit_events (seq, ts, actor, actor_type, action, outcome, prev_hash, hash) "
        "SELECT 4, ts, 'ghost', 'user', 'x', 'success', hash, hash FROM audit_events WHERE seq = 3",
    )
    report = log.verify()
    assert report.first_bad_seq == 4


def test_rewritten_and_rehashed_chain_is_caught_by_signed_checkpoint(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 12)
    # A database administrator edits entry 2 and recomputes every later hash: the chain
    # is self-consistent again, but the checkpoint at 5 was signed over the old hash.
    with hub.catalog.begin() as conn:
        conn.execute(text("UPDATE audit_events SET patient_id = 'someone-else' WHERE seq = 2"))
        prev = conn.execute(text("SELECT hash FROM audit_events WHERE seq = 1")).scalar_one()
        for seq in range(2, 13):
            row = conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq}).mappings().one()
            new = entry_hash(prev, row)
            conn.execute(
                text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": new, "s": seq},
            )
            prev = new
    report = log.verify()
    assert report.first_bad_seq == 5 and "rewritten" in report.reason and "1..5" in report.reason


def test_forged_checkpoint_signature_is_caught(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 6)
    sql(hub, "UPDATE audit_checkpoints SET signature = :s WHERE seq = 5", s="A" * 88)
    assert "signature" in log.verify().reason


def test_truncated_tail_is_caught(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 10)
    sql(hub, "DELETE FROM audit_events WHERE seq > 8")
    report = log.verify()
    assert not report.ok and "truncated" in report.reason


def test_deleted_checkpoints_are_caught(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 12)
    sql(hub, "DELETE FROM audit_checkpoints")
    report = log.verify()
    assert not report.ok and "no signed checkpoint" in report.reason


def test_concurrent_appenders_never_fork_the_chain(hub: Hub) -> None:
    log = small_log(hub, every=50)
    threads = [threading.Thread(target=fill, args=(log, 40)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A second AuditLog on the same database stands for another process.
    other = small_log(hub, every=50)
    fill(other, 10)
    report = log.verify()
    assert report.ok, report.message
    assert report.checked == 170


def test_record_many_is_one_transaction(hub: Hub) -> None:
    log = small_log(hub)
    seqs = log.record_many(AuditLog.event(ALICE, "bulk", resource_id=str(i)) for i in range(7))
    assert seqs == list(range(1, 8))
    assert log.verify().ok


def test_search_filters_and_pagination(hub: Hub) -> None:
    log = small_log(hub)
    fill(log, 9)
    bob = Principal(name="bob", roles=frozenset({"dpo"}), kind="user")
    log.record(bob, "audit.export", project_id="P1")
    assert [e.seq for e in log.search(limit=3)] == [10, 9, 8]
    assert [e.seq for e in log.search(limit=3, offset=3)] == [7, 6, 5]
    assert {e.patient_id for e in log.search(patient="p1")} == {"p1"} and log.count(patient="p1") == 3
    assert log.count(actor="bob") == 1 and log.count(project="P1") == 1
    assert log.count(since="2999-01-01") == 0 and log.count(until="2000-01-01") == 0
    assert log.count(since="2000-01-01", until="2999-01-01") == 10


def test_bad_outcome_and_oversized_fields(hub: Hub) -> None:
    log = small_log(hub)
    with pytest.raises(ValidationError):
        log.record(ALICE, "x", outcome="maybe")
    seq = log.record(ALICE, "x", resource_id="r" * 10_000)
    assert len(log.search(limit=1)[0].resource_id) == 500 and seq == 1
