"""The per-tenant circuit breaker: a dead backend gets 503 at once instead of a retry budget per request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from adapters.base import Page, Unavailable, UserRecord
from adapters.memory import MemoryAdapter
from gateway.http.app import create_app
from gateway.http.errors import as_scim_error
from gateway.provisioning.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from gateway.provisioning.errors import CircuitOpen
from gateway.scim.filter_ast import Filter
from tests.conftest import AUTH, BASE, make_settings
from tests.ops.conftest import Client
from tests.ops.test_metrics import scrape, value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_closes_after_a_good_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, clock)
    for _ in range(2):
        breaker.settle("transient", breaker.admit())
    breaker.settle("ok", breaker.admit())  # a success resets the count
    for _ in range(3):
        assert breaker.state == CLOSED
        breaker.settle("transient", breaker.admit())
    assert breaker.state == OPEN and breaker.opened_total == 1
    with pytest.raises(CircuitOpen) as refused:
        breaker.admit()
    assert as_scim_error(refused.value).status == 503 and refused.value.retry_after == pytest.approx(10.0)

    clock.now += 10.0
    trial = breaker.admit()
    assert trial and breaker.state == HALF_OPEN
    with pytest.raises(CircuitOpen):
        breaker.admit()  # one probe at a time
    breaker.settle("ok", trial)
    assert breaker.state == CLOSED and breaker.failures == 0


def test_a_failed_trial_reopens_for_a_full_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.settle("transient", breaker.admit())
    clock.now += 5.0
    breaker.settle("transient", breaker.admit())
    assert breaker.state == OPEN and breaker.opened_total == 2
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        breaker.admit()


@pytest.mark.parametrize("outcome", ["ok", "not_found", "conflict", "rejected", "rate_limited"])
def test_answers_prove_the_backend_is_up(outcome: str) -> None:
    breaker = CircuitBreaker(2, 5.0, Clock())
    breaker.settle("transient", breaker.admit())
    breaker.settle(outcome, breaker.admit())
    breaker.settle("transient", breaker.admit())
    assert breaker.state == CLOSED


def test_a_trial_that_never_got_an_answer_frees_the_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.settle("transient", breaker.admit())
    clock.now += 1.0
    breaker.settle("error", breaker.admit())  # e.g. cancelled, or queued past its timeout
    assert breaker.admit()


class FlakyAdapter(MemoryAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.attempts = 0

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        self.attempts += 1
        if self.down:
            raise Unavailable("connection refused", retry_after=7)
        return await super().find_users(filter, offset, limit)


async def test_open_circuit_answers_503_without_calling_the_backend(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    adapter = FlakyAdapter()
    settings = make_settings(circuit_failure_threshold=3, circuit_open_seconds=0.2)
    scim: Any = await aiohttp_client(create_app(settings, adapter=adapter), headers=AUTH)
    adapter.down = True
    for _ in range(3):
        assert (await scim.get(f"{BASE}/Users")).status == 503
    assert adapter.attempts == 3

    refused = await scim.get(f"{BASE}/Users")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert "stops calling it" in (await refused.json())["detail"]
    assert adapter.attempts == 3
    samples = await scrape(scim)
    assert value(samples, "scim_gateway_circuit_state", tenant="default") == OPEN
    assert value(samples, "scim_gateway_circuit_opened_total", tenant="default") == 1
    assert value(samples, "scim_gateway_throttled_responses_total", status="503", reason="circuit_open") == 1
    assert value(samples, "scim_gateway_throttled_responses_total", status="503", reason="backend_unavailable") == 3

    adapter.down = False
    await asyncio.sleep(0.25)
    assert (await scim.get(f"{BASE}/Users")).status == 200
    assert value(await scrape(scim), "scim_gateway_circuit_state", tenant="default") == CLOSED


async def test_threshold_zero_disables_the_breaker(aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    adapter = FlakyAdapter()
    adapter.down = True
    scim: Any = await aiohttp_client(create_app(make_settings(circuit_failure_threshold=0), adapter=adapter),
                                     headers=AUTH)
    for _ in range(8):
        assert (await scim.get(f"{BASE}/Users")).status == 503
    assert adapter.attempts == 8
    assert value(await scrape(scim), "scim_gateway_circuit_state") == 0
