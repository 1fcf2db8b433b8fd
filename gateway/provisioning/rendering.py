"""Resources as SCIM clients see them: meta, ETags, attribute order, projection, sorting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.scim import filter as scim_filter
from gateway.scim.errors import ScimError
from gateway.scim.projection import project
from gateway.scim.query import Projection, etag_matches
from gateway.scim.schema import RESOURCE_TYPES, ResourceType
from gateway.store.base import StoredResource

Resource = dict[str, Any]

# Schema order reads naturally in logs and diffs; unknown keys keep their place at the end.
_ATTRIBUTE_ORDER: dict[str, dict[str, int]] = {
    rt.name: {name: i for i, name in enumerate(
        ["externalId", *(a.name for a in rt.schema.attributes), *(e.id for e in rt.extensions)])}
    for rt in RESOURCE_TYPES.values()
}


def etag(stored: StoredResource) -> str:
    return f'W/"{stored.version}"'


def check_if_match(stored: StoredResource, if_match: Sequence[str] | None) -> None:
    if if_match is not None and not etag_matches(if_match, etag(stored)):
        raise ScimError(412, f"The resource was modified: its current version is {etag(stored)}.")


def finish(rt: ResourceType, body: Resource, stored: StoredResource, base_url: str) -> Resource:
    """The full resource: schemas, id, the attributes in schema order, meta."""
    schemas = [rt.schema.id]
    schemas.extend(k for k in body if k.startswith("urn:"))
    resource: Resource = {"schemas": schemas, "id": stored.id}
    order = _ATTRIBUTE_ORDER[rt.name]
    for key in sorted(body, key=lambda k: order.get(k, len(order))):
        if key != "password":  # returned "never" (RFC 7643 §4.1)
            resource[key] = body[key]
    resource["meta"] = {
        "resourceType": rt.name,
        "created": stored.created,
        "lastModified": stored.last_modified,
        "location": f"{base_url}{rt.endpoint}/{stored.id}",
        "version": etag(stored),
    }
    return resource


def apply_projection(rt: ResourceType, resource: Resource, projection: Projection) -> Resource:
    if projection.attributes is None and projection.excluded_attributes is None:
        return resource
    return project(resource, rt, projection.attributes, projection.excluded_attributes)


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
