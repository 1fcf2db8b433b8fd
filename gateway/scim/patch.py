"""SCIM PATCH (RFC 7644 §3.5.2): dialect normalisation, then canonical operations, then apply.

:func:`parse_patch` turns a PatchOp body in any dialect Entra and its validator speak
(``"op": "Replace"``, a path-less ``value`` keyed by dotted or URN-qualified paths,
URN-keyed nested objects) into a flat list of :class:`PatchOperation` with parsed paths.
:func:`apply_patch` applies them in order to a canonical resource dict and returns a new
dict; it is all-or-nothing because nothing reachable from the input is ever written.

Deliberate departures from RFC-strict behaviour, each one something Entra relies on:

* add/replace on ``attr[filter].sub`` with no matching element appends an element built
  from the filter (``emails[type eq "work"].value`` on a user without a work email);
* remove on ``members`` with a ``value`` removes only the listed members;
* ``value`` on a remove of a single-valued path is ignored: the attribute is cleared;
* add on a single-valued attribute replaces it;
* null, "" and ``{"value": ""}`` (manager) in add/replace clear the attribute.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from gateway.scim.errors import invalid_path, invalid_syntax, mutability, no_target, too_many
from gateway.scim.filter import Predicate, compile_value_filter, parse_path
from gateway.scim.filter_ast import AttrPath, Filter
from gateway.scim.resources import (
    EMAILS,
    MANAGER,
    MEMBERS,
    check_required,
    coerce_attribute,
    coerce_single,
    custom_attr_names,
    dedupe_members,
    element_from_filter,
    find_key,
    is_empty,
    show,
    split_custom_urn,
    strip_empty,
)
from gateway.scim.schema import RESOURCE_TYPES, Attribute, ResourceType, split_urn

OpName = Literal["add", "remove", "replace"]
_OPS: dict[str, OpName] = {"add": "add", "remove": "remove", "replace": "replace"}
_MISSING: Any = object()
_ROOT = AttrPath("")
# Sub-attributes that only qualify an element; one left with nothing else is removed.
_QUALIFIERS = frozenset({"type", "primary"})
_CACHE_LIMIT = 4096
# Longer paths are parsed every time, so client-chosen text cannot pin much memory.
_CACHEABLE_PATH_LENGTH = 200


# --------------------------------------------------------------------------- paths


@dataclass(frozen=True, slots=True)
class _Target:
    """What a path addresses in a resource dict.

    kind "attr": an attribute this server defines; "custom": an attribute of an unknown
    extension schema, stored verbatim; "schema": a whole schema's attributes (the
    resource itself when ``container`` is None).
    """

    kind: Literal["attr", "custom", "schema"]
    container: str | None
    name: str
    where: str
    attribute: Attribute | None = None
    sub: Attribute | None = None
    sub_name: str | None = None
    value_filter: Filter | None = None
    match: Predicate | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PatchOperation:
    """One canonical operation. ``path`` None means "the resource itself" (``value`` is an object)."""

    op: OpName
    path: AttrPath | None = None
    value: Any = None
    target: _Target | None = field(default=None, compare=False, repr=False)
    """What ``path`` addresses, resolved once when the operation was parsed."""


def parse_attr_path(text: str, rt: ResourceType) -> AttrPath:
    """Parse a PATCH path (or a key of a path-less value) for ``rt``; 400 invalidPath if malformed.

    URN prefixes are split here, against the schemas of ``rt``, so that attributes of an
    extension schema we do not know end up with that schema's URN in ``AttrPath.urn``.
    """
    return _path_and_target(text, rt)[0]


def _path_and_target(text: str, rt: ResourceType) -> tuple[AttrPath, _Target]:
    # Entra sends the same few paths over and over; longer text is parsed every time, so
    # client-chosen paths cannot pin much memory in the cache.
    if len(text) <= _CACHEABLE_PATH_LENGTH and RESOURCE_TYPES.get(rt.name) is rt:
        return _cached_path_and_target(text, rt.name)
    path = _parse_attr_path(text.strip(), rt)
    return path, _resolve(path, rt)


@functools.lru_cache(maxsize=_CACHE_LIMIT)
def _cached_path_and_target(text: str, rt_name: str) -> tuple[AttrPath, _Target]:
    rt = RESOURCE_TYPES[rt_name]
    path = _parse_attr_path(text.strip(), rt)
    return path, _resolve(path, rt)


def _parse_attr_path(text: str, rt: ResourceType) -> AttrPath:
    if not text:
        raise invalid_path("The attribute path is empty")
    if text[:4].lower() != "urn:":
        return parse_path(text)
    urn, rest = split_urn(text, rt)
    if urn is not None:
        if not rest:
            return AttrPath("", urn=urn)
        plain = parse_path(rest)
        return AttrPath(plain.attr, plain.sub_attr, urn, plain.value_filter)
    custom = split_custom_urn(text, rt)
    if custom is None:
        raise invalid_path(f"Unknown attribute path '{text}'")
    urn, rest = custom
    if not rest:
        return AttrPath("", urn=urn)
    names = custom_attr_names(rest)
    if names is None:
        raise invalid_path(f"Invalid attribute path '{text}': extension attributes this server does "
                           "not define can only be addressed by name")
    return AttrPath(names[0], names[1], urn)


def _resolve(path: AttrPath, rt: ResourceType) -> _Target:
    urn = path.urn
    known_urn = urn is None or urn.lower() == rt.schema.id.lower() or rt.extension(urn) is not None
    if urn is not None and not known_urn and split_custom_urn(f"{urn}:x", rt) is None:
        raise invalid_path(f"Unknown schema '{urn}' for resource type {rt.name}")
    if not path.attr:
        ext = rt.extension(urn) if urn else None
        return _Target("schema", ext.id if ext else (None if known_urn else urn), "", urn or "")
    if not known_urn:
        assert urn is not None
        if path.value_filter is not None:
            raise invalid_path(f"Invalid attribute path: '{urn}:{path.attr}' is not multi-valued")
        where = f"{urn}:{path.attr}" + (f".{path.sub_attr}" if path.sub_attr else "")
        return _Target("custom", urn, path.attr, where, sub_name=path.sub_attr)
    resolved = rt.resolve(path.attr, path.sub_attr, urn)
    if resolved is None:
        shown = (f"{urn}:" if urn else "") + path.attr + (f".{path.sub_attr}" if path.sub_attr else "")
        raise invalid_path(f"Unknown attribute '{shown}' for resource type {rt.name}")
    attr = resolved.attribute
    container = None if resolved.schema in ("", rt.schema.id) else resolved.schema
    match = None
    if path.value_filter is not None:
        if attr.type != "complex":
            raise invalid_path(f"Invalid attribute path: '{attr.name}' has no sub-attributes to filter on")
        match = compile_value_filter(path.value_filter, attr)
    sub = resolved.sub_attribute
    return _Target("attr", container, attr.name, resolved.dotted, attr, sub, sub.name if sub else None,
                   path.value_filter, match)


def _check_mutability(op: OpName, target: _Target) -> None:
    attr = target.attribute
    if attr is None:
        return
    sub = target.sub
    read_only = attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly")
    # ``id`` may be repeated unchanged in a path-less value (clients echo the resource);
    # apply compares it with the stored id.
    if read_only and not (attr.name == "id" and target.container is None and op != "remove"):
        raise mutability(f"Attribute '{target.where}' is read-only and cannot be modified")


# --------------------------------------------------------------------------- parsing


def parse_patch(body: Any, rt: ResourceType, max_operations: int | None = None) -> list[PatchOperation]:
    """Canonical operations for a PatchOp request body.

    Path-less operations and whole-schema paths are expanded into one operation per
    attribute, so every returned operation except a whole-extension remove has a path
    to a single attribute. Raises 400 invalidSyntax (body shape, unknown op),
    invalidPath (malformed or unknown path), mutability (read-only attribute) or
    noTarget (remove without path).
    """
    if not isinstance(body, dict):
        raise invalid_syntax("The PATCH body must be a JSON object (a PatchOp message)")
    raw_ops: Any = _MISSING
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == "operations":
            raw_ops = value
    if raw_ops is _MISSING:
        raise invalid_syntax("The PatchOp message has no 'Operations' list")
    if not isinstance(raw_ops, list) or not raw_ops:
        # RFC 7644 §3.5.2: "an array of one or more PATCH operations".
        raise invalid_syntax("'Operations' must be a list of one or more operations")
    if max_operations is not None and len(raw_ops) > max_operations:
        raise too_many(f"A PATCH may carry at most {max_operations} operations; this one has {len(raw_ops)}.")
    out: list[PatchOperation] = []
    for index, raw in enumerate(raw_ops):
        _parse_one(raw, index, rt, out)
    return out


def _parse_one(raw: Any, index: int, rt: ResourceType, out: list[PatchOperation]) -> None:
    if not isinstance(raw, dict):
        raise invalid_syntax(f"Operations[{index}] must be an object with 'op', 'path' and 'value'")
    op_raw: Any = _MISSING
    path_raw: Any = None
    value: Any = _MISSING
    for key, item in raw.items():
        lower = key.lower() if isinstance(key, str) else ""
        if lower == "op":
            op_raw = item
        elif lower == "path":
            path_raw = item
        elif lower == "value":
            value = item
    op = _OPS.get(op_raw.lower()) if isinstance(op_raw, str) else None
    if op is None:
        shown = "no op" if op_raw is _MISSING else f"op {show(op_raw)}"
        raise invalid_syntax(f"Operations[{index}] has {shown}; expected add, remove or replace")
    if path_raw is not None and not isinstance(path_raw, str):
        raise invalid_path(f"Operations[{index}].path must be a string; got {show(path_raw)}")
    if path_raw is None or not path_raw.strip():
        if op == "remove":
            raise no_target(f"Operations[{index}]: remove needs a path")
        if value is _MISSING:
            raise invalid_syntax(f"Operations[{index}]: {op} without a path needs a value object")
        _expand(op, _ROOT, _resolve(_ROOT, rt), value, rt, out)
        return
    if op != "remove" and value is _MISSING:
        raise invalid_syntax(f"Operations[{index}]: {op} needs a value")
    _expand(op, *_path_and_target(path_raw, rt), None if value is _MISSING else value, rt, out)


def _expand(op: OpName, path: AttrPath, target: _Target, value: Any, rt: ResourceType,
            out: list[PatchOperation]) -> None:
    """Append the canonical operation(s) for (op, path, value), flattening whole-schema values."""
    if target.kind != "schema":
        _check_mutability(op, target)
        out.append(PatchOperation(op, path, value, target))
        return
    if op == "remove" or (value is None and target.container is not None):
        if target.container is None:
            raise no_target("A PATCH operation cannot remove the resource itself")
        out.append(PatchOperation("remove", path, None, target))
        return
    if not isinstance(value, dict):
        what = "an operation without a path" if target.container is None else f"'{target.where}'"
        raise invalid_syntax(f"The value of {what} must be an object keyed by attribute names; "
                             f"got {show(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or key.lower() in ("schemas", "meta"):
            continue
        _expand(op, *_child_path(target, key, rt), item, rt, out)


def _child_path(schema: _Target, key: str, rt: ResourceType) -> tuple[AttrPath, _Target]:
    if schema.container is None or key[:4].lower() == "urn:":
        return _path_and_target(key, rt)
    return _path_and_target(f"{schema.container}:{key}", rt)


# --------------------------------------------------------------------------- applying


class _State:
    """The resource being patched: a shallow copy whose touched parts are copied on write."""

    __slots__ = ("owned", "result", "touched")

    def __init__(self, resource: dict[str, Any]) -> None:
        self.result = dict(resource)
        self.owned: set[str] = set()
        self.touched: set[str] = set()

    def container(self, key: str | None, name: str) -> dict[str, Any]:
        """The dict holding attribute ``name``, owned by this patch (safe to write)."""
        if key is None:
            self.touched.add(name)
            return self.result
        key = find_key(self.result, key)
        if key not in self.owned:
            current = self.result.get(key)
            self.result[key] = dict(current) if isinstance(current, dict) else {}
            self.owned.add(key)
            self.touched.add(key)
        return cast(dict[str, Any], self.result[key])

    def finish(self, rt: ResourceType) -> dict[str, Any]:
        for key in self.touched:
            value = self.result.get(key)
            # Multi-valued operations clean the elements they write; re-scanning a list of
            # thousands of members on every PATCH would dominate its cost.
            if not isinstance(value, list):
                value = strip_empty(value)
            if is_empty(value):
                self.result.pop(key, None)
            else:
                self.result[key] = value
        check_required(self.result, rt, self.touched)
        return self.result


def apply_patch(resource: dict[str, Any], ops: list[PatchOperation], rt: ResourceType) -> dict[str, Any]:
    """Apply ``ops`` in order and return the patched resource; ``resource`` is not modified.

    The result shares unchanged nested values with ``resource``: treat both as immutable
    below the top level. Any failure raises ScimError and nothing is applied. A remove
    whose filter matches nothing is a successful no-op.
    """
    state = _State(resource)
    for op in ops:
        _apply_one(state, op, rt)
    return state.finish(rt)


def _apply_one(state: _State, op: PatchOperation, rt: ResourceType) -> None:
    path = op.path or _ROOT
    target = op.target if op.target is not None else _resolve(path, rt)
    if target.kind == "schema":
        if op.op != "remove":
            expanded: list[PatchOperation] = []
            _expand(op.op, path, target, op.value, rt, expanded)
            for item in expanded:
                _apply_one(state, item, rt)
        elif target.container is None:
            raise no_target("A PATCH operation cannot remove the resource itself")
        else:
            state.result.pop(find_key(state.result, target.container), None)
        return
    _check_mutability(op.op, target)
    if target.kind == "custom":
        _apply_custom(state, op, target)
        return
    attr = target.attribute
    assert attr is not None
    if attr.name == "id" and target.container is None:
        if op.value != state.result.get("id"):
            raise mutability("Attribute 'id' is read-only and cannot be modified")
        return
    container = state.container(target.container, target.name)
    if attr.multi_valued:
        _apply_multi(container, op, target, attr)
    elif attr.type == "complex":
        _apply_complex(container, op, target, attr)
    elif op.op == "remove":
        container.pop(target.name, None)
    else:
        _set(container, target.name, coerce_attribute(attr, op.value, target.where))


def _set(container: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        container.pop(name, None)
    else:
        container[name] = value


def _apply_custom(state: _State, op: PatchOperation, target: _Target) -> None:
    container = state.container(target.container, target.name)
    name = find_key(container, target.name)
    value = None if op.op == "remove" or is_empty(op.value) else op.value
    if target.sub_name is None:
        container.pop(name, None)
        _set(container, target.name, value)
        return
    current = container.get(name)
    updated = dict(current) if isinstance(current, dict) else {}
    updated.pop(find_key(updated, target.sub_name), None)
    _set(updated, target.sub_name, value)
    container.pop(name, None)
    container[target.name] = updated


def _apply_complex(container: dict[str, Any], op: PatchOperation, target: _Target, attr: Attribute) -> None:
    """A single-valued complex attribute: ``name``, ``manager`` and their sub-attributes."""
    name = target.name
    current = container.get(name)
    # ``manager[value eq "id"]``: the operation applies only if the current value matches.
    if target.match is not None and not (isinstance(current, dict) and target.match(current)):
        if op.op == "remove":
            return
        raise no_target(f"No value of '{target.where}' matches the filter")
    sub = target.sub
    if sub is not None:
        value = None if op.op == "remove" else coerce_attribute(sub, op.value, target.where)
        if attr is MANAGER and sub.name == "value" and is_empty(value):
            container.pop(name, None)
            return
        updated = dict(current) if isinstance(current, dict) else {}
        _set(updated, sub.name, value)
        container[name] = updated
        return
    if op.op == "remove":
        container.pop(name, None)
        return
    value = coerce_attribute(attr, op.value, target.where)
    if attr is MANAGER or not isinstance(op.value, dict):
        _set(container, name, value)
        return
    # RFC 7644 §3.5.2.1/3: sub-attributes not in the value are left unchanged; a null or
    # "" one is cleared.
    merged = dict(current) if isinstance(current, dict) else {}
    for key in op.value:
        sub_attr = attr.sub(key) if isinstance(key, str) else None
        if sub_attr is not None:
            merged[sub_attr.name] = (value or {}).get(sub_attr.name)
    container[name] = merged


def _apply_multi(container: dict[str, Any], op: PatchOperation, target: _Target, attr: Attribute) -> None:
    name = target.name
    current = container.get(name)
    elements: list[Any] = list(current) if isinstance(current, list) else []
    if target.value_filter is None and target.sub is None:
        if op.op == "remove":
            updated = [] if op.value is None else _without(elements, op.value, attr, target.where)
        else:
            updated = _add_or_replace_all(elements, op, attr, target.where)
        container[name] = updated
        return
    match = target.match
    matched = [i for i, e in enumerate(elements) if isinstance(e, dict) and (match is None or match(e))]
    sub = target.sub
    value: Any = None
    if op.op != "remove" and op.value is not None and op.value != "":
        value = coerce_single(sub or attr, op.value, target.where)
    if is_empty(value):
        # Remove, or add/replace with null / "": clear what the path selects.
        chosen = set(matched)
        if sub is None:
            elements = [e for i, e in enumerate(elements) if i not in chosen]
        else:
            elements = [_without_sub(e, sub.name, attr) if i in chosen else e for i, e in enumerate(elements)]
        container[name] = [e for e in elements if e is not None]
        return
    patch: dict[str, Any] = {sub.name: value} if sub is not None else value
    if not matched:
        elements.append(_element_for(target, attr, elements, patch))
        matched = [len(elements) - 1]
    for i in matched:
        elements[i] = {**elements[i], **patch}
    if patch.get("primary") is True:
        _demote_primaries(elements, set(matched))
    # Rewriting a member's value can make it repeat another member.
    container[name] = dedupe_members(elements) if attr is MEMBERS else elements


def _without_sub(element: dict[str, Any], name: str, attr: Attribute) -> dict[str, Any] | None:
    """``element`` less sub-attribute ``name``; None when only qualifiers (type, primary) remain."""
    rest = {k: v for k, v in element.items() if k != name}
    if rest.keys() <= _QUALIFIERS or (attr is MEMBERS and "value" not in rest):
        return None
    return rest


def _element_for(
    target: _Target, attr: Attribute, elements: list[Any], patch: dict[str, Any]
) -> dict[str, Any]:
    """The element to create when add/replace selects none (Entra expects create-on-absent)."""
    if target.value_filter is None:
        if elements:
            raise no_target(f"No element of '{target.where}' to modify")
        seed: dict[str, Any] | None = {}
    else:
        seed = element_from_filter(target.value_filter, attr)
    if seed is None:
        raise no_target(f"No value of '{target.name}' matches the filter of '{target.where}', "
                        "and no value can be created from it")
    element: dict[str, Any] = strip_empty({**seed, **patch})
    if attr is MEMBERS and not element.get("value"):
        raise no_target(f"No member matches '{target.where}', and a member cannot be created without a value")
    if (attr is EMAILS and "primary" not in element
            and str(element.get("type", "")).lower() == "work"
            and not any(isinstance(e, dict) and e.get("primary") is True for e in elements)):
        element["primary"] = True
    return element


def _add_or_replace_all(elements: list[Any], op: PatchOperation, attr: Attribute, where: str) -> list[Any]:
    items = coerce_attribute(attr, op.value, where) or []
    if op.op == "replace":
        return cast(list[Any], items)
    if attr is MEMBERS:
        present = {e.get("value") for e in elements if isinstance(e, dict)}
        fresh = [m for m in items if m.get("value") not in present]
    else:
        fresh = [item for item in items if item not in elements]
    elements.extend(fresh)
    primaries = {len(elements) - len(fresh) + i for i, item in enumerate(fresh)
                 if isinstance(item, dict) and item.get("primary") is True}
    if primaries:
        _demote_primaries(elements, primaries)
    return elements


def _without(elements: list[Any], value: Any, attr: Attribute, where: str) -> list[Any]:
    """``elements`` minus the values listed in a remove's ``value`` (Entra's member removal)."""
    items = value if isinstance(value, list) else [value]
    ids: set[Any] = set()
    whole: list[Any] = []
    for i, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, str):
            ids.add(item)
            continue
        element = coerce_single(attr, item, f"{where}[{i}]")
        if isinstance(element, dict) and "value" in element:
            ids.add(element["value"])
        else:
            whole.append(element)
    return [e for e in elements
            if not (isinstance(e, dict) and e.get("value") in ids) and e not in whole]


def _demote_primaries(elements: list[Any], keep: set[int]) -> None:
    """At most one primary value (RFC 7643 §2.4): a new primary demotes the others."""
    for i, element in enumerate(elements):
        if i not in keep and isinstance(element, dict) and element.get("primary") is True:
            elements[i] = {**element, "primary": False}
