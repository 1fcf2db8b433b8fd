"""``scim-gateway verify-backend``: the contract kit against a tenant's configured backend.

Operators run it before they point Entra at a new platform. It creates and deletes only
objects it names itself (mailboxes ``kit-<run>-…@DOMAIN``, lists ``Kit <run> …``), and it
says so before it starts. Where the backend tells how to reach its platform, the
transport-fault checks run through a local TCP proxy in front of it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from adapters.base import Adapter
from adapters.contract import CHECKS, KitSkip, KitTarget, TcpFaultProxy
from adapters.plugins import BackendContext
from gateway.backends import AnyPlugin, plugin, validate_options
from gateway.config import DEFAULT_TENANT, TenantSettings
from gateway.ops.settings_report import ConfigProblems, load
from gateway.wiring import make_adapter, settings_source

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


async def _run(adapter: Adapter, domain: str, faults: TcpFaultProxy | None, out: TextIO) -> tuple[int, int, int]:
    passed = failed = skipped = 0
    await adapter.start()
    try:
        for check in CHECKS:
            target = KitTarget(adapter, domain, faults=faults)
            started = time.monotonic()
            try:
                await check.run(target)
            except KitSkip as skip:
                skipped += 1
                print(f"SKIP  {check.name}: {skip}", file=out)
                continue
            except Exception as exc:
                failed += 1
                print(f"FAIL  {check.name}: {check.summary}\n      {type(exc).__name__}: {exc}", file=out)
                continue
            passed += 1
            print(f"PASS  {check.name} ({(time.monotonic() - started) * 1000:.0f} ms)", file=out)
    finally:
        await adapter.close()
    return passed, failed, skipped


def _proxied(backend: AnyPlugin, tenant: str, settings: TenantSettings, from_env: bool,
             proxy: TcpFaultProxy) -> Adapter:
    """The tenant's backend, reaching its platform through ``proxy``."""
    assert backend.relocate is not None
    options = validate_options(backend, settings.backend.options, settings_source(tenant, from_env))
    context = BackendContext(tenant=tenant, list_domain=settings.backend.list_domain,
                             list_address_template=settings.backend.list_address_template,
                             domains=frozenset(settings.domains))
    return backend.create(backend.relocate(options, proxy.host, proxy.port), context)


async def verify(tenant: str, settings: TenantSettings, domain: str, from_env: bool, out: TextIO) -> int:
    backend = plugin(settings.backend.adapter)
    options: Any = validate_options(backend, settings.backend.options, settings_source(tenant, from_env))
    print(f"verify-backend: tenant {tenant!r}, backend {backend.name!r}; creating and deleting test mailboxes "
          f"and lists named kit-*@{domain} / 'Kit …'", file=out)
    endpoint = backend.endpoint(options) if backend.endpoint is not None and backend.relocate is not None else None
    if endpoint is None:
        passed, failed, skipped = await _run(make_adapter(tenant, settings, from_env=from_env), domain, None, out)
    else:
        async with TcpFaultProxy(*endpoint) as proxy:
            adapter = _proxied(backend, tenant, settings, from_env, proxy)
            passed, failed, skipped = await _run(adapter, domain, proxy, out)
    if skipped:
        print(f"({skipped} check{'s' if skipped != 1 else ''} did not apply to this backend)", file=out)
    print(f"verify-backend: {passed} passed, {failed} failed", file=out)
    return EXIT_OK if failed == 0 else EXIT_FAILED


def main(config: Path | None, tenant: str | None, domain: str, accepted: bool, *,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if not accepted:
        print("verify-backend creates, changes and deletes mailboxes and lists on the platform (only ones it names "
              f"itself, under {domain}); pass --i-accept-side-effects to go ahead", file=err)
        return EXIT_CONFIG
    try:
        settings = load(config)
    except ConfigProblems as problems:
        print("\n".join(problems.lines), file=err)
        return EXIT_CONFIG
    tenants = settings.effective_tenants()
    name = tenant or (next(iter(tenants)) if len(tenants) == 1 else DEFAULT_TENANT)
    if name not in tenants:
        print(f"--tenant: no tenant named {name!r} — use one of: {', '.join(sorted(tenants))}", file=err)
        return EXIT_CONFIG
    from_env = settings.token is not None and name == DEFAULT_TENANT
    try:
        return asyncio.run(verify(name, tenants[name], domain.strip().lower(), from_env, out))
    except ValueError as exc:
        print(f"tenants.{name}.backend: {exc} — correct the tenant's backend settings", file=err)
        return EXIT_CONFIG
