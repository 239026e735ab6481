"""A server's start-up loads what DuckDB's client would load on a first request."""

from __future__ import annotations

import subprocess
import sys


def _python(*lines: str) -> str:
    """What a new interpreter running ``lines`` prints."""
    out = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_after_start_up_a_parameterised_duckdb_query_loads_no_module() -> None:
    assert (
        _python(
            "import sys, duckdb",
            "from hdhub.heap import load_lazy_modules",
            "load_lazy_modules()",
            "before = set(sys.modules)",
            "con = duckdb.connect()",
            "con.execute('SELECT ? + 1', [41]).fetchall()",
            "con.execute('SELECT unnest(?)', [[1, 2]]).fetchall()",
            "print(sorted(set(sys.modules) - before))",
        )
        == "[]"
    )


def test_without_it_the_first_parameterised_query_loads_pandas() -> None:
    """What the start-up spares the first request (if DuckDB stops doing this, drop it)."""
    assert (
        _python(
            "import sys, duckdb",
            "con = duckdb.connect()",
            "loaded = 'pandas' in sys.modules",
            "con.execute('SELECT ?', [1]).fetchall()",
            "print(loaded, 'pandas' in sys.modules)",
        )
        == "False True"
    )
