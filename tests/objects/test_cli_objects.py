from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hdhub.cli.main import app
from hdhub.hub import Hub

runner = CliRunner()


def hd(home: Path, *args: str) -> object:
    return runner.invoke(app, ["--home", str(home), *args])


def test_put_get_ls_rm_and_audit(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "cr.txt"
    src.write_bytes(b"compte rendu " * 1000)
    r = hd(home, "objects", "put", "reports/cr.txt", str(src), "--retain-days", "30", "--mode", "COMPLIANCE")
    assert r.exit_code == 0, r.output
    out = tmp_path / "back.txt"
    assert hd(home, "objects", "get", "reports/cr.txt", "-o", str(out)).exit_code == 0
    assert out.read_bytes() == src.read_bytes()
    assert "reports/cr.txt" in hd(home, "objects", "ls").output
    hub = Hub.open(home)
    version = (
        next(iter(hub.objects.list())).version_id or hub.objects.versions("reports/cr.txt")[0].version_id
    )
    r = hd(home, "objects", "rm", "reports/cr.txt", "--version-id", version)
    assert r.exit_code == 73 and "COMPLIANCE retention" in r.output and "Traceback" not in r.output
    r = hd(home, "objects", "rm", "reports/cr.txt")
    assert r.exit_code == 0 and "delete marker" in r.output
    assert "delete marker" in hd(home, "objects", "ls", "--versions").output
    actions = [(e.action, e.outcome) for e in hub.audit.search(limit=20)]
    hub.close()
    assert ("objects.delete", "failure") in actions and ("objects.put", "success") in actions


def test_rotate_key_keeps_objects_readable(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 5000)
    hd(home, "objects", "put", "a", str(src))
    r = hd(home, "objects", "rotate-key")
    assert r.exit_code == 0 and "1 data keys re-wrapped" in r.output
    assert not list((home / "secrets" / "objects-kek.retired").glob("*.key"))  # old KEK forgotten
    out = tmp_path / "out"
    assert hd(home, "objects", "get", "a", "-o", str(out)).exit_code == 0
    assert out.read_bytes() == src.read_bytes()


def test_lifecycle_run_uses_configured_rules(home: Path, tmp_path: Path) -> None:
    with (home / "hdhub.toml").open("a") as fh:
        fh.write(
            '\n[[objects.lifecycle]]\nprefix = "videos/"\ntransition_after_days = 0\nstorage_class = "COLD"\n'
        )
    src = tmp_path / "v.mp4"
    src.write_bytes(b"v" * 100)
    hd(home, "objects", "put", "videos/v.mp4", str(src))
    r = hd(home, "objects", "lifecycle", "run")
    assert r.exit_code == 0 and "1 versions were transitioned" in r.output
    assert "COLD" in hd(home, "objects", "ls").output


def test_missing_object_and_hostile_key(home: Path, tmp_path: Path) -> None:
    assert hd(home, "objects", "get", "nope").exit_code == 66
    src = tmp_path / "f"
    src.write_bytes(b"x")
    r = hd(home, "objects", "put", "../../etc/passwd", str(src))
    assert r.exit_code == 65 and "'..'" in r.output
