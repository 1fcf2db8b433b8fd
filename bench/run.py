"""``python -m bench.run --quick|--full``: the gateway beside its baselines, in one run.

    make bench-quick   about 3 minutes, results printed as a table (and in bench/results/quick/)
    make bench         ~25 minutes, medians over 3 repetitions, writes bench/results/
                       (latest.json, results.md, chart.png, profiles/)

Servers run pinned to one core, the load generator (wrk, else an aiohttp client) to the
other; every child process is bounded in time and stopped at the end, on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import ldap_backend, modoboa_backend, procs
from bench.default_config import default_config
from bench.load import wrk_path
from bench.postfixadmin_backend import section as postfixadmin_section
from bench.report import console_table, evaluate_targets, write_results
from bench.sections import (
    Context,
    Profile,
    backend,
    flatness,
    group_sizes,
    hot_paths,
    initial_cycle,
    profiles,
    scale,
)

RESULTS = Path(__file__).resolve().parent / "results"

QUICK = Profile(
    name="quick", reps=1, duration_s=1, concurrencies=(8, 64), hot_users=500, active_pool=300, groups_per_run=50,
    warmup_s=1, mock_concurrencies=(8,), mock_reps=1, mock_duration_s=1, cycle_users=1000, cycle_concurrency=16,
    scale_sizes=(1000, 10000), scale_duration_s=1, group_sizes=(10, 100), profile_scenarios=(), modoboa_users=200,
    modoboa_samples=10, default_duration_s=2, budget_s=420,
)
FULL = Profile(
    name="full", reps=3, duration_s=3, concurrencies=(8, 64), hot_users=1000, active_pool=500, groups_per_run=100,
    bare_asyncio=True, warmup_s=2, mock_concurrencies=(8, 64), mock_reps=2, mock_duration_s=3, cycle_users=10000,
    cycle_concurrency=16, scale_sizes=(1000, 10000, 100000), scale_stores=("memory", "sqlite", "postgresql"),
    scale_duration_s=3,
    profile_scenarios=("filter_hit", "filter_miss", "post_user", "patch_replace", "patch_active", "group_add"),
    profile_duration_s=5,
    profile_backend_scenarios=("filter_hit", "patch_replace"),
    default_reps=3,
    budget_s=2400,
)
RUNNERS = (("default", "default_config", default_config), ("hot", "hot_paths", hot_paths),
           ("backend", "backend", backend), ("cycle", "initial_cycle", initial_cycle), ("scale", "scale", scale),
           ("groups", "group_sizes", group_sizes), ("profile", "profiles", profiles),
           ("postfixadmin", "postfixadmin", postfixadmin_section), ("ldap", "ldap_backend", ldap_backend.section),
           ("modoboa", "modoboa", modoboa_backend.section))
"""(--only key, key in the results file, the function that measures it)."""
MEASURED = tuple(name for _, name, _ in RUNNERS if name != "postfixadmin")
"""Sections that record the code they measured (postfixadmin writes its own file)."""
SECTIONS = tuple(key for key, _, _ in RUNNERS)
QUICK_SECTIONS = tuple(s for s in SECTIONS if s != "modoboa")
"""A quick run leaves out the real Modoboa (a minute or two more); ``--only modoboa`` runs it."""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return 0.0


def _git() -> dict[str, Any]:
    """The code measured: commit and whether the work tree had uncommitted changes (read-only git)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=procs.ROOT, capture_output=True, text=True, timeout=10,
                                  check=False).stdout.rstrip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "?", "uncommitted_files": len(changed),
            "uncommitted": changed[:40]}


