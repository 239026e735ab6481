"""The catalog: SQLAlchemy 2 models and Alembic migrations, on SQLite or PostgreSQL."""

from hdhub.catalog.db import create_catalog_engine
from hdhub.catalog.migrate import current_revision, upgrade

__all__ = ["create_catalog_engine", "current_revision", "upgrade"]
