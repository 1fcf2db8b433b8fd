"""The benchmark's scenarios (issue #6): each function starts its servers, measures, stops them."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.client import Http, bounded, get_json, post_json, preflight, seed_groups, seed_users
from bench.load import run_load
from bench.profiling import profile_summary, py_spy_available, record_profile
from bench.scenarios import (
    HOT_PATHS,
    Target,
    group_body,
    member_add_body,
    member_remove_body,
    patch_active_body,
    patch_replace_body,
    python_request,
    user_body,
)
from bench.servers import launch
from bench.servers.launch import MOCK_KEY, Server


@dataclass
class Profile:
    """How much of everything a mode runs."""

    name: str
    reps: int
    duration_s: float
    concurrencies: tuple[int, ...] = (8, 64)
    hot_users: int = 1000
    active_pool: int = 500
    groups_per_run: int = 100
    peer: bool = True
    bare_asyncio: bool = False
    warmup_s: float = 1.0
    mock_concurrencies: tuple[int, ...] = (8,)
    mock_reps: int = 1
    mock_duration_s: float = 2.0
    mock_latency_ms: float = 20.0
    cycle_users: int = 1000
    cycle_concurrency: int = 16
    cycle_users_per_group: int = 100
    cycle_batch: int = 10
    scale_sizes: tuple[int, ...] = (1000, 10000)
    scale_stores: tuple[str, ...] = ("memory", "sqlite")
    scale_concurrency: int = 8
    group_sizes: tuple[int, ...] = (10, 100, 1000)
    scale_duration_s: float = 2.0
    profile_scenarios: tuple[str, ...] = ()
    profile_backend_scenarios: tuple[str, ...] = ()
    profile_duration_s: float = 4.0
    modoboa_users: int = 1000
    modoboa_samples: int = 20
    default_reps: int = 1
    default_duration_s: float = 5.0
    default_bare_loop: str = "uvloop"  # the loop `scim-gateway serve` runs on
    budget_s: float = 300.0


@dataclass
class Context:
    profile: Profile
    out: Path  # results directory
    work: Path  # scratch: logs, wrk scripts, SQLite files
    server_cpus: set[int]
    load_cpus: set[int]
    generator: str = "auto"
    sections: set[str] = field(default_factory=lambda: {"hot", "backend", "cycle", "scale", "profile"})

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def say(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def measure(ctx: Context, server: Server, scenario: str, target: Target, concurrency: int, duration_s: float,
            *, max_requests: int = 0) -> dict[str, Any]:
    """One load run against ``server``, with its CPU accounting (and GC pauses when it reports them)."""
    if server.gc_stats:
        asyncio.run(post_json(f"{server.url}/__bench__/gc", {}))
    settle_s = procs.wait_cores_idle(ctx.server_cpus)
    with procs.CpuMeter(server.pid, ctx.server_cpus) as meter:
        result = run_load(scenario, target, server.url, concurrency, duration_s=duration_s,
                          max_requests=max_requests, cpus=ctx.load_cpus, generator=ctx.generator,
                          workdir=ctx.work / "scripts")
    row = {"server": server.name, **result.to_json(), **meter.to_json(result.requests), "settle_s": round(settle_s, 2)}
    if server.gc_stats:
        row["gc"] = asyncio.run(get_json(f"{server.url}/__bench__/gc"))
    return row


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}@example.com" for i in range(count)]


# --- 1 + 2: hot paths on the memory backend, side by side with the baselines -----------------------

@dataclass
class Seeded:
    hot_ids: list[str]
    active_pools: list[list[str]]
    group_pools: list[list[str]]
    preflight_group: str


def _seed_for_hot_paths(ctx: Context, server: Server, pools: int) -> Seeded:
    p = ctx.profile
    hot = seed_users(server.url, server.token, server.base, _names("bench.user", p.hot_users))
    active = seed_users(server.url, server.token, server.base, _names("bench.active", pools * p.active_pool))
    groups = seed_groups(server.url, server.token, server.base,
                         [f"bench group {i}" for i in range(pools * p.groups_per_run + 1)],
                         microsoft_urn=server.base != launch.PEER_BASE)
    return Seeded(
        hot_ids=hot,
        active_pools=[active[k * p.active_pool:(k + 1) * p.active_pool] for k in range(pools)],
        group_pools=[groups[k * p.groups_per_run:(k + 1) * p.groups_per_run] for k in range(pools)],
        preflight_group=groups[-1],
    )


def _fake_seeded(ctx: Context, pools: int) -> Seeded:
    p = ctx.profile
    ids = [str(uuid.UUID(int=i)) for i in range(max(p.hot_users, p.active_pool, p.groups_per_run))]
    return Seeded(ids[:p.hot_users], [ids[:p.active_pool]] * pools, [ids[:p.groups_per_run]] * pools, ids[0])


def _target(server: Server, seeded: Seeded, pool: int, tag: str, hot_count: int) -> Target:
    return Target(base=server.base, token=server.token, hit_name_fmt="bench.user{}@example.com",
                  hit_count=hot_count, user_ids=seeded.hot_ids, active_ids=seeded.active_pools[pool],
                  group_ids=seeded.group_pools[pool], tag=tag)


def _expected(scenario: str) -> tuple[int, ...]:
    return {"post_user": (201,), "filter_hit": (200,), "filter_miss": (200,)}.get(scenario, (200, 204))


def preflight_all(servers: dict[str, Server], seeded: dict[str, Seeded], scenarios: Sequence[str], tag: str
                  ) -> dict[str, dict[str, Any]]:
    """One request per scenario and server, as the load generator sends it: scenario → server → outcome."""
    checks: dict[str, dict[str, Any]] = {}
    for name, server in servers.items():
        s = seeded[name]
        pf = Target(base=server.base, token=server.token, hit_name_fmt="bench.user{}@example.com",
                    hit_count=1, user_ids=s.hot_ids[:1], active_ids=s.hot_ids[:1],
                    group_ids=[s.preflight_group], tag=f"{tag}-{name}")
        for scenario in scenarios:
            method, path, body = python_request(scenario, pf)(0)
            status, text = preflight(server.url, server.token, method, path, body)
            checks.setdefault(scenario, {})[name] = {"status": status, "ok": status in _expected(scenario),
                                                     "body": text if status >= 300 else ""}
    return checks


def warm_up(ctx: Context, servers: dict[str, Server], seeded: dict[str, Seeded], tag: str) -> None:
    """A filter run at c=64 on each server, discarded."""
    for name, server in servers.items():
        measure(ctx, server, "filter_hit", _target(server, seeded[name], 0, f"{tag}-{name}", ctx.profile.hot_users),
                64, ctx.profile.warmup_s)


def hot_paths(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    servers: dict[str, Server] = {}
    try:
        ctx.say("hot paths: starting gateway (memory backend, memory state), bare aiohttp"
                + (", scim2-server" if p.peer and launch.peer_available() else ""))
        servers["gateway"] = launch.start_gateway("gateway", ctx.logs, ctx.server_cpus)
        servers["bare"] = launch.start_bare("bare", ctx.logs, ctx.server_cpus)
        if p.bare_asyncio:
            servers["bare_asyncio"] = launch.start_bare("bare_asyncio", ctx.logs, ctx.server_cpus, loop="asyncio")
        if p.peer and launch.peer_available():
            servers["peer"] = launch.start_peer("peer", ctx.logs, ctx.server_cpus)
        pools = len(p.concurrencies) * p.reps
        seeded: dict[str, Seeded] = {}
        for name, server in servers.items():
            if name.startswith("bare"):
                seeded[name] = _fake_seeded(ctx, pools)
                continue
            started = time.monotonic()
            seeded[name] = _seed_for_hot_paths(ctx, server, pools)
            ctx.say(f"  seeded {name}: {p.hot_users} + {pools}x{p.active_pool} users, "
                    f"{pools}x{p.groups_per_run} groups in {time.monotonic() - started:.1f}s")

        checks = preflight_all(servers, seeded, HOT_PATHS, "pf")
        warm_up(ctx, servers, seeded, "warm")

        rows: list[dict[str, Any]] = []
        for scenario in HOT_PATHS:
            for ci, concurrency in enumerate(p.concurrencies):
                for rep in range(p.reps):
                    pool = ci * p.reps + rep
                    for name, server in servers.items():
                        if not checks[scenario][name]["ok"]:
                            continue
                        if name == "bare_asyncio" and scenario != "filter_hit":
                            continue  # a reference point for the stack's ceiling without uvloop
                        tag = f"{name}-{scenario}-c{concurrency}-r{rep}"
                        row = measure(ctx, server, scenario,
                                      _target(server, seeded[name], pool, tag, p.hot_users),
                                      concurrency, p.duration_s)
                        row["rep"] = rep
                        if scenario == "group_add":
                            row["members_per_group_at_end"] = round(row["requests"] / p.groups_per_run, 1)
                        rows.append(row)
                gw = _summary_cell(rows, "gateway", scenario, concurrency)
                ctx.say(f"  {scenario:<14} c={concurrency:<3} gateway {gw.get('rps', 0):8.0f} req/s  "
                        f"p50 {gw.get('p50_ms', 0):6.2f} ms  p99 {gw.get('p99_ms', 0):6.2f} ms  "
                        f"cpu {gw.get('server_cpu_us_per_req', 0):6.0f} us/req")
        rss = {name: round(procs.rss_mb(server.pid), 1) for name, server in servers.items()}
        return {"preflight": checks, "runs": rows, "summary": summarise(rows, p), "rss_mb_at_end": rss,
                "servers": sorted(servers)}
    finally:
        for server in servers.values():
            server.stop()


def _summary_cell(rows: list[dict[str, Any]], server: str, scenario: str, concurrency: int) -> dict[str, Any]:
    mine = [r for r in rows if r["server"] == server and r["scenario"] == scenario
            and r["concurrency"] == concurrency]
    if not mine:
        return {}
    return {
        "rps": round(_median([r["rps"] for r in mine]), 1),
        "p50_ms": round(_median([r["p50_ms"] for r in mine]), 3),
        "p99_ms": round(_median([r["p99_ms"] for r in mine]), 3),
        "server_cpu_us_per_req": round(_median([r["server_cpu_us_per_req"] for r in mine]), 1),
        "foreign_cpu_pct": round(_median([r["foreign_cpu_pct"] for r in mine]), 1),
        "errors": sum(sum(r["errors"].values()) for r in mine),
        "runs": len(mine),
    }


def _ratio(rows: list[dict[str, Any]], scenario: str, concurrency: int, a: str, b: str, key: str = "rps"
           ) -> float | None:
    """Median over repetitions of a/b, each pair measured back to back."""
    ratios = []
    for rep in sorted({r["rep"] for r in rows}):
        x = [r for r in rows if r["server"] == a and r["scenario"] == scenario and r["concurrency"] == concurrency
             and r["rep"] == rep]
        y = [r for r in rows if r["server"] == b and r["scenario"] == scenario and r["concurrency"] == concurrency
             and r["rep"] == rep]
        if x and y and y[0][key]:
            ratios.append(x[0][key] / y[0][key])
    return round(_median(ratios), 3) if ratios else None


def summarise(rows: list[dict[str, Any]], p: Profile) -> list[dict[str, Any]]:
    summary = []
    for scenario in HOT_PATHS:
        for concurrency in p.concurrencies:
            cells = {name: _summary_cell(rows, name, scenario, concurrency)
                     for name in ("gateway", "bare", "bare_asyncio", "peer")}
            gw_cpu = cells["gateway"].get("server_cpu_us_per_req")
            bare_cpu = cells["bare"].get("server_cpu_us_per_req")
            summary.append({
                "scenario": scenario, "concurrency": concurrency,
                **{name: cell for name, cell in cells.items() if cell},
                "gateway_over_bare": _ratio(rows, scenario, concurrency, "gateway", "bare"),
                "gateway_over_peer": _ratio(rows, scenario, concurrency, "gateway", "peer"),
                # CPU per request is what a request costs whatever else the machine runs.
                "bare_over_gateway_cpu": round(bare_cpu / gw_cpu, 3) if gw_cpu and bare_cpu else None,
            })
    return summary


# --- 3 + 4: the Cleanmail mock: backend calls per operation, then the gateway's added latency --------

CallCounts = Callable[[], Awaitable[Counter[str]]]
"""The backend's own count of the calls it has served, by kind (read before and after some requests)."""


