"""`hdhub audit` commands."""

from __future__ import annotations

from hdhub.cli.context import new_app

app = new_app("audit commands.")
