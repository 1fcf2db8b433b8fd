"""The Modoboa client against a scripted server: its error shapes, what it retries, and how it waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import NotFound, RateLimited, Rejected, Unavailable
from adapters.modoboa.client import DomainMissing, FieldErrors, ModoboaClient, PageMissing
from adapters.modoboa.pacing import Rates
from adapters.retry import RetryPolicy

FAST = RetryPolicy(attempt_timeout=0.3, connect_timeout=0.2, deadline=2.0, max_attempts=4, backoff_initial=0.01,
                   backoff_max=0.02)
UNPACED = Rates(0, 0, 0)
SERVER_ERROR_PAGE = "<!doctype html><html><head><title>Server Error (500)</title></head><body><h1>Server Error " \
                    "(500)</h1></body></html>"


@dataclass
class Reply:
    status: int
    payload: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeModoboa:
    """Answers each request with the next scripted reply (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[tuple[str, str, str]] = []
        self.tokens: list[str] = []
        self.times: list[float] = []

    def add(self, status: int, payload: Any = None, **options: Any) -> None:
        self.replies.append(Reply(status, payload, **options))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, request.query_string))
        self.tokens.append(request.headers.get("Authorization", ""))
        self.times.append(time.monotonic())
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, content_type="text/html",
                                headers=reply.headers)
        if reply.payload is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.payload, status=reply.status, headers=reply.headers)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeModoboa, TestServer]]:
    script = FakeModoboa()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield script, server
    finally:
        await server.close()


@pytest.fixture
async def client(fake: tuple[FakeModoboa, TestServer]) -> AsyncIterator[ModoboaClient]:
    _, server = fake
    modoboa = ModoboaClient(str(server.make_url("/")), "tok3n", policy=FAST, rates=UNPACED)
    try:
        yield modoboa
    finally:
        await modoboa.close()


@pytest.fixture
def script(fake: tuple[FakeModoboa, TestServer]) -> FakeModoboa:
    return fake[0]


async def test_calls_go_below_api_v2_with_the_token(script: FakeModoboa, client: ModoboaClient) -> None:
    script.add(200, {"count": 0, "next": None, "results": []})
    assert await client.get("accounts", params={"search": "a@b.c"}) == {"count": 0, "next": None, "results": []}
    assert script.seen == [("GET", "/api/v2/accounts/", "search=a@b.c")]
    assert script.tokens == ["Token tok3n"]


async def test_a_base_url_with_the_api_prefix_is_the_same(fake: tuple[FakeModoboa, TestServer]) -> None:
    client = ModoboaClient(str(fake[1].make_url("/api/v2/")), "t", policy=FAST, rates=UNPACED)
    assert client.url(("aliases", "7")).path == "/api/v2/aliases/7/"


async def test_a_throttle_answer_is_waited_out_as_modoboa_says(script: FakeModoboa, client: ModoboaClient) -> None:
    script.add(429, {"detail": "Request was throttled. Expected available in 1 second."}, headers={"Retry-After": "1"})
    script.add(201, {"pk": 3, "username": "a@b.c"})
    assert await client.request("POST", ("accounts",), body={"username": "a@b.c"}) == {"pk": 3, "username": "a@b.c"}
    # A 429 is refused unprocessed: even a create is sent again, after the Retry-After.
    assert [s[0] for s in script.seen] == ["POST", "POST"]
    assert script.times[1] - script.times[0] >= 1.0
    assert (client.stats.rate_limited, client.stats.retries) == (1, 1)


