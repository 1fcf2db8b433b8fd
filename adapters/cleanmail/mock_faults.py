"""Fault injection and call statistics for the mock Cleanmail API.

Every request draws the same fixed sequence of random numbers from one seeded
``random.Random`` whether or not a fault is enabled, so a given seed and request
sequence always produce the same faults. The clock is injectable for the same reason.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

Clock = Callable[[], float]


@dataclass(frozen=True)
class FaultConfig:
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    """Share of calls answered 503 before anything is applied."""
    error_after_commit_rate: float = 0.0
    """Share of calls that are applied and then answered 503 anyway."""
    timeout_rate: float = 0.0
    """Share of calls that hang for ``timeout_hang_s``; half of them are applied first."""
    timeout_hang_s: float = 120.0
    rate_limit_per_s: float = 0.0
    """Token-bucket rate (burst = one second's worth); 0 disables it."""
    retry_after_http_date: bool = False
    """Send Retry-After as an HTTP date instead of delta-seconds."""
    methods: tuple[str, ...] | None = None
    """Limit every fault to these HTTP methods (e.g. only writes); None means all."""
    seed: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "seed":
                if value is not None and (type(value) is not int):
                    raise ValueError("seed must be an integer or null")
            elif name == "methods":
                if value is not None:
                    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
                        raise ValueError("methods must be a list of HTTP method names or null")
                    value = tuple(m.upper() for m in value)
            elif name == "retry_after_http_date":
                if type(value) is not bool:
                    raise ValueError(f"{name} must be a boolean")
            elif type(value) not in (int, float) or value < 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a non-negative number")
            elif name.endswith("_rate") and value > 1:
                raise ValueError(f"{name} must be between 0 and 1")
            values[name] = value
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.methods is not None:
            data["methods"] = list(self.methods)
        return data

    def applies_to(self, method: str) -> bool:
        return self.methods is None or method in self.methods


class TokenBucket:
    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self._clock = clock
        self._stamp = clock()

    def take(self) -> float:
        """Take a token; return 0 on success, else the seconds until one is available."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True)
class Decision:
    """What happens to one request; drawn up front so the sequence stays deterministic."""

    delay_s: float
    fail_before: bool
    hang: bool
    commit_before_hang: bool
    fail_after: bool


class FaultInjector:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.configure(FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._bucket = TokenBucket(config.rate_limit_per_s, self._clock) if config.rate_limit_per_s else None

    def throttle(self) -> float:
        """0 when the call may proceed, else the wait in seconds before retrying."""
        return self._bucket.take() if self._bucket else 0.0

    def decide(self) -> Decision:
        c = self.config
        draws = [self._rng.random() for _ in range(5)]
        jitter = (draws[0] * 2 - 1) * c.latency_jitter_ms
        return Decision(
            delay_s=max(0.0, c.latency_ms + jitter) / 1000,
            fail_before=draws[1] < c.error_rate,
            hang=draws[2] < c.timeout_rate,
            commit_before_hang=draws[3] < 0.5,
            fail_after=draws[4] < c.error_after_commit_rate,
        )


class MockStats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "total": sum(self.calls.values()),
            "faults": dict(sorted(self.faults.items())),
        }