async def _stats(mock: Server) -> Counter[str]:
    data = await get_json(f"{mock.url}/__mock__/stats")
    return Counter(data.get("calls", {}))


def mock_counts(mock: Server) -> CallCounts:
    return lambda: _stats(mock)


async def backend_sequence(gw: Server, counts: CallCounts) -> list[dict[str, Any]]:
    """Entra's sequences, one SCIM request at a time, with the backend's call counts around each."""
    steps: list[dict[str, Any]] = []
    tag = uuid.uuid4().hex[:8]
    name = f"entra.seq.{tag}@example.com"
    async with Http(gw.url, gw.token, gw.base, limit=4) as http:
        helpers = [await http.create_user(f"entra.member{i}.{tag}@example.com", f"m{i}{tag}") for i in range(10)]
        state: dict[str, str] = {}

        async def step(label: str, op: str, call: Callable[[], Awaitable[Any]]) -> None:
            before = await counts()
            status = await call()
            after = await counts()
            diff = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
            steps.append({"step": label, "request": op, "status": status, "backend_calls": sum(diff.values()),
                          "by_endpoint": dict(sorted(diff.items()))})

        async def status_of(method: str, path: str, body: Any = None) -> int:
            code, data = await http.call(method, path, body, expect=(200, 201, 204))
            if isinstance(data, dict) and "id" in data and method == "POST":
                state[path.rsplit("/", 1)[-1]] = str(data["id"])
            return code

        u, g = f"{gw.base}/Users", f"{gw.base}/Groups"
        probe = f"{uuid.uuid4()}"
        await step("probe", 'GET /Users?filter=userName eq "<random guid>"',
                   lambda: status_of("GET", f"{u}?filter=userName+eq+%22{probe}%22"))
        await step("create: filter miss", 'GET /Users?filter=userName eq "<new>"',
                   lambda: status_of("GET", f"{u}?filter=userName+eq+%22{name.replace('@', '%40')}%22"))
        await step("create: POST", "POST /Users", lambda: status_of("POST", u, user_body(name, f"x{tag}")))
        uid = state["Users"]
        await step("filter hit", 'GET /Users?filter=userName eq "<existing>"',
                   lambda: status_of("GET", f"{u}?filter=userName+eq+%22{name.replace('@', '%40')}%22"))
        await step("get by id", "GET /Users/{id}", lambda: status_of("GET", f"{u}/{uid}"))
        await step("update", "PATCH /Users/{id} (E8: emails + familyName)",
                   lambda: status_of("PATCH", f"{u}/{uid}", patch_replace_body(f"upd{tag}")))
        await step("update, no change", "PATCH /Users/{id} (E8, same values again)",
                   lambda: status_of("PATCH", f"{u}/{uid}", patch_replace_body(f"upd{tag}")))
        await step("disable", 'PATCH /Users/{id} active "False"',
                   lambda: status_of("PATCH", f"{u}/{uid}", patch_active_body(False)))
        await step("re-enable", 'PATCH /Users/{id} active "True"',
                   lambda: status_of("PATCH", f"{u}/{uid}", patch_active_body(True)))
        gname = f"Entra Seq {tag}"
        await step("group create: filter miss", 'GET /Groups?excludedAttributes=members&filter=displayName eq',
                   lambda: status_of("GET", f"{g}?excludedAttributes=members&filter=displayName+eq+%22"
                                            f"{gname.replace(' ', '%20')}%22"))
        await step("group create: POST", "POST /Groups", lambda: status_of("POST", g, group_body(gname, f"g{tag}")))
        gid = state["Groups"]
        await step("member add", "PATCH /Groups/{id} add 1 member",
                   lambda: status_of("PATCH", f"{g}/{gid}", member_add_body([uid])))
        await step("member add x10", "PATCH /Groups/{id} add 10 members",
                   lambda: status_of("PATCH", f"{g}/{gid}", member_add_body(helpers)))
        await step("member remove", "PATCH /Groups/{id} remove 1 member",
                   lambda: status_of("PATCH", f"{g}/{gid}", member_remove_body([uid])))
        await step("delete user", "DELETE /Users/{id}", lambda: status_of("DELETE", f"{u}/{uid}"))
        await step("delete group", "DELETE /Groups/{id}", lambda: status_of("DELETE", f"{g}/{gid}"))
    return steps


