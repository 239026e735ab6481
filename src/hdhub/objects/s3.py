"""S3 backend (AWS, MinIO, Ceph RGW, Scality, OVHcloud …) through boto3.

Objects are encrypted client-side (see ``crypto``): the provider stores only ciphertext.
The bucket must have versioning and object lock; hdhub creates it that way when it is
missing and refuses a bucket without object lock. Retention and legal hold use S3's
native object lock, so the provider enforces them too. Objects above the multipart
threshold are uploaded in parts. Key rotation writes small re-wrapped key records
under the reserved prefix ``.hdhub/keys/`` and never rewrites an object.

Storage classes: ``COLD`` maps to S3's GLACIER_IR (cold, still readable at once);
any other S3 class name is passed through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from hdhub.errors import ConfigError, IntegrityError, NotFound, ObjectLocked
from hdhub.objects import crypto
from hdhub.objects.base import (
    RESERVED_PREFIX,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    PutOptions,
    Retention,
    check_key,
)

CLASS_TO_S3 = {"STANDARD": "STANDARD", "COLD": "GLACIER_IR"}
S3_TO_CLASS = {v: k for k, v in CLASS_TO_S3.items()}
MIN_PART = 5 * 1024 * 1024


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store(ObjectStore):
    def __init__(
        self,
        client: Any,
        bucket: str,
        keyring: dict[str, bytes],
        *,
        url: str,
        multipart_threshold: int = 16 * 1024 * 1024,
    ) -> None:
        super().__init__(keyring)
        self.s3, self.bucket, self.url = client, bucket, url
        self.part_size = max(MIN_PART, multipart_threshold)
        self._ensure_bucket()

    @classmethod
    def from_url(cls, url: str, keyring: dict[str, bytes], *, multipart_threshold: int) -> S3Store:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"objects URL {url!r} names no bucket")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint_url", "region"}
        if unknown:
            raise ConfigError(f"objects URL: unknown parameter(s) {', '.join(sorted(unknown))}")
        config = Config(
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path"} if "endpoint_url" in query else {},
        )
        client = boto3.client(
            "s3", endpoint_url=query.get("endpoint_url"), region_name=query.get("region"), config=config
        )
        return cls(client, parts.netloc, keyring, url=url, multipart_threshold=multipart_threshold)

    def _ensure_bucket(self) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket"):
                raise ConfigError(f"cannot reach bucket {self.bucket}: {exc}") from None
            params: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
            region = self.s3.meta.region_name
            if region and region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self.s3.create_bucket(**params)
        try:
            conf = self.s3.get_object_lock_configuration(Bucket=self.bucket)["ObjectLockConfiguration"]
            enabled = conf.get("ObjectLockEnabled") == "Enabled"
        except ClientError:
            enabled = False
        if not enabled:
            raise ConfigError(
                f"bucket {self.bucket} has no object lock: hdhub needs a bucket created with versioning "
                "and object lock (retention could not be enforced)"
            )

    # --- helpers --------------------------------------------------------------------------
    @staticmethod
    def _override_key(key: str, version_id: str) -> str:
        return f"{RESERVED_PREFIX}keys/{key}/{version_id}.json"

    @staticmethod
    def _lock_params(retention: Retention | None, legal_hold: bool) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if retention:
            params |= {"ObjectLockMode": retention.mode, "ObjectLockRetainUntilDate": retention.until}
        if legal_hold:
            params["ObjectLockLegalHoldStatus"] = "ON"
        return params

    def _info_from_head(self, key: str, r: dict[str, Any]) -> ObjectInfo:
        mode, until = r.get("ObjectLockMode"), r.get("ObjectLockRetainUntilDate")
        return ObjectInfo(
            key=key,
            version_id=r["VersionId"],
            size=crypto.plaintext_size(r["ContentLength"]),
            created=r["LastModified"],
            content_type=r.get("ContentType", "application/octet-stream"),
            storage_class=S3_TO_CLASS.get(
                r.get("StorageClass", "STANDARD"), r.get("StorageClass", "STANDARD")
            ),
            retention=Retention(mode, until) if mode and until else None,
            legal_hold=r.get("ObjectLockLegalHoldStatus") == "ON",
            metadata={k[2:]: v for k, v in r.get("Metadata", {}).items() if k.startswith("u-")},
        )

    def _version_args(self, key: str, version_id: str | None) -> dict[str, Any]:
        args = {"Bucket": self.bucket, "Key": check_key(key)}
        if version_id is not None:
            args["VersionId"] = version_id
        return args

    # --- interface ------------------------------------------------------------------------
    def _put(self, key: str, stored_chunks: Iterator[bytes], options: PutOptions) -> ObjectInfo:
        meta = {f"u-{k}": v for k, v in options.metadata.items()} | {"hdhub-format": "1"}
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": options.content_type,
            "Metadata": meta,
            **self._lock_params(options.retention, options.legal_hold),
        }
        s3_class = CLASS_TO_S3.get(options.storage_class, options.storage_class)
        if s3_class != "STANDARD":
            params["StorageClass"] = s3_class
        buf = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in stored_chunks:
                buf += chunk
                while len(buf) > self.part_size:
                    if upload_id is None:
                        upload_id = self.s3.create_multipart_upload(**params)["UploadId"]
                    n = len(parts) + 1
                    r = self.s3.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=n,
                        Body=bytes(buf[: self.part_size]),
                    )
                    parts.append({"PartNumber": n, "ETag": r["ETag"]})
                    del buf[: self.part_size]
            if upload_id is None:
                version_id = self.s3.put_object(Body=bytes(buf), **params)["VersionId"]
            else:
                n = len(parts) + 1
                r = self.s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=bytes(buf)
                )
                parts.append({"PartNumber": n, "ETag": r["ETag"]})
                version_id = self.s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )["VersionId"]
        except BaseException:
            if upload_id is not None:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return self.head(key, version_id)

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        try:
            r = self.s3.head_object(**self._version_args(key, version_id))
        except ClientError as exc:
            if _code(exc) in ("405", "MethodNotAllowed"):  # a delete marker
                return self._marker_info(key, version_id or "")
            if _code(exc) in ("404", "NoSuchKey", "NoSuchVersion", "400"):
                raise NotFound(
                    f"no object {key!r}" + (f" version {version_id}" if version_id else "")
                ) from None
            raise
        return self._info_from_head(key, r)

    def _marker_info(self, key: str, version_id: str) -> ObjectInfo:
        for v in self.versions(key):
            if v.key == key and v.version_id == version_id:
                return v
        raise NotFound(f"no version {version_id!r} of {key!r}")

    def get(self, key: str, version_id: str | None = None) -> ObjectReader:
        try:
            r = self.s3.get_object(**self._version_args(key, version_id))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NoSuchVersion", "405", "MethodNotAllowed", "400"):
                raise NotFound(
                    f"no object {key!r}" + (f" version {version_id}" if version_id else "")
                ) from None
            raise
        info = self._info_from_head(key, r)
        body = r["Body"]
        raw_header = body.read(crypto.HEADER_SIZE)
        header = crypto.read_header(raw_header, f"{key} version {info.version_id}")
        override = None if header.key.kek_id in self.keyring else self._read_override(key, info.version_id)

        def chunks() -> Iterator[bytes]:
            yield raw_header
            yield from body.iter_chunks(crypto.stored_segment())

        return ObjectReader(info, self._decrypt(info, chunks(), r["ContentLength"], override))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                if o["Key"].startswith(RESERVED_PREFIX):
                    continue
                cls = o.get("StorageClass", "STANDARD")
                yield ObjectInfo(
                    key=o["Key"],
                    version_id="",
                    size=crypto.plaintext_size(o["Size"]),
                    created=o["LastModified"],
                    storage_class=S3_TO_CLASS.get(cls, cls),
                )

    def versions(self, prefix: str = "") -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for v in page.get("Versions", []):
                if not v["Key"].startswith(RESERVED_PREFIX):
                    cls = v.get("StorageClass", "STANDARD")
                    out.append(
                        ObjectInfo(
                            key=v["Key"],
                            version_id=v["VersionId"],
                            size=crypto.plaintext_size(v["Size"]),
                            created=v["LastModified"],
                            storage_class=S3_TO_CLASS.get(cls, cls),
                            is_latest=v["IsLatest"],
                        )
                    )
            for m in page.get("DeleteMarkers", []):
                if not m["Key"].startswith(RESERVED_PREFIX):
                    out.append(
                        ObjectInfo(
                            key=m["Key"],
                            version_id=m["VersionId"],
                            size=0,
                            created=m["LastModified"],
                            is_latest=m["IsLatest"],
                            delete_marker=True,
                        )
                    )
        out.sort(key=lambda i: (i.key, not i.is_latest, -i.created.timestamp()))
        return out

    def _delete_marker(self, key: str) -> ObjectInfo:
        r = self.s3.delete_object(Bucket=self.bucket, Key=key)
        return ObjectInfo(
            key=key,
            version_id=r.get("VersionId", ""),
            size=0,
            created=datetime.now().astimezone(),
            delete_marker=True,
        )

    def _delete_version(self, info: ObjectInfo, bypass_governance: bool = False) -> None:
        extra = {"BypassGovernanceRetention": True} if bypass_governance else {}
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=info.key, VersionId=info.version_id, **extra)
        except ClientError as exc:
            if _code(exc) in ("AccessDenied", "403"):
                raise ObjectLocked(
                    f"{info.key} version {info.version_id}: the S3 provider refuses the delete (object lock)"
                ) from None
            raise
        override = self._override_key(info.key, info.version_id)
        for v in self.s3.list_object_versions(Bucket=self.bucket, Prefix=override).get("Versions", []):
            self.s3.delete_object(Bucket=self.bucket, Key=override, VersionId=v["VersionId"])

    def _write_lock(
        self, info: ObjectInfo, retention: Retention | None, legal_hold: bool, bypass_governance: bool
    ) -> None:
        args = {"Bucket": self.bucket, "Key": info.key, "VersionId": info.version_id}
        try:
            if retention != info.retention:
                body = {"Mode": retention.mode, "RetainUntilDate": retention.until} if retention else {}
                extra = {"BypassGovernanceRetention": True} if bypass_governance else {}
                self.s3.put_object_retention(Retention=body, **extra, **args)
            if legal_hold != info.legal_hold:
                self.s3.put_object_legal_hold(LegalHold={"Status": "ON" if legal_hold else "OFF"}, **args)
        except ClientError as exc:
            if _code(exc) in ("AccessDenied", "403", "InvalidRequest"):
                raise ObjectLocked(f"{info.key} version {info.version_id}: {exc}") from None
            raise

    def transition(self, key: str, version_id: str, storage_class: str) -> ObjectInfo:
        info = self.head(key, version_id)
        if info.storage_class == storage_class:
            return info
        r = self.s3.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key, "VersionId": version_id},
            StorageClass=CLASS_TO_S3.get(storage_class, storage_class),
            MetadataDirective="COPY",
        )
        new = self.head(key, r["VersionId"])
        if info.retention is not None or info.legal_hold:
            # The lock follows the copy (S3-compatible servers differ on lock headers of a copy;
            # the source version stays locked meanwhile).
            self._write_lock(new, info.retention, info.legal_hold, False)
            new = self.head(key, r["VersionId"])
        override = self._read_override(key, version_id)
        if override is not None:
            self._write_key_override(new, override)
        if info.locked() is None:
            self._delete_version(info)
        return new

    def _read_override(self, key: str, version_id: str) -> crypto.WrappedKey | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._override_key(key, version_id))[
                "Body"
            ].read()
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey"):
                return None
            raise
        return crypto.WrappedKey.from_json(json.loads(body))

    def _stored_header(self, info: ObjectInfo) -> tuple[crypto.Header, crypto.WrappedKey | None]:
        r = self.s3.get_object(
            Bucket=self.bucket,
            Key=info.key,
            VersionId=info.version_id,
            Range=f"bytes=0-{crypto.HEADER_SIZE - 1}",
        )
        header = crypto.read_header(r["Body"].read(), f"{info.key} version {info.version_id}")
        return header, self._read_override(info.key, info.version_id)

    def _read_stored(self, info: ObjectInfo, offset: int, length: int) -> bytes:
        r = self.s3.get_object(
            Bucket=self.bucket,
            Key=info.key,
            VersionId=info.version_id,
            Range=f"bytes={offset}-{offset + length - 1}",
        )
        data = r["Body"].read()
        if len(data) != length:
            raise IntegrityError(
                f"{info.key} version {info.version_id}: stored object is shorter than recorded"
            )
        return data

    def _write_key_override(self, info: ObjectInfo, key: crypto.WrappedKey) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._override_key(info.key, info.version_id),
            Body=json.dumps(key.to_json()).encode(),
            ContentType="application/json",
        )
