"""The same behaviour on both backends: a local directory and S3 (moto's server over HTTP)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from hdhub.config.keys import key_id
from hdhub.config.settings import LifecycleRule
from hdhub.errors import IntegrityError, NotFound, ObjectLocked, ValidationError
from hdhub.objects import ObjectStore, Retention, open_store
from hdhub.objects.lifecycle import apply_lifecycle
from hdhub.objects.s3 import S3Store

PATIENT_NAME = b"DUPONT-LEFEBVRE Marie-Claire"
SOON = timedelta(days=1)


def later(delta: timedelta = SOON) -> datetime:
    return datetime.now(UTC) + delta


@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20), (1 << 20) + 1, 12 * 1024 * 1024 + 17])
def test_round_trip_sizes_including_multipart(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    info = store.put("k/blob.bin", data, content_type="application/dicom", metadata={"site": "nord"})
    assert info.size == size
    head = store.head("k/blob.bin")
    assert (head.size, head.content_type, head.metadata) == (size, "application/dicom", {"site": "nord"})
    assert store.get_bytes("k/blob.bin") == data


def test_streaming_put_and_get(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    with src.open("rb") as fh:
        store.put("video.mp4", fh)
    reader = store.get("video.mp4")
    chunks = list(reader)
    assert len(chunks) >= 3 and b"".join(chunks) == src.read_bytes()


def test_versions_delete_markers_and_listing(store: ObjectStore) -> None:
    v1 = store.put("a/x", b"one")
    v2 = store.put("a/x", b"two")
    store.put("a/y", b"y")
    store.put("b/z", b"z")
    assert store.get_bytes("a/x") == b"two"
    assert store.get_bytes("a/x", v1.version_id) == b"one"
    assert [i.key for i in store.list("a/")] == ["a/x", "a/y"]
    marker = store.delete("a/x")
    assert marker.delete_marker
    assert [i.key for i in store.list("a/")] == ["a/y"]
    with pytest.raises(NotFound):
        store.get("a/x")
    versions = [v for v in store.versions("a/x")]
    assert [v.delete_marker for v in versions] == [True, False, False]
    assert versions[0].is_latest and not versions[1].is_latest
    assert store.get_bytes("a/x", v2.version_id) == b"two"  # older versions stay readable
    store.delete("a/x", v1.version_id)
    with pytest.raises(NotFound):
        store.get("a/x", v1.version_id)


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_locked_versions_cannot_be_deleted(store: ObjectStore, mode: str) -> None:
    info = store.put("records/r1.pdf", b"%PDF", retention=Retention(mode, later()))  # type: ignore[arg-type]
    assert store.head("records/r1.pdf").retention.mode == mode
    with pytest.raises(ObjectLocked, match="retention"):
        store.delete("records/r1.pdf", info.version_id)
    assert store.get_bytes("records/r1.pdf") == b"%PDF"


def test_compliance_can_only_be_extended(store: ObjectStore) -> None:
    info = store.put("c", b"x", retention=Retention("COMPLIANCE", later()))
    with pytest.raises(ObjectLocked, match="only be extended"):
        store.set_retention("c", info.version_id, Retention("COMPLIANCE", later(timedelta(hours=1))))
    with pytest.raises(ObjectLocked):
        store.set_retention("c", info.version_id, None, bypass_governance=True)
    with pytest.raises(ObjectLocked):
        store.set_retention("c", info.version_id, Retention("GOVERNANCE", later(timedelta(days=5))))
    extended = store.set_retention("c", info.version_id, Retention("COMPLIANCE", later(timedelta(days=30))))
    assert extended.retention.until > later(timedelta(days=29))


def test_governance_shortened_only_with_bypass(store: ObjectStore) -> None:
    info = store.put("g", b"x", retention=Retention("GOVERNANCE", later()))
    with pytest.raises(ObjectLocked, match="bypass"):
        store.set_retention("g", info.version_id, None)
    store.set_retention("g", info.version_id, None, bypass_governance=True)
    store.delete("g", info.version_id)
    with pytest.raises(NotFound):
        store.head("g", info.version_id)


def test_legal_hold(store: ObjectStore) -> None:
    info = store.put("h", b"x", legal_hold=True)
    with pytest.raises(ObjectLocked, match="legal hold"):
        store.delete("h", info.version_id)
    store.set_legal_hold("h", info.version_id, False)
    store.delete("h", info.version_id)


def test_lifecycle_transition_expiration_and_locked_skip(store: ObjectStore) -> None:
    store.put("videos/op1.mp4", b"v" * 100)
    store.put("tmp/scratch", b"s")
    kept = store.put("tmp/kept", b"k", retention=Retention("COMPLIANCE", later(timedelta(days=3650))))
    rules = [
        LifecycleRule(prefix="videos/", transition_after_days=90, storage_class="COLD"),
        LifecycleRule(prefix="tmp/", expire_after_days=30),
    ]
    assert apply_lifecycle(store, rules).transitioned == []  # nothing is old enough yet
    future = later(timedelta(days=100))
    dry = apply_lifecycle(store, rules, now=future, dry_run=True)
    assert len(dry.transitioned) == 1 and store.head("videos/op1.mp4").storage_class == "STANDARD"
    report = apply_lifecycle(store, rules, now=future)
    assert [t[0] for t in report.transitioned] == ["videos/op1.mp4"]
    assert [e[0] for e in report.expired] == ["tmp/scratch"]
    assert [(s[0], s[1]) for s in report.skipped_locked] == [("tmp/kept", kept.version_id)]
    assert store.head("videos/op1.mp4").storage_class == "COLD"
    assert store.get_bytes("videos/op1.mp4") == b"v" * 100
    assert [i.key for i in store.list("tmp/")] == ["tmp/kept"]


def test_key_rotation_rewraps_without_rewriting(
    store_url: str, keyring: dict[str, bytes], tmp_path: Path
) -> None:
    store = open_store(store_url, keyring)
    info = store.put("r/doc", PATIENT_NAME * 1000)
    before = raw_bytes(store, "r/doc", info.version_id)
    new = os.urandom(32)
    rotated = {key_id(new): new, **keyring}
    assert store.rewrap(rotated) == 1
    assert store.rewrap() == 0  # idempotent
    assert raw_bytes(store, "r/doc", info.version_id) == before  # the object itself is untouched
    only_new = open_store(store_url, {key_id(new): new})  # the old KEK is retired
    assert only_new.get_bytes("r/doc") == PATIENT_NAME * 1000
    fresh = only_new.put("r/new", b"after rotation")
    assert only_new.get_bytes("r/new", fresh.version_id) == b"after rotation"


def test_wrong_kek_is_a_clear_error(store_url: str, keyring: dict[str, bytes]) -> None:
    open_store(store_url, keyring).put("w", b"x")
    other = os.urandom(32)
    with pytest.raises(Exception, match="not in the keyring"):
        open_store(store_url, {key_id(other): other}).get_bytes("w")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs",
        "a/../b",
        "..",
        "a//b",
        "a/",
        "a\x00b",
        "a\nb",
        "a\\b",
        "@v/x",
        "a/@v",
        ".hdhub/keys/x",
        "x" * 1100,
    ],
)
def test_hostile_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValidationError):
        store.put(key, b"x")
    assert list(store.list()) == []


def test_bad_metadata_refused(store: ObjectStore) -> None:
    for meta in ({"Name": "x"}, {"x": "é"}, {"x": "a" * 300}):
        with pytest.raises(ValidationError):
            store.put("m", b"x", metadata=meta)
    assert list(store.list()) == []


def test_interrupted_put_leaves_nothing(store: ObjectStore) -> None:
    def source():
        yield os.urandom(6 * 1024 * 1024)
        raise OSError("connection reset by the modality")

    with pytest.raises(OSError, match="connection reset"):
        store.put("partial", source())
    assert list(store.list()) == [] and store.versions("partial") == []
    with pytest.raises(NotFound):
        store.head("partial")


def test_patient_name_never_in_raw_storage(store: ObjectStore) -> None:
    """Must show: a stored object containing a known patient name cannot be found in the raw bytes."""
    info = store.put(
        "reports/cr-1.txt",
        b"Compte rendu: patiente " + PATIENT_NAME + b", nee le 12/03/1961",
        content_type="text/plain",
        metadata={"site": "nord"},
    )
    assert PATIENT_NAME in store.get_bytes("reports/cr-1.txt")
    blobs = all_raw(store)
    assert blobs and all(PATIENT_NAME not in b and PATIENT_NAME.lower() not in b.lower() for b in blobs)
    assert raw_bytes(store, "reports/cr-1.txt", info.version_id)


@pytest.mark.parametrize(("where", "message"), [(150_000, "fails authentication"), (-1, "SHA-256 mismatch")])
def test_tampered_bytes_are_an_error_never_silent(store: ObjectStore, where: int, message: str) -> None:
    info = store.put("t", os.urandom(300_000))
    bad_version = tamper(store, "t", info.version_id, offset=where)
    with pytest.raises(IntegrityError, match=message):
        store.get_bytes("t", bad_version)


def test_s3_bucket_without_object_lock_is_refused(s3_server: str, keyring: dict[str, bytes]) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="plain-bucket")
    with pytest.raises(Exception, match="no object lock"):
        open_store(f"s3://plain-bucket?endpoint_url={s3_server}&region=us-east-1", keyring)


def test_s3_provider_itself_refuses_compliance_delete(s3_server: str, keyring: dict[str, bytes]) -> None:
    """Bypassing hdhub's own check, the S3 server still refuses (object lock is native)."""
    store = open_store(f"s3://native-lock?endpoint_url={s3_server}&region=eu-west-3", keyring)
    info = store.put("locked", b"x", retention=Retention("COMPLIANCE", later()))
    assert isinstance(store, S3Store)
    with pytest.raises(ObjectLocked, match="refuses"):
        store._delete_version(info)


