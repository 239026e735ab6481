"""Throwaway PostgreSQL databases, for the test suite and the benchmarks.

The machine's PostgreSQL (``127.0.0.1:5432``, user ``postgres``, trust authentication on a
development machine) gets a database with a random name, which is dropped on the way out,
even if connections to it are still open.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@contextmanager
def scratch_database(prefix: str = "hdhub_scratch", server: str = SERVER) -> Iterator[str]:
    """A new, empty database on ``server`` (a SQLAlchemy URL without a database name),
    yielded as its SQLAlchemy URL and dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = server.replace("postgresql+psycopg://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
