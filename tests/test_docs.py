"""Every setting is documented (docs/configuration.md), as datasette does for its settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from hdhub.config.settings import Settings

DOC = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
        elif name != "home":
            out.append(prefix + name)
    return out


def test_every_setting_is_documented() -> None:
    missing = [k for k in _keys(Settings) if f"`{k}`" not in DOC]
    assert missing == [], f"undocumented settings: {missing}"
