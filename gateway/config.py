"""Gateway settings: a TOML file, overridden by environment variables (``SCIM_GATEWAY_*``).

Validated once at start-up so a wrong setting stops the process with a message that
names the setting, instead of failing on the first Entra request.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TENANT = "default"
DEFAULT_CALL_BUDGET = 50
"""Entra's heaviest request (a group PATCH, a create with its uniqueness look-up) needs under ten."""
_HASH = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class BackendSettings(BaseModel):
    """Which mail platform a tenant provisions into.

    Besides the keys below, the table holds the chosen backend's own settings (``url``,
    ``dsn``, …), checked by that backend's settings model (``scim-gateway backends`` lists them).
    """

    model_config = ConfigDict(extra="allow")

    adapter: str = Field(default="memory", description="Registered backend name (scim-gateway backends).")
    list_domain: str | None = Field(default=None, description="Mail domain of distribution-list addresses.")
    list_address_template: str = Field(
        default="{slug}@{domain}", description="Distribution-list address built from the group displayName."
    )

    @field_validator("adapter")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from gateway.backends import plugin

        plugin(value)  # ValueError naming the installed backends
        return value

    @field_validator("list_address_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        try:
            sample = value.format(slug="sales", domain="example.com")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"not a valid template: {err}") from None
        if "{slug}" not in value or sample.count("@") != 1:
            raise ValueError("must contain {slug} and yield one local@domain address")
        return value

    @model_validator(mode="after")
    def _check_options(self, info: ValidationInfo) -> BackendSettings:
        from gateway.backends import plugin, validate_options

        where = (info.context or {}).get("backend_settings_from", "")
        validate_options(plugin(self.adapter), self.options, where)  # raises naming each setting
        return self

    @property
    def options(self) -> dict[str, Any]:
        """The backend's own settings from this table."""
        return dict(self.model_extra or {})


