"""Create a deployment directory: config file, secrets, data folders (``hdhub init``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hdhub.config.keys import generate_secrets
from hdhub.config.settings import CONFIG_FILE, DEFAULT_CONFIG, Settings, load_settings
from hdhub.errors import ConfigError


def _set_top_level(text: str, key: str, value: str) -> str:
    line = f'{key} = "{value}"'
    pattern = re.compile(rf"^{re.escape(key)} = .*$", re.MULTILINE)
    if not pattern.search(text):
        raise ConfigError(f"cannot set {key}: not a top-level setting")
    return pattern.sub(lambda _m: line, text, count=1)


def init_deployment(home: Path, **urls: Any) -> Settings:
    """Write ``hdhub.toml`` and generate the secrets in ``home``.

    ``urls`` may set ``catalog_url``, ``warehouse_url`` and ``objects_url``.
    Refuses to touch a directory that already holds a deployment.
    """
    home = home.expanduser().resolve()
    if (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} already holds a deployment ({CONFIG_FILE}); refusing to overwrite it")
    home.mkdir(parents=True, exist_ok=True)
    text = DEFAULT_CONFIG
    for key, value in urls.items():
        if value is not None:
            text = _set_top_level(text, key, str(value))
    (home / CONFIG_FILE).write_text(text, encoding="utf-8")
    settings = load_settings(home, environ={})
    generate_secrets(settings.secrets_path)
    return settings
