"""The gateway on the ldap backend against a local, throwaway slapd: LDAP round trips per SCIM operation and
Entra's initial cycle.

    .venv/bin/python -m bench.run --quick --only ldap      # 1,000-user cycle
    .venv/bin/python -m bench.run --full --only ldap       # 10,000-user cycle

Round trips are slapd's own count (its monitor database: operations completed, by kind), read
before and after each SCIM request, so they are what reached the server, not what the adapter
believes it sent. slapd runs with the test fixture's configuration (ppolicy, no refint, the
least-privilege service account), pinned to the load generator's core; the gateway to the server
core, with SQLite state, as deployed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

from bench import procs
from bench.client import Http
from bench.sections import Context, backend_sequence, entra_cycle
from bench.servers.launch import GATEWAY_BASE, Server, gateway_env
from tests.realservers.slapd import DEBCONF, PACKAGES, Slapd, SlapdOptions

PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# One reading of the monitor is itself a bind, a search and an unbind, which the next reading counts.
READING = Counter({"bind": 1, "search": 1, "unbind": 1})
QUIET = ("abandon", "compare")


class OperationCounts:
    """slapd's completed operations, less those of the readings themselves."""

    def __init__(self, server: Slapd) -> None:
        self.server = server
        self.readings = 0

    async def __call__(self) -> Counter[str]:
        counts = Counter(await asyncio.to_thread(self.server.operation_counts))
        own = Counter({k: v * self.readings for k, v in READING.items()})
        own["bind"] += 1  # this reading's own bind has completed already
        self.readings += 1
        counts.subtract(own)
        return Counter({k: v for k, v in counts.items() if k not in QUIET})


def _install() -> None:
    from tests.realservers.support import apt_install

    try:
        apt_install("OpenLDAP slapd", PACKAGES, DEBCONF)
    except BaseException as exc:  # pytest's skip/fail outcomes are BaseExceptions
        raise RuntimeError(f"slapd is not available: {exc}") from None


def start_directory(ctx: Context) -> tuple[Slapd, procs.Proc]:
    """A configured slapd run as a bench child (stopped with the others whatever happens)."""
    _install()
    server = Slapd(ctx.work / "slapd", SlapdOptions(monitor=True))
    server.configure()
    proc = procs.Proc("slapd", server.command(), cpus=ctx.load_cpus, log=ctx.logs / "slapd.log")
    procs.wait_port(server.port, 20, proc)
    for _ in range(100):
        if server.bind_result(server.admin_dn, server.admin_password)[0] == 0:
            return server, proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError("slapd does not answer binds")


def ldap_env(server: Slapd) -> dict[str, str]:
    return {
        "SCIM_GATEWAY_LDAP_URL": server.url,
        "SCIM_GATEWAY_LDAP_BIND_DN": server.service_dn,
        "SCIM_GATEWAY_LDAP_BIND_PASSWORD": server.service_password,
        "SCIM_GATEWAY_LDAP_USERS_DN": server.users_dn,
        "SCIM_GATEWAY_LDAP_GROUPS_DN": server.groups_dn,
    }


def start_gateway(ctx: Context, server: Slapd) -> Server:
    port = procs.free_port()
    env = {**gateway_env(f"sqlite:///{ctx.work / 'ldap-state.sqlite3'}", "ldap"), **ldap_env(server)}
    proc = procs.Proc("ldap-gateway", [str(procs.VENV_BIN / "scim-gateway"), "serve", "--port", str(port)],
                      cpus=ctx.server_cpus, log=ctx.logs / "ldap-gateway.log", env=env)
    procs.wait_port(port, 30, proc)
    return Server("ldap-gateway", proc, f"http://{procs.HOST}:{port}", GATEWAY_BASE)


async def _ldap_steps(gw: Server, counts: OperationCounts) -> list[dict[str, Any]]:
    """What the shared Entra sequence leaves out and an LDAP directory does its own way."""
    steps: list[dict[str, Any]] = []
    tag = uuid.uuid4().hex[:8]
    async with Http(gw.url, gw.token, gw.base, limit=2) as http:
        uid = await http.create_user(f"ldap.seq.{tag}@example.com", f"l{tag}")
        gid = await http.create_group(f"LDAP Seq {tag}", f"lg{tag}")
        await http.add_members(gid, [uid])

        async def step(label: str, method: str, path: str, body: Any) -> None:
            before = await counts()
            status, _ = await http.call(method, path, body)
            after = await counts()
            diff = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
            steps.append({"step": label, "request": f"{method} {path.split('/')[-2]}", "status": status,
                          "backend_calls": sum(diff.values()), "by_endpoint": dict(sorted(diff.items()))})

        u, g = f"{gw.base}/Users/{uid}", f"{gw.base}/Groups/{gid}"
        password = {"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "password",
                                                            "value": f"Pw-{tag}-1"}]}
        await step("password (Okta PATCH)", "PATCH", u, password)
        rename = {"schemas": [PATCH_URN], "Operations": [{"op": "Replace", "path": "userName",
                                                          "value": f"ldap.renamed.{tag}@example.com"}]}
        await step("rename (1 group)", "PATCH", u, rename)
        retitle = {"schemas": [PATCH_URN], "Operations": [{"op": "Replace", "path": "displayName",
                                                           "value": f"LDAP Renamed {tag}"}]}
        await step("group rename", "PATCH", g, retitle)
        await step("delete user (1 group)", "DELETE", u, None)
    return steps


