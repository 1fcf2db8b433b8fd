"""Seeding and sequence helpers (aiohttp client, run from the harness process on the load core)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import aiohttp

from bench.scenarios import filter_path, group_body, member_add_body, user_body

T = TypeVar("T")
SCIM_CT = "application/scim+json"


class Http:
    """A small SCIM client over one aiohttp session."""

    def __init__(self, url: str, token: str, base: str, *, limit: int = 64) -> None:
        self.url = url.rstrip("/")
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_CT}
        self._limit = limit
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Http:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._limit), timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, method: str, path: str, body: Any = None, expect: Iterable[int] = (200, 201, 204)
                   ) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.request(method, self.url + path, json=body, headers=self.headers) as resp:
            data = await resp.json(content_type=None) if resp.status != 204 else None
            if resp.status not in set(expect):
                raise RuntimeError(f"{method} {path} -> {resp.status}: {str(data)[:400]}")
            return resp.status, data

    async def create_user(self, name: str, ext: str) -> str:
        _, data = await self.call("POST", f"{self.base}/Users", user_body(name, ext), expect=(201,))
        return str(data["id"])

    async def create_group(self, name: str, ext: str, microsoft_urn: bool = True) -> str:
        body = group_body(name, ext, microsoft_urn)
        _, data = await self.call("POST", f"{self.base}/Groups", body, expect=(201,))
        return str(data["id"])

    async def filter_users(self, name: str) -> int:
        _, data = await self.call("GET", filter_path(self.base, "Users", "userName", name), expect=(200,))
        return int(data["totalResults"])

    async def filter_groups(self, name: str) -> int:
        path = filter_path(self.base, "Groups", "displayName", name, extra="excludedAttributes=members&")
        _, data = await self.call("GET", path, expect=(200,))
        return int(data["totalResults"])

    async def add_members(self, group_id: str, user_ids: Sequence[str]) -> int:
        status, _ = await self.call("PATCH", f"{self.base}/Groups/{group_id}", member_add_body(user_ids),
                                    expect=(200, 204))
        return status


async def bounded(jobs: Sequence[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    """Run ``jobs`` with at most ``concurrency`` in flight, results in order."""
    results: list[Any] = [None] * len(jobs)
    cursor = 0

    async def worker() -> None:
        nonlocal cursor
        while cursor < len(jobs):
            index = cursor
            cursor += 1
            results[index] = await jobs[index]()

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(jobs))))))
    return results


def seed_users(url: str, token: str, base: str, names: Sequence[str], concurrency: int = 16) -> list[str]:
    async def go() -> list[str]:
        async with Http(url, token, base, limit=concurrency) as http:
            def job(name: str) -> Callable[[], Awaitable[str]]:
                return lambda: http.create_user(name, "ext-" + name)
            return await bounded([job(n) for n in names], concurrency)
    return asyncio.run(go())


def seed_groups(url: str, token: str, base: str, names: Sequence[str], concurrency: int = 16,
                microsoft_urn: bool = True) -> list[str]:
    async def go() -> list[str]:
        async with Http(url, token, base, limit=concurrency) as http:
            def job(name: str) -> Callable[[], Awaitable[str]]:
                return lambda: http.create_group(name, "ext-" + name, microsoft_urn)
            return await bounded([job(n) for n in names], concurrency)
    return asyncio.run(go())


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.json(content_type=None)


async def post_json(url: str, body: Any) -> Any:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return await resp.json(content_type=None)


def preflight(url: str, token: str, method: str, path: str, body: bytes | None) -> tuple[int, str]:
    """One request as the load generator would send it: its status and the start of its body."""
    async def go() -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_CT}
        async with aiohttp.ClientSession() as session, session.request(
                method, url.rstrip("/") + path, data=body, headers=headers) as resp:
            return resp.status, (await resp.text())[:300]
    return asyncio.run(go())
