"""Local-directory backend.

    ROOT/objects/<key>/@v/<version>.json   metadata sidecar (its presence makes the version exist)
    ROOT/objects/<key>/@v/<version>.obj    stored bytes (storage class STANDARD)
    ROOT/cold/<key>/@v/<version>.obj       stored bytes of any other class (e.g. COLD)
    ROOT/tmp/                              writes in progress

Writes go to ``tmp/`` with fsync, then are renamed into place; the sidecar is renamed
last, so an interrupted put leaves nothing visible. Version ids sort by time. Object
lock is enforced by this code (a plain file system cannot enforce WORM on its own).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdhub.errors import IntegrityError, NotFound
from hdhub.objects import crypto
from hdhub.objects.base import ObjectInfo, ObjectReader, ObjectStore, PutOptions, Retention, check_key

VERSIONS_DIR = "@v"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _retention_json(retention: Retention | None) -> dict[str, str] | None:
    return {"mode": retention.mode, "until": retention.until.isoformat()} if retention else None


def new_version_id() -> str:
    return f"{time.time_ns():020d}{secrets.token_hex(4)}"


class FileStore(ObjectStore):
    def __init__(self, root: Path, keyring: dict[str, bytes]) -> None:
        super().__init__(keyring)
        self.root = root.resolve()
        self.url = f"file://{self.root}"
        for sub in ("objects", "cold", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # --- paths and sidecars -------------------------------------------------------------
    def _vdir(self, key: str) -> Path:
        return self.root / "objects" / key / VERSIONS_DIR

    def _blob(self, key: str, version_id: str, storage_class: str) -> Path:
        tree = "objects" if storage_class == "STANDARD" else "cold"
        return self.root / tree / key / VERSIONS_DIR / f"{version_id}.obj"

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        tmp = self.root / "tmp" / f"{secrets.token_hex(8)}.json"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def _sidecar(self, key: str, version_id: str | None) -> dict[str, Any]:
        vdir = self._vdir(check_key(key))
        if version_id is None:
            names = sorted(vdir.glob("*.json")) if vdir.is_dir() else []
            if not names:
                raise NotFound(f"no object {key!r}")
            path = names[-1]
        else:
            if not version_id.isalnum():
                raise NotFound(f"no version {version_id!r} of {key!r}")
            path = vdir / f"{version_id}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(f"no version {version_id!r} of {key!r}") from None
        if version_id is None and data.get("delete_marker"):
            raise NotFound(f"object {key!r} is deleted (its latest version is a delete marker)")
        return data

    @staticmethod
    def _info(data: dict[str, Any], is_latest: bool = True) -> ObjectInfo:
        ret = data.get("retention")
        return ObjectInfo(
            key=data["key"],
            version_id=data["version_id"],
            size=data["size"],
            created=datetime.fromisoformat(data["created"]),
            content_type=data["content_type"],
            storage_class=data["storage_class"],
            retention=Retention(ret["mode"], datetime.fromisoformat(ret["until"])) if ret else None,
            legal_hold=data["legal_hold"],
            metadata=data["metadata"],
            is_latest=is_latest,
            delete_marker=data.get("delete_marker", False),
        )

    # --- interface ------------------------------------------------------------------------
    def _put(self, key: str, stored_chunks: Iterator[bytes], options: PutOptions) -> ObjectInfo:
        version_id = new_version_id()
        tmp = self.root / "tmp" / f"{version_id}.obj"
        stored = 0
        try:
            with tmp.open("wb") as fh:
                for chunk in stored_chunks:
                    fh.write(chunk)
                    stored += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            blob = self._blob(key, version_id, options.storage_class)
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, blob)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        record = {
            "key": key,
            "version_id": version_id,
            "size": crypto.plaintext_size(stored),
            "stored_size": stored,
            "created": datetime.now(UTC).isoformat(),
            "content_type": options.content_type,
            "storage_class": options.storage_class,
            "legal_hold": options.legal_hold,
            "metadata": options.metadata,
            "retention": _retention_json(options.retention),
            "key_override": None,
        }
        self._write_json(self._vdir(key) / f"{version_id}.json", record)
        return self._info(record)

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        data = self._sidecar(key, version_id)
        if data.get("delete_marker"):
            return self._info(data)
        latest = sorted(self._vdir(key).glob("*.json"))[-1].stem == data["version_id"]
        return self._info(data, is_latest=latest)

    def get(self, key: str, version_id: str | None = None) -> ObjectReader:
        data = self._sidecar(key, version_id)
        if data.get("delete_marker"):
            raise NotFound(f"{key} version {version_id} is a delete marker")
        info = self._info(data)
        blob = self._blob(key, info.version_id, info.storage_class)
        try:
            size = blob.stat().st_size
        except FileNotFoundError:
            raise IntegrityError(f"{key} version {info.version_id}: stored bytes are missing") from None
        override = crypto.WrappedKey.from_json(data["key_override"]) if data.get("key_override") else None

        def chunks() -> Iterator[bytes]:
            with blob.open("rb") as fh:
                yield fh.read(crypto.HEADER_SIZE)
                while chunk := fh.read(crypto.stored_segment()):
                    yield chunk

        return ObjectReader(info, self._decrypt(info, chunks(), size, override))

    def _keys(self, prefix: str) -> Iterator[str]:
        base = self.root / "objects"
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        if not start.is_dir():
            return
        for dirpath, dirnames, _files in os.walk(start):
            dirnames.sort()
            if VERSIONS_DIR in dirnames:
                key = Path(dirpath).relative_to(base).as_posix()
                if key.startswith(prefix):
                    yield key
                dirnames.remove(VERSIONS_DIR)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in self._keys(prefix):
            names = sorted(self._vdir(key).glob("*.json"))
            if names:
                data = json.loads(names[-1].read_text(encoding="utf-8"))
                if not data.get("delete_marker"):
                    yield self._info(data)

    def versions(self, prefix: str = "") -> list[ObjectInfo]:
        out = []
        for key in self._keys(prefix):
            names = sorted(self._vdir(key).glob("*.json"), reverse=True)
            for i, path in enumerate(names):
                out.append(self._info(json.loads(path.read_text(encoding="utf-8")), is_latest=i == 0))
        return out

    def _delete_marker(self, key: str) -> ObjectInfo:
        version_id = new_version_id()
        record = {
            "key": key,
            "version_id": version_id,
            "size": 0,
            "stored_size": 0,
            "created": datetime.now(UTC).isoformat(),
            "content_type": "",
            "storage_class": "STANDARD",
            "legal_hold": False,
            "metadata": {},
            "retention": None,
            "key_override": None,
            "delete_marker": True,
        }
        self._write_json(self._vdir(key) / f"{version_id}.json", record)
        return self._info(record)

    def _delete_version(self, info: ObjectInfo, bypass_governance: bool = False) -> None:
        vdir = self._vdir(info.key)
        (vdir / f"{info.version_id}.json").unlink()  # invisible first, then the bytes
        self._blob(info.key, info.version_id, info.storage_class).unlink(missing_ok=True)
        _fsync_dir(vdir)

    def _update(self, info: ObjectInfo, **changes: Any) -> None:
        path = self._vdir(info.key) / f"{info.version_id}.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        data.update(changes)
        self._write_json(path, data)

    def _write_lock(
        self, info: ObjectInfo, retention: Retention | None, legal_hold: bool, bypass_governance: bool
    ) -> None:
        self._update(info, retention=_retention_json(retention), legal_hold=legal_hold)

    def transition(self, key: str, version_id: str, storage_class: str) -> ObjectInfo:
        info = self.head(key, version_id)
        if info.storage_class != storage_class:
            src = self._blob(key, version_id, info.storage_class)
            dst = self._blob(key, version_id, storage_class)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            self._update(info, storage_class=storage_class)
        return self.head(key, version_id)

    def _stored_header(self, info: ObjectInfo) -> tuple[crypto.Header, crypto.WrappedKey | None]:
        with self._blob(info.key, info.version_id, info.storage_class).open("rb") as fh:
            header = crypto.read_header(fh.read(crypto.HEADER_SIZE), f"{info.key} version {info.version_id}")
        data = self._sidecar(info.key, info.version_id)
        override = crypto.WrappedKey.from_json(data["key_override"]) if data.get("key_override") else None
        return header, override

    def _read_stored(self, info: ObjectInfo, offset: int, length: int) -> bytes:
        with self._blob(info.key, info.version_id, info.storage_class).open("rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
        if len(data) != length:
            raise IntegrityError(
                f"{info.key} version {info.version_id}: stored object is shorter than recorded"
            )
        return data

    def _write_key_override(self, info: ObjectInfo, key: crypto.WrappedKey) -> None:
        self._update(info, key_override=key.to_json())
