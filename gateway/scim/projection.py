"""Attribute projection: the ``attributes`` / ``excludedAttributes`` parameters (RFC 7644 §3.9).

Pure: no I/O. Resources are plain dicts with canonical attribute names; extension attributes
live under their schema URN. The result never shares mutated containers with the input, but
untouched sub-objects are shared (callers serialise the result, they do not edit it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.scim.schema import COMMON, RESOURCE_TYPES, Attribute, ResourceType, split_urn

__all__ = ["project"]

Resource = dict[str, Any]
Subs = frozenset[str] | None  # None: the whole attribute


@dataclass
class _Selection:
    """Names resolved against a resource type, grouped by container (None = top level)."""

    attributes: dict[str | None, dict[str, tuple[Attribute, Subs]]] = field(default_factory=dict)
    whole_extensions: set[str] = field(default_factory=set)
    whole_core: bool = False

    def add(self, container: str | None, attribute: Attribute, sub: str | None) -> None:
        picks = self.attributes.setdefault(container, {})
        previous = picks.get(attribute.name)
        if sub is None:
            picks[attribute.name] = (attribute, None)
        elif previous is None:
            picks[attribute.name] = (attribute, frozenset({sub}))
        elif previous[1] is not None:
            picks[attribute.name] = (attribute, previous[1] | {sub})


@dataclass(frozen=True)
class _TypeInfo:
    core_names: frozenset[str]
    extension_ids: frozenset[str]
    always: frozenset[str]  # top-level keys returned whatever is asked
    # returned "never" or "request", by container (None = top level): hidden unless asked for
    hidden: dict[str | None, frozenset[str]]


_MAX_PLANS = 512


def _type_info(rt: ResourceType) -> _TypeInfo:
    info = _TYPE_INFO.get(rt.name)
    return info if info is not None and RESOURCE_TYPES[rt.name] is rt else _compute_type_info(rt)


def _compute_type_info(rt: ResourceType) -> _TypeInfo:
    top_level = (*COMMON.attributes, *rt.schema.attributes)
    hidden: dict[str | None, frozenset[str]] = {}
    for container, attrs in ((None, top_level), *((ext.id, ext.attributes) for ext in rt.extensions)):
        names = frozenset(a.name for a in attrs if a.returned in ("never", "request"))
        if names:
            hidden[container] = names
    info = _TypeInfo(
        core_names=frozenset(a.name for a in rt.schema.attributes),
        extension_ids=frozenset(ext.id for ext in rt.extensions),
        always=frozenset({"schemas", *(a.name for a in top_level if a.returned == "always")}),
        hidden=hidden,
    )
    return info


_TYPE_INFO = {rt.name: _compute_type_info(rt) for rt in RESOURCE_TYPES.values()}


def _selection(rt: ResourceType, names: Sequence[str], excluded: bool) -> _Selection:
    if RESOURCE_TYPES.get(rt.name) is rt:
        return _cached_selection(rt.name, tuple(names), excluded)
    return _compute_selection(rt, names)


@functools.lru_cache(maxsize=_MAX_PLANS)
def _cached_selection(rt_name: str, names: tuple[str, ...], excluded: bool) -> _Selection:
    """Plans for ``attributes``/``excludedAttributes`` lists; ``excluded`` keeps the two kinds apart."""
    return _compute_selection(RESOURCE_TYPES[rt_name], names)


def _compute_selection(rt: ResourceType, names: Sequence[str]) -> _Selection:
    selection = _Selection()
    for name in names:
        urn, rest = split_urn(name, rt)
        if urn is None and rest[:4].lower() == "urn:":
            continue
        if urn is not None and not rest:
            if urn == rt.schema.id:
                selection.whole_core = True
            else:
                selection.whole_extensions.add(urn)
            continue
        attr, _, sub = rest.partition(".")
        resolved = rt.resolve(attr, sub or None, urn)
        if resolved is None:
            continue
        container = resolved.schema if resolved.is_extension else None
        sub_attribute = resolved.sub_attribute
        selection.add(container, resolved.attribute, sub_attribute.name if sub_attribute else None)
    return selection


def _keep_subs(value: Any, subs: frozenset[str]) -> Any:
    """Only ``subs`` of a complex value, or of each element of a multi-valued one; None if none is left."""
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if k in subs}
        return kept or None
    if isinstance(value, list):
        elements = [_keep_subs(el, subs) for el in value]
        kept_list = [el for el in elements if el is not None]
        return kept_list or None
    return None


def _drop_subs(value: Any, subs: frozenset[str]) -> Any:
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if k not in subs}
        return kept or None
    if isinstance(value, list):
        elements = [_drop_subs(el, subs) if isinstance(el, dict) else el for el in value]
        kept_list = [el for el in elements if el is not None]
        return kept_list or None
    return value


def _project_value(pick: tuple[Attribute, Subs], value: Any) -> Any:
    attribute, subs = pick
    if attribute.returned == "never":
        return None
    return value if subs is None else _keep_subs(value, subs)


def _pick(container: Resource, picks: dict[str, tuple[Attribute, Subs]]) -> Resource:
    out: Resource = {}
    for key, value in container.items():
        pick = picks.get(key)
        projected = None if pick is None else _project_value(pick, value)
        if projected is not None:
            out[key] = projected
    return out


def _select(resource: Resource, info: _TypeInfo, sel: _Selection) -> Resource:
    top_picks = sel.attributes.get(None, {})
    hidden_top = info.hidden.get(None, frozenset())
    out: Resource = {}
    for key, value in resource.items():
        if key in info.extension_ids:
            if key in sel.whole_extensions and isinstance(value, dict):
                hidden = info.hidden.get(key, frozenset())
                out[key] = {k: v for k, v in value.items() if k not in hidden}
            elif key in sel.attributes and isinstance(value, dict):
                out[key] = _pick(value, sel.attributes[key])
        elif key in info.always:
            out[key] = value
        elif key in top_picks:
            projected = _project_value(top_picks[key], value)
            if projected is not None:
                out[key] = projected
        elif sel.whole_core and key in info.core_names and key not in hidden_top:
            out[key] = value
    return out


def _exclude(resource: Resource, info: _TypeInfo, sel: _Selection) -> Resource:
    out = dict(resource)
    for urn in sel.whole_extensions:
        out.pop(urn, None)
    if sel.whole_core:
        for name in info.core_names - info.always:
            out.pop(name, None)
    for container, picks in sel.attributes.items():
        if container is None:
            target = out
        else:
            nested = out.get(container)
            if not isinstance(nested, dict):
                continue
            target = out[container] = dict(nested)
        for name, (attribute, subs) in picks.items():
            if attribute.returned == "always" or name not in target:
                continue
            remaining = None if subs is None else _drop_subs(target[name], subs)
            if remaining is None:
                del target[name]
            else:
                target[name] = remaining
    return out


def _drop_hidden(resource: Resource, info: _TypeInfo) -> Resource:
    """Without an ``attributes`` list, returned="never" and "request" attributes are left out."""
    out = resource
    for container, names in info.hidden.items():
        target = out if container is None else out.get(container)
        if not isinstance(target, dict) or names.isdisjoint(target):
            continue
        if out is resource:
            out = dict(resource)
        kept = {k: v for k, v in target.items() if k not in names}
        if container is None:
            out = kept
        else:
            out[container] = kept
    return out


def _fix_extensions(out: Resource, info: _TypeInfo) -> Resource:
    """Drop extension objects left empty, and the URN of every absent extension from schemas."""
    for urn in info.extension_ids:
        if urn in out and not out[urn]:
            del out[urn]
    schemas = out.get("schemas")
    if isinstance(schemas, list):
        absent = {urn.lower() for urn in info.extension_ids if urn not in out}
        if absent and any(isinstance(s, str) and s.lower() in absent for s in schemas):
            out["schemas"] = [s for s in schemas if not (isinstance(s, str) and s.lower() in absent)]
    return out


def project(
    resource: dict[str, Any],
    rt: ResourceType,
    attributes: Sequence[str] | None = None,
    excluded: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The representation of ``resource`` to return for these query parameters.

    With ``attributes``: only those plus the always-returned ones (id, schemas). With
    ``excluded``: everything but those (never the always-returned ones). Names are
    case-insensitive, may be dotted or URN-qualified; unknown names are ignored. Without
    either, ``resource`` itself is returned when it holds nothing that must be hidden.
    """
    info = _type_info(rt)
    if not attributes and not excluded:
        return _drop_hidden(resource, info)
    if attributes:
        out = _select(resource, info, _selection(rt, attributes, excluded=False))
        if excluded:
            out = _exclude(out, info, _selection(rt, excluded, excluded=True))
    else:
        out = _drop_hidden(_exclude(resource, info, _selection(rt, excluded or (), excluded=True)), info)
    return _fix_extensions(out, info)
