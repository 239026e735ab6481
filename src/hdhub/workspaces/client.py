"""The researcher's side of a workspace: ``hdhub.workspace.connect(project, token)``.

A workspace client holds only a project token. ``connect`` fetches the current extract's
Parquet files over the API (decrypted by the server for that token alone) into a private
directory (mode 0700, removed by :meth:`Workspace.close`), checks each file's SHA-256
against the manifest, and opens them in an in-memory DuckDB through Ibis::

    import hdhub.workspace as ws
    w = ws.connect("diabete-hba1c", token)        # HDHUB_URL, else http://127.0.0.1:8000
    persons = w.table("person")                    # an Ibis table
    df = w.to_pandas("measurement")                # or w.to_polars(...)
    w.release_request("results/table1.csv")        # the airlock

Inside ``hdhub workspace jupyter P`` the project, token and URL come from the environment
(``HDHUB_PROJECT``, ``HDHUB_TOKEN``, ``HDHUB_URL``), so ``connect()`` needs no argument.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from hdhub.errors import ConfigError, HdhubError, ValidationError

DEFAULT_URL = "http://127.0.0.1:8000"


class WorkspaceError(HdhubError):
    """The server refused or failed a workspace request."""

    code = "workspace_error"
    status = 502
    exit_code = 69  # EX_UNAVAILABLE


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        message = response.json()["error"]["message"]
    except Exception:
        message = response.text[:200]
    raise WorkspaceError(f"{response.request.method} {response.request.url.path}: "
                         f"{response.status_code} {message}")  # fmt: skip


class Workspace:
    def __init__(self, project: str, token: str, url: str, directory: Path, manifest: dict[str, Any]) -> None:
        import ibis

        self.project = project
        self.url = url
        self.directory = directory
        self.manifest = manifest
        self._token = token
        self.con = ibis.duckdb.connect()
        for name, entry in manifest["tables"].items():
            self.con.read_parquet(directory / entry["file"], table_name=name)

    @property
    def tables(self) -> list[str]:
        return sorted(self.manifest["tables"])

    def table(self, name: str) -> Any:
        return self.con.table(name)

    def to_pandas(self, name: str) -> Any:
        return self.table(name).to_pandas()

    def to_polars(self, name: str) -> Any:
        return self.table(name).to_polars()

    def sql(self, query: str) -> Any:
        return self.con.sql(query)

    def release_request(self, path: str | Path) -> dict[str, Any]:
        """Ask to release a file: the airlock checks it and two output checkers decide."""
        return release_request(path, self.project, self._token, url=self.url)

    def close(self) -> None:
        self.con.disconnect()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settings(project: str | None, token: str | None, url: str | None) -> tuple[str, str, str]:
    project = project or os.environ.get("HDHUB_PROJECT")
    token = token or os.environ.get("HDHUB_TOKEN")
    url = (url or os.environ.get("HDHUB_URL") or DEFAULT_URL).rstrip("/")
    if not project:
        raise ConfigError("name the project (or set HDHUB_PROJECT)")
    if not token:
        raise ConfigError("give a project token (or set HDHUB_TOKEN): `hdhub project token P --user U`")
    return project, token, url


def connect(project: str | None = None, token: str | None = None, *, url: str | None = None,
            directory: str | Path | None = None) -> Workspace:  # fmt: skip
    """Fetch the project's extract and open it; see the module docstring."""
    project, token, url = _settings(project, token, url)
    target = Path(directory) if directory else Path(tempfile.mkdtemp(prefix=f"hdhub-{project}-"))
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target, 0o700)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as http:
        response = http.get(f"/api/v1/workspaces/{project}")
        _raise_for(response)
        manifest = response.json()
        entries = list(manifest["tables"].values())
        for entry in entries:
            name = entry["file"]
            if "/" in name or name.startswith("."):
                raise ValidationError(f"the manifest names an unsafe file {name!r}")
            digest = hashlib.sha256()
            with http.stream("GET", f"/api/v1/workspaces/{project}/files/{name}") as stream:
                _raise_for_stream(stream)
                with (target / name).open("wb") as fh:
                    for chunk in stream.iter_bytes():
                        digest.update(chunk)
                        fh.write(chunk)
            if digest.hexdigest() != entry["sha256"]:
                raise WorkspaceError(f"{name}: its SHA-256 does not match the manifest")
    return Workspace(project, token, url, target, manifest)


def release_request(path: str | Path, project: str | None = None, token: str | None = None, *,
                    url: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Send a file to the project's airlock; returns the request with its automatic checks."""
    project, token, url = _settings(project, token, url)
    path = Path(path)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as http:
        response = http.post(f"/api/v1/workspaces/{project}/releases", params={"name": path.name},
                             content=path.read_bytes())  # fmt: skip
    _raise_for(response)
    return response.json()


def _raise_for_stream(stream: httpx.Response) -> None:
    if not stream.is_success:
        stream.read()
        _raise_for(stream)