METRIC_SUMS = {"request": "scim_gateway_request_duration_seconds",
               "backend": "scim_gateway_backend_call_duration_seconds"}


async def _scrape(server: Server) -> dict[str, float] | None:
    """Sums and counts of the gateway's own request and backend-call timings (its /metrics)."""
    import aiohttp

    try:
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}/metrics") as resp:
            if resp.status != 200:
                return None
            text = await resp.text()
    except aiohttp.ClientError:
        return None
    totals: dict[str, float] = {}
    for line in text.splitlines():
        for key, name in METRIC_SUMS.items():
            for suffix in ("_sum", "_count"):
                if line.startswith(name + suffix + "{") or line.startswith(name + suffix + " "):
                    totals[key + suffix] = totals.get(key + suffix, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals if "request_count" in totals else None


def _decompose(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float] | None:
    """Mean server-side time per request, the part spent in backend calls, and the rest (the gateway)."""
    if not before or not after:
        return None
    requests = after["request_count"] - before["request_count"]
    if requests <= 0:
        return None
    server = (after["request_sum"] - before["request_sum"]) / requests * 1000
    backend = (after.get("backend_sum", 0) - before.get("backend_sum", 0)) / requests * 1000
    calls = (after.get("backend_count", 0) - before.get("backend_count", 0)) / requests
    return {"server_mean_ms": round(server, 3), "backend_mean_ms": round(backend, 3),
            "gateway_mean_ms": round(server - backend, 3), "backend_calls_per_req": round(calls, 3)}


# Which backend-call step each hot-path scenario is.
SCENARIO_STEP = {"filter_hit": "filter hit", "filter_miss": "probe", "post_user": "create: POST",
                 "patch_replace": "update", "patch_active": "disable", "group_add": "member add"}


async def _set_latency(mock: Server, latency_ms: float) -> None:
    await post_json(f"{mock.url}/__mock__/faults", {"latency_ms": latency_ms})


def backend(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    mock = gw = proxy = None
    try:
        ctx.say("backend: starting the Cleanmail mock (load core), the gateway on it (SQLite state) and a bare "
                "aiohttp proxy to it")
        mock = launch.start_mock("mock", ctx.logs, ctx.load_cpus)
        state = f"sqlite:///{ctx.work / 'backend-state.sqlite3'}"
        gw = launch.start_gateway("gateway-cleanmail", ctx.logs, ctx.server_cpus, state=state,
                                  backend="cleanmail", mock_url=mock.url)
        proxy = launch.start_bare_proxy("bare-proxy", ctx.logs, ctx.server_cpus, mock)
        asyncio.run(_set_latency(mock, 0))
        steps = asyncio.run(backend_sequence(gw, mock_counts(mock)))
        ctx.say("  backend calls per SCIM operation: "
                + ", ".join(f"{s['step']}={s['backend_calls']}" for s in steps))

        pools = len(p.mock_concurrencies) * p.mock_reps
        hot = min(p.hot_users, 200)
        sub = Profile(**{**p.__dict__, "hot_users": hot, "active_pool": min(p.active_pool, 200),
                         "groups_per_run": min(p.groups_per_run, 50)})
        seeded = _seed_for_hot_paths(Context(sub, ctx.out, ctx.work, ctx.server_cpus, ctx.load_cpus), gw, pools)
        asyncio.run(_set_latency(mock, p.mock_latency_ms))
        calls = {s["step"]: s["backend_calls"] for s in steps}
        mock_target = Target(base="/api/v1", token="", api_key=MOCK_KEY, hit_name_fmt="bench.user{}@example.com",
                             hit_count=hot, tag="mock")
        rows: list[dict[str, Any]] = []
        own: dict[int, dict[str, Any]] = {}
        proxied: dict[int, dict[str, Any]] = {}
        for ci, concurrency in enumerate(p.mock_concurrencies):
            own[concurrency] = measure(ctx, mock, "backend_get", mock_target, concurrency, p.mock_duration_s)
            proxied[concurrency] = measure(ctx, proxy, "backend_get", dataclasses.replace(mock_target, tag="proxy"),
                                           concurrency, p.mock_duration_s)
            for scenario in HOT_PATHS:
                for rep in range(p.mock_reps):
                    pool = ci * p.mock_reps + rep
                    target = _target(gw, seeded, pool, f"cm-{scenario}-c{concurrency}-r{rep}", hot)
                    before = asyncio.run(_scrape(gw))
                    row = measure(ctx, gw, scenario, target, concurrency, p.mock_duration_s)
                    row["inside"] = _decompose(before, asyncio.run(_scrape(gw)))
                    row["rep"] = rep
                    rows.append(row)
        overhead = []
        for concurrency in p.mock_concurrencies:
            floor_ms = own[concurrency]["p50_ms"]
            proxy_added_ms = proxied[concurrency]["p50_ms"] - floor_ms
            for scenario in HOT_PATHS:
                mine = [r for r in rows if r["scenario"] == scenario and r["concurrency"] == concurrency]
                k = calls.get(SCENARIO_STEP[scenario], 0)
                p50 = _median([r["p50_ms"] for r in mine])
                p99 = _median([r["p99_ms"] for r in mine])
                overhead.append({
                    "scenario": scenario, "concurrency": concurrency, "backend_calls": k,
                    "backend_call_p50_ms": floor_ms, "backend_floor_ms": round(k * floor_ms, 3),
                    "gateway_p50_ms": round(p50, 3), "gateway_p99_ms": round(p99, 3),
                    "added_p50_ms": round(p50 - k * floor_ms, 3), "added_p99_ms": round(p99 - k * floor_ms, 3),
                    # What a bare aiohttp proxy adds for the same number of hops: the stack's own share.
                    "bare_proxy_added_p50_ms": round(k * proxy_added_ms, 3),
                    "rps": round(_median([r["rps"] for r in mine]), 1),
                    "errors": sum(sum(r["errors"].values()) for r in mine),
                    "server_cpu_us_per_req": round(_median([r["server_cpu_us_per_req"] for r in mine]), 1),
                    "client_mean_ms": round(_median([r["mean_ms"] for r in mine]), 3),
                    # From the gateway's own /metrics: mean time per request inside the gateway, in backend
                    # calls (HTTP client included) and the rest.
                    "inside": {k: round(_median([r["inside"][k] for r in mine if r.get("inside")]), 3)
                               for k in ("server_mean_ms", "backend_mean_ms", "gateway_mean_ms",
                                         "backend_calls_per_req")} if any(r.get("inside") for r in mine) else None,
                })
        for o in overhead:
            ctx.say(f"  {o['scenario']:<14} c={o['concurrency']:<3} {o['backend_calls']} calls  gateway p50 "
                    f"{o['gateway_p50_ms']:.2f} ms = floor {o['backend_floor_ms']:.2f} + {o['added_p50_ms']:.2f} ms")
        return {"latency_ms": p.mock_latency_ms, "state": "sqlite", "sequence": steps, "backend_own": own,
                "bare_proxy": proxied, "runs": rows, "overhead": overhead}
    finally:
        for server in (proxy, gw, mock):
            if server is not None:
                server.stop()


# --- 5: Entra's initial cycle against the mock --------------------------------------------------

async def entra_cycle(gw: Server, counts: CallCounts, users: int, per_group: int, batch: int, concurrency: int
                      ) -> dict[str, Any]:
    """Entra's initial cycle: users (filter, create), groups (filter, create), memberships in batches."""
    tag = uuid.uuid4().hex[:6]
    groups = max(1, users // per_group)
    errors: Counter[str] = Counter()
    phases: dict[str, float] = {}
    ops: Counter[str] = Counter()
    async with Http(gw.url, gw.token, gw.base, limit=concurrency) as http:
        ids: list[str] = [""] * users

        def provision_user(i: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                name = f"cycle.{tag}.{i}@example.com"
                try:
                    ops["filter"] += 1
                    if await http.filter_users(name) == 0:
                        ops["post_user"] += 1
                        ids[i] = await http.create_user(name, f"c{tag}{i}")
                except Exception as exc:
                    errors[type(exc).__name__ + ": " + str(exc)[:120]] += 1
            return job

        gids: list[str] = [""] * groups

        def provision_group(j: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                name = f"Cycle {tag} Group {j}"
                try:
                    ops["filter_group"] += 1
                    if await http.filter_groups(name) == 0:
                        ops["post_group"] += 1
                        gids[j] = await http.create_group(name, f"g{tag}{j}")
                except Exception as exc:
                    errors[type(exc).__name__ + ": " + str(exc)[:120]] += 1
            return job

        def add_members(j: int, members: list[str]) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                try:
                    ops["patch_members"] += 1
                    await http.add_members(gids[j], members)
                except Exception as exc:
                    errors[type(exc).__name__ + ": " + str(exc)[:120]] += 1
            return job

        before = await counts()
        started = time.monotonic()
        await bounded([provision_user(i) for i in range(users)], concurrency)
        phases["users_s"] = time.monotonic() - started
        t = time.monotonic()
        await bounded([provision_group(j) for j in range(groups)], concurrency)
        phases["groups_s"] = time.monotonic() - t
        # Members: group j holds users j*per_group … ; batches interleaved across groups, as a
        # provisioning engine working through many groups would send them.
        batches: list[list[tuple[int, list[str]]]] = []
        for j in range(groups):
            members = [ids[i] for i in range(j * per_group, min(users, (j + 1) * per_group)) if ids[i]]
            batches.append([(j, members[k:k + batch]) for k in range(0, len(members), batch)])
        order = [b for round_ in _round_robin(batches) for b in round_]
        t = time.monotonic()
        await bounded([add_members(j, m) for j, m in order], concurrency)
        phases["memberships_s"] = time.monotonic() - t
        wall = time.monotonic() - started
        after = await counts()
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
    return {"wall_s": wall, "phases": phases, "ops": dict(ops), "errors": dict(errors),
            "backend_calls": sum(diff.values()), "backend_by_endpoint": dict(sorted(diff.items())),
            "groups": groups, "tag": tag}


def _round_robin(lists: list[list[Any]]) -> list[list[Any]]:
    rounds: list[list[Any]] = []
    depth = max((len(x) for x in lists), default=0)
    for k in range(depth):
        rounds.append([x[k] for x in lists if k < len(x)])
    return rounds


def initial_cycle(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    mock = gw = None
    try:
        ctx.say(f"initial cycle: {p.cycle_users} users, {max(1, p.cycle_users // p.cycle_users_per_group)} groups,"
                f" concurrency {p.cycle_concurrency}, mock latency {p.mock_latency_ms:.0f} ms")
        mock = launch.start_mock("cycle-mock", ctx.logs, ctx.load_cpus)
        state = f"sqlite:///{ctx.work / 'cycle-state.sqlite3'}"
        gw = launch.start_gateway("cycle-gateway", ctx.logs, ctx.server_cpus, state=state, backend="cleanmail",
                                  mock_url=mock.url)
        asyncio.run(_set_latency(mock, p.mock_latency_ms))
        with procs.CpuMeter(gw.pid, ctx.server_cpus) as meter:
            result = asyncio.run(entra_cycle(gw, mock_counts(mock), p.cycle_users, p.cycle_users_per_group,
                                             p.cycle_batch, p.cycle_concurrency))
        # The mock's own latency per call as the load generator sees it (sleep + its own work).
        own = measure(ctx, mock, "backend_get", Target(
            base="/api/v1", token="", api_key=MOCK_KEY, hit_name_fmt=f"cycle.{result.pop('tag')}.{{}}@example.com",
            hit_count=p.cycle_users, tag="cycle-own"), p.cycle_concurrency, 1)
        latency = p.mock_latency_ms / 1000
        measured_bound = result["backend_calls"] * own["p50_ms"] / 1000 / p.cycle_concurrency
        scim_ops = sum(result["ops"].values())
        bound = result["backend_calls"] * latency / p.cycle_concurrency
        ops_bound = scim_ops * latency / p.cycle_concurrency
        out = {
            "users": p.cycle_users, "concurrency": p.cycle_concurrency, "latency_ms": p.mock_latency_ms,
            "batch": p.cycle_batch, "users_per_group": p.cycle_users_per_group, **result,
            "scim_ops": scim_ops, "scim_ops_per_s": round(scim_ops / result["wall_s"], 1),
            "backend_calls_per_op": round(result["backend_calls"] / scim_ops, 3) if scim_ops else None,
            "latency_bound_s": round(bound, 3),
            "ratio_to_latency_bound": round(result["wall_s"] / bound, 3) if bound else None,
            "one_call_per_op_bound_s": round(ops_bound, 3),
            "mock_call_p50_ms": own["p50_ms"], "measured_latency_bound_s": round(measured_bound, 3),
            "ratio_to_measured_bound": round(result["wall_s"] / measured_bound, 3) if measured_bound else None,
            "ratio_to_one_call_bound": round(result["wall_s"] / ops_bound, 3) if ops_bound else None,
            "server_cpu_pct": round(meter.server_pct, 1), "foreign_cpu_pct": round(meter.foreign_pct, 1),
        }
        ctx.say(f"  wall {result['wall_s']:.1f}s for {scim_ops} SCIM ops / {result['backend_calls']} backend calls;"
                f" latency bound {bound:.1f}s → ratio {out['ratio_to_latency_bound']}; "
                f"errors {sum(result['errors'].values())}")
        return out
    finally:
        for server in (gw, mock):
            if server is not None:
                server.stop()


# --- 6: scale ------------------------------------------------------------------------------------

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"  # the test suite's default server


def postgres_status(wanted: bool) -> tuple[str | None, str]:
    """(DSN, reason): a reachable PostgreSQL DSN when the gateway has a PostgreSQL store."""
    import os

    from gateway.wiring import make_store

    if not wanted:
        return None, "not in this mode"
    if os.environ.get("BENCH_POSTGRES", "").lower() in ("0", "no", "off", "false"):
        return None, "skipped: BENCH_POSTGRES=0"
    dsn = os.environ.get("BENCH_POSTGRES_DSN") or os.environ.get("SCIM_GATEWAY_TEST_POSTGRES") or DEFAULT_PG
    try:
        make_store(dsn)
    except ValueError as exc:
        return None, f"the gateway has no PostgreSQL store ({exc})"
    try:
        import asyncpg  # type: ignore[import-untyped]

        async def probe() -> None:
            conn = await asyncpg.connect(dsn, timeout=3)
            await conn.close()

        asyncio.run(probe())
    except Exception as exc:
        return None, f"PostgreSQL at {dsn} is unreachable ({type(exc).__name__}); set BENCH_POSTGRES_DSN"
    return dsn, f"PostgreSQL at {dsn.rsplit('@', 1)[-1]}, a throw-away schema per run"


def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def scale(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    stores: dict[str, str] = {}
    for store in p.scale_stores:
        if store == "memory":
            stores[store] = "memory"
        elif store == "sqlite":
            stores[store] = "sqlite"
    dsn, pg_reason = postgres_status("postgresql" in p.scale_stores)
    if dsn:
        stores["postgresql"] = dsn
    rows: list[dict[str, Any]] = []
    for store, state_kind in stores.items():
        for users in p.scale_sizes:
            path = ctx.work / f"scale-{users}.sqlite3"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            state = {"memory": "memory", "sqlite": f"sqlite:///{path}"}.get(state_kind, state_kind)
            schema = f"bench_{uuid.uuid4().hex[:10]}" if store == "postgresql" else None
            server = None
            try:
                server, info = launch.start_seeded_gateway(f"scale-{store}-{users}", ctx.logs, ctx.server_cpus,
                                                           state=state, users=users, pg_schema=schema)
                target = Target(base=server.base, token=server.token, hit_name_fmt="scale.user{}@example.com",
                                hit_count=users, tag=f"scale-{store}-{users}")
                measure(ctx, server, "filter_hit", target, p.scale_concurrency, min(1.0, p.scale_duration_s))
                row = measure(ctx, server, "filter_hit", target, p.scale_concurrency, p.scale_duration_s)
                row.update({"store": store, "users": users, "seed_s": info.get("seed_s"),
                            "rss_empty_mb": info.get("rss_before_mb"), "rss_seeded_mb": info.get("rss_after_mb"),
                            "rss_after_load_mb": round(procs.rss_mb(server.pid), 1)})
                rows.append(row)
                ctx.say(f"  scale {store:<7} {users:>7} users: p50 {row['p50_ms']:.3f} ms p99 {row['p99_ms']:.3f} ms"
                        f" {row['rps']:.0f} req/s, RSS {row['rss_after_load_mb']:.0f} MB (seeded in {row['seed_s']}s)")
            finally:
                if server is not None:
                    server.stop()
                if schema and dsn:
                    _drop_schema(dsn, schema)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {"concurrency": p.scale_concurrency, "runs": rows, "flatness": flatness(rows),
            "postgresql": {"included": bool(dsn), "reason": pg_reason}}


def flatness(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per store: the largest size and the worst size against the smallest (a flat curve has both ≈ 1)."""
    flat = []
    for store in dict.fromkeys(r["store"] for r in rows):
        mine = sorted((r for r in rows if r["store"] == store), key=lambda r: r["users"])
        if len(mine) < 2:
            continue
        base = mine[0]
        worst = max(mine[1:], key=lambda r: r["p50_ms"])
        flat.append({
            "store": store, "from_users": base["users"], "to_users": mine[-1]["users"],
            "p50_ratio": round(mine[-1]["p50_ms"] / base["p50_ms"], 3),
            "p99_ratio": round(mine[-1]["p99_ms"] / base["p99_ms"], 3),
            "worst_users": worst["users"], "worst_p50_ratio": round(worst["p50_ms"] / base["p50_ms"], 3),
            "cpu_per_req_ratio": round(mine[-1]["server_cpu_us_per_req"] / base["server_cpu_us_per_req"], 3)
            if base["server_cpu_us_per_req"] else None,
        })
    return flat


async def _fill_groups(server: Server, group_ids: list[str], members: list[str], batch: int = 100) -> None:
    async with Http(server.url, server.token, server.base, limit=8) as http:
        jobs: list[Callable[[], Awaitable[int]]] = []
        for gid in group_ids:
            for k in range(0, len(members), batch):
                chunk = members[k:k + batch]
                jobs.append(lambda gid=gid, chunk=chunk: http.add_members(gid, chunk))  # type: ignore[misc]
        await bounded(jobs, 8)


def group_sizes(ctx: Context) -> dict[str, Any]:
    """Member add (E19, one member per PATCH) into groups that already hold N members: Entra's groups
    are often large, and a cost that grows with N makes an initial cycle quadratic."""
    p = ctx.profile
    groups, adds = 16, 25  # 400 measured requests: each group grows by 25 members during a measurement
    server = None
    try:
        server = launch.start_gateway("groups-gateway", ctx.logs, ctx.server_cpus)
        users = seed_users(server.url, server.token, server.base, _names("gs.user", max(p.group_sizes) + adds))
        rows = []
        for size in p.group_sizes:
            gids = seed_groups(server.url, server.token, server.base, [f"gs {size} {g}" for g in range(groups)])
            asyncio.run(_fill_groups(server, gids, users[:size]))
            target = Target(base=server.base, token=server.token, user_ids=users[size:size + adds],
                            group_ids=gids, tag=f"gs{size}")
            row = measure(ctx, server, "group_add", target, 8, 0, max_requests=groups * adds)
            row.update({"members_before": size, "members_after": size + adds})
            rows.append(row)
            ctx.say(f"  member add into groups of {size:>5}: p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms "
                    f"CPU {row['server_cpu_us_per_req']:.0f} us/req")
        return {"concurrency": 8, "groups": groups, "runs": rows}
    finally:
        if server is not None:
            server.stop()


# --- profiles of the hot paths ---------------------------------------------------------------------

def _profile_runs(ctx: Context, server: Server, seeded: Seeded, scenarios: Sequence[str], concurrency: int,
                  prefix: str, out: dict[str, Any]) -> None:
    p = ctx.profile
    folder = ctx.out / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    for k, scenario in enumerate(scenarios):
        target = _target(server, seeded, k, f"prof-{prefix}{scenario}", len(seeded.hot_ids))
        result: dict[str, Any] = {}

        def load(scenario: str = scenario, target: Target = target, result: dict[str, Any] = result) -> None:
            result["row"] = measure(ctx, server, scenario, target, concurrency, p.profile_duration_s + 2)

        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(1.0)
        folded = folder / f"{prefix}{scenario}.folded"
        try:
            record_profile(server.pid, folded, p.profile_duration_s, ctx.load_cpus)
        finally:
            thread.join()
        row = result.get("row", {})
        summary = profile_summary(folded, row.get("server_cpu_us_per_req", 0.0))
        (folder / f"{prefix}{scenario}.txt").write_text(summary.pop("text"))
        out["scenarios"][f"{prefix}{scenario}"] = {"load": row, "gc": row.get("gc"), "concurrency": concurrency,
                                                  **summary}
        ctx.say(f"  profiled {prefix}{scenario}: {summary['samples']} samples, "
                f"{row.get('server_cpu_us_per_req', 0):.0f} us CPU/req, "
                f"{summary['layers'].get('gateway', 0):.0f}% under gateway code")


def profiles(ctx: Context) -> dict[str, Any]:
    """py-spy profiles: the memory backend at c=64, then the Cleanmail backend (mock at 0 ms, so the
    samples are the gateway's own CPU per request, the same code path as with latency)."""
    p = ctx.profile
    if not p.profile_scenarios:
        return {"skipped": "not in this mode"}
    if not py_spy_available():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    out: dict[str, Any] = {"duration_s": p.profile_duration_s, "scenarios": {}}
    server = mock = None
    try:
        # The gateway app in the bench wrapper (same app factory and loop as ``scim-gateway serve``),
        # which also reports garbage-collector pauses.
        server, _ = launch.start_seeded_gateway("profile-gateway", ctx.logs, ctx.server_cpus, state="memory", users=0)
        seeded = _seed_for_hot_paths(ctx, server, len(p.profile_scenarios))
        _profile_runs(ctx, server, seeded, p.profile_scenarios, 64, "", out)
        server.stop()
        server = None
        if p.profile_backend_scenarios:
            mock = launch.start_mock("profile-mock", ctx.logs, ctx.load_cpus)
            state = f"sqlite:///{ctx.work / 'profile-state.sqlite3'}"
            server = launch.start_gateway("profile-gateway-cleanmail", ctx.logs, ctx.server_cpus, state=state,
                                          backend="cleanmail", mock_url=mock.url)
            small = Profile(**{**p.__dict__, "hot_users": 200, "active_pool": 200, "groups_per_run": 50})
            seeded = _seed_for_hot_paths(dataclasses.replace(ctx, profile=small), server,
                                         len(p.profile_backend_scenarios))
            _profile_runs(ctx, server, seeded, p.profile_backend_scenarios, 16, "cleanmail-", out)
        return out
    finally:
        for item in (server, mock):
            if item is not None:
                item.stop()
