"""SCIM filters and attribute paths: parse, render, evaluate, validate, push down.

Pure: no I/O. The grammar is RFC 7644 §3.4.2.2 (filters) and §3.5.2 (PATCH paths), with the
leniencies Entra needs: case-insensitive keywords and attribute names, unquoted string
literals (``externalId eq jyoung``), ``not`` without parentheses.

Evaluation semantics worth knowing:
- an attribute that does not resolve never matches (so ``not (x eq 1)`` matches everything);
- an absent attribute has no values, so every comparison on it is false, ``ne`` included;
- multi-valued attributes match when any value does; a comparison on a complex attribute
  without a sub-attribute compares its ``value`` sub-attribute (``emails eq "x"``,
  ``manager eq "id"``);
- a literal of the wrong type never matches; an operator that makes no sense for the type
  (``active gt true``) is an invalidFilter error.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.scim.errors import invalid_path
from gateway.scim.filter_ast import (
    And,
    AttrPath,
    Compare,
    CompareOp,
    Filter,
    Literal_,
    Not,
    Or,
    Present,
    ValuePath,
)
from gateway.scim.filter_parser import (
    as_compare_op,
    check_text,
    filter_error,
    parse_attribute_path,
    parse_filter_tokens,
)
from gateway.scim.schema import RESOURCE_TYPES, Attribute, ResolvedAttribute, ResourceType

__all__ = [
    "compile_filter",
    "compile_value_filter",
    "matches",
    "matches_value",
    "parse_filter",
    "parse_path",
    "pushdown",
    "render",
    "render_path",
    "simple_eq",
    "validate",
]

# ---------------------------------------------------------------------------------------------
# Parsing

# Entra's matching queries (`userName eq "…"`, `externalId eq "…"`) take this shortcut. Only
# ASCII is matched on purpose: IGNORECASE would let exotic case folds (U+017F for "s") in that
# the general parser rejects, and the two paths must agree.
_FAST_RE = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_\-]*)(?:\.([A-Za-z][A-Za-z0-9_\-]*))?\s+([A-Za-z]{2})\s+"([^"\\]*)"\s*'
)


def parse_filter(text: str) -> Filter:
    """Parse a filter expression; any syntax error raises ScimError 400 invalidFilter."""
    check_text(text, "filter", filter_error)
    m = _FAST_RE.fullmatch(text)
    if m is not None:
        op = as_compare_op(m.group(3))
        if op is not None:
            return Compare(AttrPath(m.group(1), m.group(2)), op, m.group(4))
    return parse_filter_tokens(text)


def parse_path(text: str) -> AttrPath:
    """Parse a PATCH path: attr, attr.sub, urn:…:attr[.sub], attr[filter][.sub] or a bare schema URN.

    A bare URN is returned as ``AttrPath(attr="", urn=<the URN as sent>)``.
    """
    return parse_attribute_path(text)


# ---------------------------------------------------------------------------------------------
# Rendering

_PRECEDENCE = {Or: 1, And: 2}


def _render_literal(value: Literal_) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _render(f: Filter, min_precedence: int) -> str:
    if isinstance(f, Compare):
        return f"{render_path(f.path)} {f.op} {_render_literal(f.value)}"
    if isinstance(f, Present):
        return f"{render_path(f.path)} pr"
    if isinstance(f, ValuePath):
        return f"{render_path(AttrPath(f.path.attr, None, f.path.urn))}[{_render(f.filter, 0)}]"
    if isinstance(f, Not):
        return f"not ({_render(f.expr, 0)})"
    if isinstance(f, And):
        text = f"{_render(f.left, 2)} and {_render(f.right, 3)}"
    else:
        text = f"{_render(f.left, 1)} or {_render(f.right, 2)}"
    return f"({text})" if _PRECEDENCE[type(f)] < min_precedence else text


def render(f: Filter) -> str:
    """Filter text that parses back to ``f``; parentheses only where precedence needs them."""
    return _render(f, 0)


def render_path(p: AttrPath) -> str:
    if not p.attr:
        return p.urn or ""
    text = f"{p.urn}:{p.attr}" if p.urn else p.attr
    if p.value_filter is not None:
        text = f"{text}[{_render(p.value_filter, 0)}]"
    return f"{text}.{p.sub_attr}" if p.sub_attr else text


# ---------------------------------------------------------------------------------------------
# Evaluation

Resource = dict[str, Any]
Predicate = Callable[[Resource], bool]
Getter = Callable[[Resource], list[Any]]
Scope = ResourceType | Attribute  # a resource, or an element of a complex attribute

_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
    "le": operator.le,
}
_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    **_ORDERED,
    "co": lambda value, literal: literal in value,
    "sw": str.startswith,
    "ew": str.endswith,
}
_SUBSTRING_OPS = frozenset({"co", "sw", "ew"})
_ORDERING_OPS = frozenset({"gt", "ge", "lt", "le"})


def _never(_: Resource) -> bool:
    return False


def _items(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        return raw
    return [] if raw is None else [raw]


def _is_present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_bool(value: Any) -> bool | None:
    # Entra writes booleans as strings ("True") in value filters such as roles[primary eq "True"].
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A timestamp without an offset is taken as UTC so that it can be ordered against aware ones.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _check_operator(attribute: Attribute, op: str, name: str) -> None:
    kind = attribute.type
    if kind == "boolean" and op not in ("eq", "ne"):
        raise filter_error(f"'{op}' cannot be used with the boolean attribute '{name}'; use eq or ne")
    if kind == "binary" and op in _ORDERING_OPS:
        raise filter_error(f"'{op}' cannot be used with the binary attribute '{name}'")
    if kind in ("integer", "decimal") and op in _SUBSTRING_OPS:
        raise filter_error(f"'{op}' cannot be used with the numeric attribute '{name}'")


def _value_test(attribute: Attribute, op: CompareOp, literal: Literal_, strict: bool, name: str) -> Callable[
    [Any], bool
] | None:
    """A test for one attribute value; None when no value can match."""
    _check_operator(attribute, op, name)
    kind = attribute.type
    if kind == "boolean":
        expected = _as_bool(literal)
        if expected is None:
            return None
        if op == "eq":
            return lambda v: v is expected
        return lambda v: isinstance(v, bool) and v is not expected
    if kind in ("integer", "decimal"):
        if not _is_number(literal):
            return None
        number_op = _ORDERED[op]
        return lambda v: _is_number(v) and number_op(v, literal)
    if kind == "dateTime" and op not in _SUBSTRING_OPS:
        instant = _parse_datetime(literal)
        if instant is None:
            if strict:
                raise filter_error(
                    f"'{name}' is a dateTime; compare it with an ISO 8601 string such as "
                    '"2024-01-31T12:00:00Z"'
                )
            return None
        date_op = _ORDERED[op]

        def test_instant(v: Any) -> bool:
            parsed = _parse_datetime(v)
            return parsed is not None and date_op(parsed, instant)

        return test_instant
    if not isinstance(literal, str):
        return None
    string_op = _STRING_OPS[op]
    if attribute.case_exact:
        return lambda v: isinstance(v, str) and string_op(v, literal)
    folded = literal.lower()
    return lambda v: isinstance(v, str) and string_op(v.lower(), folded)


def _resolve_in(path: AttrPath, scope: Scope) -> tuple[str | None, Attribute] | None:
    """(extension URN holding the attribute or None, attribute definition)."""
    if isinstance(scope, ResourceType):
        if not path.attr:
            return None
        resolved = scope.resolve(path.attr, None, path.urn)
        if resolved is None:
            return None
        return (resolved.schema if resolved.is_extension else None), resolved.attribute
    if path.urn:
        return None
    attribute = scope.sub(path.attr)
    return None if attribute is None else (None, attribute)


def _compile_path(path: AttrPath, scope: Scope, strict: bool) -> tuple[Attribute, Getter] | None:
    found = _resolve_in(path, scope)
    if found is None:
        return None
    urn, attribute = found
    key = attribute.name
    getter: Getter
    if urn is not None:
        ext_urn = urn

        def getter(o: Resource) -> list[Any]:
            container = o.get(ext_urn)
            return _items(container.get(key)) if isinstance(container, dict) else []
    else:

        def getter(o: Resource) -> list[Any]:
            return _items(o.get(key))

    if path.value_filter is not None:
        if attribute.type != "complex":
            if strict:
                raise filter_error(f"'{render_path(path)}': a value filter needs a complex attribute")
            return attribute, lambda o: []
        keep = _compile(path.value_filter, attribute, strict)
        unfiltered = getter

        def getter(o: Resource) -> list[Any]:
            return [el for el in unfiltered(o) if isinstance(el, dict) and keep(el)]

    if path.sub_attr is None:
        return attribute, getter
    # Inside a value filter the path already names a sub-attribute; there is nothing below it.
    sub = attribute.sub(path.sub_attr) if isinstance(scope, ResourceType) else None
    if sub is None:
        return None
    sub_key = sub.name
    elements = getter

    def sub_getter(o: Resource) -> list[Any]:
        out: list[Any] = []
        for el in elements(o):
            if isinstance(el, dict):
                out.extend(_items(el.get(sub_key)))
        return out

    return sub, sub_getter


def _compile_compare(f: Compare, scope: Scope, strict: bool) -> Predicate:
    found = _compile_path(f.path, scope, strict)
    if found is None:
        return _never
    attribute, getter = found
    if attribute.type == "complex":
        value_attribute = attribute.sub("value")
        if value_attribute is None:
            if strict:
                raise filter_error(
                    f"'{render_path(f.path)}' is a complex attribute; compare one of its sub-attributes, "
                    f"e.g. {f.path.attr}.{attribute.sub_attributes[0].name}"
                )
            return _never
        elements = getter

        def getter(o: Resource) -> list[Any]:
            return [el.get("value") for el in elements(o) if isinstance(el, dict)]

        attribute = value_attribute
    test = _value_test(attribute, f.op, f.value, strict, render_path(f.path))
    if test is None:
        return _never
    value_test = test
    return lambda o: any(value_test(v) for v in getter(o) if v is not None)


def _compile(f: Filter, scope: Scope, strict: bool) -> Predicate:
    if isinstance(f, Compare):
        return _compile_compare(f, scope, strict)
    if isinstance(f, And | Or):
        left = _compile(f.left, scope, strict)
        right = _compile(f.right, scope, strict)
        if isinstance(f, And):
            return lambda o: left(o) and right(o)
        return lambda o: left(o) or right(o)
    if isinstance(f, Not):
        inner = _compile(f.expr, scope, strict)
        return lambda o: not inner(o)
    if isinstance(f, Present):
        if not f.path.attr and f.path.urn and isinstance(scope, ResourceType):
            ext = scope.extension(f.path.urn)
            if ext is None:
                return _never
            ext_id = ext.id
            return lambda o: _is_present(o.get(ext_id))
        found = _compile_path(f.path, scope, strict)
        if found is None:
            return _never
        present_getter = found[1]
        return lambda o: any(_is_present(v) for v in present_getter(o))
    found = _compile_path(AttrPath(f.path.attr, None, f.path.urn, f.filter), scope, strict)
    if found is None:
        return _never
    some_getter = found[1]
    return lambda o: bool(some_getter(o))


def compile_filter(f: Filter, rt: ResourceType) -> Predicate:
    """Resolve ``f`` once against ``rt``; the result tests resources (cheaper than ``matches`` in a loop)."""
    return _compile(f, rt, False)


def matches(f: Filter, resource: dict[str, Any], rt: ResourceType) -> bool:
    return _compile(f, rt, False)(resource)


def matches_value(f: Filter, element: dict[str, Any], attribute: Attribute) -> bool:
    """Evaluate a value filter (``type eq "work"``) against one element of a complex attribute."""
    return _compile(f, attribute, False)(element)


def _check_value_filter(f: Filter, attribute: Attribute) -> None:
    if isinstance(f, And | Or):
        _check_value_filter(f.left, attribute)
        _check_value_filter(f.right, attribute)
        return
    if isinstance(f, Not):
        _check_value_filter(f.expr, attribute)
        return
    if not isinstance(f, Compare | Present):
        raise invalid_path(f"Invalid filter on '{attribute.name}': value filters cannot be nested")
    p = f.path
    if p.urn is not None or p.sub_attr is not None or p.value_filter is not None or attribute.sub(p.attr) is None:
        raise invalid_path(f"Invalid filter on '{attribute.name}': '{p.attr}' is not one of its sub-attributes")


def compile_value_filter(f: Filter, attribute: Attribute) -> Predicate:
    """A test of one element of complex ``attribute`` against value filter ``f`` (``type eq "work"``),
    for PATCH paths such as ``emails[type eq "work"]``.

    Raises 400 invalidPath unless every attribute ``f`` names is a sub-attribute of ``attribute``.
    """
    _check_value_filter(f, attribute)
    return _compile(f, attribute, False)


def validate(f: Filter, rt: ResourceType) -> Predicate:
    """Reject operators and literals that make no sense for known attributes; unknown ones pass.

    Returns the compiled filter: a filter that validates compiles to what ``compile_filter`` gives.
    """
    return _compile(f, rt, True)


# ---------------------------------------------------------------------------------------------
# Push-down


def _canonical_eq(f: Filter, rt: ResourceType, typed: bool) -> tuple[str, Compare] | None:
    """``f`` as an eq on the canonical attribute, or None.

    A value filter on the path is dropped: ``emails[type eq "work"].value eq x`` implies
    ``emails.value eq x``, and callers only need a superset.
    """
    if not isinstance(f, Compare) or f.op != "eq" or not f.path.attr:
        return None
    path = f.path
    resolved = rt.resolve(path.attr, path.sub_attr, path.urn)
    if resolved is None:
        return None
    if resolved.sub_attribute is None and resolved.attribute.type == "complex":
        value_attribute = resolved.attribute.sub("value")
        if value_attribute is None:
            return None
        resolved = ResolvedAttribute(resolved.schema, resolved.attribute, value_attribute)
    leaf = resolved.sub_attribute or resolved.attribute
    value: Literal_ = f.value
    if leaf.type == "boolean":
        coerced = _as_bool(value)
        if coerced is not None:
            value = coerced
        elif typed:
            return None
    elif typed:
        numeric = leaf.type in ("integer", "decimal")
        well_typed = _is_number(value) if numeric else isinstance(value, str)
        if not well_typed:
            return None
    canonical = AttrPath(
        resolved.attribute.name,
        resolved.sub_attribute.name if resolved.sub_attribute else None,
        resolved.schema if resolved.is_extension else None,
    )
    return resolved.dotted, Compare(canonical, "eq", value)


MAX_PUSHDOWN_TERMS = 16
"""A pushed-down filter is an OR of at most this many ANDs: a backend may answer each with a call."""


def _terms(f: Filter) -> int:
    """How many terms ``f`` has written as an OR of ANDs (its disjunctive normal form)."""
    if isinstance(f, Or):
        return _terms(f.left) + _terms(f.right)
    if isinstance(f, And):
        return _terms(f.left) * _terms(f.right)
    return 1


def pushdown(f: Filter, filterable: frozenset[str], rt: ResourceType) -> Filter | None:
    """A filter implied by ``f`` using only eq on ``filterable`` attributes, or None.

    The backend may return a superset of what ``f`` selects; the gateway re-evaluates ``f``.
    The result never expands to more than MAX_PUSHDOWN_TERMS terms: of an ``and`` too wide
    only the narrower side is pushed (still a superset), an ``or`` too wide is not pushed.
    """
    pushed = _pushdown(f, filterable, rt)
    return pushed if pushed is None or _terms(pushed) <= MAX_PUSHDOWN_TERMS else None


def _pushdown(f: Filter, filterable: frozenset[str], rt: ResourceType) -> Filter | None:
    if isinstance(f, Compare):
        found = _canonical_eq(f, rt, typed=True)
        return found[1] if found is not None and found[0] in filterable else None
    if isinstance(f, And):
        left = _pushdown(f.left, filterable, rt)
        right = _pushdown(f.right, filterable, rt)
        if left is None or right is None:
            return left or right
        if _terms(left) * _terms(right) > MAX_PUSHDOWN_TERMS:
            return min(left, right, key=_terms)
        return And(left, right)
    if isinstance(f, Or):
        left = _pushdown(f.left, filterable, rt)
        if left is None:
            return None
        right = _pushdown(f.right, filterable, rt)
        if right is None or _terms(left) + _terms(right) > MAX_PUSHDOWN_TERMS:
            return None
        return Or(left, right)
    return None


def simple_eq(f: Filter, rt: ResourceType | None = None) -> tuple[str, Any] | None:
    """(canonical dotted attribute, value) when ``f`` is one eq on a known attribute, else None.

    Without ``rt`` the name is resolved against the User then the Group resource type.
    """
    if not isinstance(f, Compare) or f.path.value_filter is not None:
        return None
    for candidate in (rt,) if rt is not None else tuple(RESOURCE_TYPES.values()):
        found = _canonical_eq(f, candidate, typed=False)
        if found is not None:
            return found[0], found[1].value
    return None
