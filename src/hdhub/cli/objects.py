"""`hdhub objects …`: the encrypted object store."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table

from hdhub.cli.context import console, new_app, state

app = new_app("Encrypted, versioned object storage with retention and lifecycle.")
lifecycle_app = new_app("Lifecycle rules ([[objects.lifecycle]] in hdhub.toml).")
app.add_typer(lifecycle_app, name="lifecycle")


class Mode(StrEnum):
    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command()
def put(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Object key, e.g. reports/2026/cr-1.pdf"),
    file: Path = typer.Argument(..., help="File to store ('-' for stdin).", allow_dash=True),
    content_type: str = typer.Option("application/octet-stream", help="Media type."),
    retain_days: float | None = typer.Option(None, help="Object lock for N days."),
    mode: Mode = typer.Option(Mode.GOVERNANCE, help="Retention mode."),
    legal_hold: bool = typer.Option(False, "--legal-hold", help="Place a legal hold."),
) -> None:
    """Store a file, encrypted, as a new version of KEY."""
    from hdhub.objects import Retention

    st = state(ctx)
    decision = st.authorize("objects:write")
    retention = (
        Retention(mode.value, datetime.now(UTC) + timedelta(days=retain_days)) if retain_days else None
    )
    source = sys.stdin.buffer if str(file) == "-" else file.open("rb")
    with source:
        info = st.hub.objects.put(
            key, source, content_type=content_type, retention=retention, legal_hold=legal_hold
        )
    st.audit(
        "objects.put",
        decision,
        resource_type="object",
        resource_id=f"{key}@{info.version_id}",
        detail={"size": info.size, "retention": mode.value if retention else None},
    )
    console.print(f"stored {key} version {info.version_id} ({_size(info.size)})", highlight=False)


@app.command()
def get(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Object key."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
    version_id: str | None = typer.Option(None, help="A specific version (default: latest)."),
) -> None:
    """Write an object's plaintext to a file or stdout (checksum and authentication verified)."""
    st = state(ctx)
    decision = st.authorize("objects:read")
    reader = st.hub.objects.get(key, version_id)
    if output is None:
        n = reader.readinto_file(sys.stdout.buffer)
    else:
        tmp = output.with_name(output.name + ".part")
        with tmp.open("wb") as fh:
            n = reader.readinto_file(fh)
        tmp.replace(output)  # never leave a half-written file under the final name
    st.audit(
        "objects.get",
        decision,
        resource_type="object",
        resource_id=f"{key}@{reader.info.version_id}",
        detail={"size": n},
    )


@app.command("ls")
def ls(
    ctx: typer.Context,
    prefix: str = typer.Argument("", help="Key prefix."),
    versions: bool = typer.Option(False, "--versions", help="Every version and delete marker."),
) -> None:
    """List objects (latest versions) or every version."""
    st = state(ctx)
    decision = st.authorize("objects:read")
    store = st.hub.objects
    table = Table("key", "version", "size", "class", "created", "state")
    rows = store.versions(prefix) if versions else list(store.list(prefix))
    for i in rows:
        status = "delete marker" if i.delete_marker else ("latest" if i.is_latest else "")
        table.add_row(
            i.key,
            i.version_id,
            "" if i.delete_marker else _size(i.size),
            i.storage_class,
            f"{i.created:%Y-%m-%d %H:%M}",
            status,
        )
    st.audit("objects.list", decision, resource_type="object", resource_id=prefix or "*")
    if console.is_terminal:
        console.print(table)
    else:  # piped: one tab-separated line per version, for scripts
        for row in zip(*(list(c.cells) for c in table.columns), strict=True):
            typer.echo("\t".join(str(cell) for cell in row))


@app.command("rm")
def rm(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Object key."),
    version_id: str | None = typer.Option(None, help="Remove this version for good (refused if locked)."),
) -> None:
    """Delete: a delete marker, or with --version-id the version itself (never a locked one)."""
    st = state(ctx)
    decision = st.authorize("objects:delete")
    try:
        info = st.hub.objects.delete(key, version_id)
    except Exception:
        st.audit(
            "objects.delete",
            decision,
            outcome="failure",
            resource_type="object",
            resource_id=f"{key}@{version_id}",
        )
        raise
    st.audit("objects.delete", decision, resource_type="object", resource_id=f"{key}@{info.version_id}")
    what = "delete marker" if version_id is None else "version"
    console.print(f"{key}: {what} {info.version_id} {'added' if version_id is None else 'removed'}")


@app.command("rotate-key")
def rotate_key(ctx: typer.Context) -> None:
    """Make a new key-encryption key and re-wrap every data key (objects are not rewritten)."""
    from sqlalchemy.orm import Session

    from hdhub.config.keys import key_id, load_keys, retire_kek, rotate_kek
    from hdhub.privacy.identity_store import IdentityStore
    from hdhub.workspaces.keys import PREFIX, rewrap_project_keys

    st = state(ctx)
    decision = st.authorize("objects:rotate-key")
    secrets_dir = st.hub.settings.secrets_path
    old, _new = rotate_kek(secrets_dir)
    store = st.hub.objects
    keyring = load_keys(secrets_dir).keyring
    # Workspace files are under their projects' own keys: the projects' keys are re-wrapped instead.
    count = store.rewrap(keyring, skip_prefix=f"{PREFIX}/")
    count += IdentityStore(st.hub.catalog, load_keys(secrets_dir)).rewrap()  # patients' identities too
    with Session(st.hub.catalog) as s, s.begin():
        count += rewrap_project_keys(s, keyring)
    retire_kek(secrets_dir, key_id(old))  # only once every data key is re-wrapped
    st.audit(
        "objects.rotate-key",
        decision,
        resource_type="kek",
        resource_id=key_id(old),
        detail={"rewrapped": count},
    )
    console.print(
        f"new key-encryption key in use; {count} data keys re-wrapped; old key {key_id(old)} retired"
    )


@lifecycle_app.command("run")
def lifecycle_run(
    ctx: typer.Context, dry_run: bool = typer.Option(False, "--dry-run", help="Report only.")
) -> None:
    """Apply the lifecycle rules now: transitions and expirations (locked versions are skipped)."""
    from hdhub.objects.lifecycle import apply_lifecycle

    st = state(ctx)
    decision = st.authorize("objects:lifecycle")
    rules = st.hub.settings.objects.lifecycle
    report = apply_lifecycle(st.hub.objects, rules, dry_run=dry_run)
    st.audit(
        "objects.lifecycle",
        decision,
        resource_type="object",
        detail={
            "transitioned": len(report.transitioned),
            "expired": len(report.expired),
            "skipped_locked": len(report.skipped_locked),
            "dry_run": dry_run,
        },
    )
    verb = "would be" if dry_run else "were"
    console.print(
        f"{len(rules)} rules: {len(report.transitioned)} versions {verb} transitioned, "
        f"{len(report.expired)} {verb} expired, {len(report.skipped_locked)} skipped (locked)"
    )
    for key, version, why in report.skipped_locked:
        console.print(f"  kept {key} {version}: {why}", highlight=False)
