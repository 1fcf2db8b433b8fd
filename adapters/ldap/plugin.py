"""The ``ldap`` backend's settings and its plugin entry.

Quick-start tenant: ``SCIM_GATEWAY_BACKEND=ldap`` and ``SCIM_GATEWAY_LDAP_URL``,
``_BIND_DN``, ``_BIND_PASSWORD``, ``_USERS_DN``, ``_GROUPS_DN`` (tables such as
``attribute_map`` as JSON, lists as JSON or comma-separated). Configured tenants: the same
names in ``[tenants.NAME.backend]`` with ``adapter = "ldap"``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from adapters.ldap import dn as dns
from adapters.ldap.adapter import LdapAdapter
from adapters.ldap.connection import ConnectionSettings
from adapters.ldap.mapping import Layout
from adapters.ldap.profiles import PROFILES, Profile
from adapters.plugins import BackendContext, BackendPlugin, BackendSettingsModel


def _table(value: Any) -> Any:
    """A table given as text (an environment variable) is JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except ValueError:
            raise ValueError('give a JSON object, e.g. {"name.givenName": "givenName"}') from None
    return value


def _names(value: Any) -> Any:
    """A list given as text is JSON or comma-separated."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class LdapSettings(BackendSettingsModel):
    url: str = Field(description="Directory URL: ldap://host:389 (add start_tls) or ldaps://host:636.")
    bind_dn: str = Field(description="DN of the gateway's service account (see the README for its ACL).")
    bind_password: SecretStr | None = Field(
        default=None, description="Password of bind_dn (or give bind_password_file).")
    bind_password_file: Path | None = Field(
        default=None, description="File holding the password of bind_dn (a mounted secret).")
    users_dn: str = Field(description="Container of the mailbox entries, e.g. ou=people,dc=example,dc=org.")
    groups_dn: str = Field(description="Container of the distribution-list entries, e.g. ou=groups,dc=example,dc=org.")
    start_tls: bool = Field(default=False, description="Upgrade an ldap:// connection with StartTLS.")
    ca_file: Path | None = Field(
        default=None, description="PEM file of the CA(s) that signed the directory's certificate (default: the "
                                  "system's trust store).")
    tls_server_name: str | None = Field(
        default=None, description="Host name the directory's certificate must carry when it is not url's host "
                                  "(a tunnel or proxy in between).")
    profile: str = Field(default="generic", description=f"Layout preset: {', '.join(PROFILES)}.")
    user_object_classes: list[str] | None = Field(
        default=None, description="Object classes of a new mailbox entry (default: the profile's).")
    user_dn_template: str | None = Field(
        default=None, description="RDN of a new mailbox, e.g. uid={mail}, uid={local_part}, mail={mail}.")
    mail_attribute: str | None = Field(default=None, description="LDAP attribute holding userName (default mail).")
    attribute_map: dict[str, str] = Field(
        default_factory=dict, description="SCIM attribute → LDAP attribute, merged over the profile's map; an "
                                          "empty value unmaps an attribute (the gateway then keeps it itself).")
    derived_attributes: dict[str, str] = Field(
        default_factory=dict, description="LDAP attribute → template, written from other values (e.g. cn = "
                                          "{display_name}), merged over the profile's.")
    fallback_values: dict[str, str] = Field(
        default_factory=dict, description="LDAP attribute → template stored when its SCIM attribute has no "
                                          "value but the schema needs one (e.g. sn = {mail}).")
    disable: Literal["ppolicy", "status"] | None = Field(
        default=None, description="How a mailbox is disabled: ppolicy (pwdAccountLockedTime) or status "
                                  "(status_attribute).")
    status_attribute: str | None = Field(default=None, description="Status attribute (disable = status).")
    status_active_value: str | None = Field(default=None, description="Its value for an enabled mailbox.")
    status_disabled_value: str | None = Field(default=None, description="Its value for a disabled mailbox.")
    group_object_classes: list[str] | None = Field(
        default=None, description="Object classes of a new list entry (default groupOfNames).")
    group_mail_attribute: str | None = Field(
        default=None, description="Attribute for a list's address (built from list_domain and the list "
                                  "template); unset stores none.")
    group_mail_object_classes: list[str] | None = Field(
        default=None, description="Object classes added to a list that gets an address.")
    placeholder_member: str | None = Field(
        default=None, description="Member value of a list without members (groupOfNames needs one); default "
                                  "cn=placeholder,<parent of groups_dn>. Use the refint overlay's refint_nothing.")
    pool_size: int = Field(default=8, ge=1, le=64, description="Connections (and threads) to the directory.")
    timeout: float = Field(default=5.0, gt=0, description="Seconds one directory operation may take.")
    connect_timeout: float = Field(default=3.0, gt=0, description="Seconds to open a connection.")
    deadline: float = Field(default=20.0, gt=0, description="Seconds one call may take, its retries included.")

    _tables = field_validator("attribute_map", "derived_attributes", "fallback_values", mode="before")(_table)
    _lists = field_validator("user_object_classes", "group_object_classes", "group_mail_object_classes",
                             mode="before")(_names)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.lower().startswith(("ldap://", "ldaps://")):
            raise ValueError("must start with ldap:// or ldaps://")
        return value

    @field_validator("bind_dn", "users_dn", "groups_dn", "placeholder_member")
    @classmethod
    def _check_dn(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if not dns.split(value):
                    raise ValueError("must not be empty")
            except dns.DnError as err:
                raise ValueError(str(err)) from None
        return value

    @field_validator("profile")
    @classmethod
    def _check_profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown profile (known: {', '.join(PROFILES)})")
        return value

    @model_validator(mode="after")
    def _check_whole(self) -> LdapSettings:
        if (self.bind_password is None) == (self.bind_password_file is None):
            raise ValueError("set one of bind_password and bind_password_file")
        if self.start_tls and self.url.lower().startswith("ldaps://"):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is TLS from the start")
        self.resolved_profile().check()
        return self

    def resolved_profile(self) -> Profile:
        """The chosen profile with this tenant's changes applied."""
        base = PROFILES[self.profile]
        attribute_map = {k: v for k, v in {**base.attribute_map, **self.attribute_map}.items() if v}
        fallbacks = {k: v for k, v in {**base.fallbacks, **self.fallback_values}.items()
                     if v and k.lower() in {t.lower() for t in attribute_map.values()}}
        derived = {k: v for k, v in {**base.derived, **self.derived_attributes}.items() if v}
        overrides: dict[str, Any] = {
            "attribute_map": MappingProxyType(attribute_map),
            "fallbacks": MappingProxyType(fallbacks),
            "derived": MappingProxyType(derived),
        }
        for name, value in (
            ("user_object_classes", self.user_object_classes), ("user_dn_template", self.user_dn_template),
            ("mail_attribute", self.mail_attribute), ("disable", self.disable),
            ("status_attribute", self.status_attribute), ("status_active", self.status_active_value),
            ("status_disabled", self.status_disabled_value), ("group_object_classes", self.group_object_classes),
            ("group_mail_attribute", self.group_mail_attribute),
            ("group_mail_object_classes", self.group_mail_object_classes),
        ):
            if value is not None:
                overrides[name] = tuple(value) if isinstance(value, list) else value
        return replace(base, **overrides)

    def password(self) -> str:
        if self.bind_password is not None:
            return self.bind_password.get_secret_value()
        assert self.bind_password_file is not None
        try:
            return self.bind_password_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ValueError(f"cannot read bind_password_file {self.bind_password_file}: {err.strerror}") from None

    def secret_values(self) -> Iterator[str]:
        yield from super().secret_values()
        if self.bind_password_file is not None:
            with contextlib.suppress(ValueError):
                yield self.password()

    def placeholder(self) -> str:
        if self.placeholder_member:
            return self.placeholder_member
        parent = dns.parent(self.groups_dn)
        return f"cn=placeholder,{parent}" if parent else "cn=placeholder"


