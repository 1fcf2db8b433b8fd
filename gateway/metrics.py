"""Prometheus metrics of one gateway app.

Each app has its own ``CollectorRegistry``: several apps in one process (tests, or a
future multi-app runner) must not share or collide on series. State that already lives in
objects (circuit breakers, backend slots in use, the backend clients' counters) is read at
scrape time.

The observations on every request (request, backend-call and store-operation latencies,
requests in flight) are recorded by ``LatencyHistogram`` below and handed to
prometheus_client at scrape time, which keeps the exposition format, the registry and
the rare counters. Recording through prometheus_client's own Histogram and Counter cost
10–11 % of the instructions of every hot-path request (filter GET, POST, PATCH; callgrind
A/B against the same code with every observation off), mostly its lock and call chain per
value. With this recording, all metrics together cost 3–4.5 %, more than half of it the
per-operation store timing (a wrapper coroutine per store call, ``TimedStore``), kept
because store latency by operation is what operators read first when writes slow down.
All recording happens on the event loop's thread.
"""

from __future__ import annotations

import functools
import inspect
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
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

# The *_created series double every counter for no use of ours.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Series:
    """The observations of one label set: a count per bucket (the last is +Inf) and their sum."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: the first bound >= seconds, Prometheus' "less than or equal" bucket.
        self.counts[bisect_left(self._bounds, seconds)] += 1
        self.total += seconds


class LatencyHistogram(Collector):
    """A histogram by label values, exported with its own count as a counter when ``counter`` names one."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...],
                 counter: tuple[str, str] | None = None) -> None:
        self._name, self._documentation, self._labels, self._bounds = name, documentation, labels, buckets
        self._counter = counter
        self._les = [floatToGoString(b) for b in buckets] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, ...], Series] = {}

    def labels(self, *values: str) -> Series:
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = Series(self._bounds)
        return series

    def collect(self) -> Iterator[Metric]:
        histogram = HistogramMetricFamily(self._name, self._documentation, labels=self._labels)
        counter = CounterMetricFamily(self._counter[0], self._counter[1], labels=self._labels) \
            if self._counter else None
        for values, series in sorted(self._series.items()):
            cumulative, running = [], 0
            for le, count in zip(self._les, series.counts, strict=True):
                running += count
                cumulative.append((le, running))
            histogram.add_metric(list(values), cumulative, series.total)
            if counter is not None:
                counter.add_metric(list(values), running)
        if counter is not None:
            yield counter
        yield histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = LatencyHistogram(
            "scim_gateway_request_duration_seconds", "Time to answer an HTTP request.",
            ("tenant", "operation", "status"), LATENCY_BUCKETS,
            counter=("scim_gateway_requests", "HTTP requests answered, by tenant, operation and status."),
        )
        self.in_flight = 0
        """HTTP requests being served."""
        self.throttled = Counter(
            "scim_gateway_throttled_responses",
            "429 and 503 answers, by reason (rate_limit, concurrency, circuit_open, backend_rate_limited, "
            "backend_unavailable, other).",
            ["tenant", "status", "reason"], registry=r,
        )
        self.backend_calls = LatencyHistogram(
            "scim_gateway_backend_call_duration_seconds", "Duration of backend adapter calls, retries included.",
            ("tenant", "adapter", "operation", "outcome"), LATENCY_BUCKETS,
            counter=("scim_gateway_backend_calls", "Calls to a backend adapter, by operation and outcome."),
        )
        self.store_seconds = LatencyHistogram(
            "scim_gateway_store_duration_seconds",
            "Duration of state-store operations; 'lock' is the wait until a lock is held.",
            ("operation",), STORE_BUCKETS,
        )
        self.skipped_members = Counter(
            "scim_gateway_group_members_skipped",
            "Member ids in group writes that name no provisioned user (nested groups, unknown ids), skipped.",
            ["tenant"], registry=r,
        )
        for collector in (self.requests, self.backend_calls, self.store_seconds, _InFlight(self)):
            r.register(collector)
        self._throttle_children: dict[tuple[str, int, str], Any] = {}

    def observe_request(self, tenant: str, operation: str, status: int, seconds: float) -> None:
        self.requests.labels(tenant, operation, str(status)).observe(seconds)

    def observe_throttle(self, tenant: str, status: int, reason: str) -> None:
        key = (tenant, status, reason)
        child = self._throttle_children.get(key)
        if child is None:
            child = self._throttle_children[key] = self.throttled.labels(tenant, str(status), reason)
        child.inc()

    def backend_observer(self, tenant: str, adapter: str) -> CallObserver:
        calls = self.backend_calls

        def observe(operation: str, outcome: str, seconds: float) -> None:
            calls.labels(tenant, adapter, operation, outcome).observe(seconds)

        return observe

    def skipped_members_observer(self, tenant: str) -> Callable[[int], None]:
        return self.skipped_members.labels(tenant).inc

    def watch_tenants(self, tenants: Callable[[], Iterable[Tenant]]) -> None:
        """Export per-tenant state read at scrape time (breaker, backend slots, client retries)."""
        self.registry.register(_TenantCollector(tenants))

    def timed_store(self, store: StateStore) -> StateStore:
        return cast(StateStore, TimedStore(store, self.store_seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _InFlight(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("scim_gateway_requests_in_flight", "HTTP requests being served.",
                                value=self._metrics.in_flight)


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
        client = CounterMetricFamily(
            "scim_gateway_backend_client", "The backend client's own counters (attempts, timeouts, ...), as it "
            "reports them.", labels=["tenant", "adapter", "counter"],
        )
        for tenant in self._tenants():
            busy.add_metric([tenant.id], tenant.guard.in_flight)
            breaker = tenant.guard.breaker
            if breaker is not None:
                state.add_metric([tenant.id], breaker.state)
                opened.add_metric([tenant.id], breaker.opened_total)
            if isinstance(tenant.adapter, Statistics):
                counters = tenant.adapter.statistics()
                if "retries" in counters:
                    retries.add_metric([tenant.id, tenant.adapter.name], counters["retries"])
                for name, value in sorted(counters.items()):
                    client.add_metric([tenant.id, tenant.adapter.name, name], value)
        yield from (state, opened, busy, retries, client)


class TimedStore:
    """Wraps a StateStore: every coroutine method is timed, and ``lock`` until the lock is held.

    Wrappers are built on first use of each method and then found in the instance dict,
    so a call costs one extra frame and two clock reads.
    """

    def __init__(self, inner: StateStore, histogram: LatencyHistogram) -> None:
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

    def __init__(self, inner: AbstractAsyncContextManager[None], histogram: Series) -> None:
        self._inner = inner
        self._histogram = histogram

    async def __aenter__(self) -> None:
        started = time.perf_counter()
        await self._inner.__aenter__()
        self._histogram.observe(time.perf_counter() - started)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc, tb)
