"""Typed settings from ``hdhub.toml`` plus ``HDHUB_*`` environment variables.

A deployment is one directory (its *home*) holding ``hdhub.toml``, ``secrets/`` and,
on the embedded defaults, its data. Relative store locations are resolved against the
home directory, so a deployment can be moved or copied as a whole.

Environment variables override the file: ``HDHUB_<KEY>`` for top-level keys and
``HDHUB_<SECTION>_<KEY>`` for keys of a section (``HDHUB_SERVER_PORT=9000``). An
``HDHUB_*`` variable that names no setting is an error, never silently ignored.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hdhub.errors import ConfigError

CONFIG_FILE = "hdhub.toml"
ENV_PREFIX = "HDHUB_"
ENV_HOME = "HDHUB_HOME"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the API.")
    trusted_proxies: list[str] = Field(
        ["127.0.0.1"],
        description="Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (addresses "
        "or networks): behind a TLS proxy on another host, name it, or the session cookie is not Secure.",
    )


class SecuritySettings(_Section):
    token_ttl_hours: float = Field(12.0, gt=0, description="Lifetime of API tokens from the password flow.")
    max_token_ttl_days: float = Field(365.0, gt=0, description="Longest lifetime `tokens issue` accepts.")
    sign_in_attempts: int = Field(
        5, ge=1, le=100, description="Failed password sign-ins under one user name before a delay."
    )
    sign_in_max_delay_minutes: float = Field(
        15.0, gt=0, le=1440, description="Longest delay between sign-ins after repeated failures."
    )


class OidcSettings(_Section):
    issuer: str | None = Field(None, description="Expected `iss` claim; OIDC is off when unset.")
    audience: str | None = Field(None, description="Expected `aud` claim.")
    jwks: str | None = Field(None, description="JWKS as a file path or an https:// URL.")
    roles_claim: str = Field("realm_access.roles", description="Dotted path of the roles claim (Keycloak).")
    username_claim: str = Field("preferred_username", description="Claim used as the user name.")
    role_map: dict[str, str] = Field(
        default_factory=dict, description="IdP role -> hdhub role; unmapped IdP roles grant nothing."
    )
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256"])
    # Browser sign-in (authorization code flow with PKCE): on when client_id is set.
    client_id: str | None = Field(None, description="hdhub's client id at the IdP: turns on browser sign-in.")
    client_secret_file: str | None = Field(
        None, description="File holding the client secret (confidential clients; a public client has none)."
    )
    provider_name: str = Field("SSO", description="The sign-in button's label: 'Sign in with …'.")
    authorization_endpoint: str | None = Field(
        None, description="Default: from the issuer's /.well-known/openid-configuration."
    )
    token_endpoint: str | None = Field(
        None, description="Default: from the issuer's /.well-known/openid-configuration."
    )


class AuditSettings(_Section):
    checkpoint_every: int = Field(1000, ge=1, description="Sign a checkpoint every N audit events.")


class LifecycleRule(_Section):
    prefix: str = Field("", description="Object keys this rule applies to.")
    transition_after_days: float | None = Field(
        None, ge=0, description="Move to `storage_class` after N days."
    )
    storage_class: str = Field("COLD", description="Target class of the transition.")
    expire_after_days: float | None = Field(None, ge=0, description="Delete after N days (if not locked).")


class ObjectSettings(_Section):
    multipart_threshold_mb: int = Field(16, ge=5, description="S3: objects above this use multipart upload.")
    lifecycle: list[LifecycleRule] = Field(default_factory=list)


class IngestSettings(_Section):
    merge_identifier_systems: list[str] = Field(
        default_factory=lambda: ["urn:oid:1.2.250.1.213.1.4.8"],
        description="Patients of different sites sharing an identifier of one of these systems are "
        "one person (default: the French INS).",
    )


class StoragePolicy(_Section):
    """What the imaging archive keeps, how long, and where (one category of objects)."""

    retention_years: int = Field(
        20,
        ge=0,
        le=200,
        description="Object lock for N years after the patient's last stay known to the archive "
        "(French medical records: 20); 0: no lock.",
    )
    retention_mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        "GOVERNANCE",
        description="GOVERNANCE: only a privileged purge of rejected objects may remove a locked one; "
        "COMPLIANCE: nobody, until the date.",
    )
    cold_after_days: float | None = Field(
        None, ge=0, description="Move objects to the COLD class after N days."
    )
    purge_rejected_after_days: float = Field(
        30, ge=0, description="Rejected (IOCM) objects are purged N days after their rejection."
    )


def default_policies() -> dict[str, StoragePolicy]:
    return {
        "dicom": StoragePolicy(),
        "video": StoragePolicy(cold_after_days=90),
        "pathology": StoragePolicy(cold_after_days=365),
        "document": StoragePolicy(),
    }


class ImagingSettings(_Section):
    duplicates: Literal["refuse", "version"] = Field(
        "refuse",
        description="A second copy of a stored SOP Instance UID: refuse it, or keep it as a new version.",
    )
    ingest_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Worker processes that parse DICOM instances and write their objects, for STOW-RS "
        "and `hdhub ingest dicom` (0: one per core, at most 8).",
    )
    policies: dict[str, StoragePolicy] = Field(
        default_factory=default_policies,
        description="Storage policy per category: dicom (every DICOM instance), and the categories of "
        "non-DICOM objects (video, pathology, document, or any other name).",
    )
    issuer_systems: dict[str, str] = Field(
        default_factory=dict,
        description="IssuerOfPatientID codes that are not identifier systems themselves, each with the "
        'system it stands for, e.g. CHUNORD = "urn:oid:1.2.250.1.71.4.2.7": a patient found by that '
        "site's IPP finds its studies, and a DocumentReference names the system.",
    )
    ohif_url: str | None = Field(
        None,
        description="The OHIF viewer's URL with {study} for the StudyInstanceUID, e.g. "
        "https://viewer.example/viewer?StudyInstanceUIDs={study}; the imaging pages link each study "
        "to it (no link when unset).",
    )

    @field_validator("issuer_systems")
    @classmethod
    def _issuer_systems(cls, value: dict[str, str]) -> dict[str, str]:
        from hdhub.imaging.issuers import ISSUER, is_system

        for code, system in value.items():
            if not ISSUER.match(code):
                raise ValueError(f"{code[:80]!r}: an IssuerOfPatientID is 1 to 64 characters, no backslash")
            if not is_system(system):
                raise ValueError(f"{code}: {system[:80]!r} is not an absolute URI (e.g. urn:oid:1.2.250…)")
        return value

    @field_validator("ohif_url")
    @classmethod
    def _ohif_url(cls, value: str | None) -> str | None:
        if value is not None and (
            "{study}" not in value or not value.startswith(("https://", "http://", "/"))
        ):
            raise ValueError("an http(s):// or /path URL holding {study}")
        return value


class CohortSettings(_Section):
    """Disclosure control of patient counts (i2b2's obfuscation), for callers not entitled to exact counts."""

    threshold: int = Field(10, ge=1, description="Counts below this are shown as '< threshold'.")
    noise_sigma: float = Field(
        1.3, ge=0, description="Standard deviation of the Gaussian noise added to counts."
    )
    max_repeats: int = Field(
        5, ge=1, description="How many times one user may ask the same question within the window."
    )
    repeat_window_hours: float = Field(24.0, gt=0, description="The window of max_repeats.")
    max_seconds: float = Field(
        60.0, gt=0, description="A count still running after this long is stopped (422 cohort_too_costly)."
    )


class Settings(_Section):
    """All settings of one deployment. Build with :func:`load_settings`, never at import time."""

    home: Path
    catalog_url: str = Field("sqlite:///catalog.db", description="sqlite:///… or postgresql+psycopg://…")
    warehouse_url: str = Field("duckdb:///warehouse.duckdb", description="duckdb:///… (relative to home)")
    objects_url: str = Field("file:objects", description="file:… or s3://bucket?endpoint_url=…&region=…")
    secrets_dir: Path = Field(Path("secrets"), description="Directory of the 0600 key files.")
    server: ServerSettings = Field(default_factory=ServerSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    objects: ObjectSettings = Field(default_factory=ObjectSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    imaging: ImagingSettings = Field(default_factory=ImagingSettings)
    cohorts: CohortSettings = Field(default_factory=CohortSettings)

    @field_validator("catalog_url")
    @classmethod
    def _catalog_scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return v

    @field_validator("warehouse_url")
    @classmethod
    def _warehouse_scheme(cls, v: str) -> str:
        if not v.startswith("duckdb:"):
            raise ValueError("must start with duckdb:/// (PostgreSQL and Spark come later)")
        return v

    @field_validator("objects_url")
    @classmethod
    def _objects_scheme(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("file", "s3"):
            raise ValueError("must start with file: or s3://")
        return v

    # Resolved locations -------------------------------------------------------------
    @property
    def secrets_path(self) -> Path:
        return self.secrets_dir if self.secrets_dir.is_absolute() else self.home / self.secrets_dir

    @property
    def catalog_url_resolved(self) -> str:
        return _resolve_db_url(self.catalog_url, "sqlite", self.home)

    @property
    def warehouse_url_resolved(self) -> str:
        return _resolve_db_url(self.warehouse_url, "duckdb", self.home)

    @property
    def objects_url_resolved(self) -> str:
        parts = urlsplit(self.objects_url)
        if parts.scheme != "file":
            return self.objects_url
        path = Path(parts.path) if parts.netloc == "" else Path(parts.netloc + parts.path)
        if not path.is_absolute():
            path = self.home / path
        return f"file://{path}"


def _resolve_db_url(url: str, scheme: str, home: Path) -> str:
    """``scheme:///rel`` is relative to home, ``scheme:////abs`` absolute (SQLAlchemy style)."""
    prefix = f"{scheme}:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        rest = url[len(prefix) :]
        return f"{prefix}{home / rest}"
    return url


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    sections = {
        name: model
        for name, model in Settings.model_fields.items()
        if isinstance(model.annotation, type) and issubclass(model.annotation, _Section)
    }
    out: dict[str, Any] = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_HOME:
            continue
        key = var[len(ENV_PREFIX) :].lower()
        if key in Settings.model_fields and key not in sections and key != "home":
            out[key] = value
            continue
        for section, field in sections.items():
            sub_fields = field.annotation.model_fields  # type: ignore[union-attr]
            if key.startswith(section + "_") and key[len(section) + 1 :] in sub_fields:
                sub = key[len(section) + 1 :]
                parsed: Any = value
                if sub_fields[sub].annotation not in (str, str | None):
                    parsed = _parse_env_value(var, value)
                out.setdefault(section, {})[sub] = parsed
                break
        else:
            raise ConfigError(f"unknown setting in environment variable {var}; see docs/configuration.md")
    return out


def _parse_env_value(var: str, value: str) -> Any:
    """Non-string settings take TOML syntax: 9000, true, ["RS256"], {a = "b"}."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def find_home(home: Path | str | None = None) -> Path:
    """--home, else HDHUB_HOME, else the current directory."""
    if home is not None:
        return Path(home).expanduser().resolve()
    env = os.environ.get(ENV_HOME)
    return Path(env).expanduser().resolve() if env else Path.cwd().resolve()


def load_settings(home: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read ``HOME/hdhub.toml`` and apply ``HDHUB_*`` overrides. Missing file is an error."""
    root = find_home(home)
    config_file = root / CONFIG_FILE
    if not config_file.is_file():
        raise ConfigError(f"no {CONFIG_FILE} in {root}: run `hdhub init {root}` or pass --home DIR")
    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_file}: {exc}") from None
    env = _env_overrides(dict(os.environ if environ is None else environ))
    for key, value in env.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    data["home"] = root
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{config_file}: setting {where}: {err['msg']}") from None


DEFAULT_CONFIG = """\
# hdhub deployment configuration. Every key can be overridden by an environment
# variable: HDHUB_<KEY> or HDHUB_<SECTION>_<KEY> (e.g. HDHUB_SERVER_PORT=9000).
# Relative paths are relative to this directory. See docs/configuration.md.

# Catalog (users, tokens, audit log, indexes): sqlite:///catalog.db or
# postgresql+psycopg://user@host:5432/dbname
catalog_url = "sqlite:///catalog.db"

# Warehouse (OMOP CDM 5.4): duckdb:///warehouse.duckdb
warehouse_url = "duckdb:///warehouse.duckdb"

# Objects (encrypted at rest): file:objects or
# s3://bucket?endpoint_url=https://s3.example.org&region=eu-west-3
objects_url = "file:objects"

# Key files, each mode 0600: objects-kek.key, pseudonym-hmac.key, audit-signing.key
secrets_dir = "secrets"

[server]
host = "127.0.0.1"
port = 8000

[security]
token_ttl_hours = 12

[audit]
checkpoint_every = 1000

# Patient counts for researchers without an approved project: noise and a floor (i2b2).
[cohorts]
threshold = 10
noise_sigma = 1.3

# [oidc]
# issuer = "https://sso.example-hospital.fr/realms/hdhub"
# audience = "hdhub"
# jwks = "https://sso.example-hospital.fr/realms/hdhub/protocol/openid-connect/certs"
# roles_claim = "realm_access.roles"
# role_map = { "hdhub-admin" = "admin", "dim-engineer" = "data_engineer" }
# Browser sign-in ("Sign in with …" on /login): the client registered for hdhub at the IdP,
# with redirect URI https://<this server>/login/oidc/callback.
# client_id = "hdhub-web"
# client_secret_file = "secrets/oidc-client-secret"
# provider_name = "Keycloak AP"

# [[objects.lifecycle]]
# prefix = "videos/"
# transition_after_days = 90
# storage_class = "COLD"

# [imaging]
# ohif_url = "https://viewer.example-hospital.fr/viewer?StudyInstanceUIDs={study}"

# IssuerOfPatientID codes a site writes in its images instead of its IPP system:
# [imaging.issuer_systems]
# CHUNORD = "urn:oid:1.2.250.1.71.4.2.7"
"""


def write_default_config(home: Path) -> Path:
    path = home / CONFIG_FILE
    if path.exists():
        raise ConfigError(f"{path} already exists; refusing to overwrite a deployment")
    path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return path