async def test_a_throttle_that_outlasts_the_deadline_is_rate_limited(script: FakeModoboa,
                                                                     client: ModoboaClient) -> None:
    script.add(429, {"detail": "Request was throttled. Expected available in 7 seconds."},
               headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as limited:
        await client.request("PATCH", ("accounts", "4"), body={"is_active": False})
    assert limited.value.retry_after == 7
    assert "throttled" in limited.value.detail
    assert len(script.seen) == 1


async def test_a_server_error_page_after_a_create_may_have_been_applied(script: FakeModoboa,
                                                                        client: ModoboaClient) -> None:
    script.add(500, text=SERVER_ERROR_PAGE)
    with pytest.raises(Unavailable) as failed:
        await client.request("POST", ("aliases",), body={"address": "x@y.z", "recipients": ["a@y.z"]})
    assert failed.value.may_apply
    assert "HTML error page" in failed.value.detail
    assert len(script.seen) == 1  # never sent twice


async def test_a_server_error_page_on_a_patch_is_retried(script: FakeModoboa, client: ModoboaClient) -> None:
    script.add(500, text=SERVER_ERROR_PAGE)
    script.add(200, {"pk": 9, "address": "x@y.z", "recipients": ["a@y.z"], "enabled": True})
    reply = await client.request("PATCH", ("aliases", "9"), body={"recipients": ["a@y.z"], "enabled": True})
    assert reply["pk"] == 9
    assert len(script.seen) == 2


async def test_server_errors_until_the_end_are_unavailable_and_not_applied_twice(script: FakeModoboa,
                                                                                 client: ModoboaClient) -> None:
    script.add(500, text=SERVER_ERROR_PAGE)
    with pytest.raises(Unavailable) as failed:
        await client.request("PATCH", ("aliases", "9"), body={"enabled": False})
    assert not failed.value.may_apply  # the same absolute PATCH, however often it landed
    assert len(script.seen) == FAST.max_attempts


async def test_a_lost_answer_to_a_create_is_not_sent_again(script: FakeModoboa, client: ModoboaClient) -> None:
    script.add(201, {"pk": 1, "username": "a@b.c"}, delay=1.0)
    with pytest.raises(Unavailable) as failed:
        await client.request("POST", ("accounts",), body={"username": "a@b.c"})
    assert failed.value.may_apply
    assert len(script.seen) == 1


async def test_a_retried_delete_that_finds_nothing_is_done(script: FakeModoboa, client: ModoboaClient) -> None:
    script.add(204, delay=1.0)
    script.add(404, {"detail": "No User matches the given query."})
    assert await client.request("DELETE", ("accounts", "5")) is None
    assert len(script.seen) == 2


@pytest.mark.parametrize(("status", "payload", "error", "words"), [
    (400, {"username": ["Enter a valid email address."]}, FieldErrors, "username: Enter a valid email address."),
    (404, {"detail": "No Domain matches the given query."}, DomainMissing, "domain does not exist"),
    (400, {"address": ["Domain not found."]}, DomainMissing, "domain does not exist"),
    (404, {"detail": "Invalid page."}, PageMissing, "no such page"),
    (404, {"detail": "No User matches the given query."}, NotFound, "No User matches"),
    (404, {"error": "Local recipient ann@x.org not found"}, Rejected, "Local recipient ann@x.org not found"),
    (403, {"detail": "You do not have permission to perform this action."}, Rejected, "does not let"),
    (401, {"detail": "Invalid token."}, Unavailable, "refused the gateway's API token"),
])
async def test_verdicts_become_domain_errors_at_once(script: FakeModoboa, client: ModoboaClient, status: int,
                                                     payload: Any, error: type[Exception], words: str) -> None:
    script.add(status, payload)
    with pytest.raises(error) as raised:
        await client.request("POST", ("accounts",), body={})
    assert words in str(raised.value)
    assert len(script.seen) == 1
    if isinstance(raised.value, Rejected):
        assert raised.value.status == (403 if status == 403 else 400)


async def test_field_errors_keep_every_message(script: FakeModoboa, client: ModoboaClient) -> None:
    script.add(400, {"username": ["This username is already used."], "password": ["Too short.", "Too common."]})
    with pytest.raises(FieldErrors) as raised:
        await client.request("POST", ("accounts",), body={})
    assert raised.value.says("username", "already used")
    assert not raised.value.says("password", "already used")
    assert raised.value.reason == "username: This username is already used.; password: Too short. Too common."


async def test_an_html_page_where_the_api_should_be_is_a_configuration_problem(script: FakeModoboa,
                                                                                client: ModoboaClient) -> None:
    script.add(404, text="<html><title>Sorry</title>The requested page does not exist.</html>")
    with pytest.raises(Unavailable) as raised:
        await client.get("accounts")
    assert "check the Modoboa URL" in raised.value.detail


async def test_an_unreachable_modoboa_is_unavailable_and_nothing_applied() -> None:
    client = ModoboaClient("http://127.0.0.1:9", "t", policy=FAST, rates=UNPACED)
    try:
        with pytest.raises(Unavailable) as raised:
            await client.request("POST", ("accounts",), body={})
    finally:
        await client.close()
    assert not raised.value.may_apply
    assert "cannot connect" in raised.value.detail


async def test_a_call_that_cannot_fit_the_throttle_in_time_is_not_sent(fake: tuple[FakeModoboa, TestServer]) -> None:
    script, server = fake
    script.add(201, {"pk": 1, "username": "a@b.c"})
    client = ModoboaClient(str(server.make_url("/")), "t", policy=FAST, rates=Rates(0, 1, 0))
    try:
        await client.request("POST", ("accounts",), body={}, deadline=0.5)
        with pytest.raises(RateLimited) as limited:
            await client.request("POST", ("accounts",), body={}, deadline=0.5)
    finally:
        await client.close()
    assert len(script.seen) == 1
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1.0
    assert not limited.value.may_apply
