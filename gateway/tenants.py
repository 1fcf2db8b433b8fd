"""Tenants: who a bearer token belongs to, and the backend and services that serve it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adapters.base import Adapter
from gateway.config import TenantSettings
from gateway.provisioning.common import TenantContext
from gateway.provisioning.groups import GroupService
from gateway.provisioning.guard import BackendGuard, RateLimiter
from gateway.provisioning.users import UserService
from gateway.store.base import StateStore


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Tenant:
    id: str
    adapter: Adapter
    users: UserService
    groups: GroupService
    guard: BackendGuard
    rate_limiter: RateLimiter | None
    settings: TenantSettings


def build_tenant(
    tenant_id: str, settings: TenantSettings, adapter: Adapter, store: StateStore, *, max_page_size: int,
    landing_window_s: float = 5.0, max_patch_operations: int = 1000,
) -> Tenant:
    guard = BackendGuard(settings.concurrency, settings.queue_timeout)
    ctx = TenantContext(tenant_id, adapter, store, guard, max_page_size, frozenset(settings.domains),
                        landing_window_s, max_patch_operations)
    limiter = RateLimiter(settings.rate_limit_per_s) if settings.rate_limit_per_s else None
    return Tenant(tenant_id, adapter, UserService(ctx), GroupService(ctx), guard, limiter, settings)


class TenantRegistry:
    """Maps sha256(token) → tenant. Tokens are never kept in plain text."""

    def __init__(self) -> None:
        self._by_hash: dict[str, Tenant] = {}
        self._recent: dict[str, Tenant] = {}
        self.tenants: dict[str, Tenant] = {}

    def add(self, tenant: Tenant, token_hashes: list[str]) -> None:
        self.tenants[tenant.id] = tenant
        for token_hash in token_hashes:
            self._by_hash[token_hash.lower()] = tenant

    def authenticate(self, token: str) -> Tenant | None:
        """The tenant a token belongs to, or None.

        Tokens are looked up by hash, never compared character by character: the sha256 of the
        token is the key of the configured hashes, and recently seen valid tokens sit in a dict
        keyed by Python's randomised (SipHash) string hash. Response timing therefore reveals
        nothing about a valid token's characters.
        """
        cached = self._recent.get(token)
        if cached is not None:
            return cached
        tenant = self._by_hash.get(hash_token(token))
        if tenant is not None:
            # Only valid tokens are remembered, and only a few: a flood of made-up tokens
            # can neither fill memory nor skip the hash for itself.
            if len(self._recent) >= 256:
                self._recent.clear()
            self._recent[token] = tenant
        return tenant
