"""Choosing concrete adapters and stores from settings: the only place that names them."""

from __future__ import annotations

from adapters.base import Adapter
from gateway.config import BackendSettings
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


def make_adapter(backend: BackendSettings) -> Adapter:
    if backend.adapter == "memory":
        from adapters.memory import MemoryAdapter

        return MemoryAdapter()
    from adapters.cleanmail.adapter import CleanmailAdapter

    return CleanmailAdapter(
        backend.url or "", backend.resolve_api_key(), default_domain=backend.list_domain,
        list_address_template=backend.list_address_template, attempt_timeout=backend.attempt_timeout,
        deadline=backend.deadline,
    )


def dry_run(adapter: Adapter, tenant: str) -> Adapter:
    """``adapter`` with every write simulated and logged instead of sent (``dry_run`` tenants)."""
    from adapters.dryrun import DryRunAdapter

    return DryRunAdapter(adapter, tenant=tenant)
