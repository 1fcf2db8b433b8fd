"""Gateway settings: a TOML file, overridden by environment variables (``SCIM_GATEWAY_*``).

Validated once at start-up so a wrong setting stops the process with a message that
names the setting, instead of failing on the first Entra request.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TENANT = "default"
_HASH = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class BackendSettings(BaseModel):
    """Which mail platform a tenant provisions into."""

    model_config = ConfigDict(extra="forbid")

    adapter: Literal["memory", "cleanmail"] = Field(default="memory", description="Backend adapter.")
    url: str | None = Field(default=None, description="Base URL of the mail platform's admin API.")
    api_key: SecretStr | None = Field(default=None, description="API key (prefer api_key_env or api_key_file).")
    api_key_env: str | None = Field(default=None, description="Name of an environment variable holding the API key.")
    api_key_file: Path | None = Field(default=None, description="File holding the API key (a mounted secret).")
    list_domain: str | None = Field(default=None, description="Mail domain of distribution-list addresses.")
    list_address_template: str = Field(
        default="{slug}@{domain}", description="Distribution-list address built from the group displayName."
    )
    attempt_timeout: float = Field(default=5.0, gt=0, description="Seconds one backend call may take.")
    deadline: float = Field(default=20.0, gt=0, description="Seconds all attempts of one call may take.")

    @model_validator(mode="after")
    def _check(self) -> BackendSettings:
        if self.adapter == "cleanmail" and not self.url:
            raise ValueError("the cleanmail adapter needs url (the admin API's base URL)")
        given = [n for n in ("api_key", "api_key_env", "api_key_file") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of api_key, api_key_env, api_key_file (got {', '.join(given)})")
        return self

    def resolve_api_key(self) -> str:
        """The API key from wherever the configuration says it lives."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env is not None:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ValueError(f"environment variable {self.api_key_env} (api_key_env) is not set")
            return value
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read api_key_file {self.api_key_file}: {exc.strerror}") from None
        return ""


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
    backend: Literal["memory", "cleanmail"] = Field(default="memory", description="Default tenant's adapter.")
    cleanmail_url: str = Field(default="http://127.0.0.1:8081", description="Default tenant's Cleanmail API URL.")
    cleanmail_api_key: SecretStr | None = Field(default=None, description="Default tenant's Cleanmail API key.")
    cleanmail_domain: str | None = Field(
        default=None, description="Default tenant's mail domain for distribution-list addresses."
    )
    domains: list[str] = Field(default_factory=list, description="Default tenant's mail domains (empty: any).")
    dry_run: bool = Field(default=False, description="Default tenant: answer Entra but send no backend write.")
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
    trust_proxy: bool = Field(
        default=False, description="Build response URLs from a reverse proxy's X-Forwarded-Proto/X-Forwarded-Host."
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate chain: serve HTTPS (TLS >= 1.2).")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file.")
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
        from gateway.tenants import hash_token

        tenants = dict(self.tenants)
        if self.token is not None:
            if DEFAULT_TENANT in tenants:
                raise ValueError(f"SCIM_GATEWAY_TOKEN is set and a tenant is named {DEFAULT_TENANT!r}: pick one")
            tenants[DEFAULT_TENANT] = TenantSettings(
                token_hashes=[hash_token(self.token.get_secret_value())],
                domains=self.domains,
                backend=BackendSettings(
                    adapter=self.backend,
                    url=self.cleanmail_url if self.backend == "cleanmail" else None,
                    api_key=self.cleanmail_api_key,
                    list_domain=self.cleanmail_domain,
                ),
                concurrency=self.backend_concurrency,
                queue_timeout=self.backend_queue_timeout,
                dry_run=self.dry_run,
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
