"""The configuration users run: ``scim-gateway serve`` with its defaults, beside the peers.

``make run`` starts the gateway with SQLite state and the access log at ``info`` (JSON lines to
stderr, here a file as under systemd or docker). This section measures exactly that, with the
memory backend so that the platform's own speed stays out of the comparison (the peers keep
their users in memory too), next to:

- scimgateway (Node, jelhub/scimgateway) with its in-memory loki plugin, when it can be
  installed (``bench.peers``); otherwise the column is left out and the reason reported;
- scim2-server (Python, in-memory), when installed (``pip install -e '.[bench]'``);
- a bare aiohttp handler that answers with a fixed body: the floor of the stack's CPU cost.

wrk with one thread and keep-alive, the server pinned to one core and wrk to the other.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import peers, procs
from bench.scenarios import TITLES
from bench.sections import Context, Seeded, _fake_seeded, _seed_for_hot_paths, _target, measure, preflight_all, warm_up
from bench.servers import launch
from bench.servers.launch import Server

SCENARIOS = ("filter_hit", "post_user", "patch_active")
SERVERS = ("gateway", "scimgateway", "peer", "bare")
LABELS = {"gateway": "gateway (default config)", "scimgateway": f"scimgateway {peers.SCIMGATEWAY_VERSION}",
          "peer": "scim2-server", "bare": "bare aiohttp"}

# Goals of the default configuration: throughput ratios against each peer, flat tails, CPU near the floor.
OVER_SCIMGATEWAY = {"filter_hit": 2.0, "post_user": 3.0, "patch_active": 4.0}
OVER_SCIM2_SERVER = 5.0
MAX_TAIL_RATIO = 3.0
MAX_CPU_OVER_BARE = {"filter_hit": 2.5, "post_user": 3.5, "patch_active": 3.5}


def start_default_gateway(name: str, logs: Path, cpus: set[int], state_file: Path) -> Server:
    """``scim-gateway serve`` as a user starts it: nothing set but the token, the backend and the state."""
    port = procs.free_port()
    env = {
        "SCIM_GATEWAY_TOKEN": launch.TOKEN,
        "SCIM_GATEWAY_BACKEND": "memory",
        "SCIM_GATEWAY_STATE": f"sqlite:///{state_file}",
    }
    # Whatever the caller's shell has set, the defaults apply.
    unset = [k for k in os.environ if k.startswith("SCIM_GATEWAY_") and k not in env]
    proc = procs.Proc(name, [str(procs.VENV_BIN / "scim-gateway"), "serve", "--port", str(port)], cpus=cpus,
                      log=logs / f"{name}.log", env=env, unset=unset)
    procs.wait_port(port, 30, proc)
    return Server(name, proc, f"http://{procs.HOST}:{port}", launch.GATEWAY_BASE)


def _count_access_lines(log: Path) -> int:
    with log.open("rb") as handle:
        return sum(1 for line in handle if b'"event":"request"' in line)


def _cell(rows: list[dict[str, Any]], server: str, scenario: str, concurrency: int) -> dict[str, Any]:
    mine = [r for r in rows if r["server"] == server and r["scenario"] == scenario and r["concurrency"] == concurrency]
    if not mine:
        return {}

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in mine))

    return {"rps": round(median("rps"), 1), "p50_ms": round(median("p50_ms"), 3), "p99_ms": round(median("p99_ms"), 3),
            "tail_ratio": round(float(statistics.median(r["p99_ms"] / r["p50_ms"] for r in mine if r["p50_ms"])), 2),
            "server_cpu_us_per_req": round(median("server_cpu_us_per_req"), 1),
            "errors": sum(sum(r["errors"].values()) for r in mine), "runs": len(mine)}


def summarise(rows: list[dict[str, Any]], concurrencies: tuple[int, ...]) -> list[dict[str, Any]]:
    summary = []
    for scenario in SCENARIOS:
        for concurrency in concurrencies:
            cells = {name: _cell(rows, name, scenario, concurrency) for name in SERVERS}
            gw = cells["gateway"]
            row: dict[str, Any] = {"scenario": scenario, "concurrency": concurrency,
                                   **{name: cell for name, cell in cells.items() if cell}}
            for name in ("scimgateway", "peer"):
                if gw and cells[name].get("rps"):
                    row[f"gateway_over_{name}"] = round(gw["rps"] / cells[name]["rps"], 2)
            if gw and cells["bare"].get("server_cpu_us_per_req"):
                row["cpu_over_bare"] = round(gw["server_cpu_us_per_req"] / cells["bare"]["server_cpu_us_per_req"], 2)
            summary.append(row)
    return summary


def targets(section: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of the default configuration, met or not, with the figure that decides it."""
    out: list[dict[str, Any]] = []

    def add(tid: str, what: str, goal: str, measured: str, met: bool | None, note: str = "") -> None:
        out.append({"id": tid, "target": what, "goal": goal, "measured": measured, "met": met, "note": note})

    for row in section.get("summary", []):
        scenario, c = row["scenario"], row["concurrency"]
        title = f"{TITLES[scenario]}, c={c}"
        for peer, goal in (("scimgateway", OVER_SCIMGATEWAY[scenario]), ("peer", OVER_SCIM2_SERVER)):
            ratio = row.get(f"gateway_over_{peer}")
            if ratio is None:
                reason = section.get("skipped", {}).get(peer, "not measured")
                add(f"default:{scenario}:c{c}:over_{peer}", f"{title}: ≥ {goal:g}× {LABELS[peer]}", f"≥ {goal:g}×",
                    "—", None, reason)
            else:
                add(f"default:{scenario}:c{c}:over_{peer}", f"{title}: ≥ {goal:g}× {LABELS[peer]}", f"≥ {goal:g}×",
                    f"{ratio:.2f}×", ratio >= goal)
        gw = row.get("gateway", {})
        if gw and c == max(r["concurrency"] for r in section["summary"]):
            add(f"default:{scenario}:tail", f"{title}: p99 ≤ {MAX_TAIL_RATIO:g}× p50", f"≤ {MAX_TAIL_RATIO:g}×",
                f"{gw['tail_ratio']:.2f}× (p50 {gw['p50_ms']:.1f} ms, p99 {gw['p99_ms']:.1f} ms)",
                gw["tail_ratio"] <= MAX_TAIL_RATIO)
        if row.get("cpu_over_bare") is not None:
            limit = MAX_CPU_OVER_BARE[scenario]
            add(f"default:{scenario}:c{c}:cpu", f"{title}: CPU per request ≤ {limit:g}× bare aiohttp",
                f"≤ {limit:g}×", f"{row['cpu_over_bare']:.2f}× ({gw['server_cpu_us_per_req']:.0f} µs vs "
                f"{row['bare']['server_cpu_us_per_req']:.0f} µs)", row["cpu_over_bare"] <= limit)
    lines = section.get("access_log")
    if lines:
        add("default:access_log", "access log at info loses no line", "one line per request",
            f"{lines['lines']:,} lines for {lines['requests']:,} requests", lines["lines"] >= lines["requests"])
    return out


