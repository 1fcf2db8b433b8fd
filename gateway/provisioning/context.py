"""What a tenant's services share, and the names of the locks they take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adapters.base import Adapter
from gateway.provisioning.guard import BackendGuard
from gateway.store.base import StateStore


@dataclass
class TenantContext:
    """Everything a service needs for one tenant."""

    tenant: str
    adapter: Adapter
    store: StateStore
    guard: BackendGuard
    max_page_size: int
    domains: frozenset[str] = frozenset()
    """Mail domains the tenant may provision; empty allows any."""
    landing_window_s: float = 5.0
    max_patch_operations: int = 1000


def lock_key(resource_type: str, by: Literal["id", "name"], value: str) -> str:
    """The store lock that serialises writes to one resource (``by="id"``) or to one natural key.

    Natural keys compare case-insensitively, and so do their locks.
    """
    return f"{resource_type}/{by}/{value.lower() if by == 'name' else value}"
