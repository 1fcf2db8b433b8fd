"""The ``postfixadmin`` backend's settings and its registration (``SCIM_GATEWAY_BACKEND=postfixadmin``)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from adapters.plugins import BackendContext, BackendPlugin, BackendSettingsModel
from adapters.postfixadmin.adapter import PostfixAdminAdapter
from adapters.postfixadmin.db import Database, Target
from adapters.postfixadmin.mapping import ListAddresses
from adapters.postfixadmin.passwords import PasswordHashing, Scheme
from adapters.retry import RetryPolicy


class PostfixAdminSettings(BackendSettingsModel):
    dsn: SecretStr = Field(description="The PostfixAdmin database: postgresql://USER:PASSWORD@HOST:PORT/DB or "
                                       "mysql://USER:PASSWORD@HOST:PORT/DB (MariaDB, MySQL).")
    create_domains: bool = Field(default=False, description="Add a missing mail domain to PostfixAdmin instead of "
                                                            "refusing its mailboxes and lists (400).")
    password_scheme: Scheme = Field(default="BLF-CRYPT", description="How a password sent through SCIM is stored: "
                                                                     "BLF-CRYPT, SHA512-CRYPT or ARGON2ID.")
    bcrypt_cost: int = Field(default=10, ge=4, le=16, description="bcrypt cost of BLF-CRYPT passwords.")
    pool_size: int = Field(default=10, ge=1, le=200, description="Most database connections open at once.")
    attempt_timeout: float = Field(default=5.0, gt=0, description="Seconds one database round of work may take.")
    connect_timeout: float = Field(default=2.0, gt=0, description="Seconds a new database connection may take.")
    deadline: float = Field(default=20.0, gt=0, description="Seconds one call may take, retries included.")

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr) -> SecretStr:
        Target.from_dsn(value.get_secret_value())  # ValueError saying what is wrong
        return value

    def secret_values(self) -> Iterator[str]:
        password = Target.from_dsn(self.dsn.get_secret_value()).password
        if password:
            yield password
        yield self.dsn.get_secret_value()


def database(settings: PostfixAdminSettings) -> Database:
    policy = RetryPolicy(attempt_timeout=settings.attempt_timeout, connect_timeout=settings.connect_timeout,
                         deadline=settings.deadline)
    return Database(Target.from_dsn(settings.dsn.get_secret_value()), pool_size=settings.pool_size, policy=policy)


def _endpoint(settings: PostfixAdminSettings) -> tuple[str, int]:
    target = Target.from_dsn(settings.dsn.get_secret_value())
    return target.host, target.port


def _relocate(settings: PostfixAdminSettings, host: str, port: int) -> PostfixAdminSettings:
    parts = urlsplit(settings.dsn.get_secret_value())
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return settings.model_copy(update={"dsn": SecretStr(urlunsplit(parts._replace(netloc=netloc)))})


def _create(settings: PostfixAdminSettings, context: BackendContext) -> PostfixAdminAdapter:
    return PostfixAdminAdapter(
        database(settings), lists=ListAddresses(context.list_address_template, context.list_domain),
        hashing=PasswordHashing(settings.password_scheme, bcrypt_cost=settings.bcrypt_cost),
        domains=context.domains, create_domains=settings.create_domains,
    )


PLUGIN = BackendPlugin(
    name="postfixadmin",
    summary="A PostfixAdmin database (PostgreSQL or MariaDB/MySQL), as Postfix and Dovecot read it.",
    settings=PostfixAdminSettings, create=_create,
    location=lambda s: Target.from_dsn(s.dsn.get_secret_value()).location, endpoint=_endpoint, relocate=_relocate,
)
