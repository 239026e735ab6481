from __future__ import annotations

import os
from pathlib import Path

import pytest

from hdhub.config.deployment import init_deployment
from hdhub.config.keys import AUDIT_FILE, KEK_FILE, load_keys, rotate_kek
from hdhub.config.settings import load_settings
from hdhub.errors import ConfigError
from hdhub.hub import Hub


def test_init_writes_config_and_0600_secrets(tmp_path: Path) -> None:
    settings = init_deployment(tmp_path / "d")
    assert (settings.home / "hdhub.toml").is_file()
    files = sorted(p.name for p in settings.secrets_path.iterdir())
    assert files == ["audit-signing.key", "objects-kek.key", "pseudonym-hmac.key"]
    for p in settings.secrets_path.iterdir():
        assert p.stat().st_mode & 0o777 == 0o600
    assert settings.secrets_path.stat().st_mode & 0o777 == 0o700
    keys = load_keys(settings.secrets_path)
    assert len(keys.kek) == 32 and keys.kek != keys.pseudonym


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    init_deployment(tmp_path / "d")
    with pytest.raises(ConfigError, match="already holds a deployment"):
        init_deployment(tmp_path / "d")


def test_defaults_resolve_relative_to_home(tmp_path: Path) -> None:
    settings = init_deployment(tmp_path / "d")
    home = settings.home
    assert settings.catalog_url_resolved == f"sqlite:///{home}/catalog.db"
    assert settings.warehouse_url_resolved == f"duckdb:///{home}/warehouse.duckdb"
    assert settings.objects_url_resolved == f"file://{home}/objects"


def test_environment_overrides_file(tmp_path: Path) -> None:
    home = init_deployment(tmp_path / "d").home
    env = {
        "HDHUB_SERVER_PORT": "9001",
        "HDHUB_CATALOG_URL": "sqlite:////tmp/x.db",
        "HDHUB_OIDC_ROLE_MAP": '{ idp-admin = "admin" }',
    }
    s = load_settings(home, environ=env)
    assert s.server.port == 9001
    assert s.catalog_url_resolved == "sqlite:////tmp/x.db"
    assert s.oidc.role_map == {"idp-admin": "admin"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HDHUB_NO_SUCH_THING": "1"}, "unknown setting in environment variable HDHUB_NO_SUCH_THING"),
        ({"HDHUB_SERVER_PORT": "not-a-port"}, "server.port"),
        ({"HDHUB_CATALOG_URL": "mysql://x"}, "catalog_url"),
        ({"HDHUB_OBJECTS_URL": "ftp://x"}, "objects_url"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, env: dict[str, str], message: str) -> None:
    home = init_deployment(tmp_path / "d").home
    with pytest.raises(ConfigError, match=message):
        load_settings(home, environ=env)


def test_missing_config_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hdhub init"):
        load_settings(tmp_path)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    home = init_deployment(tmp_path / "d").home
    with (home / "hdhub.toml").open("a") as fh:
        fh.write("\ncatlog_url = 'typo'\n")
    with pytest.raises(ConfigError, match="catlog_url"):
        load_settings(home, environ={})


def test_world_readable_key_stops_startup(tmp_path: Path) -> None:
    settings = init_deployment(tmp_path / "d")
    os.chmod(settings.secrets_path / KEK_FILE, 0o644)
    with pytest.raises(ConfigError, match=r"readable by group or others \(mode 0644\).*chmod 600"):
        Hub.open(settings.home)


def test_missing_key_stops_startup(tmp_path: Path) -> None:
    settings = init_deployment(tmp_path / "d")
    (settings.secrets_path / AUDIT_FILE).unlink()
    with pytest.raises(ConfigError, match=r"audit-signing\.key is missing"):
        Hub.open(settings.home)


def test_malformed_key_stops_startup(tmp_path: Path) -> None:
    settings = init_deployment(tmp_path / "d")
    (settings.secrets_path / KEK_FILE).write_text("not base64 at all!!\n")
    with pytest.raises(ConfigError, match="not a base64 key"):
        Hub.open(settings.home)


def test_rotate_kek_keeps_old_key_in_keyring(tmp_path: Path) -> None:
    settings = init_deployment(tmp_path / "d")
    old, new = rotate_kek(settings.secrets_path)
    keys = load_keys(settings.secrets_path)
    assert keys.kek == new
    assert list(keys.keyring.values()) == [new, old]


def test_malformed_toml_is_one_clear_error(tmp_path: Path) -> None:
    home = init_deployment(tmp_path / "d").home
    (home / "hdhub.toml").write_text('catalog_url = "sqlite:///x.db\n[server\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hdhub.toml: "):
        load_settings(home, environ={})
