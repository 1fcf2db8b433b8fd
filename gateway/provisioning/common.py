"""Machinery shared by the User and Group services: ids, meta, ETags, listing."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from adapters.base import Adapter, Page
from gateway.clock import now_iso
from gateway.ids import new_uuid
from gateway.provisioning.guard import BackendGuard
from gateway.provisioning.journal import Journal
from gateway.provisioning.ownership import Ownership, get_dotted
from gateway.scim import filter as scim_filter
from gateway.scim.errors import ScimError
from gateway.scim.filter_ast import Filter
from gateway.scim.projection import project
from gateway.scim.query import ListQuery, Projection, etag_matches
from gateway.scim.schema import ResourceType
from gateway.store.base import DuplicateKey, StateStore, StoredResource

Resource = dict[str, Any]
RecordT = TypeVar("RecordT")


def etag(stored: StoredResource) -> str:
    return f'W/"{stored.version}"'


def check_if_match(stored: StoredResource, if_match: Sequence[str] | None) -> None:
    if if_match is not None and not etag_matches(if_match, etag(stored)):
        raise ScimError(412, f"The resource was modified: its current version is {etag(stored)}.")


def sent_strings(owned: Resource, ownership: Ownership) -> dict[str, str]:
    sent: dict[str, str] = {}
    for path in ownership.paths:
        value = get_dotted(owned, path)
        if isinstance(value, str):
            sent[path] = value
    return sent


def echo_sent(attributes: Resource, sent: dict[str, str]) -> Resource:
    """Give back owned strings in the case the client sent them when the backend only changed case."""
    result = attributes
    for path, value in sent.items():
        actual = get_dotted(result, path)
        if isinstance(actual, str) and actual != value and actual.lower() == value.lower():
            if result is attributes:
                result = dict(attributes)
            head, _, tail = path.partition(".")
            if tail:
                result[head] = {**result[head], tail: value}
            else:
                result[head] = value
    return result


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


class ResourceServiceBase(Generic[RecordT]):
    rt: ResourceType
    ownership: Ownership
    filterable: frozenset[str]
    journal: Journal
    natural_key: str
    """The attribute that names a resource in the backend: userName or displayName."""

    def __init__(self, ctx: TenantContext) -> None:
        self.ctx = ctx
        self.tenant = ctx.tenant
        self.adapter = ctx.adapter
        self.store = ctx.store
        self.guard = ctx.guard

    # --- hooks for the concrete service -------------------------------------------

    async def _find(self, flt: Filter | None, offset: int, limit: int) -> Page[RecordT]:
        raise NotImplementedError

    async def _fetch(self, key: str) -> RecordT | None:
        raise NotImplementedError

    def _key(self, record: RecordT) -> str:
        raise NotImplementedError

    async def _render_many(
        self, pairs: list[tuple[RecordT, StoredResource]], base_url: str, projection: Projection
    ) -> list[Resource]:
        raise NotImplementedError

    async def _find_by_name(self, name: str) -> tuple[str, dict[str, Any]] | None:
        raise NotImplementedError

    async def _fetch_owned(self, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------

    def _new_mapping(self, owned: Resource, shadow: Resource) -> StoredResource:
        """The mapping of a resource about to be created (its backend key is set once known)."""
        stamp = now_iso()
        return StoredResource(
            id=new_uuid(), resource_type=self.rt.name, backend_key="", shadow=shadow,
            version=1, created=stamp, last_modified=stamp, sent=sent_strings(owned, self.ownership),
        )

    def _next_version(self, stored: StoredResource, new_owned: Resource, new_shadow: Resource) -> StoredResource:
        """The mapping as it will be once a change is written: new shadow, next version."""
        return dataclasses.replace(
            stored, shadow=new_shadow, version=stored.version + 1, last_modified=now_iso(),
            sent=sent_strings(new_owned, self.ownership),
        )

    async def _settle(self, name: str) -> None:
        """Finish or drop an interrupted write about ``name`` (call with its lock held)."""
        if await self.store.journal_pending(self.tenant, self.rt.name, name.lower()):
            await self.journal.settle(self._find_by_name, self._fetch_owned, natural_key=name.lower())

    async def recover(self, older_than_s: float = 0.0) -> int:
        """Settle every interrupted write of this tenant (at start-up)."""
        return await self.journal.settle(self._find_by_name, self._fetch_owned, older_than_s=older_than_s)

    def _meta(self, stored: StoredResource, base_url: str) -> dict[str, str]:
        return {
            "resourceType": self.rt.name,
            "created": stored.created,
            "lastModified": stored.last_modified,
            "location": f"{base_url}{self.rt.endpoint}/{stored.id}",
            "version": etag(stored),
        }

    def _finish(self, body: Resource, stored: StoredResource, base_url: str) -> Resource:
        schemas = [self.rt.schema.id]
        schemas.extend(k for k in body if k.startswith("urn:"))
        resource: Resource = {"schemas": schemas, "id": stored.id}
        # Schema order reads naturally in logs and diffs; unknown keys keep their place at the end.
        order = _attribute_order(self.rt)
        for key in sorted(body, key=lambda k: order.get(k, len(order))):
            if key != "password":  # returned "never" (RFC 7643 §4.1)
                resource[key] = body[key]
        resource["meta"] = self._meta(stored, base_url)
        return resource

    def _project(self, resource: Resource, projection: Projection) -> Resource:
        if projection.attributes is None and projection.excluded_attributes is None:
            return resource
        return project(resource, self.rt, projection.attributes, projection.excluded_attributes)

    async def _stored(self, id: str) -> StoredResource:
        stored = await self.store.get(self.tenant, self.rt.name, id)
        if stored is None:
            raise ScimError(404, f"{self.rt.name} {id} not found")
        return stored

    async def _mapping_for(self, records: list[RecordT]) -> list[tuple[RecordT, StoredResource]]:
        """Join backend records with their mappings, adopting records the gateway has never seen."""
        keys = [self._key(r) for r in records]
        known = await self.store.get_many_by_keys(self.tenant, self.rt.name, keys) if keys else {}
        pairs: list[tuple[RecordT, StoredResource]] = []
        for record, key in zip(records, keys, strict=True):
            stored = known.get(key)
            if stored is None:
                stored = await self._adopt(key)
            pairs.append((record, stored))
        return pairs

    async def _adopt(self, key: str, resource_type: str | None = None) -> StoredResource:
        """A mapping (new id) for a backend object the gateway has never seen."""
        rtype = resource_type or self.rt.name
        stamp = now_iso()
        stored = StoredResource(id=new_uuid(), resource_type=rtype, backend_key=key, version=1,
                                created=stamp, last_modified=stamp)
        try:
            await self.store.insert(self.tenant, stored)
        except DuplicateKey:
            # Another request (or replica) adopted it at the same moment: use its id.
            existing = await self.store.get_by_key(self.tenant, rtype, key)
            if existing is None:
                raise
            return existing
        return stored

    async def _scan(self, flt: Filter | None) -> list[RecordT]:
        page_size = self.adapter.capabilities.max_page_size
        records: list[RecordT] = []
        offset = 0
        while True:
            page = await self.guard.call(self._find, flt, offset, page_size)
            records.extend(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return records

    async def _candidates(self, flt: Filter) -> list[tuple[RecordT, StoredResource]]:
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
                record = await self._fetch(stored.backend_key)
                if record is not None:
                    pairs.append((record, stored))
            return pairs
        if eq is not None and eq[0] == self.natural_key and isinstance(eq[1], str) \
                and await self.store.journal_pending(self.tenant, self.rt.name, eq[1].lower()):
            async with self.store.lock(self.tenant, f"{self.rt.name}/name/{eq[1].lower()}"):
                await self._settle(eq[1])
        pushed = scim_filter.pushdown(flt, self.filterable, self.rt)
        return await self._mapping_for(await self._scan(pushed))

    async def list(self, query: ListQuery, base_url: str) -> tuple[list[Resource], int]:
        projection = Projection(query.attributes, query.excluded_attributes)
        count = self.ctx.max_page_size if query.count is None else query.count
        if query.filter is None and query.sort_by is None:
            page = await self.guard.call(self._find, None, query.start_index - 1, count)
            if count == 0:
                return [], page.total
            pairs = await self._mapping_for(page.items)
            rendered = await self._render_many(pairs, base_url, projection)
            return [self._project(r, projection) for r in rendered], page.total
        if query.filter is not None:
            flt = scim_filter.parse_filter(query.filter)
            predicate = scim_filter.validate(flt, self.rt)
            pairs = await self._candidates(flt)
        else:
            predicate = None
            pairs = await self._mapping_for(await self._scan(None))
        # Filtering needs the attributes it names; members are costly, so skip them unless named.
        needs_all = "members" in (query.filter or "").lower() or (query.sort_by or "").lower().startswith("members")
        resources = await self._render_many(pairs, base_url, Projection() if needs_all else projection)
        if predicate is not None:
            resources = [r for r in resources if predicate(r)]
        if query.sort_by is not None:
            resources = sort_resources(resources, query.sort_by, query.descending, self.rt)
        total = len(resources)
        start = query.start_index - 1
        window = resources[start:start + count]
        return [self._project(r, projection) for r in window], total


_ORDERS: dict[str, dict[str, int]] = {}


def _attribute_order(rt: ResourceType) -> dict[str, int]:
    order = _ORDERS.get(rt.name)
    if order is None:
        names = ["externalId", *(a.name for a in rt.schema.attributes), *(e.id for e in rt.extensions)]
        order = _ORDERS[rt.name] = {name: i for i, name in enumerate(names)}
    return order


def sort_resources(resources: list[Resource], sort_by: str, descending: bool, rt: ResourceType) -> list[Resource]:
    path = scim_filter.parse_path(sort_by)
    resolved = rt.resolve(path.attr, path.sub_attr, path.urn)
    if resolved is None:
        return resources
    attribute = resolved.sub_attribute or resolved.attribute

    def value_of(resource: Resource) -> Any:
        container: Any = resource.get(resolved.schema) if resolved.is_extension else resource
        value = container.get(resolved.attribute.name) if isinstance(container, dict) else None
        if isinstance(value, list):
            chosen = next((v for v in value if isinstance(v, dict) and v.get("primary") is True), None)
            value = chosen or (value[0] if value else None)
        if isinstance(value, dict):
            value = value.get(resolved.sub_attribute.name if resolved.sub_attribute else "value")
        if isinstance(value, str) and not attribute.case_exact:
            return value.lower()
        return value

    present = [(value_of(r), r) for r in resources]
    with_value = [p for p in present if p[0] is not None]
    without = [p[1] for p in present if p[0] is None]
    try:
        with_value.sort(key=lambda p: p[0], reverse=descending)
    except TypeError:
        with_value.sort(key=lambda p: str(p[0]), reverse=descending)
    return [p[1] for p in with_value] + without


FindFn = Callable[[Filter | None, int, int], Awaitable[Page[Any]]]
