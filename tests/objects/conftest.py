from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdhub.config.keys import key_id
from hdhub.objects import ObjectStore, open_store


@pytest.fixture
def keyring() -> dict[str, bytes]:
    kek = os.urandom(32)
    return {key_id(kek): kek}


@pytest.fixture(params=["file", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path}/objects"
    endpoint = request.getfixturevalue("s3_server")
    return f"s3://hdhub-{secrets.token_hex(4)}?endpoint_url={endpoint}&region=eu-west-3"


@pytest.fixture
def store(store_url: str, keyring: dict[str, bytes]) -> Iterator[ObjectStore]:
    # A small multipart threshold so that multipart uploads are exercised with small data.
    yield open_store(store_url, keyring, multipart_threshold=5 * 1024 * 1024)
