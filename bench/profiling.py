"""Sampling profiles of the gateway under load (py-spy), summarised per function and per layer.

py-spy samples the running server from outside (no code change, no restart); ``raw`` output
is the collapsed-stack format that speedscope and flamegraph.pl read. Time in C code (orjson,
uvloop, the ``sqlite3`` module) is charged to the Python line that called it.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from bench import procs

PROJECT = ("gateway/", "adapters/")
LOOP = ("aiohttp/", "asyncio/", "uvloop/", "uvicorn/")


def py_spy_available() -> bool:
    return shutil.which("py-spy") is not None or (procs.VENV_BIN / "py-spy").exists()


def record_profile(pid: int, folded: Path, duration_s: float, cpus: set[int], rate: int = 250) -> None:
    exe = shutil.which("py-spy") or str(procs.VENV_BIN / "py-spy")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(duration_s))), "--rate", str(rate),
            "--format", "raw", "--output", str(folded)]
    done = procs.run_bounded(argv, cpus=cpus, timeout=duration_s + 30)
    if done.returncode != 0 or not folded.exists():
        raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr[-600:]}")


def _frame(raw: str) -> tuple[str, str]:
    """'func (path/file.py:123)' → ('func', 'path/file.py')."""
    name, _, where = raw.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return (name or raw), path


def _package(path: str) -> str:
    if path.startswith(PROJECT):
        return path
    head = path.split("/", 1)[0].removesuffix(".py")
    return head or "?"


def profile_summary(folded: Path, cpu_us_per_req: float, top: int = 25) -> dict[str, Any]:
    total = 0
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        # Frames below the event loop are the process's entry (cli.main → serve → run_app): not owners.
        first = next((i for i, (_, path) in enumerate(frames) if path.startswith(LOOP)), 0)
        frames = frames[first:]
        leaf_name, leaf_path = frames[-1]
        self_time[f"{leaf_name} ({leaf_path})"] += count
        seen: set[str] = set()
        owner = None
        for name, path in frames:
            if path.startswith(PROJECT):
                key = f"{name} ({path})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
                owner = path
        owners[owner or _package(leaf_path)] += count
    if not total:
        return {"samples": 0, "layers": {}, "owners": [], "top_self": [], "top_inclusive": [], "text": "no samples\n"}

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": k, "pct": round(100 * v / total, 1), "us_per_req": round(cpu_us_per_req * v / total, 1)}
                for k, v in counter.most_common(top)]

    in_project = sum(v for k, v in owners.items() if k.startswith(PROJECT))
    layers = {"gateway": round(100 * in_project / total, 1), "stack": round(100 * (total - in_project) / total, 1)}
    result: dict[str, Any] = {
        "samples": total, "cpu_us_per_req": cpu_us_per_req, "layers": layers,
        "owners": rows(owners), "top_self": rows(self_time), "top_inclusive": rows(inclusive),
    }
    lines = [f"samples: {total}   server CPU per request: {cpu_us_per_req:.0f} us   "
             f"gateway code (incl. what it calls): {layers['gateway']}%   aiohttp/event loop/rest: {layers['stack']}%",
             "", "by owner (deepest gateway/adapters file on the stack, else the leaf's package):"]
    lines += [f"  {r['pct']:5.1f}%  {r['us_per_req']:7.1f} us/req  {r['function']}" for r in result["owners"]]
    lines += ["", "inclusive, gateway/adapters functions:"]
    lines += [f"  {r['pct']:5.1f}%  {r['us_per_req']:7.1f} us/req  {r['function']}" for r in result["top_inclusive"]]
    lines += ["", "self (leaf frame):"]
    lines += [f"  {r['pct']:5.1f}%  {r['us_per_req']:7.1f} us/req  {r['function']}" for r in result["top_self"]]
    result["text"] = "\n".join(lines) + "\n"
    return result