class TenantSettings(BaseModel):
    """One customer: its Entra provisioning job's token(s), its mail domains, its backend."""

    model_config = ConfigDict(extra="forbid")

    token_hashes: list[str] = Field(
        min_length=1, description="sha256 hashes of the tenant's bearer tokens ('scim-gateway token' prints one)."
    )
    domains: list[str] = Field(
        default_factory=list, description="Mail domains this tenant may provision; empty allows any."
    )
    backend: BackendSettings = Field(default_factory=BackendSettings)
    concurrency: int = Field(default=16, ge=1, description="Concurrent backend calls before requests queue.")
    queue_timeout: float = Field(default=5.0, gt=0, description="Seconds a request may queue before 429.")
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, description="Requests per second this tenant may send (burst: 2 s worth)."
    )
    dry_run: bool = Field(default=False, description="Answer Entra but send no write to the backend.")
    backend_call_budget: int = Field(
        default=DEFAULT_CALL_BUDGET, ge=1, description="Most calls to the mail platform one SCIM request may make; "
        "a filter that would need more is refused (400 invalidFilter).",
    )
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list, description="Client networks (CIDRs) this tenant's requests may come from, e.g. "
        "Entra's provisioning ranges; others get 403 (empty: any).",
    )

    @field_validator("token_hashes")
    @classmethod
    def _check_hashes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HASH.match(value):
                raise ValueError("each token hash must be 64 hex digits, optionally prefixed 'sha256:'")
        return [v.lower().removeprefix("sha256:") for v in values]

    @field_validator("domains")
    @classmethod
    def _check_domains(cls, values: list[str]) -> list[str]:
        lowered = [v.strip().lower() for v in values]
        for value in lowered:
            if not _DOMAIN.match(value):
                raise ValueError(f"{value!r} is not a mail domain")
        return lowered


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCIM_GATEWAY_", extra="forbid")

    token: SecretStr | None = Field(
        default=None, description="Bearer token of the default tenant (Entra's Secret Token), quick-start mode."
    )
    backend: str = Field(
        default="memory", description="Default tenant's backend (scim-gateway backends lists them); its settings "
        "come from SCIM_GATEWAY_<BACKEND>_<SETTING> variables or backend_options.",
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Default tenant's backend settings as a table ([gateway.backend_options]); "
        "a SCIM_GATEWAY_<BACKEND>_<SETTING> variable wins over the same key here.",
    )
    list_domain: str | None = Field(
        default=None, description="Default tenant's mail domain for distribution-list addresses."
    )
    domains: list[str] = Field(default_factory=list, description="Default tenant's mail domains (empty: any).")
    dry_run: bool = Field(default=False, description="Default tenant: answer Entra but send no backend write.")
    backend_call_budget: int = Field(
        default=DEFAULT_CALL_BUDGET, ge=1, description="Default tenant: most calls to the mail platform one SCIM "
        "request may make.",
    )
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list, description="Default tenant: client networks (CIDRs) requests may come from (empty: "
        "any).",
    )
    tenants: dict[str, TenantSettings] = Field(default_factory=dict, description="Tenants (TOML [tenants.NAME]).")
    state: str = Field(
        default="sqlite:///scim-gateway-state.sqlite3",
        description="Gateway state store: 'memory', 'sqlite:///relative/path', 'sqlite:////absolute/path' "
        "or a 'postgresql://' DSN.",
    )
    config: Path | None = Field(default=None, description="TOML file with further settings.")
    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8080, ge=0, le=65535, description="Listen port.")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest accepted request body.")
    max_page_size: int = Field(default=200, ge=1, le=10000, description="Largest page a list request returns.")
    max_patch_operations: int = Field(default=1000, ge=1, description="Most operations in one PATCH request.")
    log_format: Literal["auto", "json", "console"] = Field(default="auto", description="Log line format.")
    log_level: str = Field(default="info", description="Log level.")
    backend_concurrency: int = Field(
        default=32, ge=1, description="Default tenant: concurrent backend calls before queueing."
    )
    backend_queue_timeout: float = Field(
        default=5.0, gt=0, description="Default tenant: seconds a request may wait for a backend slot before 429."
    )
    journal_sweep_interval: float = Field(
        default=60.0, gt=0, description="Seconds between sweeps that settle interrupted backend writes."
    )
    write_landing_window: float = Field(
        default=5.0, ge=0,
        description="Seconds a create whose answer was lost may still land on the platform; until then a "
                    "retry is answered 503 instead of creating again.",
    )
    idempotency_ttl: float = Field(default=86400.0, gt=0, description="Seconds an Idempotency-Key is remembered.")
    log_hash_user_names: bool = Field(
        default=False, description="Log a salted sha256 prefix instead of userNames and mail addresses."
    )
    log_hash_salt: SecretStr | None = Field(
        default=None, description="Salt of log_hash_user_names; the same on every replica makes lines comparable "
        "(default: random per process).",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list, description="Reverse proxies (addresses or CIDRs) whose X-Forwarded-Proto, "
        "X-Forwarded-Host and X-Forwarded-For are believed; from any other peer they are ignored.",
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate chain: serve HTTPS (TLS >= 1.2).")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file.")
    auth_failures_per_minute: int = Field(
        default=30, ge=0, description="Failed authentications one client address may make per minute (burst: as "
        "many) before it gets 429 (0: no limit).",
    )
    request_timeout: float = Field(
        default=60.0, gt=0, description="Seconds one SCIM request may take, backend calls and retries included, "
        "before it is answered 503 with Retry-After (checked a few times per limit, at least once a second).",
    )
    shutdown_timeout: float = Field(
        default=30.0, gt=0, description="Seconds in-flight requests may still take after SIGTERM."
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=0, description="Consecutive backend failures after which a tenant's requests get 503 at once "
        "(0 disables the circuit breaker).",
    )
    circuit_open_seconds: float = Field(
        default=30.0, gt=0, description="Seconds an open circuit answers 503 before it lets one trial call through."
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from gateway.backends import plugin

        plugin(value)  # ValueError naming the installed backends
        return value

    @field_validator("state")
    @classmethod
    def _check_state(cls, value: str) -> str:
        if value == "memory" or value.startswith(("sqlite://", "postgresql://", "postgres://")):
            return value
        raise ValueError("must be 'memory', 'sqlite:///path/to/file' or a 'postgresql://' DSN")

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        return self

    @model_validator(mode="after")
    def _check_tenants(self) -> Settings:
        seen: dict[str, str] = {}
        for name, tenant in self.tenants.items():
            for digest in tenant.token_hashes:
                if digest in seen:
                    raise ValueError(f"tenants {seen[digest]!r} and {name!r} share a token: tokens select tenants")
                seen[digest] = name
        return self

    def effective_tenants(self) -> dict[str, TenantSettings]:
        """Configured tenants plus the quick-start tenant when SCIM_GATEWAY_TOKEN is set."""
        from gateway.backends import options_from_env, plugin
        from gateway.tenants import hash_token

        tenants = dict(self.tenants)
        if self.token is not None:
            if DEFAULT_TENANT in tenants:
                raise ValueError(f"SCIM_GATEWAY_TOKEN is set and a tenant is named {DEFAULT_TENANT!r}: pick one")
            options = {**self.backend_options, **options_from_env(plugin(self.backend))}
            tenants[DEFAULT_TENANT] = TenantSettings(
                token_hashes=[hash_token(self.token.get_secret_value())],
                domains=self.domains,
                backend=BackendSettings.model_validate(
                    {"adapter": self.backend, "list_domain": self.list_domain, **options},
                    context={"backend_settings_from": "env"},
                ),
                concurrency=self.backend_concurrency,
                queue_timeout=self.backend_queue_timeout,
                dry_run=self.dry_run,
                backend_call_budget=self.backend_call_budget,
                allowed_networks=self.allowed_networks,
            )
        if not tenants:
            raise ValueError("no tenant: set SCIM_GATEWAY_TOKEN, or declare [tenants.NAME] in the config file")
        return tenants


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from a TOML file (if any), then environment variables, then explicit overrides."""
    explicit = {k: v for k, v in overrides.items() if v is not None}
    base = Settings(**explicit)
    path = config_file or base.config
    if path is None:
        return base
    with open(path, "rb") as handle:
        document = tomllib.load(handle)
    file_values: dict[str, Any] = dict(document.get("gateway", {}))
    if "tenants" in document:
        file_values["tenants"] = document["tenants"]
    # Environment variables and explicit overrides win over the file.
    env_values = base.model_dump(exclude_unset=True)
    merged = {**file_values, **env_values, **explicit, "config": path}
    return Settings(**merged)