def section(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    directory = gw = None
    try:
        server, directory = start_directory(ctx)
        gw = start_gateway(ctx, server)
        counts = OperationCounts(server)
        ctx.say("ldap: LDAP operations per SCIM request (slapd's monitor counts)")
        steps = asyncio.run(backend_sequence(gw, counts))
        steps += asyncio.run(_ldap_steps(gw, counts))
        users = p.cycle_users
        ctx.say(f"ldap: initial cycle of {users:,} users at concurrency {p.cycle_concurrency}")
        slapd_cpu = procs.process_cpu_s(directory.pid)
        with procs.CpuMeter(gw.pid, ctx.server_cpus) as meter:
            cycle = asyncio.run(entra_cycle(gw, counts, users, p.cycle_users_per_group, p.cycle_batch,
                                            p.cycle_concurrency))
        slapd_cpu = procs.process_cpu_s(directory.pid) - slapd_cpu
        cycle.pop("tag", None)
        scim_ops = sum(cycle["ops"].values())
        out = {
            "steps": steps,
            "cycle": {
                "users": users, "concurrency": p.cycle_concurrency, **cycle, "scim_ops": scim_ops,
                "scim_ops_per_s": round(scim_ops / cycle["wall_s"], 1),
                "ldap_ops_per_scim_op": round(cycle["backend_calls"] / scim_ops, 3) if scim_ops else None,
                "gateway_cpu_pct": round(meter.server_pct, 1), "slapd_cpu_s": round(slapd_cpu, 1),
                "foreign_cpu_pct": round(meter.foreign_pct, 1),
            },
        }
        ctx.say(f"  wall {cycle['wall_s']:.1f}s for {scim_ops:,} SCIM ops ({out['cycle']['scim_ops_per_s']:,.0f}/s), "
                f"{cycle['backend_calls']:,} LDAP ops, errors {sum(cycle['errors'].values())}")
        return out
    finally:
        for child in (gw, directory):
            if child is not None:
                child.stop()


# --- report ------------------------------------------------------------------------------------------------------


def markdown(data: dict[str, Any]) -> list[str]:
    lines = ["", "## 7. LDAP backend against a local slapd", "",
             "LDAP operations per SCIM request, as slapd's monitor database counts them (a new connection's "
             "bind shows where it happened):", "",
             "| step | SCIM request | LDAP operations | by kind |", "|---|---|---:|---|"]
    for s in data.get("steps", []):
        kinds = ", ".join(f"{k} {v}" for k, v in s["by_endpoint"].items())
        lines.append(f"| {s['step']} | `{s['request']}` | {s['backend_calls']} | {kinds} |")
    cycle = data.get("cycle")
    if cycle:
        gateway_ms = cycle["gateway_cpu_pct"] / 100 * cycle["wall_s"] * 1000 / max(1, cycle["scim_ops"])
        slapd_ms = cycle["slapd_cpu_s"] * 1000 / max(1, cycle["backend_calls"])
        lines += ["", f"Entra's initial cycle: {cycle['users']:,} users, {cycle['groups']:,} groups, memberships in "
                      f"batches, concurrency {cycle['concurrency']}:", "",
                  "| wall s | users s | groups s | members s | SCIM ops | ops/s | LDAP ops | per SCIM op "
                  "| gateway CPU ms per SCIM op | slapd CPU ms per LDAP op | other load on the gateway core | errors |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {cycle['wall_s']:.1f} | {cycle['phases']['users_s']:.1f} | {cycle['phases']['groups_s']:.1f} "
                  f"| {cycle['phases']['memberships_s']:.1f} | {cycle['scim_ops']:,} | {cycle['scim_ops_per_s']:,.0f} "
                  f"| {cycle['backend_calls']:,} | {cycle['ldap_ops_per_scim_op']} | {gateway_ms:.2f} "
                  f"| {slapd_ms:.2f} | {cycle['foreign_cpu_pct']:.0f}% | {sum(cycle['errors'].values())} |",
                  "", "LDAP operations: " + ", ".join(f"{k} ×{v:,}" for k, v in cycle["backend_by_endpoint"].items())]
    return lines


def console(data: dict[str, Any]) -> list[str]:
    cycle = data.get("cycle")
    if not cycle:
        return []
    return ["", f"ldap initial cycle: {cycle['users']:,} users c={cycle['concurrency']}: {cycle['wall_s']:.1f} s, "
                f"{cycle['scim_ops_per_s']:,.0f} SCIM ops/s, {cycle['ldap_ops_per_scim_op']} LDAP ops per SCIM op, "
                f"errors {sum(cycle['errors'].values())}"]
