"""Retry, timeout and error-mapping behaviour of the Cleanmail HTTP client."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import AlreadyExists, NotFound, RateLimited, Rejected, Unavailable
from adapters.cleanmail.client import CleanmailClient
from adapters.cleanmail.mock import MOCK_KEY, MockServer
from adapters.cleanmail.mock_faults import FaultConfig
from adapters.retry import RetryPolicy, parse_retry_after
from tests.cleanmail.conftest import API_KEY, DOMAIN, make_app

FAST = RetryPolicy(attempt_timeout=0.3, deadline=1.5, max_attempts=4, backoff_initial=0.01, backoff_max=0.02)
ClientFactory = Callable[..., Awaitable[tuple[CleanmailClient, MockServer]]]


@dataclass
class Reply:
    status: int
    payload: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    disconnect: bool = False


class Script:
    """Answers requests from a queue of replies; the last one repeats when ``repeat`` is set."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.repeat_last = False
        self.seen: list[str] = []

    def add(self, status: int, payload: Any = None, *, repeat: bool = False, **options: Any) -> None:
        self.replies.append(Reply(status, payload, **options))
        self.repeat_last = repeat

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(f"{request.method} {request.path}")
        reply = self.replies[0] if len(self.replies) == 1 and self.repeat_last else self.replies.pop(0)
        if reply.disconnect:
            assert request.transport is not None
            request.transport.close()
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, headers=reply.headers)
        if reply.payload is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.payload, status=reply.status, headers=reply.headers)


Scripted = tuple[CleanmailClient, Script]