def create(settings: LdapSettings, context: BackendContext) -> LdapAdapter:
    layout = Layout(
        profile=settings.resolved_profile(), users_dn=settings.users_dn, groups_dn=settings.groups_dn,
        placeholder_member=settings.placeholder(), list_domain=context.list_domain,
        list_address_template=context.list_address_template,
    )
    connection = ConnectionSettings(
        url=settings.url, bind_dn=settings.bind_dn, bind_password=settings.password(), start_tls=settings.start_tls,
        ca_file=settings.ca_file, tls_server_name=settings.tls_server_name, pool_size=settings.pool_size,
        timeout=settings.timeout, connect_timeout=settings.connect_timeout, deadline=settings.deadline,
    )
    return LdapAdapter(layout, connection)


def _endpoint(settings: LdapSettings) -> tuple[str, int]:
    url = urlsplit(settings.url)
    return url.hostname or "localhost", url.port or (636 if url.scheme.lower() == "ldaps" else 389)


def _relocate(settings: LdapSettings, host: str, port: int) -> LdapSettings:
    """The same directory reached at ``host:port`` (a proxy); TLS still checks the directory's own name."""
    url = urlsplit(settings.url)
    tls = url.scheme.lower() == "ldaps" or settings.start_tls
    server_name = settings.tls_server_name or (url.hostname if tls else None)
    moved = urlunsplit((url.scheme, f"{host}:{port}", url.path, url.query, url.fragment))
    return settings.model_copy(update={"url": moved, "tls_server_name": server_name})


PLUGIN = BackendPlugin(
    name="ldap", summary="An LDAP directory (OpenLDAP and alike): inetOrgPerson mailboxes, groupOfNames lists.",
    settings=LdapSettings, create=create, location=lambda s: s.url, endpoint=_endpoint, relocate=_relocate,
)