def tree_hash() -> str:
    """A digest of the measured code (gateway/, adapters/): tells whether it changed during the run."""
    import hashlib

    digest = hashlib.sha256()
    for folder in ("gateway", "adapters"):
        for path in sorted((procs.ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(procs.ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def machine(ctx: Context, generator: str, usable: int) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(), "cores_usable": usable, "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(), "python": platform.python_version(), "platform": platform.platform(),
        "aiohttp": _version("aiohttp"), "uvloop": _version("uvloop"), "orjson": _version("orjson"),
        "scim2_server": _version("scim2-server"), "uvicorn": _version("uvicorn"),
        "generator": generator, "wrk": wrk_path() or "not installed",
        "server_cores": ",".join(map(str, sorted(ctx.server_cpus))),
        "load_cores": ",".join(map(str, sorted(ctx.load_cpus))),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


NOTES = [
    "Each server is a separate process pinned to core 0 (`os.sched_setaffinity`); the load generator and the "
    "harness are pinned to core 1. The Cleanmail mock (the 'remote' backend) shares core 1 with the load generator.",
    "Load generator: wrk 4.1 (Debian package), one thread, HTTP/1.1 keep-alive, `--timeout 10s`, Lua scripts "
    "rendered from `bench/scenarios.py`. One wrk thread drives > 50k req/s on its core, so it never limits the "
    "servers measured here; a Python client on one core would (bench/pyload.py is the fallback when wrk is absent).",
    "Request bodies are Microsoft's documented Entra requests: E2 create, E4/E5 filter with `+` for spaces, "
    "E8 replace, E10 `\"active\": \"False\"` (default engine), E19 member add with `\"$ref\": null`.",
    "Every write is a real change: unique userNames per POST, PATCH values carry the request number, "
    "`active` alternates False/True over a pool that starts active, member adds use fresh groups per run.",
    "Latency: wrk's closed-loop latency (time from sending a request to its full response), so p99 includes "
    "queueing behind the other connections.",
    "Server CPU per request: user+system CPU of the server process over the run (from /proc, 10 ms ticks) "
    "divided by requests. 'Foreign CPU' = CPU used on the server core by processes other than the server.",
    "The default-configuration section runs `scim-gateway serve` untuned (see there). The other sections tune it: "
    "`SCIM_GATEWAY_LOG_LEVEL=warning` (no access log), memory state for the hot paths, "
    "SQLite state for the mock and cycle scenarios (the deployment default).",
]


def rerender(out: Path) -> int:
    import json

    results = json.loads((out / "latest.json").read_text())
    if results.get("scale", {}).get("runs"):
        results["scale"]["flatness"] = flatness(results["scale"]["runs"])
    results["targets"] = evaluate_targets(results)
    write_results(results, out)
    print(console_table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="about 3 minutes, 1 repetition, 1k/10k users")
    mode.add_argument("--full", action="store_true", help="~25 minutes, 3 repetitions, 10k cycle, 100k scale")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; "
                                                     "a quick run leaves out modoboa)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results[/quick])")
    parser.add_argument("--reps", type=int, default=None, help="override the repetitions")
    parser.add_argument("--duration", type=float, default=None, help="override seconds per hot-path run")
    parser.add_argument("--cycle-users", type=int, default=None)
    parser.add_argument("--cycle-concurrency", type=int, default=None)
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling priority of the servers and the load generator (e.g. -10 as root, so "
                             "other work on a shared machine disturbs the measurement less); 0 leaves it alone")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sections of the folder's latest.json (re-run only --only's sections)")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: re-render the targets, results.md and chart.png from latest.json")
    args = parser.parse_args(argv)
    if args.report_only:
        return rerender(args.out or (RESULTS / "quick" if args.quick else RESULTS))

    profile = QUICK if args.quick else FULL
    overrides = {"reps": args.reps, "duration_s": args.duration, "cycle_users": args.cycle_users,
                 "cycle_concurrency": args.cycle_concurrency}
    profile = dataclasses.replace(profile, **{k: v for k, v in overrides.items() if v is not None})
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)  # sections may write their own files there (postfixadmin.md)
    usable = len(procs.cores())
    server_cpus, load_cpus = procs.core_plan()
    os.sched_setaffinity(0, load_cpus)  # the harness itself stays off the server's core
    generator = args.generator if args.generator != "auto" else ("wrk" if wrk_path() else "python")
    work = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    ctx = Context(profile=profile, out=out, work=work, server_cpus=server_cpus, load_cpus=load_cpus,
                  generator=generator,
                  sections=set(args.only.split(",")) if args.only else set(QUICK_SECTIONS if args.quick else SECTIONS))
    unknown = ctx.sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    procs.install_cleanup()
    procs.NICE = args.nice
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # children (wrk, py-spy, the mock) inherit it
    started = time.monotonic()
    results: dict[str, Any] = {
        "schema": 1, "mode": profile.name, "command": "python -m bench.run " + " ".join(sys.argv[1:] or []),
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(ctx, generator, usable),
        "code": {**_git(), "tree_hash_start": tree_hash()},
        "profile": dataclasses.asdict(profile), "notes": NOTES,
    }
    if generator == "python":
        results["notes"] = [*NOTES, "wrk was not installed: the aiohttp load generator was used; absolute "
                                    "throughputs are then capped by the client, ratios understated."]
    ctx.say(f"{profile.name} run: server core(s) {sorted(server_cpus)}, load core(s) {sorted(load_cpus)}, "
            f"generator {generator}, scratch {work}")
    failures: dict[str, str] = {}
    try:
        with procs.Watchdog(profile.budget_s):
            for key, name, section in RUNNERS:
                if key not in ctx.sections:
                    continue
                try:
                    code_at_start = tree_hash()
                    results[name] = section(ctx)
                    results[name]["code_tree"] = code_at_start
                except Exception as exc:  # one broken section must not lose the others
                    failures[name] = f"{type(exc).__name__}: {exc}"
                    ctx.say(f"section {name} failed: {failures[name]}")
                    procs.stop_all()
    finally:
        procs.stop_all()
        if not failures:
            shutil.rmtree(work, ignore_errors=True)
    results["code"]["tree_hash_end"] = tree_hash()
    trees = {name: results[name].get("code_tree") for name in MEASURED if isinstance(results.get(name), dict)}
    if len(set(trees.values()) | {results["code"]["tree_hash_start"]}) > 1:
        results["notes"] = [*results["notes"], "WARNING: gateway/ or adapters/ changed during this run, so its "
                            "sections measured different code (each section's servers load the code when they "
                            "start): " + ", ".join(f"{k} {v}" for k, v in trees.items())]
    results["machine"]["nice"] = args.nice
    results["failures"] = failures
    if failures:
        results["logs"] = str(work / "logs")
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    foreign = [r["foreign_cpu_pct"] for r in results.get("hot_paths", {}).get("runs", [])]
    results["machine"]["foreign_cpu_pct_median"] = round(statistics.median(foreign), 1) if foreign else None
    if args.merge and (out / "latest.json").exists():
        import json

        previous = json.loads((out / "latest.json").read_text())
        fresh = {k: results[k] for k in MEASURED if k in results}
        merged = [*previous.get("merged", []), {"sections": sorted(fresh), "started": results["started"],
                                                "duration_s": results["duration_s"], "code": results["code"]}]
        results = {**previous, **fresh, "merged": merged}
        foreign = [r["foreign_cpu_pct"] for r in results.get("hot_paths", {}).get("runs", [])]
        results["machine"]["foreign_cpu_pct_median"] = round(statistics.median(foreign), 1) if foreign else None
        trees = {name: results[name].get("code_tree") for name in MEASURED if isinstance(results.get(name), dict)}
        results["notes"] = [n for n in results["notes"] if not n.startswith("WARNING")]
        if len(set(trees.values())) > 1:
            results["notes"].append("WARNING: the sections measured different code: "
                                    + ", ".join(f"{k} {v}" for k, v in trees.items()))
    results["targets"] = evaluate_targets(results)
    paths = write_results(results, out)
    print(console_table(results))
    print("results: " + ", ".join(paths.values()))
    if failures:
        print("failed sections: " + "; ".join(f"{k}: {v}" for k, v in failures.items()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
