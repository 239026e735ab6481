from __future__ import annotations

import sqlalchemy as sa

from hdhub.catalog.base import Base
from hdhub.catalog.migrate import current_revision, head_revision, upgrade
from hdhub.hub import Hub


def test_upgrade_reaches_head_and_matches_models(hub: Hub) -> None:
    """Runs on SQLite and PostgreSQL: the migration creates exactly the models' tables and columns."""
    assert current_revision(hub.catalog) == head_revision()
    insp = sa.inspect(hub.catalog)
    for table in Base.metadata.sorted_tables:
        cols = {c["name"] for c in insp.get_columns(table.name)}
        assert cols == set(table.columns.keys()), table.name


def test_upgrade_is_idempotent(hub: Hub) -> None:
    assert upgrade(hub.catalog) == head_revision()


def test_no_pending_model_changes(hub: Hub) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with hub.catalog.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models changed without a migration: {diff}"
