"""The ldap backend's settings: from environment variables and TOML, checked before any I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.ldap.plugin import LdapSettings
from gateway.backends import BackendSettingsError, options_from_env, plugin, validate_options
from gateway.config import load_settings

REQUIRED = {
    "url": "ldap://127.0.0.1:3899", "bind_dn": "cn=gw,ou=services,dc=example,dc=org", "bind_password": "pw",
    "users_dn": "ou=people,dc=example,dc=org", "groups_dn": "ou=groups,dc=example,dc=org",
}


def _settings(**overrides: Any) -> LdapSettings:
    return LdapSettings.model_validate({**REQUIRED, **overrides})


def test_environment_variables_give_every_setting_including_tables() -> None:
    environ = {f"SCIM_GATEWAY_LDAP_{k.upper()}": v for k, v in REQUIRED.items()}
    environ["SCIM_GATEWAY_LDAP_ATTRIBUTE_MAP"] = '{"title": "title"}'
    environ["SCIM_GATEWAY_LDAP_USER_OBJECT_CLASSES"] = "inetOrgPerson, mailUser"
    backend = plugin("ldap")
    settings = validate_options(backend, options_from_env(backend, environ), "env")
    assert isinstance(settings, LdapSettings)
    profile = settings.resolved_profile()
    assert profile.attribute_map["title"] == "title" and profile.attribute_map["name.familyName"] == "sn"
    assert profile.user_object_classes == ("inetOrgPerson", "mailUser")
    assert list(settings.secret_values()) == ["pw"]
    assert settings.placeholder() == "cn=placeholder,dc=example,dc=org"


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"url": "http://x"}, "SCIM_GATEWAY_LDAP_URL"),
        ({"profile": "zimbra"}, "SCIM_GATEWAY_LDAP_PROFILE"),
        ({"user_dn_template": "uid={nickname}"}, "{nickname}"),
        ({"user_dn_template": "uid={mail},ou=x"}, "one RDN"),
        ({"attribute_map": {"emails": "mail"}}, "cannot be mapped"),
        ({"attribute_map": {"title": "mail"}}, "managed by the adapter"),
        ({"attribute_map": {"title": "sn"}}, "same LDAP attribute"),
        ({"bind_password": None}, "bind_password_file"),
        ({"users_dn": "not a dn"}, "SCIM_GATEWAY_LDAP_USERS_DN"),
        ({"start_tls": True, "url": "ldaps://x"}, "start_tls"),
        ({"pool_size": 0}, "SCIM_GATEWAY_LDAP_POOL_SIZE"),
    ],
)
def test_wrong_settings_are_named(overrides: dict[str, Any], names: str) -> None:
    options = {k: v for k, v in {**REQUIRED, **overrides}.items() if v is not None}
    with pytest.raises(BackendSettingsError) as wrong:
        validate_options(plugin("ldap"), options, "env")
    assert names in str(wrong.value)


def test_a_missing_family_name_fallback_follows_the_map() -> None:
    moved = _settings(attribute_map={"name.familyName": "surname"}).resolved_profile()
    assert "sn" not in moved.fallbacks  # nothing maps to sn any more, so no fallback for it
    assert _settings().resolved_profile().fallbacks == {"sn": "{mail}"}


def test_a_tenant_in_toml(tmp_path: Path) -> None:
    secret = tmp_path / "bind-password"
    secret.write_text("from-a-file\n")
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[tenants.acme]
token_hashes = ["{'a' * 64}"]

[tenants.acme.backend]
adapter = "ldap"
url = "ldaps://ldap.example.org"
ca_file = "/etc/ssl/directory-ca.pem"
bind_dn = "cn=scim-gateway,ou=services,dc=example,dc=org"
bind_password_file = "{secret}"
users_dn = "ou=people,dc=example,dc=org"
groups_dn = "ou=groups,dc=example,dc=org"
profile = "mailuser"
user_dn_template = "mail={{mail}}"

[tenants.acme.backend.attribute_map]
title = "title"
""")
    settings = load_settings(config)
    options = settings.tenants["acme"].backend.options
    parsed = LdapSettings.model_validate(options)
    assert parsed.password() == "from-a-file"
    assert parsed.resolved_profile().attribute_map["title"] == "title"
    assert list(parsed.secret_values()) == ["from-a-file"]