@pytest.fixture
async def scripted(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[Scripted]:
    """A client on a server that plays back scripted replies."""
    script = Script()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    server = await aiohttp_server(app)
    client = CleanmailClient(str(server.make_url("/")), API_KEY, policy=FAST)
    yield client, script
    await client.close()


@pytest.fixture
async def real(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[ClientFactory]:
    """A client on the real mock app, with a policy of the test's choosing."""
    clients: list[CleanmailClient] = []

    async def start(policy: RetryPolicy = FAST) -> tuple[CleanmailClient, MockServer]:
        app = make_app()
        server = await aiohttp_server(app)
        client = CleanmailClient(str(server.make_url("/api/v1")), API_KEY, policy=policy)
        clients.append(client)
        return client, app[MOCK_KEY]

    yield start
    for client in clients:
        await client.close()


def _configure(server: MockServer, **faults: Any) -> None:
    server.faults.configure(FaultConfig.from_json(faults))


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = parse_retry_after(later)
    assert parsed is not None and 28 <= parsed <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_base_url_gets_the_api_prefix_once() -> None:
    for base in ("http://h:1", "http://h:1/", "http://h:1/api/v1", "http://h:1/api/v1/"):
        client = CleanmailClient(base, "k")
        assert str(client.url("mailboxes", "a+b@x.ch")) == "http://h:1/api/v1/mailboxes/a+b@x.ch"
    assert str(CleanmailClient("http://h/x", "k").url("lists")) == "http://h/x/api/v1/lists"
    assert "secret-123" not in repr(CleanmailClient("http://h", "secret-123"))


async def test_rate_limit_waits_for_retry_after(real: ClientFactory) -> None:
    client, server = await real(RetryPolicy(attempt_timeout=1, deadline=4, backoff_initial=0.01))
    _configure(server, rate_limit_per_s=1)
    await client.get("mailboxes")
    started = time.monotonic()
    await client.get("mailboxes")
    assert time.monotonic() - started >= 0.95  # the mock said "Retry-After: 1"
    assert client.stats.rate_limited == 1 and client.stats.retries == 1
    assert server.stats.faults["rate_limited"] == 1


async def test_rate_limit_past_the_deadline_raises_at_once(scripted: Scripted) -> None:
    client, script = scripted
    script.add(429, {}, headers={"Retry-After": "30"}, repeat=True)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        await client.get("mailboxes")
    assert time.monotonic() - started < 0.5
    assert isinstance(caught.value, RateLimited) and caught.value.retry_after == 30 and not caught.value.may_apply
    assert client.stats.attempts == 1


async def test_rate_limit_with_http_date_and_for_posts(scripted: Scripted) -> None:
    client, script = scripted
    script.add(429, {}, headers={"Retry-After": email.utils.formatdate(time.time() - 1, usegmt=True)})
    script.add(201, {"address": f"a@{DOMAIN}"})
    # A 429 means "not processed", so even a create is sent again.
    reply = await client.request("POST", ("mailboxes",), body={"address": f"a@{DOMAIN}"})
    assert reply["address"] == f"a@{DOMAIN}" and client.stats.retries == 1
    assert script.seen == ["POST /api/v1/mailboxes"] * 2


async def test_503_is_retried_for_reads(real: ClientFactory) -> None:
    client, server = await real(RetryPolicy(attempt_timeout=0.5, deadline=5, max_attempts=10, backoff_initial=0.005))
    _configure(server, error_rate=0.5, seed=11)
    for _ in range(15):
        await client.get("mailboxes")
    assert server.stats.faults["error"] > 0
    assert client.stats.retries == server.stats.faults["error"]
    assert client.stats.attempts == server.stats.calls["GET /api/v1/mailboxes"]


async def test_503_past_the_budget_is_transient(scripted: Scripted) -> None:
    client, script = scripted
    script.add(503, headers={"Retry-After": "0"}, repeat=True)
    with pytest.raises(Unavailable) as caught:
        await client.get("mailboxes")
    assert client.stats.attempts == FAST.max_attempts
    assert not isinstance(caught.value, RateLimited) and not caught.value.may_apply
    assert caught.value.retry_after == 0


async def test_put_is_retried_like_a_read(scripted: Scripted) -> None:
    client, script = scripted
    script.add(502, text="bad gateway")
    script.add(200, {"address": f"a@{DOMAIN}"})
    await client.request("PUT", ("mailboxes", f"a@{DOMAIN}"), body={})
    assert client.stats.retries == 1


@pytest.mark.parametrize("fault", ["error_rate", "error_after_commit_rate"])
async def test_create_is_not_retried_blindly(real: ClientFactory, fault: str) -> None:
    client, server = await real()
    _configure(server, **{fault: 1.0})
    with pytest.raises(Unavailable) as caught:
        await client.request("POST", ("mailboxes",), body={"address": f"a@{DOMAIN}"})
    assert caught.value.may_apply
    assert server.stats.calls["POST /api/v1/mailboxes"] == 1
    assert client.stats.ambiguous == 1
    committed = [m.address for m in server.store.mailboxes.values()]
    assert committed == ([f"a@{DOMAIN}"] if fault == "error_after_commit_rate" else [])


async def test_timeouts_retry_reads_within_the_deadline(real: ClientFactory) -> None:
    policy = RetryPolicy(attempt_timeout=0.2, deadline=0.7, max_attempts=10, backoff_initial=0.01)
    client, server = await real(policy)
    _configure(server, timeout_rate=1.0, timeout_hang_s=30)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        await client.get("mailboxes")
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 1.0
    assert not caught.value.may_apply
    assert client.stats.timeouts >= 3
    server.release_hung()


async def test_timed_out_create_is_ambiguous(real: ClientFactory) -> None:
    client, server = await real(RetryPolicy(attempt_timeout=0.2, deadline=3))
    _configure(server, timeout_rate=1.0, timeout_hang_s=30)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        await client.request("POST", ("mailboxes",), body={"address": f"a@{DOMAIN}"})
    assert time.monotonic() - started < 0.5
    assert caught.value.may_apply and client.stats.attempts == 1
    server.release_hung()


async def test_deadline_caps_many_retries(scripted: Scripted) -> None:
    fast, script = scripted
    script.add(503, repeat=True)
    policy = RetryPolicy(deadline=0.3, max_attempts=1000, backoff_initial=0.05)
    client = CleanmailClient(str(fast.base_url), API_KEY, policy=policy)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await client.get("mailboxes")
    finally:
        await client.close()
    assert time.monotonic() - started < 0.45
    assert 2 <= client.stats.attempts < 1000


async def test_connection_refused_is_retried_even_for_creates() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CleanmailClient(f"http://127.0.0.1:{port}", API_KEY, policy=FAST)
    try:
        with pytest.raises(Unavailable) as caught:
            await client.request("POST", ("mailboxes",), body={})
    finally:
        await client.close()
    assert not caught.value.may_apply
    assert client.stats.attempts == FAST.max_attempts


async def test_error_body_on_200_is_a_failure(scripted: Scripted) -> None:
    client, script = scripted
    script.add(200, {"status": "error", "code": "invalid_value", "message": "first_name is too long"})
    with pytest.raises(Rejected) as caught:
        await client.request("POST", ("mailboxes",), body={})
    assert caught.value.scim_type == "invalidValue" and "first_name is too long" in caught.value.detail
    script.add(200, {"status": "error", "code": "object_exists", "message": "taken", "existing": f"a@{DOMAIN}"})
    with pytest.raises(AlreadyExists) as dup:
        await client.request("POST", ("mailboxes",), body={})
    assert dup.value.existing_key == f"a@{DOMAIN}"
    assert client.stats.retries == 0


@pytest.mark.parametrize(
    ("status", "payload", "kind", "scim_type"),
    [
        (404, {"status": "error", "code": "not_found", "message": "gone"}, NotFound, None),
        (422, {"status": "error", "code": "domain_unknown", "message": "domain x"}, Rejected, "invalidValue"),
        (409, {"status": "error", "code": "address_in_use", "message": "alias"}, Rejected, "uniqueness"),
        (400, {"status": "error", "code": "address_immutable", "message": "no"}, Rejected, "mutability"),
        (400, {"status": "error", "code": "weird", "message": "no"}, Rejected, "invalidValue"),
        (405, {}, Rejected, "invalidValue"),
    ],
)
async def test_error_bodies_with_real_statuses(
    scripted: Scripted, status: int, payload: dict[str, Any], kind: type[Exception], scim_type: str | None
) -> None:
    client, script = scripted
    script.add(status, payload)
    with pytest.raises(kind) as caught:
        await client.request("POST", ("mailboxes",), body={})
    assert getattr(caught.value, "scim_type", None) == scim_type
    assert client.stats.attempts == 1


async def test_empty_object_is_not_found_only_where_flagged(scripted: Scripted) -> None:
    client, script = scripted
    script.add(200, {}, repeat=True)
    with pytest.raises(NotFound):
        await client.request("GET", ("mailboxes", "x@y.ch"), empty_is_not_found=True)
    assert await client.get("mailboxes") == {}


async def test_plain_404_means_a_wrong_base_url(scripted: Scripted) -> None:
    client, script = scripted
    script.add(404, text="404: Not Found", repeat=True)
    with pytest.raises(Unavailable) as caught:
        await client.get("mailboxes")
    assert "base URL" in caught.value.detail


async def test_bad_api_key_is_transient_and_not_retried(scripted: Scripted) -> None:
    client, script = scripted
    script.add(401, {"status": "error", "code": "unauthorized", "message": "no"}, repeat=True)
    with pytest.raises(Unavailable) as caught:
        await client.get("mailboxes")
    assert "API key" in caught.value.detail and client.stats.attempts == 1


async def test_unreadable_reply_is_retried_for_reads(scripted: Scripted) -> None:
    client, script = scripted
    script.add(200, text="<html>proxy</html>")
    script.add(200, {"items": []})
    assert await client.get("mailboxes") == {"items": []}


async def test_retried_delete_that_finds_nothing_succeeded(scripted: Scripted) -> None:
    client, script = scripted
    gone = {"status": "error", "code": "not_found", "message": "gone"}
    script.add(503)
    script.add(200, gone)
    assert await client.request("DELETE", ("mailboxes", f"a@{DOMAIN}")) == {"status": "ok"}
    script.add(200, gone)
    with pytest.raises(NotFound):
        await client.request("DELETE", ("mailboxes", f"a@{DOMAIN}"))


async def test_connection_reset_on_create_is_ambiguous(scripted: Scripted) -> None:
    client, script = scripted
    script.add(201, {"address": f"a@{DOMAIN}"}, disconnect=True)
    with pytest.raises(Unavailable) as caught:
        await client.request("POST", ("mailboxes",), body={})
    assert caught.value.may_apply and client.stats.attempts == 1


async def test_api_key_is_never_logged(real: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    client, server = await real()
    _configure(server, error_rate=1.0)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(Unavailable):
            await client.get("mailboxes")
        await asyncio.sleep(0)
    assert "attempt 2" in caplog.text
    assert API_KEY not in caplog.text
