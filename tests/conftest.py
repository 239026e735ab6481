"""Shared fixtures: deployments on both store profiles, a throwaway PostgreSQL, a real S3 server.

Profiles:
- ``local``: SQLite catalog + local-directory objects (the embedded defaults);
- ``pg_s3``: PostgreSQL catalog (a database created for the session, dropped after)
  + S3 objects on moto's standalone server started on loopback.

``CI_REQUIRE_SERVICES=1`` (set by scripts/test.sh) turns a missing PostgreSQL into a
failure instead of a skip.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hdhub.catalog.migrate import upgrade
from hdhub.catalog.scratch import scratch_database
from hdhub.config.deployment import init_deployment
from hdhub.hub import Hub

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PROFILES = ["local", "pg_s3"]


def _require_services() -> bool:
    return os.environ.get("CI_REQUIRE_SERVICES") == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """Admin URL of the machine's PostgreSQL; skip (or fail under CI) when absent."""
    import sqlalchemy as sa

    try:
        eng = sa.create_engine(PG_ADMIN_URL)
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
    except Exception as exc:
        if _require_services():
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required: {exc}")
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with scratch_database("hdhub_test") as url:
        yield url


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3 server as a real HTTP endpoint on loopback."""
    port = _free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto S3 server did not start")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def s3_bucket_url(endpoint: str) -> str:
    """A new bucket name (the backend creates it with versioning and object lock)."""
    return f"s3://hdhub-{secrets.token_hex(4)}?endpoint_url={endpoint}&region=eu-west-3"


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def home(tmp_path: Path, profile: str, request: pytest.FixtureRequest) -> Path:
    """An initialised, migrated deployment directory for the current profile."""
    urls: dict[str, str] = {}
    if profile == "pg_s3":
        urls["catalog_url"] = request.getfixturevalue("pg_database")
        urls["objects_url"] = s3_bucket_url(request.getfixturevalue("s3_server"))
    root = tmp_path / "deployment"
    init_deployment(root, **urls)
    hub = Hub.open(root)
    upgrade(hub.catalog)
    hub.close()
    return root


@pytest.fixture
def hub(home: Path) -> Iterator[Hub]:
    h = Hub.open(home)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def local_hub(tmp_path: Path) -> Iterator[Hub]:
    """A deployment on the embedded defaults only (for tests that need no second profile)."""
    root = tmp_path / "local"
    init_deployment(root)
    h = Hub.open(root)
    upgrade(h.catalog)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"sample data not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


def hdhub_ok(*args: str) -> str:
    """Run the CLI in-process; it must succeed."""
    from typer.testing import CliRunner

    from hdhub.cli.main import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def build_population(root: Path, patients: int, seed: int) -> Path:
    """A deployment holding `hdhub synth` (3 sites) loaded as a data team would load it."""
    home = root / "home"
    hdhub_ok("init", str(home))
    hdhub_ok("--home", str(home), "db", "upgrade")
    hdhub_ok("--home", str(home), "vocab", "load", "--builtin")
    hdhub_ok("synth", str(root / "synth"), "--patients", str(patients), "--seed", str(seed))
    for site in sorted(p.name for p in (root / "synth").iterdir()):
        hdhub_ok("--home", str(home), "ingest", "fhir", str(root / "synth" / site), "--site", site)
    return home


@contextmanager
def live_server(hub: Hub) -> Iterator[str]:
    """The deployment's app served by uvicorn on a loopback port (for real HTTP clients)."""
    import threading

    import uvicorn

    from hdhub.api.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(hub), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)