# --- raw access helpers (what someone with disk or bucket access sees) --------------------


def raw_bytes(store: ObjectStore, key: str, version_id: str) -> bytes:
    if isinstance(store, S3Store):
        return store.s3.get_object(Bucket=store.bucket, Key=key, VersionId=version_id)["Body"].read()
    return next(Path(store.root).rglob(f"{version_id}.obj")).read_bytes()


def all_raw(store: ObjectStore) -> list[bytes]:
    if isinstance(store, S3Store):
        out = []
        for v in store.s3.list_object_versions(Bucket=store.bucket).get("Versions", []):
            r = store.s3.get_object(Bucket=store.bucket, Key=v["Key"], VersionId=v["VersionId"])
            out.append(r["Body"].read())
            out.append(repr(r["Metadata"]).encode() + v["Key"].encode())
        return out
    return [p.read_bytes() for p in Path(store.root).rglob("*") if p.is_file()]


def tamper(store: ObjectStore, key: str, version_id: str, offset: int) -> str:
    """Flip one stored bit; returns the version now holding the corrupted bytes."""
    data = bytearray(raw_bytes(store, key, version_id))
    data[offset] ^= 0x01
    if isinstance(store, S3Store):
        # S3 versions are immutable: the corrupted copy becomes a new version, as a
        # misbehaving provider or an attacker with bucket access would serve it.
        return store.s3.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))["VersionId"]
    next(Path(store.root).rglob(f"{version_id}.obj")).write_bytes(bytes(data))
    return version_id


