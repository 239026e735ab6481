"""Alembic environment: the engine is passed in by hdhub.catalog.migrate."""

from alembic import context

from hdhub.catalog import models  # noqa: F401  (registers every table on Base.metadata)
from hdhub.catalog.base import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
