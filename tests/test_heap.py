"""A server's start-up loads what DuckDB's client would load on a first request."""

from __future__ import annotations

import subprocess
import sys


def test_after_start_up_a_parameterised_duckdb_query_loads_no_module() -> None:
    probe = (
        "import sys, duckdb\n"
        "from hdhub.heap import load_lazy_modules\n"
        "load_lazy_modules()\n"
        "before = set(sys.modules)\n"
        "con = duckdb.connect()\n"
        "con.execute('SELECT ? + 1', [41]).fetchall()\n"
        "con.execute('SELECT unnest(?)', [[1, 2]]).fetchall()\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_it_the_first_parameterised_query_loads_pandas() -> None:
    """What the start-up spares the first request (if DuckDB stops doing this, drop it)."""
    probe = (
        "import sys, duckdb\n"
        "con = duckdb.connect()\n"
        "loaded = 'pandas' in sys.modules\n"
        "con.execute('SELECT ?', [1]).fetchall()\n"
        "print(loaded, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False True"
