"""SQL text helpers shared by the loaders."""

from __future__ import annotations


def sql_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"
