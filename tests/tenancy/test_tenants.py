"""Tenant isolation, domains, per-tenant limits and configuration errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from adapters.cleanmail.adapter import CleanmailSettings
from gateway.config import Settings, load_settings
from gateway.http.app import create_app
from gateway.tenants import hash_token
from tests.conftest import BASE, ClientFactory

TOKEN_A = "token-of-tenant-a-0123456789"
TOKEN_B = "token-of-tenant-b-0123456789"
Client = TestClient[Any, Any]


def two_tenants(**extra_a: Any) -> Settings:
    return Settings(
        state="memory",
        tenants={
            "a": {"token_hashes": [hash_token(TOKEN_A)], "domains": ["a.example"], **extra_a},
            "b": {"token_hashes": ["sha256:" + hash_token(TOKEN_B)], "domains": ["b.example"]},
        },
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_app(two_tenants()))


async def _create_user(client: Client, token: str, user_name: str) -> dict[str, Any]:
    resp = await client.post(f"{BASE}/Users", json={"userName": user_name}, headers=auth(token))
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_token_selects_the_tenant_and_ids_do_not_cross(client: Client) -> None:
    user = await _create_user(client, TOKEN_A, "alice@a.example")
    mine = await client.get(f"{BASE}/Users/{user['id']}", headers=auth(TOKEN_A))
    assert mine.status == 200
    # Tenant B guessing tenant A's id sees nothing, can change nothing, can delete nothing.
    assert (await client.get(f"{BASE}/Users/{user['id']}", headers=auth(TOKEN_B))).status == 404
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert (await client.patch(f"{BASE}/Users/{user['id']}", json=patch, headers=auth(TOKEN_B))).status == 404
    assert (await client.delete(f"{BASE}/Users/{user['id']}", headers=auth(TOKEN_B))).status == 404
    again = await client.get(f"{BASE}/Users/{user['id']}", headers=auth(TOKEN_A))
    assert (await again.json())["active"] is True


async def test_filters_and_lists_never_leak(client: Client) -> None:
    await _create_user(client, TOKEN_A, "alice@a.example")
    await _create_user(client, TOKEN_B, "bob@b.example")
    for query in ('?filter=userName eq "alice@a.example"', "", '?filter=userName sw "a"'):
        resp = await client.get(f"{BASE}/Users{query}", headers=auth(TOKEN_B))
        names = [r["userName"] for r in (await resp.json())["Resources"]]
        assert "alice@a.example" not in names


async def test_group_members_from_another_tenant_are_not_added(client: Client) -> None:
    alice = await _create_user(client, TOKEN_A, "alice@a.example")
    resp = await client.post(f"{BASE}/Groups", json={"displayName": "B team", "members": [{"value": alice["id"]}]},
                             headers=auth(TOKEN_B))
    assert resp.status == 201
    assert (await resp.json())["members"] == []


async def test_same_user_name_in_two_tenants_are_two_users(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_app(Settings(state="memory", tenants={
        "a": {"token_hashes": [hash_token(TOKEN_A)]}, "b": {"token_hashes": [hash_token(TOKEN_B)]},
    })))
    first = await _create_user(client, TOKEN_A, "same@shared.example")
    second = await _create_user(client, TOKEN_B, "same@shared.example")
    assert first["id"] != second["id"]


async def test_user_name_outside_the_tenant_domains_is_rejected(client: Client) -> None:
    resp = await client.post(f"{BASE}/Users", json={"userName": "mallory@b.example"}, headers=auth(TOKEN_A))
    assert resp.status == 400
    body = await resp.json()
    assert body["scimType"] == "invalidValue"
    assert "a.example" in body["detail"]
    user = await _create_user(client, TOKEN_A, "alice@A.Example")
    rename = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "replace", "path": "userName", "value": "alice@elsewhere.example"}]}
    resp = await client.patch(f"{BASE}/Users/{user['id']}", json=rename, headers=auth(TOKEN_A))
    assert resp.status == 400


async def test_wrong_token_is_401(client: Client) -> None:
    resp = await client.get(f"{BASE}/Users", headers=auth("not-a-tenant-token"))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_rate_limit_is_per_tenant(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_app(two_tenants(rate_limit_per_s=1)))
    statuses = [(await client.get(f"{BASE}/Users", headers=auth(TOKEN_A))).status for _ in range(5)]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses
    limited = await client.get(f"{BASE}/Users", headers=auth(TOKEN_A))
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    # The other tenant is untouched.
    assert (await client.get(f"{BASE}/Users", headers=auth(TOKEN_B))).status == 200


def test_config_file_with_tenants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY", "secret-from-env")
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[gateway]
state = "memory"
port = 9000

[tenants.acme]
token_hashes = ["sha256:{hash_token(TOKEN_A)}"]
domains = ["acme.example"]
rate_limit_per_s = 25

[tenants.acme.backend]
adapter = "cleanmail"
url = "http://127.0.0.1:8081"
api_key_env = "ACME_KEY"
list_domain = "acme.example"
""")
    settings = load_settings(config)
    assert settings.port == 9000
    tenant = settings.effective_tenants()["acme"]
    assert tenant.domains == ["acme.example"]
    assert CleanmailSettings.model_validate(tenant.backend.options).resolve_api_key() == "secret-from-env"
    # Environment variables win over the file.
    monkeypatch.setenv("SCIM_GATEWAY_PORT", "9100")
    assert load_settings(config).port == 9100


