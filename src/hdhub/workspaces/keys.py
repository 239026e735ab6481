"""Each project's own encryption key, and the object store that uses it.

A project's files are encrypted under a key of its own: a random 256-bit key-encryption key,
kept in the catalog wrapped by the deployment's KEK. The deployment's ordinary store cannot
read them, and destroying the wrapped key when the workspace is deleted makes every copy of
its files (backups included) unreadable — crypto-erasure.
"""

from __future__ import annotations

import os

import orjson
from sqlalchemy.orm import Session

from hdhub.catalog.models import Project
from hdhub.config.keys import key_id
from hdhub.errors import Conflict
from hdhub.hub import Hub
from hdhub.objects import ObjectStore, open_store
from hdhub.objects.crypto import WrappedKey, unwrap_key, wrap_key

PREFIX = "projects"


def project_prefix(slug: str) -> str:
    return f"{PREFIX}/{slug}/"


def project_key(hub: Hub, s: Session, project: Project, *, create: bool = False) -> bytes:
    """The project's key; ``create`` makes it on first use (provisioning)."""
    if project.workspace_key is None:
        if not create:
            raise Conflict(f"project {project.slug!r} has no workspace")
        if project.purged_at is not None:
            raise Conflict(f"the workspace of project {project.slug!r} was deleted")
        key = os.urandom(32)
        project.workspace_key = orjson.dumps(wrap_key(key, hub.keys.keyring).to_json()).decode()
        s.flush()
        return key
    wrapped = WrappedKey.from_json(orjson.loads(project.workspace_key))
    return unwrap_key(wrapped, hub.keys.keyring, f"the key of project {project.slug!r}")


def rewrap_project_keys(s: Session, keyring: dict[str, bytes]) -> int:
    """Re-wrap every project key under the current KEK (after a rotation); files untouched."""
    done = 0
    for project in s.query(Project).filter(Project.workspace_key.is_not(None)):
        wrapped = WrappedKey.from_json(orjson.loads(project.workspace_key))  # type: ignore[arg-type]
        if wrapped.kek_id == next(iter(keyring)):
            continue
        key = unwrap_key(wrapped, keyring, f"the key of project {project.slug!r}")
        project.workspace_key = orjson.dumps(wrap_key(key, keyring).to_json()).decode()
        done += 1
    return done


def project_store(hub: Hub, key: bytes) -> ObjectStore:
    """The deployment's object store, reading and writing with the project's key only."""
    return open_store(
        hub.settings.objects_url_resolved,
        {key_id(key): key},
        multipart_threshold=hub.settings.objects.multipart_threshold_mb * 1024 * 1024,
    )
