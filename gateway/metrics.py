"""Prometheus metrics of one gateway app.

Each app has its own ``CollectorRegistry``: several apps in one process (tests, or a
future multi-app runner) must not share or collide on series.

The hot path serves thousands of requests per second, so the per-request series are
plain Python numbers rather than prometheus_client's lock-protected values: every
observation happens on the event loop's thread, and a scrape (also on that thread)
turns them into metric families. Label children are created once per label combination
and found again through dicts; state that already lives in objects (circuit breakers,
backend slots in use, the HTTP client's retry counters) is read at scrape time.
"""

from __future__ import annotations

import functools
import inspect
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from adapters.base import Statistics
from gateway.provisioning.guard import CallObserver
from gateway.store.base import StateStore
from gateway.tenants import Tenant

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
NO_TENANT = "-"


class LoopCounter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        """Per bucket, not cumulative; the last one is +Inf."""
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # Buckets are "less than or equal": bisect_left finds the first bound >= value.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class CounterFamily:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.children: dict[tuple[str, ...], LoopCounter] = {}

    def labels(self, *values: str) -> LoopCounter:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = LoopCounter()
        return child

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            family.add_metric(list(values), child.value)
        return family


class HistogramFamily:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.bounds = tuple(buckets)
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self.children: dict[tuple[str, ...], LoopHistogram] = {}

    def labels(self, *values: str) -> LoopHistogram:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = LoopHistogram(self.bounds)
        return child

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            cumulative, total = [], 0
            for le, count in zip(self._les, child.counts, strict=True):
                total += count
                cumulative.append((le, float(total)))
            family.add_metric(list(values), cumulative, child.sum)
        return family


