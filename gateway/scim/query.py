"""List/search request parameters (RFC 7644 §3.4.2, §3.4.3) and ListResponse building. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.scim.errors import ScimError, invalid_syntax, invalid_value
from gateway.scim.limits import MAX_ATTRIBUTE_NAMES, MAX_START_INDEX
from gateway.scim.schema import LIST_RESPONSE_SCHEMA, SEARCH_REQUEST_SCHEMA


@dataclass(frozen=True)
class ListQuery:
    filter: str | None = None
    start_index: int = 1
    count: int | None = None
    sort_by: str | None = None
    descending: bool = False
    attributes: tuple[str, ...] | None = None
    excluded_attributes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Projection:
    attributes: tuple[str, ...] | None = None
    excluded_attributes: tuple[str, ...] | None = None

    def excludes(self, name: str) -> bool:
        """True when the top-level attribute ``name`` will not be returned."""
        lower = name.lower()
        if self.excluded_attributes and any(a.lower() == lower for a in self.excluded_attributes):
            return True
        if self.attributes:
            return not any(a.lower() == lower or a.lower().startswith(lower + ".") for a in self.attributes)
        return False


def _attribute_list(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [part.strip() for part in value]
    else:
        raise invalid_value(f"{name} must be a comma-separated list of attribute names")
    kept = tuple(item for item in items if item)
    if len(kept) > MAX_ATTRIBUTE_NAMES:
        raise ScimError(400, f"{name} names {len(kept)} attributes; at most {MAX_ATTRIBUTE_NAMES} are accepted",
                        "tooMany")
    return kept or None


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise invalid_value(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise invalid_value(f"{name} must be an integer, got {value!r}")


class _CaseInsensitive:
    """Parameter lookups by name in any case; the exact spelling wins.

    A list query looks up seven names, most of them absent: the lower-cased view is built
    once instead of scanning every parameter for each name.
    """

    __slots__ = ("_lowered", "_params")

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = params
        self._lowered: dict[str, Any] | None = None

    def get(self, name: str) -> Any:
        if name in self._params:
            return self._params[name]
        if self._lowered is None:
            self._lowered = {}
            for key, value in self._params.items():
                if isinstance(key, str):
                    self._lowered.setdefault(key.lower(), value)
        return self._lowered.get(name.lower())


def _get_ci(params: Mapping[str, Any], name: str) -> Any:
    return _CaseInsensitive(params).get(name)


def parse_list_query(params: Mapping[str, Any], *, max_count: int) -> ListQuery:
    """From URL query parameters or a SearchRequest body; unknown parameters are ignored
    (Entra appends flags such as ``aadOptscim062020`` to the Tenant URL)."""
    lookup = _CaseInsensitive(params)
    raw_filter = lookup.get("filter")
    if raw_filter is not None and not isinstance(raw_filter, str):
        raise invalid_value("filter must be a string")
    start = lookup.get("startIndex")
    # RFC 7644 §3.4.2.4: a startIndex below 1 is interpreted as 1; far past the end, every page is empty.
    start_index = min(max(1, _int(start, "startIndex")), MAX_START_INDEX) if start is not None else 1
    count_raw = lookup.get("count")
    count = None if count_raw is None else min(max(0, _int(count_raw, "count")), max_count)
    sort_by = lookup.get("sortBy")
    if sort_by is not None and not isinstance(sort_by, str):
        raise invalid_value("sortBy must be an attribute name")
    order = lookup.get("sortOrder")
    if order is not None and (not isinstance(order, str) or order.lower() not in ("ascending", "descending")):
        raise invalid_value("sortOrder must be 'ascending' or 'descending'")
    return ListQuery(
        filter=raw_filter if raw_filter and raw_filter.strip() else None,
        start_index=start_index,
        count=count,
        sort_by=sort_by or None,
        descending=isinstance(order, str) and order.lower() == "descending",
        attributes=_attribute_list(lookup.get("attributes"), "attributes"),
        excluded_attributes=_attribute_list(lookup.get("excludedAttributes"), "excludedAttributes"),
    )


def parse_search_request(body: Any, *, max_count: int) -> ListQuery:
    if not isinstance(body, dict):
        raise invalid_syntax("a SearchRequest body must be a JSON object")
    schemas = _get_ci(body, "schemas")
    if schemas is not None and (not isinstance(schemas, list) or SEARCH_REQUEST_SCHEMA not in schemas):
        raise invalid_syntax(f"schemas must contain {SEARCH_REQUEST_SCHEMA}")
    return parse_list_query(body, max_count=max_count)


def parse_projection(params: Mapping[str, Any]) -> Projection:
    return Projection(
        attributes=_attribute_list(_get_ci(params, "attributes"), "attributes"),
        excluded_attributes=_attribute_list(_get_ci(params, "excludedAttributes"), "excludedAttributes"),
    )


def list_response(resources: Sequence[dict[str, Any]], total: int, start_index: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "startIndex": start_index,
        "Resources": list(resources),
    }


def parse_etag_list(header: str | None) -> list[str] | None:
    """Entity tags of an If-Match / If-None-Match header; ``*`` is returned as is."""
    if header is None:
        return None
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if not tags:
        raise ScimError(400, "If-Match / If-None-Match header is empty", "invalidValue")
    return tags


def etag_matches(tags: Sequence[str], current: str) -> bool:
    """Weak comparison (RFC 7232 §2.3.2): W/ prefixes are ignored."""
    bare = current.removeprefix("W/")
    return any(t == "*" or t.removeprefix("W/") == bare for t in tags)
