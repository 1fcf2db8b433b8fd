"""Choosing concrete adapters and stores from settings: the only place that builds them."""

from __future__ import annotations

from adapters.base import Adapter
from adapters.plugins import BackendContext
from gateway.backends import build
from gateway.config import DEFAULT_TENANT, TenantSettings
from gateway.store.base import StateStore


def make_store(state: str) -> StateStore:
    if state == "memory":
        from gateway.store.memory import MemoryStore

        return MemoryStore()
    if state.startswith("sqlite://"):
        from gateway.store.sqlite import SqliteStore

        # As in SQLAlchemy: sqlite:///relative/path, sqlite:////absolute/path.
        return SqliteStore(state.removeprefix("sqlite:///") or ":memory:")
    if state.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(state)
    raise ValueError(f"unsupported state store {state!r}")


def settings_source(tenant: str, from_env: bool) -> str:
    """Where a tenant's backend settings were written, as error messages name it."""
    return "env" if from_env and tenant == DEFAULT_TENANT else f"tenants.{tenant}.backend"


def make_adapter(tenant: str, settings: TenantSettings, *, from_env: bool = False) -> Adapter:
    """The tenant's backend, as configured (a dry run wraps it separately); ValueError naming the setting
    when one is wrong."""
    backend = settings.backend
    where = settings_source(tenant, from_env)

    def open_backend(name: str) -> Adapter:
        from gateway.backends import options_from_env, plugin

        # A wrapped backend's settings: the same table when it is the configured one, else its variables.
        options = backend.options if name == backend.adapter else options_from_env(plugin(name))
        return build(name, options, context, where)

    context = BackendContext(
        tenant=tenant, list_domain=backend.list_domain, list_address_template=backend.list_address_template,
        domains=frozenset(settings.domains), open_backend=open_backend,
    )
    return build(backend.adapter, backend.options, context, where)


def dry_run(adapter: Adapter, tenant: str) -> Adapter:
    """``adapter`` with every write simulated and logged instead of sent (``dry_run`` tenants)."""
    from adapters.dryrun import DryRunAdapter

    return DryRunAdapter(adapter, tenant=tenant)
