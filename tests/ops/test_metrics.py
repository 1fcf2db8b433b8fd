"""GET /metrics: request, backend, store and back-pressure metrics in Prometheus text format."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from adapters.base import AlreadyExists, BackendError, NotFound, RateLimited, Rejected, Unavailable
from adapters.cleanmail.mock_faults import FaultConfig
from gateway.config import TenantSettings
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.provisioning.guard import BackendGuard
from gateway.tenants import hash_token
from tests.conftest import BASE, make_settings
from tests.ops.conftest import GROUP_URN, PATCH_URN, Client, GatewayFactory, MockBackend, fast_adapter, user

Samples = list[tuple[str, dict[str, str], float]]


def parse(text: str) -> Samples:
    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


async def scrape(client: Client) -> Samples:
    reply = await client.get("/metrics", headers={"Authorization": ""})
    assert reply.status == 200
    return parse(await reply.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items()))


async def test_metrics_need_no_token_and_speak_prometheus_text(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway()
    reply = await scim.get("/metrics", headers={"Authorization": ""})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE scim_gateway_requests_total counter" in await reply.text()


async def test_requests_by_tenant_operation_and_status(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway()
    created = await (await scim.post(f"{BASE}/Users", json=user("m1@example.ch"))).json()
    await scim.get(f"{BASE}/Users", params={"filter": 'userName eq "m1@example.ch"'})
    patch = {"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "displayName", "value": "M"}]}
    await scim.patch(f"{BASE}/Users/{created['id']}", json=patch)
    group = await (await scim.post(f"{BASE}/Groups", json={"schemas": [GROUP_URN], "displayName": "G"})).json()
    members = {"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": "members",
                                                       "value": [{"value": created["id"]}]}]}
    await scim.patch(f"{BASE}/Groups/{group['id']}", json=members)
    await scim.get(f"{BASE}/ServiceProviderConfig")
    await scim.get(f"{BASE}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
    await scim.get(f"{BASE}/Users/00000000-0000-0000-0000-000000000000")

    samples = await scrape(scim)
    counts = {(lab["operation"], lab["status"]): v for n, lab, v in samples
              if n == "scim_gateway_requests_total" and lab["tenant"] == "default"}
    assert counts == {
        ("users.create", "201"): 1, ("users.list", "200"): 1, ("users.patch", "200"): 1,
        ("groups.create", "201"): 1, ("groups.patch", "200"): 1, ("discovery", "200"): 2, ("users.get", "404"): 1,
    }
    assert value(samples, "scim_gateway_request_duration_seconds_count", operation="discovery") == 2
    # Ids never become label values: only route templates and operation names do.
    assert all(created["id"] not in str(lab) for _, lab, _ in samples)


async def test_backend_calls_by_operation_and_outcome() -> None:
    metrics = Metrics()
    guard = BackendGuard(concurrency=4, queue_timeout=1.0)
    guard.observer = metrics.backend_observer("acme", "fake")

    async def get_user(key: str) -> str:
        return key

    def failing(exc: Exception) -> Callable[[], Awaitable[None]]:
        async def update_user() -> None:
            raise exc
        return update_user

    await guard.call("get_user", get_user, "a")
    for exc in (NotFound("x"), AlreadyExists("x"), Rejected("no"), Unavailable("down"),
                RateLimited("slow down", retry_after=2)):
        with contextlib.suppress(BackendError):
            await guard.call("update_user", failing(exc))
    samples = parse(metrics.render().decode())
    outcomes = {lab["outcome"]: v for n, lab, v in samples if n == "scim_gateway_backend_calls_total"}
    assert outcomes == {"ok": 1, "not_found": 1, "conflict": 1, "rejected": 1, "transient": 1, "rate_limited": 1}
    assert value(samples, "scim_gateway_backend_calls_total", operation="get_user", adapter="fake", tenant="acme") == 1
    assert value(samples, "scim_gateway_backend_call_duration_seconds_count", operation="update_user") == 5


async def test_backend_calls_retries_and_503_reasons_against_the_mock(
    make_gateway: GatewayFactory, mock_backend: MockBackend
) -> None:
    scim = await make_gateway(mock_backend)
    created = await (await scim.post(f"{BASE}/Users", json=user("m2@example.ch"))).json()
    mock_backend.server.faults.configure(FaultConfig(error_rate=1.0, methods=("GET",)))
    assert (await scim.get(f"{BASE}/Users/{created['id']}")).status == 503
    samples = await scrape(scim)
    assert value(samples, "scim_gateway_backend_calls_total", adapter="cleanmail", operation="create_user",
                 outcome="ok") == 1
    assert value(samples, "scim_gateway_backend_calls_total", operation="get_user", outcome="transient") == 1
    assert value(samples, "scim_gateway_backend_retries_total", tenant="default", adapter="cleanmail") >= 2
    assert value(samples, "scim_gateway_throttled_responses_total", status="503", reason="backend_unavailable") == 1
    # Every counter the client keeps, as it reports it (Statistics protocol).
    attempts = value(samples, "scim_gateway_backend_client_total", adapter="cleanmail", counter="attempts")
    retried = value(samples, "scim_gateway_backend_client_total", adapter="cleanmail", counter="retries")
    assert attempts >= 4 and retried >= 2


async def test_429_reasons_tenant_rate_limit_and_concurrency_budget(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], mock_backend: MockBackend
) -> None:
    token = "acme-token-for-rate-limit-test"
    acme = TenantSettings(token_hashes=[hash_token(token)], rate_limit_per_s=0.5)
    settings = make_settings(tenants={"acme": acme}, backend_concurrency=1, backend_queue_timeout=0.05)
    client = await aiohttp_client(create_app(settings))
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [(await client.get(f"{BASE}/Users", headers=headers)).status for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses

    slow = await aiohttp_client(create_app(make_settings(backend_concurrency=1, backend_queue_timeout=0.05),
                                           adapter=fast_adapter(mock_backend.url)))
    mock_backend.server.faults.configure(FaultConfig(latency_ms=300))
    auth = {"Authorization": "Bearer test-token-0123456789"}
    replies = await asyncio.gather(*(slow.get(f"{BASE}/Users", headers=auth) for _ in range(2)))
    assert sorted(r.status for r in replies) == [200, 429]

    samples = await scrape(client)
    assert value(samples, "scim_gateway_throttled_responses_total", tenant="acme", status="429",
                 reason="rate_limit") >= 1
    assert value(await scrape(slow), "scim_gateway_throttled_responses_total", tenant="default", status="429",
                 reason="concurrency") == 1


async def test_store_latency_and_requests_in_flight(make_gateway: GatewayFactory, mock_backend: MockBackend) -> None:
    scim = await make_gateway(mock_backend)
    assert (await scim.post(f"{BASE}/Users", json=user("m3@example.ch"))).status == 201
    samples = await scrape(scim)
    for operation in ("insert", "lock", "journal_add", "journal_remove"):
        assert value(samples, "scim_gateway_store_duration_seconds_count", operation=operation) >= 1, operation
    assert value(samples, "scim_gateway_requests_in_flight") == 1  # the scrape itself

    mock_backend.server.faults.configure(FaultConfig(latency_ms=300))
    pending = asyncio.ensure_future(scim.get(f"{BASE}/Users"))
    await asyncio.sleep(0.1)
    assert value(await scrape(scim), "scim_gateway_requests_in_flight") == 2
    assert value(await scrape(scim), "scim_gateway_backend_in_flight", tenant="default") == 1
    assert (await pending).status == 200


async def test_each_app_has_its_own_registry(make_gateway: GatewayFactory) -> None:
    one, two = await make_gateway(), await make_gateway()
    await one.get(f"{BASE}/Users")
    assert value(await scrape(one), "scim_gateway_requests_total", operation="users.list") == 1
    assert value(await scrape(two), "scim_gateway_requests_total", operation="users.list") == 0


def test_histograms_follow_prometheus_bucket_rules() -> None:
    metrics = Metrics()
    child = metrics.store_seconds.labels("get")
    for seconds in (0.0001, 0.00011, 0.3, 99.0):
        child.observe(seconds)
    samples = parse(metrics.render().decode())
    buckets = {lab["le"]: v for n, lab, v in samples
               if n == "scim_gateway_store_duration_seconds_bucket" and lab["operation"] == "get"}
    assert buckets["0.0001"] == 1  # "less than or equal"
    assert buckets["0.00025"] == 2
    assert buckets["0.25"] == 2 and buckets["1.0"] == 3
    assert buckets["+Inf"] == 4
    assert value(samples, "scim_gateway_store_duration_seconds_count", operation="get") == 4
    assert value(samples, "scim_gateway_store_duration_seconds_sum", operation="get") == pytest.approx(99.30021)


async def test_skipped_group_members_are_counted_per_tenant(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway()
    group = await (await scim.post(f"{BASE}/Groups", json={"displayName": "Nested"})).json()
    patch = {"schemas": [PATCH_URN], "Operations": [
        {"op": "Add", "path": "members", "value": [{"value": "unknown-1"}, {"value": "unknown-2"}]}]}
    assert (await scim.patch(f"{BASE}/Groups/{group['id']}", json=patch)).status == 200
    samples = await scrape(scim)
    assert value(samples, "scim_gateway_group_members_skipped_total", tenant="default") == 2
