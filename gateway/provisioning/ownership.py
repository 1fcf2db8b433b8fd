"""Split a SCIM resource into what the backend owns and what the gateway shadows.

Owned attributes are named by canonical dotted paths (``userName``, ``name.givenName``);
a whole complex attribute may be owned too (``name``). Everything else is shadow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Resource = dict[str, Any]

_NOT_SHADOWED = frozenset({"id", "meta", "schemas"})
WRITE_ONLY = frozenset({"password"})
"""Owned attributes the gateway passes to the backend and never keeps (RFC 7643 writeOnly)."""


class Ownership:
    def __init__(self, owned: Iterable[str]) -> None:
        self.paths = frozenset(owned)
        self.kept_paths = self.paths - WRITE_ONLY
        """The owned paths the gateway may keep a copy of."""
        self._whole = frozenset(p for p in self.paths if "." not in p)
        subs: dict[str, set[str]] = {}
        for path in self.paths:
            head, _, tail = path.partition(".")
            if tail:
                subs.setdefault(head, set()).add(tail)
        self._subs = {k: frozenset(v) for k, v in subs.items()}

    def split(self, resource: Resource) -> tuple[Resource, Resource]:
        owned: Resource = {}
        shadow: Resource = {}
        for key, value in resource.items():
            if key in _NOT_SHADOWED:
                continue
            if key in self._whole:
                owned[key] = value
                continue
            subs = self._subs.get(key)
            if subs is not None and isinstance(value, dict):
                mine = {k: v for k, v in value.items() if k in subs}
                rest = {k: v for k, v in value.items() if k not in subs}
                if mine:
                    owned[key] = mine
                if rest:
                    shadow[key] = rest
                continue
            shadow[key] = value
        return owned, shadow

    def changes(self, old: Resource, new: Resource) -> dict[str, Any]:
        """Owned dotted path → new value (None clears) for every owned value that differs."""
        changed: dict[str, Any] = {}
        for path in self.paths:
            before, after = get_dotted(old, path), get_dotted(new, path)
            if before != after:
                changed[path] = after
        return changed


def get_dotted(resource: Resource, path: str) -> Any:
    head, _, tail = path.partition(".")
    value = resource.get(head)
    if not tail:
        return value
    return value.get(tail) if isinstance(value, dict) else None


def merge(owned: Resource, shadow: Resource) -> Resource:
    """Owned and shadow attributes as one resource; complex attributes are merged one level deep."""
    merged: Resource = dict(shadow)
    for key, value in owned.items():
        existing = merged.get(key)
        if isinstance(existing, dict) and isinstance(value, dict):
            merged[key] = {**existing, **value}
        else:
            merged[key] = value
    return merged
