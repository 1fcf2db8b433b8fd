"""scim-sanity's ``probe`` (strict mode) against the live gateway.

The probe is a blocking CLI, so it runs as a subprocess while this test's event loop
serves the gateway. Its ``--json-output`` report is parsed; FAIL and ERROR results fail
the test, WARN results are printed for the record.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from gateway.http.app import create_app
from tests.conformance import live_server, shorten
from tests.conftest import TOKEN, make_settings

FAILING = ("fail", "error")
PROBE_TIMEOUT_S = 300


async def run_probe(base_url: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scim_sanity", "probe", base_url,
        "--token", TOKEN,
        "--strict",
        "--i-accept-side-effects",
        "--json-output",
        "--timeout", "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Plain output: no colour codes, no proxy picked up from the environment.
        env={**os.environ, "NO_COLOR": "1", "NO_PROXY": "127.0.0.1,localhost"},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def describe(result: dict[str, Any]) -> str:
    line = f"{result['status'].upper():<5} [{result.get('phase', '')}] {result['name']}"
    if result.get("message"):
        line += f": {shorten(result['message'])}"
    if result.get("details"):
        line += f"\n        details: {shorten(result['details'])}"
    return line


def report(doc: dict[str, Any]) -> str:
    summary = doc.get("summary", {})
    lines = [f"scim-sanity {doc.get('scim_sanity_version', '?')} ({doc.get('mode')}): {summary}"]
    results: list[dict[str, Any]] = doc.get("results", [])
    failing = [r for r in results if r["status"] in FAILING]
    if failing:
        lines.append("FAILURES:")
        lines += ["  " + describe(r) for r in failing]
    warnings = [r for r in results if r["status"] == "warn"]
    if warnings:
        lines.append("WARNINGS (not failing the test):")
        lines += ["  " + describe(r) for r in warnings]
    for issue in doc.get("issues", []):
        lines.append(f"  probe diagnosis [{issue['priority']}] {issue['title']}: {issue['fix']}")
    return "\n".join(lines)


async def test_scim_sanity_probe_strict() -> None:
    app = create_app(make_settings())
    async with live_server(app) as base_url:
        code, out, err = await run_probe(base_url)
    try:
        doc: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        raise AssertionError(f"scim-sanity exited {code} without a JSON report\n{out}\n{err}") from None
    text = report(doc)
    print(text)
    results = doc.get("results", [])
    assert results, f"scim-sanity ran no check\n{err}"
    failing = [r for r in results if r["status"] in FAILING]
    assert not failing, text
    assert code == 0, f"scim-sanity exited {code}\n{text}\n{err}"
