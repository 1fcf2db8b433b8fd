"""Helpers for adapters that keep SCIM-shaped attribute dicts (the memory and dry-run backends)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import Attributes, Rejected
from gateway.scim.filter_ast import And, Compare, Filter, Or


def lookup(attrs: Mapping[str, Any], name: str) -> Any:
    # SCIM attribute names are case-insensitive; a pushed-down filter may use any case.
    if name in attrs:
        return attrs[name]
    folded = name.lower()
    return next((v for k, v in attrs.items() if k.lower() == folded), None)


def matches(flt: Filter | None, attrs: Attributes) -> bool:
    """Evaluate the eq/and/or filters an adapter receives against canonical attributes."""
    if flt is None:
        return True
    if isinstance(flt, And):
        return matches(flt.left, attrs) and matches(flt.right, attrs)
    if isinstance(flt, Or):
        return matches(flt.left, attrs) or matches(flt.right, attrs)
    if isinstance(flt, Compare) and flt.op == "eq" and flt.path.value_filter is None:
        actual = lookup(attrs, flt.path.attr)
        if flt.path.sub_attr is not None:
            actual = lookup(actual, flt.path.sub_attr) if isinstance(actual, dict) else None
        if isinstance(actual, str) and isinstance(flt.value, str):
            return actual.lower() == flt.value.lower()
        if isinstance(actual, bool) != isinstance(flt.value, bool):
            return False
        return bool(actual == flt.value)
    raise Rejected("invalidFilter", "a backend filter may only combine eq with and/or")


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
