"""Encrypted, versioned, lockable object storage: a local directory or any S3 API."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from hdhub.errors import ConfigError
from hdhub.objects.base import ObjectInfo, ObjectReader, ObjectStore, Retention

__all__ = ["ObjectInfo", "ObjectReader", "ObjectStore", "Retention", "open_store"]


def open_store(
    url: str, keyring: dict[str, bytes], *, multipart_threshold: int = 16 * 1024 * 1024
) -> ObjectStore:
    """``file:///abs/dir`` or ``s3://bucket?endpoint_url=…&region=…``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from hdhub.objects.file import FileStore

        return FileStore(Path(parts.path), keyring)
    if parts.scheme == "s3":
        from hdhub.objects.s3 import S3Store

        return S3Store.from_url(url, keyring, multipart_threshold=multipart_threshold)
    raise ConfigError(f"unsupported objects URL {url!r}: use file:… or s3://bucket?…")
