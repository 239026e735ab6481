"""IssuerOfPatientID <-> FHIR identifier system, and the setting naming short site codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hdhub.config.deployment import init_deployment
from hdhub.config.settings import load_settings
from hdhub.errors import ConfigError
from hdhub.imaging.issuers import issuer_names, patient_identifier, system_of

NORD = "https://chu-nord.example/ipp"
SYSTEMS = {"CHUNORD": NORD}


@pytest.mark.parametrize(
    ("issuer", "system"),
    [
        ("CHUNORD", NORD),  # a short code, named in the settings
        ("1.2.250.1.71.4.2.7", "urn:oid:1.2.250.1.71.4.2.7"),  # an OID
        ("urn:oid:1.2.250.1.71.4.2.7", "urn:oid:1.2.250.1.71.4.2.7"),
        ("https://ch-sud.example/ipp", "https://ch-sud.example/ipp"),  # a URI is its own system
        ("CHSUD", None),  # a code of no known system
        ("1.2.", None),  # not an OID
        ("01.2.3", None),
    ],
)
def test_the_system_an_issuer_stands_for(issuer: str, system: str | None) -> None:
    assert system_of(issuer, SYSTEMS) == system


def test_identifiers_and_issuer_names() -> None:
    assert patient_identifier("P1", None, SYSTEMS) == {"value": "P1"}
    assert patient_identifier("P1", "CHUNORD", SYSTEMS) == {"value": "P1", "system": NORD}
    assert patient_identifier("P1", "CHSUD", SYSTEMS) == {"value": "P1", "assigner": {"display": "CHSUD"}}
    assert issuer_names(NORD, SYSTEMS) == {NORD, "CHUNORD", None}
    assert issuer_names("urn:oid:1.2.250.9", {}) == {"urn:oid:1.2.250.9", "1.2.250.9", None}


@pytest.mark.parametrize(
    ("code", "system"),
    [("CHU\\NORD", NORD), ("x" * 65, NORD), ("CHUNORD", "not a uri"), ("CHUNORD", ""), ("", NORD)],
)
def test_a_wrong_issuer_setting_is_a_clear_config_error(tmp_path: Path, code: str, system: str) -> None:
    home = tmp_path / "home"
    init_deployment(home)
    config = home / "hdhub.toml"
    key = code.replace("\\", "\\\\")
    config.write_text(config.read_text() + f'\n[imaging.issuer_systems]\n"{key}" = "{system}"\n')
    with pytest.raises(ConfigError, match=r"imaging\.issuer_systems"):
        load_settings(home)


def test_the_setting_is_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_deployment(home)
    config = home / "hdhub.toml"
    config.write_text(config.read_text() + f'\n[imaging.issuer_systems]\nCHUNORD = "{NORD}"\n')
    assert load_settings(home).imaging.issuer_systems == SYSTEMS
