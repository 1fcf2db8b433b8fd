"""Section ``modoboa`` of the benchmark: the gateway on a real Modoboa 2.12, against Modoboa's own speed.

1. Modoboa's own latency per kind of call (sequential, straight to its API, no gateway).
2. Modoboa calls per SCIM operation, for Entra's sequences, counted by the adapter's client.
3. Entra's initial cycle (N users, N/100 groups, memberships in batches of 10) through the
   gateway at Entra's concurrency, compared with the bound that Modoboa's measured latencies
   set: Σ calls × median latency of their kind. Modoboa runs pinned to one core, where it is
   CPU-bound (an account create hashes a password with 70,000 rounds of SHA-512), so that sum
   is the least time the same calls can take there, whatever the concurrency.

Modoboa runs from the test fixture's cached install (``tests/realservers/modoboa.py``) with its
throttle raised, so the adapter does not pace: what is measured is the work, not the throttle.
The gateway runs in the harness process (on the other core), so that the adapter's own count of
the calls it sent, by URL pattern, can be read around each step.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adapters.modoboa.adapter import ModoboaAdapter, ModoboaSettings
from adapters.modoboa.pacing import Rates
from bench.client import Http, bounded
from bench.scenarios import member_add_body, member_remove_body, patch_active_body, patch_replace_body, user_body
from bench.sections import Context
from gateway.config import Settings
from gateway.http.app import create_app
from gateway.logs import configure_logging

TOKEN = "bench-modoboa-token-0c41"
BASE = "/scim/v2"
DOMAIN = "bench.example"
LIST_DOMAIN = "lists.bench.example"
PASSWORD = "Bench-Pass-4821"
DEFAULT_REQUESTS_PER_MINUTE = 300


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (threads made later inherit it from the main thread)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except OSError:
            continue


def _p50(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2) if values else float("nan")


# --- 1. Modoboa on its own ------------------------------------------------------------------------


class Direct:
    """Calls straight to Modoboa's API, timed by kind (keyed as the adapter counts them)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.url}/api/v2/{path}", json=body) as resp:
            data = await resp.json(content_type=None) if resp.status != 204 else None
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path} -> {resp.status}: {str(data)[:300]}")
        return data


async def _timed(jobs: list[Callable[[], Awaitable[Any]]], concurrency: int) -> tuple[float, list[Any]]:
    """(median seconds per call when one at a time, or seconds per call at ``concurrency``), results."""
    if concurrency == 1:
        times, results = [], []
        for job in jobs:
            started = time.perf_counter()
            results.append(await job())
            times.append(time.perf_counter() - started)
        return statistics.median(times), results
    started = time.perf_counter()
    results = await bounded(jobs, concurrency)
    return (time.perf_counter() - started) / len(jobs), results


