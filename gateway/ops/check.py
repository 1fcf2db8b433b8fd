"""``scim-gateway check``: is this configuration ready to serve?

Validates the settings, then reaches every component the gateway will need, the way
``serve`` would: the state store (open + check) and each tenant's backend (start +
check + close). Nothing is written anywhere: a SQLite file that does not exist yet is
not created, only its directory is checked.

Exit status: 0 all OK, 1 a component failed, 2 the configuration is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from yarl import URL

from adapters.base import Adapter, HealthCheck
from gateway.backends import BackendSettingsError, plugin, validate_options
from gateway.config import DEFAULT_TENANT, Settings, TenantSettings
from gateway.ops.output import table
from gateway.ops.settings_report import ConfigProblems, load
from gateway.store.base import StateStore
from gateway.wiring import make_adapter, make_store, settings_source

OK, FAIL = "OK", "FAIL"
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


@dataclass
class Row:
    component: str
    ok: bool
    detail: str
    config_error: bool = False


def redact_dsn(state: str) -> str:
    """The state setting fit for output: a DSN's password is masked."""
    if not state.startswith(("postgresql://", "postgres://")):
        return state
    url = URL(state)
    return str(url.with_password("***")) if url.password else state


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


async def check_store(settings: Settings, wait_s: float) -> Row:
    name = f"state store ({redact_dsn(settings.state)})"
    if settings.state == "memory":
        return Row(name, True, "process memory: mappings are lost on every restart")
    pending = _sqlite_to_be_created(name, settings.state)
    if pending is not None:
        return pending
    store = make_store(settings.state)
    started = time.monotonic()
    try:
        await asyncio.wait_for(_open_and_check(store), wait_s)
    except TimeoutError:
        return Row(name, False, f"no answer within {wait_s:g}s")
    except Exception as exc:
        return Row(name, False, _describe(exc))
    finally:
        # A failure to close adds nothing to the failure already reported.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(store.close(), wait_s)
    return Row(name, True, f"reachable in {_ms(started)}")


async def _open_and_check(store: StateStore) -> None:
    await store.open()
    await store.check()


def _sqlite_to_be_created(name: str, state: str) -> Row | None:
    """The verdict on a SQLite file that does not exist yet, which a check must not create."""
    if not state.startswith("sqlite://"):
        return None
    path = Path(state.removeprefix("sqlite:///") or ":memory:")
    if str(path) == ":memory:" or path.exists():
        return None
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if os.access(parent, os.W_OK | os.X_OK):
        return Row(name, True, f"{path} does not exist yet; serve creates it ({parent} is writable)")
    return Row(name, False, f"{path} does not exist and {parent} is not writable: serve could not create it")


def _ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"


async def check_backend(tenant: str, settings: TenantSettings, wait_s: float, *, from_env: bool = False) -> Row:
    backend = settings.backend
    name = f"backend {tenant} ({backend.adapter})"
    suffix = "; dry-run: writes are simulated" if settings.dry_run else ""
    try:
        found = plugin(backend.adapter)
        options = validate_options(found, backend.options, settings_source(tenant, from_env))
        adapter = make_adapter(tenant, settings, from_env=from_env)
    except ValueError as exc:
        problem = str(exc) if isinstance(exc, BackendSettingsError) else f"tenants.{tenant}.backend: {exc}"
        return Row(name, False, f"{problem} — correct the tenant's backend settings", config_error=True)
    where = f"{found.location(options)}: " if found.location is not None else ""
    started = time.monotonic()
    try:
        counts = await asyncio.wait_for(_reach(adapter), wait_s)
    except TimeoutError:
        return Row(name, False, f"{where}no answer within {wait_s:g}s")
    except Exception as exc:
        return Row(name, False, f"{where}{_describe(exc)}")
    finally:
        # A failure to close adds nothing to the failure already reported.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(adapter.close(), wait_s)
    if not found.keeps_data:
        return Row(name, True, f"in-process backend: its data is lost on every restart{suffix}")
    return Row(name, True, f"{where}reachable in {_ms(started)}; {counts}{suffix}")


async def _reach(adapter: Adapter) -> str:
    await adapter.start()
    if isinstance(adapter, HealthCheck):
        await adapter.check()
    users = (await adapter.find_users(None, 0, 1)).total
    counts = f"{users} mailbox{'es' if users != 1 else ''}"
    if adapter.capabilities.groups:
        groups = (await adapter.find_groups(None, 0, 1)).total
        counts += f", {groups} list{'s' if groups != 1 else ''}"
    return counts


async def run_checks(settings: Settings, *, wait_s: float = 10.0) -> list[Row]:
    tenants = settings.effective_tenants()
    source = f"from {settings.config}" if settings.config else "from the environment"
    rows = [Row("configuration", True, f"{len(tenants)} tenant{'s' if len(tenants) != 1 else ''} {source}")]
    checks = [check_store(settings, wait_s)]
    from_env = settings.token is not None
    checks.extend(check_backend(name, tenant, wait_s, from_env=from_env and name == DEFAULT_TENANT)
                  for name, tenant in sorted(tenants.items()))
    rows.extend(await asyncio.gather(*checks))
    return rows


def render(rows: list[Row]) -> str:
    return table(["COMPONENT", "STATUS", "DETAIL"], [[r.component, OK if r.ok else FAIL, r.detail] for r in rows])


def main(config: Path | None, *, wait_s: float = 10.0, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load(config)
    except ConfigProblems as problems:
        for line in problems.lines:
            print(line, file=err)
        return EXIT_CONFIG
    rows = asyncio.run(run_checks(settings, wait_s=wait_s))
    print(render(rows), file=out)
    if any(r.config_error for r in rows):
        for row in rows:
            if row.config_error:
                print(row.detail, file=err)
        return EXIT_CONFIG
    return EXIT_OK if all(r.ok for r in rows) else EXIT_FAILED
