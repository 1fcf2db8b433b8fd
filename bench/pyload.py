"""The Python load generator: an aiohttp client in its own process (pinned by the harness).

Used where wrk is not installed (CI, the smoke test) and for request sequences wrk cannot
express. Prints one JSON line in the same shape as the wrk script's report.

    python -m bench.pyload SPEC.json    (SPEC: scenario, target, url, concurrency, duration_s, max_requests)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from typing import Any

import aiohttp

from bench.scenarios import Target, python_request


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(**spec["target"])
    make = python_request(spec["scenario"], target, seed=spec.get("seed", 42))
    url = spec["url"].rstrip("/")
    concurrency = int(spec["concurrency"])
    duration = float(spec.get("duration_s") or 0)
    max_requests = int(spec.get("max_requests") or 0)
    headers = target.headers()
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    statuses: dict[str, int] = {}
    counter = 0
    total_bytes = 0
    started = time.perf_counter()
    stop_at = started + duration if duration else float("inf")

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counter, total_bytes
        while time.perf_counter() < stop_at and (not max_requests or counter < max_requests):
            n = counter
            counter += 1
            method, path, body = make(n)
            t0 = time.perf_counter()
            try:
                async with session.request(method, url + path, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    total_bytes += len(payload)
                    statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
                    if resp.status >= 400:
                        errors["status"] += 1
            except TimeoutError:
                errors["timeout"] += 1
                continue
            except aiohttp.ClientConnectionError:
                errors["connect"] += 1
                continue
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    us = [v * 1e6 for v in latencies]
    return {
        "requests": len(latencies),  # complete responses, as wrk counts them
        "duration_us": int(elapsed * 1e6),
        "bytes": total_bytes,
        "errors": errors,
        "statuses": statuses,
        "latency_us": {
            "min": int(us[0]) if us else 0,
            "mean": round(sum(us) / len(us), 1) if us else 0.0,
            "max": int(us[-1]) if us else 0,
            "p50": int(percentile(us, 50)),
            "p90": int(percentile(us, 90)),
            "p99": int(percentile(us, 99)),
            "p999": int(percentile(us, 99.9)),
        },
    }


def spec_for(scenario: str, target: Target, url: str, concurrency: int, duration_s: float = 0.0,
             max_requests: int = 0, seed: int = 42) -> dict[str, Any]:
    return {"scenario": scenario, "target": asdict(target), "url": url, "concurrency": concurrency,
            "duration_s": duration_s, "max_requests": max_requests, "seed": seed}


def main() -> None:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    try:
        import uvloop

        result = uvloop.run(run(spec))
    except ImportError:
        result = asyncio.run(run(spec))
    print("BENCHJSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
