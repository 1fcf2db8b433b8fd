"""Tenants: who a bearer token belongs to, and the backend and services that serve it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adapters.base import Adapter
from gateway.config import TenantSettings
from gateway.provisioning.context import TenantContext
from gateway.provisioning.guard import BackendGuard
from gateway.provisioning.kinds import group_kind, user_kind
from gateway.provisioning.members import MemberDirectory
from gateway.provisioning.service import ResourceService
from gateway.ratelimit import RateLimiter
from gateway.store.base import StateStore


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Tenant:
    id: str
    adapter: Adapter
    users: ResourceService
    groups: ResourceService
    guard: BackendGuard
    rate_limiter: RateLimiter | None
    settings: TenantSettings


def build_tenant(
    tenant_id: str, settings: TenantSettings, adapter: Adapter, store: StateStore, *, max_page_size: int,
    landing_window_s: float = 5.0, max_patch_operations: int = 1000,
) -> Tenant:
    guard = BackendGuard(settings.concurrency, settings.queue_timeout,
                         adapter_counts_calls=adapter.capabilities.counts_platform_calls)
    ctx = TenantContext(tenant_id, adapter, store, guard, max_page_size, frozenset(settings.domains),
                        landing_window_s, max_patch_operations)
    limiter = RateLimiter(settings.rate_limit_per_s) if settings.rate_limit_per_s else None
    members = MemberDirectory(store, tenant_id)
    users = ResourceService(ctx, user_kind(adapter, guard), members)
    groups = ResourceService(ctx, group_kind(adapter, guard), members)
    return Tenant(tenant_id, adapter, users, groups, guard, limiter, settings)


class TenantRegistry:
    """Maps sha256(token) → tenant. Tokens are never kept in plain text."""

    def __init__(self) -> None:
        self._by_hash: dict[str, Tenant] = {}
        self.tenants: dict[str, Tenant] = {}

    def add(self, tenant: Tenant, token_hashes: list[str]) -> None:
        self.tenants[tenant.id] = tenant
        for token_hash in token_hashes:
            self._by_hash[token_hash.lower()] = tenant

    def authenticate(self, token: str) -> Tenant | None:
        """The tenant a token belongs to, or None.

        Tokens are looked up by their sha256, never compared character by character, so
        response timing reveals nothing about a valid token's characters; and only digests
        are kept, never a token itself.
        """
        return self._by_hash.get(hash_token(token))