async def _own_costs(url: str, token: str, samples: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Per kind of call: Modoboa's median latency one call at a time, and its time per call with
    ``concurrency`` in flight (the adapter's own limit), both in ms."""
    costs: dict[str, dict[str, float]] = {}
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    tag = uuid.uuid4().hex[:6]
    async with aiohttp.ClientSession(headers=headers) as session:
        api = Direct(session, url)

        async def kind(key: str, make: Callable[[int], Callable[[], Awaitable[Any]]]) -> list[Any]:
            latency, first = await _timed([make(i) for i in range(samples)], 1)
            per_call, second = await _timed([make(samples + i) for i in range(samples)], concurrency)
            costs[key] = {"latency_ms": round(latency * 1000, 2), "per_call_ms": round(per_call * 1000, 2)}
            return first + second

        def address(i: int) -> str:
            return f"own.{tag}.{i}@{DOMAIN}"

        rows = await kind("POST accounts", lambda i: lambda: api.call("POST", "accounts/", {
            "username": address(i), "password": PASSWORD, "role": "SimpleUsers", "first_name": "Own",
            "last_name": "Call", "mailbox": {"use_domain_quota": True}}))
        pks = [int(r["pk"]) for r in rows]
        await kind("GET accounts", lambda i: lambda: api.call(
            "GET", f"accounts/?search={address(i)}&role=SimpleUsers&page_size=100&ordering=username"))
        await kind("PATCH accounts/{pk}", lambda i: lambda: api.call("PATCH", f"accounts/{pks[i]}/",
                                                                        {"last_name": "Changed"}))
        rows = await kind("POST aliases", lambda i: lambda: api.call("POST", "aliases/", {
            "address": f"own-{tag}-{i}@{LIST_DOMAIN}", "recipients": [address(i)], "enabled": True,
            "description": "bench"}))
        aliases = [int(r["pk"]) for r in rows]
        await kind("GET aliases", lambda i: lambda: api.call(
            "GET", f"aliases/?search=own-{tag}-{i}@{LIST_DOMAIN}&page_size=1000"))
        await kind("PATCH aliases/{pk}", lambda i: lambda: api.call("PATCH", f"aliases/{aliases[i]}/", {
            "recipients": [address((i + k) % (2 * samples)) for k in range(10)], "enabled": True}))
        await kind("DELETE aliases/{pk}", lambda i: lambda: api.call("DELETE", f"aliases/{aliases[i]}/"))
        await kind("DELETE accounts/{pk}", lambda i: lambda: api.call("DELETE", f"accounts/{pks[i]}/"))
    return costs


# --- the gateway, in this process -------------------------------------------------------------------


class Gateway:
    """The gateway app on the Modoboa adapter, served on a loopback port of this process."""

    def __init__(self, modoboa_url: str, modoboa_token: str) -> None:
        self.adapter = ModoboaAdapter(modoboa_url, modoboa_token, list_domain=LIST_DOMAIN, rates=Rates(0, 0, 0))
        settings = Settings(token=TOKEN, backend="memory", state="memory", log_level="warning", log_format="json")
        self.app = create_app(settings, adapter=self.adapter)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.url = ""

    async def __aenter__(self) -> Gateway:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
        await self.adapter.close()

    def sent(self) -> Counter[str]:
        return Counter(self.adapter.client.sent)


def _diff(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in sorted(after) if after[k] - before[k]}


# --- 2. calls per SCIM operation --------------------------------------------------------------------


async def _sequence(gw: Gateway) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    tag = uuid.uuid4().hex[:8]
    name = f"entra.seq.{tag}@{DOMAIN}"
    async with Http(gw.url, TOKEN, BASE, limit=4) as http:
        helpers = [await http.create_user(f"entra.member{i}.{tag}@{DOMAIN}", f"m{i}{tag}") for i in range(10)]
        ids: dict[str, str] = {}

        async def step(label: str, request: str, method: str, path: str, body: Any = None) -> None:
            before = gw.sent()
            status, data = await http.call(method, path, body)
            if method == "POST" and isinstance(data, dict):
                ids[path.rsplit("/", 1)[-1]] = str(data["id"])
            calls = _diff(gw.sent(), before)
            steps.append({"step": label, "request": request, "status": status,
                          "modoboa_calls": sum(calls.values()), "by_endpoint": calls})

        u, g = f"{BASE}/Users", f"{BASE}/Groups"
        by_name = f"{u}?filter=userName+eq+%22{name.replace('@', '%40')}%22"
        await step("create: filter miss", 'GET /Users?filter=userName eq "<new>"', "GET", by_name)
        await step("create: POST", "POST /Users", "POST", u, user_body(name, f"x{tag}"))
        uid = ids["Users"]
        await step("filter hit", 'GET /Users?filter=userName eq "<existing>"', "GET", by_name)
        await step("get by id", "GET /Users/{id}", "GET", f"{u}/{uid}")
        await step("update", "PATCH /Users/{id} (E8: emails + familyName)", "PATCH", f"{u}/{uid}",
                   patch_replace_body(f"upd{tag}"))
        await step("disable", 'PATCH /Users/{id} active "False"', "PATCH", f"{u}/{uid}", patch_active_body(False))
        await step("re-enable", 'PATCH /Users/{id} active "True"', "PATCH", f"{u}/{uid}", patch_active_body(True))
        gname = f"Entra Seq {tag}"
        await step("group create: filter miss", "GET /Groups?filter=displayName eq", "GET",
                   f"{g}?excludedAttributes=members&filter=displayName+eq+%22{gname.replace(' ', '%20')}%22")
        await step("group create: POST", "POST /Groups", "POST", g,
                   {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": gname})
        gid = ids["Groups"]
        await step("member add", "PATCH /Groups/{id} add 1 member", "PATCH", f"{g}/{gid}", member_add_body([uid]))
        await step("member add x10", "PATCH /Groups/{id} add 10 members", "PATCH", f"{g}/{gid}",
                   member_add_body(helpers))
        await step("member remove", "PATCH /Groups/{id} remove 1 member", "PATCH", f"{g}/{gid}",
                   member_remove_body([uid]))
        await step("delete user", "DELETE /Users/{id}", "DELETE", f"{u}/{uid}")
        await step("delete group", "DELETE /Groups/{id}", "DELETE", f"{g}/{gid}")
    return steps


# --- 3. Entra's initial cycle -----------------------------------------------------------------------


async def _cycle(gw: Gateway, users: int, per_group: int, batch: int, concurrency: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    groups = max(1, users // per_group)
    errors: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    phases: dict[str, float] = {}
    ids = [""] * users
    gids = [""] * groups

    def guarded(op: str, work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            ops[op] += 1
            try:
                await work()
            except Exception as exc:
                errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
        return job

    async with Http(gw.url, TOKEN, BASE, limit=concurrency) as http:

        def provision_user(i: int) -> Callable[[], Awaitable[None]]:
            async def work() -> None:
                name = f"cycle.{tag}.{i}@{DOMAIN}"
                if await http.filter_users(name) == 0:
                    ops["post_user"] += 1
                    ids[i] = await http.create_user(name, f"c{tag}{i}")
            return guarded("filter", work)

        def provision_group(j: int) -> Callable[[], Awaitable[None]]:
            async def work() -> None:
                name = f"Cycle {tag} Group {j}"
                if await http.filter_groups(name) == 0:
                    ops["post_group"] += 1
                    gids[j] = await http.create_group(name, f"g{tag}{j}")
            return guarded("filter_group", work)

        def add(j: int, members: list[str]) -> Callable[[], Awaitable[None]]:
            async def work() -> None:
                await http.add_members(gids[j], members)
            return guarded("patch_members", work)

        before = gw.sent()
        started = time.monotonic()
        await bounded([provision_user(i) for i in range(users)], concurrency)
        phases["users_s"] = time.monotonic() - started
        mark = time.monotonic()
        await bounded([provision_group(j) for j in range(groups)], concurrency)
        phases["groups_s"] = time.monotonic() - mark
        rounds: list[tuple[int, list[str]]] = []
        chunks = [[ids[i] for i in range(j * per_group, min(users, (j + 1) * per_group)) if ids[i]]
                  for j in range(groups)]
        for k in range(0, per_group, batch):
            rounds.extend((j, members[k:k + batch]) for j, members in enumerate(chunks) if members[k:k + batch])
        mark = time.monotonic()
        await bounded([add(j, m) for j, m in rounds], concurrency)
        phases["memberships_s"] = time.monotonic() - mark
        wall = time.monotonic() - started
        calls = _diff(gw.sent(), before)
    return {"wall_s": round(wall, 2), "phases": {k: round(v, 2) for k, v in phases.items()}, "ops": dict(ops),
            "errors": dict(errors), "groups": groups, "modoboa_calls": sum(calls.values()), "by_endpoint": calls}


# --- the section ------------------------------------------------------------------------------------


def section(ctx: Context) -> dict[str, Any]:
    """Needs the test fixture's Modoboa (PostgreSQL and Redis on loopback): raises with why when it cannot run."""
    import pytest

    from tests.realservers.modoboa import POSTGRES_DSN, REDIS_URL, ModoboaInstance, Postgres, Redis, ensure_installed

    p = ctx.profile
    postgres, redis = Postgres.from_dsn(POSTGRES_DSN), Redis.from_url(REDIS_URL)
    try:
        install = ensure_installed(postgres, redis)
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        raise RuntimeError(f"Modoboa cannot run here: {exc}") from None
    ctx.logs.mkdir(parents=True, exist_ok=True)
    instance = ModoboaInstance.create(install, postgres, redis, ctx.logs)
    concurrency = ModoboaSettings.model_fields["max_concurrency"].default
    configure_logging("json", "warning", cache_loggers=False)
    try:
        server = instance.start_server(high_throttle=True)
        assert server.process is not None
        _pin(server.process.pid, ctx.load_cpus)
        os.sched_setaffinity(0, ctx.server_cpus)  # the gateway (this process) on the other core

        def empty() -> None:
            server.reset()
            for name in (DOMAIN, LIST_DOMAIN):
                server.create_domain(name)

        ctx.say(f"modoboa: Modoboa 2.12 on core(s) {sorted(ctx.load_cpus)}, the gateway in the harness on "
                f"{sorted(ctx.server_cpus)}; Modoboa's own cost over 2×{p.modoboa_samples} calls of each kind")
        empty()
        own = asyncio.run(_own_costs(server.url, server.token, p.modoboa_samples, concurrency))
        ctx.say("  Modoboa's own ms (one at a time / per call at c=" + str(concurrency) + "): "
                + ", ".join(f"{k} {v['latency_ms']}/{v['per_call_ms']}" for k, v in own.items()))

        async def measured() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            async with Gateway(server.url, server.token) as gw:
                empty()
                steps = await _sequence(gw)
                empty()
                cycle = await _cycle(gw, p.modoboa_users, p.cycle_users_per_group, p.cycle_batch,
                                     p.cycle_concurrency)
            return steps, cycle

        ctx.say(f"  Entra's sequences, then the initial cycle of {p.modoboa_users} users at concurrency "
                f"{p.cycle_concurrency}")
        steps, cycle = asyncio.run(measured())
    finally:
        os.sched_setaffinity(0, ctx.load_cpus)
        instance.close()
    def bound(measure: str) -> float:
        return sum(n * own[k][measure] for k, n in cycle["by_endpoint"].items() if k in own) / 1000

    unmeasured = sorted(k for k in cycle["by_endpoint"] if k not in own)
    scim_ops = sum(v for k, v in cycle["ops"].items() if k in ("filter", "post_user", "filter_group", "post_group",
                                                                "patch_members"))
    result = {
        "users": p.modoboa_users, "concurrency": p.cycle_concurrency, "users_per_group": p.cycle_users_per_group,
        "batch": p.cycle_batch, "adapter_concurrency": concurrency, "own_ms": own, "sequence": steps, **cycle,
        "scim_ops": scim_ops, "calls_per_op": round(cycle["modoboa_calls"] / scim_ops, 3) if scim_ops else None,
        "serial_bound_s": round(bound("latency_ms"), 1), "bound_s": round(bound("per_call_ms"), 1),
        "ratio_to_bound": round(cycle["wall_s"] / bound("per_call_ms"), 3) if bound("per_call_ms") else None,
        "unmeasured_kinds": unmeasured,
        "default_throttle_floor_s": round(cycle["modoboa_calls"] / DEFAULT_REQUESTS_PER_MINUTE * 60, 1),
    }
    ctx.say(f"  wall {cycle['wall_s']:.1f}s for {scim_ops} SCIM ops / {cycle['modoboa_calls']} Modoboa calls; "
            f"bound {result['bound_s']:.1f}s → ratio {result['ratio_to_bound']}; "
            f"errors {sum(cycle['errors'].values())}")
    return result


# --- report -----------------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> list[str]:
    if not result:
        return []
    lines = ["", "## 8. Modoboa 2.12 (real server): calls per SCIM operation and Entra's initial cycle", "",
             f"Modoboa's own cost per kind of call, straight to its API (ms): median latency one call at a time, "
             f"and time per call with {result['adapter_concurrency']} in flight (the adapter's limit).", "",
             "| call | latency ms | per call ms |", "|---|---:|---:|"]
    lines += [f"| `{k}` | {v['latency_ms']} | {v['per_call_ms']} |" for k, v in result["own_ms"].items()]
    lines += ["", "| step | SCIM request | status | Modoboa calls | which |", "|---|---|---:|---:|---|"]
    for s in result["sequence"]:
        calls = ", ".join(f"{k} ×{v}" for k, v in s["by_endpoint"].items())
        lines.append(f"| {s['step']} | `{s['request']}` | {s['status']} | {s['modoboa_calls']} | {calls} |")
    errors = sum(result["errors"].values())
    lines += ["", f"Initial cycle: {result['users']:,} users (filter miss → POST), {result['groups']} groups, "
                  f"memberships ({result['users_per_group']} per group, batches of {result['batch']}); "
                  f"concurrency {result['concurrency']}.", "",
              "| wall s | users s | groups s | members s | SCIM ops | Modoboa calls | calls/op | bound s | ratio "
              "| serial s | errors |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
              f"| {result['wall_s']:.1f} | {result['phases']['users_s']:.1f} | {result['phases']['groups_s']:.1f} "
              f"| {result['phases']['memberships_s']:.1f} | {result['scim_ops']:,} | {result['modoboa_calls']:,} "
              f"| {result['calls_per_op']} | {result['bound_s']:.1f} | **{result['ratio_to_bound']}×** "
              f"| {result['serial_bound_s']:.1f} | {errors} |", "",
              "Bound: Σ calls × Modoboa's own time per call of their kind at the adapter's concurrency; serial: "
              "the same with its one-at-a-time latency. Under Modoboa's default throttle (300 requests/min per "
              f"token) the same calls need at least {result['default_throttle_floor_s']:.0f} s.", "",
              "Modoboa calls: " + ", ".join(f"{k} ×{v:,}" for k, v in result["by_endpoint"].items())]
    return lines


def console(result: dict[str, Any]) -> list[str]:
    if not result:
        return []
    return ["", f"modoboa cycle: {result['users']:,} users c={result['concurrency']}: {result['wall_s']:.1f} s vs "
                f"Modoboa's own bound {result['bound_s']:.1f} s = {result['ratio_to_bound']}× "
                f"({result['calls_per_op']} Modoboa calls per SCIM op, errors {sum(result['errors'].values())})"]
