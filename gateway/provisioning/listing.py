"""List and filter queries: what the backend can select, the gateway evaluates the rest.

Backend objects the gateway has never seen are adopted on the way (a new id is minted),
so Entra matches a mailbox that existed before the gateway instead of failing to create it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.base import Filter
from adapters.telemetry import BudgetExhausted
from gateway.provisioning.context import lock_key
from gateway.provisioning.kinds import Record
from gateway.provisioning.mappings import adopt
from gateway.provisioning.rendering import Resource, apply_projection, sort_resources
from gateway.scim import filter as scim_filter
from gateway.scim.errors import invalid_filter
from gateway.scim.query import ListQuery, Projection
from gateway.store.base import StoredResource

if TYPE_CHECKING:
    from gateway.provisioning.service import ResourceService


class Lister:
    def __init__(self, service: ResourceService) -> None:
        self.service = service
        self.rt = service.rt
        self.store = service.store
        self.tenant = service.tenant
        self.calls = service.calls

    async def run(self, query: ListQuery, base_url: str) -> tuple[list[Resource], int]:
        service = self.service
        projection = Projection(query.attributes, query.excluded_attributes)
        count = service.ctx.max_page_size if query.count is None else query.count
        if query.filter is None and query.sort_by is None:
            page = await self.calls.find(None, query.start_index - 1, count)
            if count == 0:
                return [], page.total
            rendered = await service.render(await self.with_mappings(page.items), base_url, projection)
            return [apply_projection(self.rt, r, projection) for r in rendered], page.total
        if query.filter is not None:
            flt = scim_filter.parse_filter(query.filter)
            predicate = scim_filter.validate(flt, self.rt)
            try:
                pairs = await self._candidates(flt)
            except BudgetExhausted as exc:
                raise invalid_filter(
                    f"The filter cannot be answered within {exc.budget} calls to the mail platform, this tenant's "
                    "budget per request: the platform cannot evaluate it, and reading every object would take more. "
                    "Filter by userName, externalId or id (or displayName for groups)."
                ) from None
        else:
            predicate = None
            pairs = await self.with_mappings(await self._scan(None))
        # Filtering needs the attributes it names; members are costly, so skip them unless named.
        needs_all = "members" in (query.filter or "").lower() or (query.sort_by or "").lower().startswith("members")
        resources = await service.render(pairs, base_url, Projection() if needs_all else projection)
        if predicate is not None:
            resources = [r for r in resources if predicate(r)]
        if query.sort_by is not None:
            resources = sort_resources(resources, query.sort_by, query.descending, self.rt)
        total = len(resources)
        start = query.start_index - 1
        window = resources[start:start + count]
        return [apply_projection(self.rt, r, projection) for r in window], total

    async def with_mappings(self, records: list[Record]) -> list[tuple[Record, StoredResource]]:
        """Join backend records with their mappings, adopting records the gateway has never seen."""
        keys = [r.key for r in records]
        known = await self.store.get_many_by_keys(self.tenant, self.rt.name, keys) if keys else {}
        pairs: list[tuple[Record, StoredResource]] = []
        for record in records:
            stored = known.get(record.key)
            if stored is None:
                stored = await adopt(self.store, self.tenant, self.rt.name, record.key)
            pairs.append((record, stored))
        return pairs

    async def _scan(self, flt: Filter | None) -> list[Record]:
        page_size = self.service.ctx.adapter.capabilities.max_page_size
        records: list[Record] = []
        offset = 0
        while True:
            page = await self.calls.find(flt, offset, page_size)
            records.extend(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return records

    async def _candidates(self, flt: Filter) -> list[tuple[Record, StoredResource]]:
        """A superset of the resources ``flt`` selects, with their mappings."""
        service = self.service
        eq = scim_filter.simple_eq(flt, self.rt)
        if eq is not None and eq[0] in ("id", "externalId"):
            attr, value = eq
            if not isinstance(value, str):
                return []
            if attr == "id":
                one = await self.store.get(self.tenant, self.rt.name, value)
                mapped = [one] if one is not None else []
            else:
                mapped = await self.store.find_by_external_id(self.tenant, self.rt.name, value)
            pairs = []
            for stored in mapped:
                record = await service.fetch(stored.backend_key)
                if record is not None:
                    pairs.append((record, stored))
            return pairs
        natural_key = service.kind.natural_key
        if eq is not None and eq[0] == natural_key and isinstance(eq[1], str) \
                and await self.store.journal_pending(self.tenant, self.rt.name, eq[1].lower()):
            async with self.store.lock(self.tenant, lock_key(self.rt.name, "name", eq[1])):
                await service.settle(eq[1])
        pushed = scim_filter.pushdown(flt, service.kind.filterable, self.rt)
        return await self.with_mappings(await self._scan(pushed))