class Metrics:
    def __init__(self) -> None:
        self.requests = CounterFamily(
            "scim_gateway_requests", "HTTP requests answered, by tenant, operation and status.",
            ["tenant", "operation", "status"],
        )
        self.request_seconds = HistogramFamily(
            "scim_gateway_request_duration_seconds", "Time to answer an HTTP request.",
            ["tenant", "operation", "status"], LATENCY_BUCKETS,
        )
        self.in_flight = 0
        self.throttled = CounterFamily(
            "scim_gateway_throttled_responses",
            "429 and 503 answers, by reason (rate_limit, concurrency, circuit_open, backend_rate_limited, "
            "backend_unavailable, other).",
            ["tenant", "status", "reason"],
        )
        self.backend_calls = CounterFamily(
            "scim_gateway_backend_calls", "Calls to a backend adapter, by operation and outcome.",
            ["tenant", "adapter", "operation", "outcome"],
        )
        self.backend_seconds = HistogramFamily(
            "scim_gateway_backend_call_duration_seconds", "Duration of backend adapter calls, retries included.",
            ["tenant", "adapter", "operation", "outcome"], LATENCY_BUCKETS,
        )
        self.store_seconds = HistogramFamily(
            "scim_gateway_store_duration_seconds",
            "Duration of state-store operations; 'lock' is the wait until a lock is held.",
            ["operation"], STORE_BUCKETS,
        )
        self._request_children: dict[tuple[str, str, int], tuple[LoopCounter, LoopHistogram]] = {}
        self._throttle_children: dict[tuple[str, int, str], LoopCounter] = {}
        self.registry = CollectorRegistry()
        self.registry.register(_FamilyCollector(self))

    def observe_request(self, tenant: str, operation: str, status: int, seconds: float) -> None:
        key = (tenant, operation, status)
        children = self._request_children.get(key)
        if children is None:
            code = str(status)
            children = (self.requests.labels(tenant, operation, code),
                        self.request_seconds.labels(tenant, operation, code))
            self._request_children[key] = children
        children[0].value += 1
        children[1].observe(seconds)

    def observe_throttle(self, tenant: str, status: int, reason: str) -> None:
        key = (tenant, status, reason)
        child = self._throttle_children.get(key)
        if child is None:
            child = self._throttle_children[key] = self.throttled.labels(tenant, str(status), reason)
        child.value += 1

    def backend_observer(self, tenant: str, adapter: str) -> CallObserver:
        children: dict[tuple[str, str], tuple[LoopCounter, LoopHistogram]] = {}

        def observe(operation: str, outcome: str, seconds: float) -> None:
            key = (operation, outcome)
            pair = children.get(key)
            if pair is None:
                pair = children[key] = (self.backend_calls.labels(tenant, adapter, operation, outcome),
                                        self.backend_seconds.labels(tenant, adapter, operation, outcome))
            pair[0].value += 1
            pair[1].observe(seconds)

        return observe

    def watch_tenants(self, tenants: Callable[[], Iterable[Tenant]]) -> None:
        """Export per-tenant state read at scrape time (breaker, backend slots, client retries)."""
        self.registry.register(_TenantCollector(tenants))

    def timed_store(self, store: StateStore) -> StateStore:
        return cast(StateStore, TimedStore(store, self.store_seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _FamilyCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        yield from (m.requests.collect(), m.request_seconds.collect())
        in_flight = GaugeMetricFamily("scim_gateway_requests_in_flight", "HTTP requests being served.")
        in_flight.add_metric([], m.in_flight)
        yield in_flight
        for family in (m.throttled, m.backend_calls, m.backend_seconds, m.store_seconds):
            yield family.collect()


class _TenantCollector(Collector):
    def __init__(self, tenants: Callable[[], Iterable[Tenant]]) -> None:
        self._tenants = tenants

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "scim_gateway_circuit_state", "Backend circuit of a tenant: 0 closed, 1 open, 2 half-open.",
            labels=["tenant"],
        )
        opened = CounterMetricFamily(
            "scim_gateway_circuit_opened", "Times a tenant's backend circuit opened.", labels=["tenant"]
        )
        busy = GaugeMetricFamily(
            "scim_gateway_backend_in_flight", "Backend calls in progress (of the tenant's concurrency budget).",
            labels=["tenant"],
        )
        retries = CounterMetricFamily(
            "scim_gateway_backend_retries", "Backend calls retried by the adapter's client.",
            labels=["tenant", "adapter"],
        )
        for tenant in self._tenants():
            busy.add_metric([tenant.id], tenant.guard.in_flight)
            breaker = tenant.guard.breaker
            if breaker is not None:
                state.add_metric([tenant.id], breaker.state)
                opened.add_metric([tenant.id], breaker.opened_total)
            if isinstance(tenant.adapter, Statistics):
                retried = tenant.adapter.statistics().get("retries")
                if retried is not None:
                    retries.add_metric([tenant.id, tenant.adapter.name], retried)
        yield from (state, opened, busy, retries)


class TimedStore:
    """Wraps a StateStore: every coroutine method is timed, and ``lock`` until the lock is held.

    Wrappers are built on first use of each method and then found in the instance dict,
    so a call costs one extra frame and two clock reads.
    """

    def __init__(self, inner: StateStore, histogram: HistogramFamily) -> None:
        self._inner = inner
        self._histogram = histogram
        self._lock_wait = histogram.labels("lock")

    def __repr__(self) -> str:
        return f"TimedStore({self._inner!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        method = cast(Callable[..., Awaitable[Any]], attr)
        child = self._histogram.labels(name)

        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                child.observe(time.perf_counter() - started)

        self.__dict__[name] = timed
        return timed

    def lock(self, tenant: str, name: str) -> AbstractAsyncContextManager[None]:
        return _TimedLock(self._inner.lock(tenant, name), self._lock_wait)


class _TimedLock:
    """The inner store's lock, timed until held (a class: every write takes one)."""

    __slots__ = ("_histogram", "_inner")

    def __init__(self, inner: AbstractAsyncContextManager[None], histogram: LoopHistogram) -> None:
        self._inner = inner
        self._histogram = histogram

    async def __aenter__(self) -> None:
        started = time.perf_counter()
        await self._inner.__aenter__()
        self._histogram.observe(time.perf_counter() - started)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc, tb)