def default_config(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    reps, duration = p.default_reps, p.default_duration_s
    servers: dict[str, Server] = {}
    skipped: dict[str, str] = {}
    try:
        ctx.say("default configuration: scim-gateway serve (SQLite state, access log at info), peers, bare aiohttp")
        servers["gateway"] = start_default_gateway("gateway_default", ctx.logs, ctx.server_cpus,
                                                   ctx.work / "default-state.sqlite3")
        reason = peers.install_scimgateway()
        if reason is None:
            servers["scimgateway"] = peers.start_scimgateway("scimgateway", ctx.logs, ctx.server_cpus)
        else:
            skipped["scimgateway"] = reason
            ctx.say(f"  scimgateway left out: {reason}")
        if launch.peer_available():
            servers["peer"] = launch.start_peer("peer_default", ctx.logs, ctx.server_cpus)
        else:
            skipped["peer"] = "scim2-server is not installed (pip install -e '.[bench]')"
        servers["bare"] = launch.start_bare("bare_default", ctx.logs, ctx.server_cpus, loop=p.default_bare_loop)

        pools = len(p.concurrencies) * reps
        seeded: dict[str, Seeded] = {}
        for name, server in servers.items():
            started = time.monotonic()
            seeded[name] = _fake_seeded(ctx, pools) if name == "bare" else _seed_for_hot_paths(ctx, server, pools)
            ctx.say(f"  seeded {name} in {time.monotonic() - started:.1f}s")

        checks = preflight_all(servers, seeded, SCENARIOS, "dpf")
        warm_up(ctx, servers, seeded, "dwarm")

        rows: list[dict[str, Any]] = []
        for scenario in SCENARIOS:
            for ci, concurrency in enumerate(p.concurrencies):
                for rep in range(reps):
                    for name, server in servers.items():
                        if not checks[scenario][name]["ok"]:
                            continue
                        tag = f"d-{name}-{scenario}-c{concurrency}-r{rep}"
                        row = measure(ctx, server, scenario,
                                      _target(server, seeded[name], ci * reps + rep, tag, p.hot_users),
                                      concurrency, duration)
                        row.update(server=name, rep=rep)
                        rows.append(row)
                gw = _cell(rows, "gateway", scenario, concurrency)
                ctx.say(f"  {scenario:<13} c={concurrency:<3} gateway {gw.get('rps', 0):7.0f} req/s  "
                        f"p50 {gw.get('p50_ms', 0):6.2f} ms  p99 {gw.get('p99_ms', 0):7.2f} ms  "
                        f"cpu {gw.get('server_cpu_us_per_req', 0):5.0f} us/req  | "
                        + "  ".join(f"{n} {_cell(rows, n, scenario, concurrency).get('rps', 0):.0f}"
                                    for n in servers if n != "gateway"))
        gateway = servers["gateway"]
        gateway.stop()  # flushes and closes its log
        sent = sum(r["requests"] for r in rows if r["server"] == "gateway")
        section: dict[str, Any] = {
            "scenarios": list(SCENARIOS), "reps": reps, "duration_s": duration, "concurrencies": list(p.concurrencies),
            "servers": {name: LABELS[name] for name in servers}, "skipped": skipped, "preflight": checks,
            "runs": rows, "summary": summarise(rows, p.concurrencies), "bare_loop": p.default_bare_loop,
            "seeded_users": p.hot_users + pools * p.active_pool,
            # Every request wrk counted was answered, so it must have its access-log line (warm-up and seeding too).
            "access_log": {"lines": _count_access_lines(gateway.proc.log), "requests": sent},
        }
        if "scimgateway" in servers:
            section["scimgateway"] = peers.describe()
        section["targets"] = targets(section)
        return section
    finally:
        for server in servers.values():
            server.stop()


# --- rendering (called by bench.report) ---------------------------------------------------------

def _num(value: Any, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(section: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    servers = section.get("servers", {})
    present = [name for name in SERVERS if name in servers]
    lines = ["", "## The default configuration, beside the peers", "",
             f"`scim-gateway serve` with nothing set but the token and the backend (memory): SQLite state, the "
             f"access log at `info` as JSON lines to a file. Median of {section['reps']} run(s) of "
             f"{section['duration_s']:.0f} s per server, the servers measured back to back, each alone on the "
             f"server core; wrk, one thread. CPU = the server's own CPU time per request.", ""]
    if "scimgateway" in section:
        sg = section["scimgateway"]
        lines += [f"scimgateway {sg.get('scimgateway')} on Node {sg.get('node', '?')} (tsx {sg.get('tsx', '?')}, "
                  f"lokijs {sg.get('lokijs', '?')}), loki plugin in memory, logging off. scim2-server "
                  f"{machine.get('scim2_server', '?')} under uvicorn. bare = an aiohttp handler answering a fixed "
                  f"body, on the event loop the gateway runs on ({section.get('bare_loop', '?')}).", ""]
    for name, reason in section.get("skipped", {}).items():
        lines += [f"**{LABELS[name]} not measured:** {reason}", ""]
    head = "| scenario | c | " + " | ".join(f"{LABELS[n]} req/s | p50 / p99 ms | CPU µs" for n in present)
    head += " | gw / scimgateway | gw / scim2-server | gw CPU / bare |"
    lines += [head, "|---|---:|" + "---:|---:|---:|" * len(present) + "---:|---:|---:|"]
    for row in section.get("summary", []):
        cells = []
        for name in present:
            cell = row.get(name, {})
            cells.append(f"{_num(cell.get('rps'))} | {_num(cell.get('p50_ms'), 2)} / {_num(cell.get('p99_ms'), 1)} "
                         f"| {_num(cell.get('server_cpu_us_per_req'))}")
        lines.append(f"| {TITLES[row['scenario']]} | {row['concurrency']} | " + " | ".join(cells)
                     + f" | {_num(row.get('gateway_over_scimgateway'), 2)}× | {_num(row.get('gateway_over_peer'), 2)}× "
                       f"| {_num(row.get('cpu_over_bare'), 2)}× |")
    if section.get("seeded_users"):
        held = {name: section["seeded_users"] + sum(r["requests"] for r in section["runs"]
                                                      if r["server"] == name and r["scenario"] == "post_user")
                for name in present if name != "bare"}
        lines += ["", "Every server gets the same requests for the same time, so a faster server ends up holding "
                      "more users: " + ", ".join(f"{LABELS[n]} {held[n]:,}" for n in held) + " at the end "
                      f"({section['seeded_users']:,} seeded, the rest POSTed by the runs). A server that scans its "
                      "users on each lookup (scimgateway's loki plugin) slows down as they accumulate; the runs "
                      "at c=64 follow those at c=8."]
    log = section.get("access_log")
    if log:
        lines += ["", f"Access log: {log['lines']:,} lines for the {log['requests']:,} requests wrk counted "
                      "(plus seeding and warm-up): none lost."]
    bad = [f"{s} on {n}: {c['status']} {c['body'][:120]}" for s, v in section.get("preflight", {}).items()
           for n, c in v.items() if not c["ok"]]
    if bad:
        lines += ["", "Pre-flight failures (not measured): " + "; ".join(bad)]
    return lines


def console(section: dict[str, Any]) -> list[str]:
    present = [name for name in SERVERS if name in section.get("servers", {})]
    head = f"{'default configuration':<38}{'c':>4}" + "".join(f"{n[:11]:>12}" for n in present) \
        + f"{'p50 ms':>8}{'p99 ms':>8}{'CPU us':>8}{'/sgw':>6}{'/s2s':>6}{'cpu/bare':>9}"
    out = ["", head, "-" * len(head)]
    for row in section.get("summary", []):
        gw = row.get("gateway", {})
        out.append(f"{TITLES[row['scenario']]:<38}{row['concurrency']:>4}"
                   + "".join(f"{_num(row.get(n, {}).get('rps')):>12}" for n in present)
                   + f"{_num(gw.get('p50_ms'), 2):>8}{_num(gw.get('p99_ms'), 1):>8}"
                     f"{_num(gw.get('server_cpu_us_per_req')):>8}{_num(row.get('gateway_over_scimgateway'), 2):>6}"
                     f"{_num(row.get('gateway_over_peer'), 2):>6}{_num(row.get('cpu_over_bare'), 2):>9}")
    out += [f"{LABELS[n]} not measured: {why}" for n, why in section.get("skipped", {}).items()]
    return out
