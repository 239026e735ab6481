"""``Hub``: one open deployment — settings, secrets and the three stores.

Everything is built from a ``Settings`` instance passed in (no import-time singletons);
stores open lazily, so a command only touches what it uses.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hdhub.config import Keys, Settings, load_keys, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from hdhub.audit.log import AuditLog
    from hdhub.imaging.workers import IngestWorkers
    from hdhub.objects.base import ObjectStore
    from hdhub.privacy.identity_store import IdentityStore


class Hub:
    def __init__(self, settings: Settings, keys: Keys | None = None) -> None:
        self.settings = settings
        # Secrets are checked at start-up: a missing or world-readable key stops here.
        self.keys = keys if keys is not None else load_keys(settings.secrets_path)

    @classmethod
    def open(cls, home: Path | str | None = None) -> Hub:
        return cls(load_settings(home))

    @cached_property
    def catalog(self) -> Engine:
        from hdhub.catalog.db import create_catalog_engine

        return create_catalog_engine(self.settings.catalog_url_resolved)

    @cached_property
    def objects(self) -> ObjectStore:
        from hdhub.objects import open_store

        return open_store(
            self.settings.objects_url_resolved,
            self.keys.keyring,
            multipart_threshold=self.settings.objects.multipart_threshold_mb * 1024 * 1024,
        )

    @cached_property
    def warehouse(self) -> Any:
        """An Ibis backend connected to the OMOP warehouse."""
        from hdhub.warehouse.connection import connect

        return connect(self.settings.warehouse_url_resolved)

    @cached_property
    def audit(self) -> AuditLog:
        from hdhub.audit.log import AuditLog

        return AuditLog(
            self.catalog,
            self.keys.audit_signing,
            checkpoint_every=self.settings.audit.checkpoint_every,
        )

    @cached_property
    def imaging_workers(self) -> IngestWorkers:
        """Processes for DICOM ingest, started at their first large batch."""
        from hdhub.imaging.workers import IngestWorkers

        return IngestWorkers(self.settings, self.settings.imaging.ingest_processes or None)

    @cached_property
    def identities(self) -> IdentityStore:
        """Patients' identifying data, encrypted in the catalog (see privacy.identity_store)."""
        from hdhub.privacy.identity_store import IdentityStore

        return IdentityStore(self.catalog, self.keys)

    def close_warehouse(self) -> None:
        """Let go of the read-write warehouse connection, if open: DuckDB refuses this process
        the read-only connections that counts and provisioning open while it is held."""
        if "warehouse" in self.__dict__:
            self.__dict__.pop("warehouse").disconnect()

    def close(self) -> None:
        if "imaging_workers" in self.__dict__:
            self.imaging_workers.close()
        if "audit" in self.__dict__:
            self.audit.close()
        if "catalog" in self.__dict__:
            self.catalog.dispose()
        self.close_warehouse()
