"""Helpers for adapters that keep SCIM-shaped attribute dicts (memory, dry-run, the jsonfile example).

Part of the backend SDK: ``matches`` evaluates a pushed-down filter with the gateway's own
filter engine, so a backend that filters in memory agrees with the gateway exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from adapters.base import Attributes
from gateway.scim.filter import compile_filter
from gateway.scim.filter_ast import Filter
from gateway.scim.schema import RESOURCE_TYPES

ResourceTypeName = Literal["User", "Group"]


def record_filter(flt: Filter | None, resource_type: ResourceTypeName = "User") -> Callable[[Attributes], bool]:
    """``flt`` compiled once, to test many records' attributes."""
    if flt is None:
        return lambda attributes: True
    return compile_filter(flt, RESOURCE_TYPES[resource_type])


def matches(flt: Filter | None, attributes: Attributes, resource_type: ResourceTypeName = "User") -> bool:
    return record_filter(flt, resource_type)(attributes)


def set_dotted(attrs: Attributes, dotted: str, value: Any) -> None:
    """Apply one owned-attribute change (``name.givenName`` → value; None clears)."""
    head, _, tail = dotted.partition(".")
    if not tail:
        if value is None:
            attrs.pop(head, None)
        else:
            attrs[head] = value
        return
    inner = attrs.get(head)
    if not isinstance(inner, dict):
        if value is None:
            return
        inner = attrs[head] = {}
    if value is None:
        inner.pop(tail, None)
        if not inner:
            attrs.pop(head, None)
    else:
        inner[tail] = value
