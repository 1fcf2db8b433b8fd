"""Choosing concrete adapters and stores from settings: the only place that names them."""

from __future__ import annotations

from adapters.base import Adapter
from gateway.config import Settings
from gateway.store.base import StateStore


def make_store(state: str) -> StateStore:
    if state == "memory":
        from gateway.store.memory import MemoryStore

        return MemoryStore()
    if state.startswith("sqlite://"):
        from gateway.store.sqlite import SqliteStore

        # As in SQLAlchemy: sqlite:///relative/path, sqlite:////absolute/path.
        return SqliteStore(state.removeprefix("sqlite:///") or ":memory:")
    raise ValueError(f"unsupported state store {state!r}")


def make_adapter(settings: Settings) -> Adapter:
    if settings.backend == "memory":
        from adapters.memory import MemoryAdapter

        return MemoryAdapter()
    from adapters.cleanmail.adapter import CleanmailAdapter

    api_key = settings.cleanmail_api_key.get_secret_value() if settings.cleanmail_api_key else ""
    return CleanmailAdapter(settings.cleanmail_url, api_key, default_domain=settings.cleanmail_domain)
