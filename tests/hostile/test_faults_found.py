"""Each fault found by sending hostile and odd requests, pinned: a clean SCIM answer, never a 500."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.base import Filter, Page, UserRecord
from adapters.memory import MemoryAdapter
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings

ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
Client = TestClient[Any, Any]


async def _client(aiohttp_client: ClientFactory, adapter: Any = None, **settings: Any) -> Client:
    return await aiohttp_client(create_app(make_settings(**settings), adapter=adapter), headers=AUTH)


async def _error(resp: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/scim+json"
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["schemas"] == [ERROR_URN]
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


@pytest.fixture
async def scim(aiohttp_client: ClientFactory, tmp_path: Path) -> Client:
    # SQLite state, as users run it: the lone surrogate used to break its queries.
    return await _client(aiohttp_client, state=f"sqlite:///{tmp_path / 'state.sqlite3'}")


async def test_gzip_header_with_a_body_that_is_not_gzip_is_400(scim: Client) -> None:
    resp = await scim.post(f"{BASE}/Users", data=b'{"userName": "a@x.ch"}',
                           headers={"Content-Encoding": "gzip", "Content-Type": "application/scim+json"})
    body = await _error(resp, 400, "invalidSyntax")
    assert "content-encoding" in body["detail"].lower()


async def test_gzip_and_deflate_bodies_are_read(scim: Client) -> None:
    for encoding, data in (("gzip", gzip.compress(b'{"userName": "gz@x.ch"}')),
                           ("deflate", zlib.compress(b'{"userName": "df@x.ch"}'))):
        resp = await scim.post(f"{BASE}/Users", data=data,
                               headers={"Content-Encoding": encoding, "Content-Type": "application/scim+json"})
        assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("encoding", ["compress", "gzip, gzip", "x-unknown"])
async def test_unsupported_content_encoding_is_415(scim: Client, encoding: str) -> None:
    resp = await scim.post(f"{BASE}/Users", data=b'{"userName": "a@x.ch"}',
                           headers={"Content-Encoding": encoding, "Content-Type": "application/scim+json"})
    await _error(resp, 415)


@pytest.mark.parametrize("start", ["99999999999999999999999", "9223372036854775808", "-99999999999999999999"])
async def test_any_start_index_gives_a_clean_answer(scim: Client, start: str) -> None:
    await scim.post(f"{BASE}/Users", json={"userName": "one@x.ch"})
    for query in (f"startIndex={start}", f"startIndex={start}&count=5", f"startIndex={start}&filter=userName pr"):
        resp = await scim.get(f"{BASE}/Users?{query}")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["totalResults"] == 1
        assert body["Resources"] == [] or start.startswith("-")


async def test_lone_surrogate_in_a_filter_is_400_invalid_value(scim: Client) -> None:
    for escaped in ('\\ud800', '\\udfff', '\\u0000'):
        resp = await scim.get(f"{BASE}/Users", params={"filter": f'userName eq "a{escaped}b@x.ch"'})
        await _error(resp, 400, "invalidValue")


async def test_nul_in_a_query_parameter_or_the_path_is_400(scim: Client) -> None:
    await _error(await scim.get(f"{BASE}/Users?filter=userName%20eq%20%22a%00b%22"), 400, "invalidValue")
    await _error(await scim.get(f"{BASE}/Users?attributes=user%00Name"), 400, "invalidValue")
    await _error(await scim.get(f"{BASE}/Users/abc%00def"), 400, "invalidValue")


async def test_nul_and_lone_surrogates_in_a_body_are_400_invalid_value(scim: Client) -> None:
    for raw in ('{"userName": "a\\u0000@x.ch"}', '{"userName": "a@x.ch", "title": "\\ud800"}',
                '{"userName": "a@x.ch", "ti\\u0000tle": "x"}'):
        resp = await scim.post(f"{BASE}/Users", data=raw, headers={"Content-Type": "application/scim+json"})
        await _error(resp, 400, "invalidValue")
    listing = await (await scim.get(f"{BASE}/Users")).json()
    assert listing["totalResults"] == 0


async def test_deeply_nested_json_is_400_invalid_syntax(scim: Client) -> None:
    deep = '{"userName": "a@x.ch", "title": ' + "[" * 1000 + "]" * 1000 + "}"
    await _error(await scim.post(f"{BASE}/Users", data=deep, headers={"Content-Type": "application/scim+json"}),
                 400, "invalidSyntax")
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "add", "path": "title", "value": json.loads("[" * 60 + "]" * 60)}]}
    created = await (await scim.post(f"{BASE}/Users", json={"userName": "b@x.ch"})).json()
    await _error(await scim.patch(f"{BASE}/Users/{created['id']}", json=patch), 400, "invalidSyntax")


async def test_oversized_strings_arrays_and_attribute_lists_are_refused(scim: Client) -> None:
    long = {"userName": "a@x.ch", "title": "x" * 20_000}
    await _error(await scim.post(f"{BASE}/Users", json=long), 400, "invalidValue")
    many = {"displayName": "Big", "members": [{"value": str(i)} for i in range(10_001)]}
    await _error(await scim.post(f"{BASE}/Groups", json=many), 400, "tooMany")
    names = ",".join(f"a{i}" for i in range(101))
    await _error(await scim.get(f"{BASE}/Users?attributes={names}"), 400, "tooMany")


class SlowAdapter(MemoryAdapter):
    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        await asyncio.sleep(5)
        return await super().find_users(filter, offset, limit)


async def test_a_request_that_runs_too_long_is_503_with_retry_after(aiohttp_client: ClientFactory) -> None:
    client = await _client(aiohttp_client, SlowAdapter(), request_timeout=0.2)
    resp = await client.get(f'{BASE}/Users?filter=userName eq "a@x.ch"')
    await _error(resp, 503)
    assert int(resp.headers["Retry-After"]) >= 1
