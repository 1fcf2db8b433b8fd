"""Gateway settings: environment variables (``SCIM_GATEWAY_*``) over an optional TOML file.

Validated once at start-up so a wrong setting stops the process with a message that
names the setting, instead of failing on the first Entra request.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCIM_GATEWAY_", extra="forbid")

    token: SecretStr | None = Field(
        default=None, description="Bearer token of the default tenant (Entra's Secret Token)."
    )
    backend: Literal["memory", "cleanmail"] = Field(default="memory", description="Backend adapter.")
    cleanmail_url: str = Field(default="http://127.0.0.1:8081", description="Base URL of the Cleanmail admin API.")
    cleanmail_api_key: SecretStr | None = Field(default=None, description="API key for the Cleanmail admin API.")
    cleanmail_domain: str | None = Field(
        default=None, description="Mail domain used for distribution-list addresses."
    )
    state: str = Field(
        default="sqlite:///scim-gateway-state.sqlite3",
        description="Gateway state store: 'memory', 'sqlite:///path' or a 'postgresql://' DSN.",
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
        default=32, ge=1, description="Concurrent backend calls allowed per tenant before queueing."
    )
    backend_queue_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a request may wait for a backend slot before 429."
    )

    journal_sweep_interval: float = Field(
        default=60.0, gt=0, description="Seconds between sweeps that settle interrupted backend writes."
    )

    @field_validator("state")
    @classmethod
    def _check_state(cls, value: str) -> str:
        if value == "memory" or value.startswith(("sqlite://", "postgresql://", "postgres://")):
            return value
        raise ValueError("must be 'memory', 'sqlite:///path/to/file' or a 'postgresql://' DSN")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from a TOML file (if any), then environment variables, then explicit overrides."""
    base = Settings(**{k: v for k, v in overrides.items() if v is not None})
    path = config_file or base.config
    if path is None:
        return base
    with open(path, "rb") as handle:
        file_values: dict[str, Any] = tomllib.load(handle).get("gateway", {})
    # Environment and explicit overrides win over the file: re-validate with the file as defaults.
    env_values = base.model_dump(exclude_unset=True)
    merged = {**file_values, **env_values, **{k: v for k, v in overrides.items() if v is not None}}
    merged["config"] = path
    return Settings(**merged)
