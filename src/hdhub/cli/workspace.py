"""`hdhub workspace …`: a project member's side — JupyterLab on the extract, the airlock.

These commands are clients of the API: they hold a project token (``--token`` or
``HDHUB_TOKEN``) and reach the server at ``--url`` (or ``HDHUB_URL``), never the deployment's
files or secrets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson
import typer

from hdhub.cli.context import console, new_app
from hdhub.errors import ConfigError

app = new_app("A project member's workspace: JupyterLab on the extract, release requests.")

TOKEN = typer.Option(None, "--token", envvar="HDHUB_TOKEN", help="A project token (hdhub project token).")
URL = typer.Option(
    None, "--url", envvar="HDHUB_URL", help="The hdhub server (default http://127.0.0.1:8000)."
)

STARTER = """{
 "cells": [{"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [],
   "source": ["import hdhub.workspace as ws\\n", "w = ws.connect()\\n", "w.tables"]}],
 "metadata": {}, "nbformat": 4, "nbformat_minor": 5
}
"""


@app.command("release-request")
def release_request(
    project: str = typer.Argument(..., help="The project's slug."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="The file to release."),
    token: str | None = TOKEN,
    url: str | None = URL,
) -> None:
    """Ask to release FILE from PROJECT's workspace; prints the automatic checks."""
    from hdhub.workspaces.client import release_request as send

    result = send(file, project, token, url=url)
    console.print(
        f"release request {result['id']}: {result['name']} ({result['size']:,} bytes, "
        f"sha256 {result['sha256']}) — checks: {result['check_status']}; "
        "two output checkers other than you must approve it",
        highlight=False,
    )
    for check in result["checks"]:
        console.print(f"  {check['rule']}: {check['outcome']} — {check['detail']}", highlight=False)


@app.command()
def jupyter(
    project: str = typer.Argument(..., help="The project's slug."),
    token: str | None = TOKEN,
    url: str | None = URL,
    port: int = typer.Option(8888, min=1024, max=65535, help="Loopback port of JupyterLab."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where notebooks are kept."),
) -> None:
    """Start JupyterLab on 127.0.0.1 with the project's extract one `ws.connect()` away."""
    from hdhub.workspaces.client import _settings

    project, token, url = _settings(project, token, url)
    lab = shutil.which("jupyter")
    if lab is None:
        raise ConfigError("JupyterLab is not installed: pip install 'hdhub[workspace]'")
    directory.mkdir(parents=True, exist_ok=True)
    starter = directory / f"{project}.ipynb"
    if not starter.exists():
        starter.write_text(STARTER, encoding="utf-8")
    orjson.loads(STARTER)  # the starter notebook stays valid JSON
    env = {**os.environ, "HDHUB_PROJECT": project, "HDHUB_TOKEN": token, "HDHUB_URL": url}
    console.print(f"JupyterLab for project {project} on http://127.0.0.1:{port}", highlight=False)
    subprocess.run(  # the lab only listens on loopback; its own token guards it
        [lab, "lab", "--ip=127.0.0.1", f"--port={port}", "--no-browser", f"--notebook-dir={directory}"],
        env=env, check=False,
    )  # fmt: skip
