"""SCIM discovery documents (RFC 7643 §5-§7, RFC 7644 §4) built from ``schema.py``.

Pure: no I/O. Every builder returns plain JSON-ready dicts with camelCase keys and no
``None`` values anywhere: Entra expects discovery payloads without nulls.

The documents only depend on the base URL (for ``meta.location``) and on static
settings, so each set is built once and memoised. The returned objects are shared
between callers: treat them as read-only and copy before changing anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gateway.scim.schema import (
    ALL_SCHEMAS,
    LIST_RESPONSE_SCHEMA,
    RESOURCE_TYPES,
    Attribute,
    ResourceType,
    Schema,
)

SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"

BEARER_SPEC_URI = "https://www.rfc-editor.org/rfc/rfc6750"

# The base URL usually comes from configuration, but a deployment may derive it from
# the request's Host header; a bounded cache keeps a stream of forged hosts from
# growing memory without limit.
_CACHE_SIZE = 32

JSONDict = dict[str, Any]


def _normalise(base_url: str) -> str:
    return base_url.rstrip("/")


def attribute_document(attribute: Attribute) -> JSONDict:
    """The RFC 7643 §7 representation of one attribute definition.

    Every characteristic is spelled out, even where it equals the RFC default: clients
    disagree on which defaults apply, so nothing is left for them to guess.
    """
    doc: JSONDict = {
        "name": attribute.name,
        "type": attribute.type,
        "multiValued": attribute.multi_valued,
    }
    if attribute.description:
        doc["description"] = attribute.description
    doc["required"] = attribute.required
    if attribute.canonical_values:
        doc["canonicalValues"] = list(attribute.canonical_values)
    doc["caseExact"] = attribute.case_exact
    doc["mutability"] = attribute.mutability
    doc["returned"] = attribute.returned
    doc["uniqueness"] = attribute.uniqueness
    if attribute.type == "reference":
        # RFC 7643 §7 makes referenceTypes mandatory for references; "uri" is its
        # catch-all for a reference whose target kind the schema does not pin down.
        doc["referenceTypes"] = list(attribute.reference_types) or ["uri"]
    if attribute.type == "complex":
        doc["subAttributes"] = [attribute_document(sub) for sub in attribute.sub_attributes]
    return doc


def schema_document(schema_def: Schema, base_url: str) -> JSONDict:
    """The ``/Schemas/{urn}`` resource for one schema definition."""
    base = _normalise(base_url)
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": schema_def.id,
        "name": schema_def.name,
        "description": schema_def.description,
        "attributes": [attribute_document(a) for a in schema_def.attributes],
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{schema_def.id}"},
    }


def resource_type_document(rt: ResourceType, base_url: str) -> JSONDict:
    """The ``/ResourceTypes/{name}`` resource for one resource type."""
    base = _normalise(base_url)
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.name,
        "name": rt.name,
        "description": rt.description,
        "endpoint": rt.endpoint,
        "schema": rt.schema.id,
        # Always present, even when empty: scim2-models and several clients treat the
        # key as required although RFC 7643 §6 leaves it optional.
        "schemaExtensions": [{"schema": ext.id, "required": False} for ext in rt.extensions],
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{rt.name}"},
    }


@dataclass(frozen=True)
class _Catalogue:
    schemas: list[JSONDict]
    schemas_by_id: Mapping[str, JSONDict]
    resource_types: list[JSONDict]
    resource_types_by_id: Mapping[str, JSONDict]


@lru_cache(maxsize=_CACHE_SIZE)
def _catalogue(base: str) -> _Catalogue:
    schema_docs = [schema_document(s, base) for s in ALL_SCHEMAS]
    rt_docs = [resource_type_document(rt, base) for rt in RESOURCE_TYPES.values()]
    return _Catalogue(
        schemas=schema_docs,
        # Lookups are case-insensitive: RFC 7643 §2.1 makes schema URIs and attribute
        # names case-insensitive, and clients are known to lower-case path segments.
        schemas_by_id={d["id"].lower(): d for d in schema_docs},
        resource_types=rt_docs,
        resource_types_by_id={d["id"].lower(): d for d in rt_docs},
    )


def schemas(base_url: str) -> list[JSONDict]:
    """Every schema the gateway serves (User, Group, enterprise User extension)."""
    return _catalogue(_normalise(base_url)).schemas


def schema(base_url: str, urn: str) -> JSONDict | None:
    """One schema document by URN, or None when the gateway does not serve it."""
    return _catalogue(_normalise(base_url)).schemas_by_id.get(urn.lower())


def resource_types(base_url: str) -> list[JSONDict]:
    """Every resource type the gateway serves (User, Group)."""
    return _catalogue(_normalise(base_url)).resource_types


def resource_type(base_url: str, name: str) -> JSONDict | None:
    """One resource type by id/name, or None when the gateway does not serve it."""
    return _catalogue(_normalise(base_url)).resource_types_by_id.get(name.lower())


def service_provider_config(
    base_url: str,
    *,
    max_results: int,
    max_operations: int,
    max_payload_size: int,
    etag: bool = True,
    documentation_uri: str | None = None,
) -> JSONDict:
    """The ``/ServiceProviderConfig`` resource (RFC 7643 §5).

    Bulk is declared unsupported: the gateway does not implement ``/Bulk``. RFC 7643
    still requires ``maxOperations`` and ``maxPayloadSize`` on the bulk object, so
    they carry the limits a future implementation would apply; ``maxPayloadSize`` is
    also the request body limit the gateway enforces.
    """
    return _service_provider_config(
        _normalise(base_url), max_results, max_operations, max_payload_size, etag, documentation_uri
    )


@lru_cache(maxsize=_CACHE_SIZE)
def _service_provider_config(
    base: str,
    max_results: int,
    max_operations: int,
    max_payload_size: int,
    etag: bool,
    documentation_uri: str | None,
) -> JSONDict:
    doc: JSONDict = {"schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA]}
    if documentation_uri:
        doc["documentationUri"] = documentation_uri
    doc.update(
        {
            "patch": {"supported": True},
            "bulk": {
                "supported": False,
                "maxOperations": max_operations,
                "maxPayloadSize": max_payload_size,
            },
            "filter": {"supported": True, "maxResults": max_results},
            "changePassword": {"supported": False},
            "sort": {"supported": True},
            "etag": {"supported": etag},
            "authenticationSchemes": [
                {
                    "type": "oauthbearertoken",
                    "name": "OAuth Bearer Token",
                    "description": "Authentication with a bearer token sent in the Authorization "
                    "header (RFC 6750).",
                    "specUri": BEARER_SPEC_URI,
                    "primary": True,
                }
            ],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": f"{base}/ServiceProviderConfig",
            },
        }
    )
    return doc


def list_response(resources: Iterable[Mapping[str, Any]], total: int | None = None) -> JSONDict:
    """Wrap resources in a ListResponse (RFC 7644 §3.4.2) starting at index 1.

    ``total`` defaults to the number of resources, i.e. a single unpaged result.
    ``Resources`` is present even when empty: Entra's connection test expects
    ``"Resources": []`` for a query that matches nothing.
    """
    items = list(resources)
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": len(items) if total is None else total,
        "itemsPerPage": len(items),
        "startIndex": 1,
        "Resources": items,
    }