def test_governance_delete_with_bypass_only_compliance_and_holds_never(store: ObjectStore) -> None:
    governed = store.put("gd", b"x", retention=Retention("GOVERNANCE", later()))
    with pytest.raises(ObjectLocked):
        store.delete("gd", governed.version_id)
    store.delete("gd", governed.version_id, bypass_governance=True)
    complied = store.put("cd", b"x", retention=Retention("COMPLIANCE", later()))
    with pytest.raises(ObjectLocked):
        store.delete("cd", complied.version_id, bypass_governance=True)
    held = store.put("hd", b"x", retention=Retention("GOVERNANCE", later()), legal_hold=True)
    with pytest.raises(ObjectLocked, match="legal hold"):
        store.delete("hd", held.version_id, bypass_governance=True)


@pytest.mark.parametrize("size", [1, (1 << 20), 3 * (1 << 20) + 12345])
def test_ranged_reads_decrypt_only_the_segments_asked(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    store.put("video.mp4", data, content_type="video/mp4")
    mib = 1 << 20
    ranges = [(0, 0), (0, size - 1), (size - 1, size - 1), (size // 2, size - 1)]
    if size > mib:
        ranges += [(mib - 1, mib), (mib, 2 * mib - 1), (12, 2 * mib + 5), (2 * mib, size - 1)]
    for start, end in ranges:
        start, end = min(start, size - 1), min(end, size - 1)
        info, chunks = store.get_range("video.mp4", start, end)
        assert info.size == size and b"".join(chunks) == data[start : end + 1], (start, end)
    for start, end in [(-1, 3), (5, 2), (0, size)]:
        with pytest.raises(ValidationError):
            store.get_range("video.mp4", start, end)


def test_a_tampered_segment_fails_its_ranged_read(tmp_path: Path, keyring: dict[str, bytes]) -> None:
    store = open_store(f"file://{tmp_path}", keyring)
    data = os.urandom(3 << 20)
    store.put("slide.svs", data)
    blob = next((tmp_path / "objects" / "slide.svs" / "@v").glob("*.obj"))
    raw = bytearray(blob.read_bytes())
    raw[84 + (1 << 20) + 16 + 100] ^= 1  # a byte inside segment 1
    blob.write_bytes(bytes(raw))
    assert b"".join(store.get_range("slide.svs", 0, 999)[1]) == data[:1000]  # segment 0 is intact
    with pytest.raises(IntegrityError, match="segment 1 fails authentication"):
        b"".join(store.get_range("slide.svs", (1 << 20) + 5, (1 << 20) + 10)[1])