@pytest.mark.parametrize(
    ("tenants", "fragment"),
    [
        ({"x": {"token_hashes": ["abc"]}}, "64 hex digits"),
        ({"x": {"token_hashes": [hash_token("t")], "domains": ["not a domain"]}}, "not a mail domain"),
        ({"x": {"token_hashes": [hash_token("t")], "backend": {"adapter": "cleanmail", "urll": "http://x"}}},
         "urll: the cleanmail backend has no such setting"),
        ({"x": {"token_hashes": [hash_token("t")], "backend": {"adapter": "cleanmail", "deadline": 0}}},
         "deadline: Input should be greater than 0"),
        ({"x": {"token_hashes": [hash_token("t")], "backend": {"adapter": "exchange"}}},
         "no backend named 'exchange' is installed"),
        ({"x": {"token_hashes": [hash_token("t")]}, "y": {"token_hashes": [hash_token("t")]}}, "share a token"),
        ({"x": {"token_hashes": [hash_token("t")], "backend": {"adapter": "cleanmail", "api_key": "k",
                                                               "api_key_env": "K"}}}, "only one of"),
    ],
)
def test_config_errors_name_the_problem(tenants: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(state="memory", tenants=tenants)
    assert fragment in str(info.value)


def test_no_tenant_at_all_is_an_error() -> None:
    with pytest.raises(ValueError, match="no tenant"):
        Settings(state="memory").effective_tenants()


def test_quick_start_backend_settings_from_toml_and_environment(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nbackend = "jsonfile"\nstate = "memory"\n\n'
                      f'[gateway.backend_options]\npath = "{tmp_path / "from-file.json"}"\n')
    monkeypatch.setenv("SCIM_GATEWAY_TOKEN", "t" * 24)
    tenant = load_settings(config).effective_tenants()["default"]
    assert tenant.backend.adapter == "jsonfile"
    assert tenant.backend.options == {"path": str(tmp_path / "from-file.json")}
    # A SCIM_GATEWAY_<BACKEND>_<SETTING> variable wins over the file.
    monkeypatch.setenv("SCIM_GATEWAY_JSONFILE_PATH", str(tmp_path / "from-env.json"))
    assert load_settings(config).effective_tenants()["default"].backend.options == {
        "path": str(tmp_path / "from-env.json")}
    monkeypatch.setenv("SCIM_GATEWAY_JSONFILE_PATH_TYPO", "x")  # not a setting of the backend: ignored
    monkeypatch.setenv("SCIM_GATEWAY_JSONFILE_PATH", "")
    with pytest.raises(ValidationError, match="SCIM_GATEWAY_JSONFILE_PATH"):
        monkeypatch.delenv("SCIM_GATEWAY_JSONFILE_PATH")
        config.write_text('[gateway]\nbackend = "jsonfile"\nstate = "memory"\n')
        load_settings(config).effective_tenants()
