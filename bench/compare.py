"""``python -m bench.compare BASE``: the tuned hot paths of commit BASE beside the working tree's.

    make bench-compare BASE=1313c40             CPU per request under wrk, interleaved runs
    make bench-compare BASE=1313c40 MODE=instr  instructions per request under callgrind

Both servers run the same code path as the hot-paths section (memory backend, memory
state, log level warning), on this checkout's virtualenv: BASE must run on today's
dependencies. CPU time is what users pay but moves with whatever else the machine does;
runs alternate between the two servers and the table gives medians. Instruction counts
(valgrind's callgrind, in user space) repeat to within half a percent, so they show a
change of 1 % that CPU time cannot; syscalls and cache misses are not in them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import procs
from bench.load import run_load
from bench.run import QUICK
from bench.scenarios import HOT_PATHS, TITLES
from bench.sections import Context, _seed_for_hot_paths, _target, measure, preflight_all, warm_up
from bench.servers import launch

REPO = Path(__file__).resolve().parent.parent


def export(ref: str, into: Path) -> Path:
    """The tree of commit ``ref`` as plain files (no worktree to clean up)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-f", "-", "-C", str(into)], input=archive, check=True)
    return into


def start(name: str, tree: Path, ctx: Context, wrapper: list[str] | None = None) -> launch.Server:
    port = procs.free_port()
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); from gateway.cli import main; "
            f"sys.exit(main(['serve', '--port', '{port}']))")
    proc = procs.Proc(name, [*(wrapper or []), sys.executable, "-c", code], cpus=ctx.server_cpus,
                      log=ctx.logs / f"{name}.log", env=launch.gateway_env("memory"))
    procs.wait_port(port, 300 if wrapper else 30, proc)
    return launch.Server(name, proc, f"http://{procs.HOST}:{port}", launch.GATEWAY_BASE)


def cpu_table(ctx: Context, trees: dict[str, Path], scenarios: list[str]) -> dict[tuple[str, int], dict[str, float]]:
    """(scenario, concurrency) → server → median CPU µs per request, runs alternating between servers."""
    p = ctx.profile
    servers: dict[str, launch.Server] = {}
    try:
        servers = {name: start(name, tree, ctx) for name, tree in trees.items()}
        pools = len(p.concurrencies) * p.reps
        seeded = {name: _seed_for_hot_paths(ctx, server, pools) for name, server in servers.items()}
        preflight_all(servers, seeded, scenarios, "pf")
        warm_up(ctx, servers, seeded, "warm")
        table: dict[tuple[str, int], dict[str, float]] = {}
        for scenario in scenarios:
            for ci, concurrency in enumerate(p.concurrencies):
                samples: dict[str, list[float]] = {name: [] for name in servers}
                for rep in range(p.reps):
                    for name, server in servers.items():
                        target = _target(server, seeded[name], ci * p.reps + rep,
                                         f"{name}-{scenario}-c{concurrency}-r{rep}", p.hot_users)
                        row = measure(ctx, server, scenario, target, concurrency, p.duration_s)
                        samples[name].append(row["server_cpu_us_per_req"])
                table[(scenario, concurrency)] = {name: statistics.median(v) for name, v in samples.items()}
                ctx.say(f"  {scenario} c={concurrency}: " + ", ".join(
                    f"{name} {cpu:.1f} µs" for name, cpu in table[(scenario, concurrency)].items()))
        return table
    finally:
        for server in servers.values():
            server.stop()


def instruction_table(ctx: Context, trees: dict[str, Path], scenarios: list[str], requests: int
                      ) -> dict[tuple[str, int], dict[str, float]]:
    """(scenario, 4) → server → instructions per request, each scenario counted alone under callgrind."""
    if shutil.which("valgrind") is None:
        raise SystemExit("bench.compare: instruction counts need valgrind (apt-get install valgrind)")
    table: dict[tuple[str, int], dict[str, float]] = {(s, 4): {} for s in scenarios}
    for name, tree in trees.items():
        out = ctx.work / f"callgrind-{name}"
        server = start(name, tree, ctx, ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                                         f"--callgrind-out-file={out}.%p"])
        try:
            seeded = _seed_for_hot_paths(ctx, server, len(scenarios) * 2)
            for i, scenario in enumerate(scenarios):
                warm = _target(server, seeded, 2 * i, f"{name}-{scenario}-warm", ctx.profile.hot_users)
                run_load(scenario, warm, server.url, 4, max_requests=requests // 2, cpus=ctx.load_cpus,
                         generator="python", workdir=ctx.work / "scripts")
                target = _target(server, seeded, 2 * i + 1, f"{name}-{scenario}", ctx.profile.hot_users)
                _callgrind(server.pid, "--zero")
                _callgrind(server.pid, "--instr=on")
                run_load(scenario, target, server.url, 4, max_requests=requests, cpus=ctx.load_cpus,
                         generator="python", workdir=ctx.work / "scripts")
                _callgrind(server.pid, "--instr=off")
                _callgrind(server.pid, f"--dump={scenario}")
                dump = max(ctx.work.glob(f"callgrind-{name}.*"), key=lambda f: f.stat().st_mtime)
                table[(scenario, 4)][name] = _total_instructions(dump) / requests
                ctx.say(f"  {scenario}: {name} {table[(scenario, 4)][name] / 1000:.1f}k instructions per request")
        finally:
            server.stop()
    return table


def _callgrind(pid: int, action: str) -> None:
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True, timeout=60)


def _total_instructions(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def render(table: dict[tuple[str, int], dict[str, float]], base: str, unit: str) -> str:
    lines = [f"| {unit} per request | c | {base} | working tree | ratio |", "|---|---:|---:|---:|---:|"]
    for (scenario, concurrency), cells in table.items():
        before, now = cells["base"], cells["now"]
        figure = "{:,.0f}" if unit == "instructions" else "{:,.1f}"
        lines.append(f"| {TITLES[scenario]} | {concurrency} | {figure.format(before)} | {figure.format(now)} "
                     f"| {now / before:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the commit to compare with (any git revision)")
    parser.add_argument("--mode", choices=("cpu", "instr"), default="cpu")
    parser.add_argument("--reps", type=int, default=5, help="runs per cell and server (cpu mode)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (cpu mode)")
    parser.add_argument("--requests", type=int, default=400, help="requests counted per scenario (instr mode)")
    parser.add_argument("--scenarios", default=",".join(HOT_PATHS))
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator (cpu mode)")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(HOT_PATHS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        (work / "logs").mkdir()
        base_tree = export(args.base, work / "base-tree")
        server_cpus, load_cpus = procs.core_plan()
        os.sched_setaffinity(0, load_cpus)  # the harness itself stays off the server's core
        procs.install_cleanup()
        profile = dataclasses.replace(QUICK, reps=args.reps, duration_s=args.duration, hot_users=1000,
                                      active_pool=500, groups_per_run=100)
        ctx = Context(profile=profile, out=work, work=work, server_cpus=server_cpus, load_cpus=load_cpus,
                      generator=args.generator)
        trees = {"base": base_tree, "now": REPO}
        if args.mode == "cpu":
            table = cpu_table(ctx, trees, scenarios)
            unit = "CPU µs"
        else:
            # Fewer users than the CPU runs: seeding runs under valgrind too.
            ctx = dataclasses.replace(ctx, profile=dataclasses.replace(profile, hot_users=200, active_pool=100,
                                                                       groups_per_run=20))
            table = instruction_table(ctx, trees, scenarios, args.requests)
            unit = "instructions"
        print(render(table, args.base, unit))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
