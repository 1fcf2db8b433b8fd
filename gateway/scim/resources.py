"""Canonical resource dicts: input normalisation and value coercion (RFC 7643 §2, §4).

A resource is a plain dict keyed by canonical attribute names. Core and common
attributes live at the top level, extension attributes under their schema URN key.
Everything a client sends passes through the rules here exactly once — POST/PUT bodies
via :func:`normalize_resource`, PATCH values via :func:`coerce_attribute` — so the
tolerance for Entra's dialect (``"active": "True"``, ``Primary``, bare-string manager)
is defined in one place. Values are stored exactly as sent: no case or format
normalisation, because Entra re-PATCHes any value that reads back differently.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.scim.errors import invalid_syntax, invalid_value
from gateway.scim.filter_ast import And, Compare, Filter
from gateway.scim.schema import (
    ENTERPRISE_USER,
    GROUP,
    USER,
    Attribute,
    ResolvedAttribute,
    ResourceType,
    split_urn,
)


def _defined(attr: Attribute | None) -> Attribute:
    assert attr is not None
    return attr


# Attributes with rules of their own; compared by identity, so resolve them once.
MANAGER = _defined(ENTERPRISE_USER.attribute("manager"))
MEMBERS = _defined(GROUP.attribute("members"))
EMAILS = _defined(USER.attribute("emails"))

# Namespaces whose attributes this server defines completely; an unknown name under
# them is a client mistake rather than a custom extension to be stored verbatim.
_RESERVED_URN_PREFIXES = ("urn:ietf:params:scim:schemas:core:", "urn:ietf:params:scim:api:")
_VERSION = re.compile(r"\d+(?:\.\d+)*\Z")
_ATTR_NAME = re.compile(r"[A-Za-z$][A-Za-z0-9_$-]*\Z")


def show(value: Any) -> str:
    """A short rendering of a client value for error details (they end up in Entra's logs)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_empty(value: Any) -> bool:
    """Whether ``value`` reads as unassigned: null, "", [] or {}.

    RFC 7643 §2.5 equates null, [] and unassigned; "" and {} join them so that clearing an
    attribute with an empty string (SCIM_Null_Update_Test) works.
    """
    return value is None or value == "" or value == [] or value == {}


def strip_empty(value: Any) -> Any:
    """``value`` without null / empty-string / empty-list / empty-object members, recursively.

    Returns the very same object when there is nothing to strip, so callers can cheaply
    tell whether anything changed and unchanged structure is not re-allocated.
    """
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for i, (key, item) in enumerate(value.items()):
            stripped = strip_empty(item)
            if out is None and (stripped is not item or is_empty(stripped)):
                out = dict(list(value.items())[:i])
            if out is not None and not is_empty(stripped):
                out[key] = stripped
        return value if out is None else out
    if isinstance(value, list):
        items: list[Any] | None = None
        for i, item in enumerate(value):
            stripped = strip_empty(item)
            if items is None and (stripped is not item or is_empty(stripped)):
                items = list(value[:i])
            if items is not None and not is_empty(stripped):
                items.append(stripped)
        return value if items is None else items
    return value


def split_custom_urn(text: str, rt: ResourceType) -> tuple[str, str] | None:
    """Split a path under an extension schema this server does not define.

    Returns (schema URN, attribute remainder), the remainder being "" when ``text`` names
    the schema itself; None when ``text`` is not such a path. Entra's custom extension
    attributes look like ``urn:ietf:params:scim:schemas:extension:<Name>:2.0:User:<attr>``;
    since the schema is unknown, its URN is recognised by the trailing ``<version>:<User>``
    pair and otherwise taken to end at the last colon.
    """
    lower = text.lower()
    if not lower.startswith("urn:") or lower.startswith(_RESERVED_URN_PREFIXES):
        return None
    parts = text.split(":")
    if len(parts) >= 4 and parts[-1].lower() == rt.name.lower() and _VERSION.match(parts[-2]):
        return text, ""
    urn, _, rest = text.rpartition(":")
    if urn.count(":") < 2:
        return None
    return urn, rest


def custom_attr_names(rest: str) -> tuple[str, str | None] | None:
    """(attr, sub) of a custom extension remainder such as ``tag`` or ``tag.sub``; None if malformed."""
    attr, dot, sub = rest.partition(".")
    if not _ATTR_NAME.match(attr) or (dot and not _ATTR_NAME.match(sub)):
        return None
    return attr, (sub if dot else None)


def find_key(container: dict[str, Any], key: str) -> str:
    """The spelling under which ``container`` already holds ``key`` (case-insensitively), else ``key``."""
    if key in container:
        return key
    lower = key.lower()
    for existing in container:
        if existing.lower() == lower:
            return existing
    return key


# --------------------------------------------------------------------------- coercion


def coerce_value(resolved: ResolvedAttribute, value: Any, where: str) -> Any:
    """Coerce a client value for the attribute (or sub-attribute) that ``resolved`` names."""
    return coerce_attribute(resolved.sub_attribute or resolved.attribute, value, where)


def coerce_attribute(attr: Attribute, value: Any, where: str) -> Any:
    """Check and convert a whole client value for ``attr``; None means "absent".

    Multi-valued attributes yield a list (a lone object is taken as a one-element list),
    complex ones a dict with canonical sub-attribute names. Null, "", [] and {} at any
    depth are dropped, so the result holds no empty values (SCIM_Null_Update_Test sets ""
    to clear). Raises 400 invalidValue naming ``where`` when the value has the wrong type.
    """
    if value is None or value == "":
        return None
    if attr is MANAGER:
        return coerce_manager(value, where)
    if attr.multi_valued:
        if isinstance(value, dict):
            value = [value]
        elif not isinstance(value, list):
            raise invalid_value(f"Attribute '{where}' must be a list; got {show(value)}")
        out = [coerce_single(attr, item, f"{where}[{i}]") for i, item in enumerate(value)
               if item is not None and item != ""]
        if attr is MEMBERS:
            for i, member in enumerate(out):
                if not member.get("value"):
                    raise invalid_value(f"Attribute '{where}[{i}].value' is required: the id of the member")
            out = dedupe_members(out)
        return [item for item in out if not is_empty(item)] or None
    result = coerce_single(attr, value, where)
    return None if is_empty(result) else result


def coerce_single(attr: Attribute, value: Any, where: str) -> Any:
    """Coerce one value of ``attr``'s type: a scalar, or one complex value / element."""
    kind = attr.type
    if kind == "complex":
        return _coerce_complex(attr, value, where)
    if kind == "boolean":
        return coerce_boolean(value, where)
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise invalid_value(f"Attribute '{where}' must be an integer; got {show(value)}")
    if kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise invalid_value(f"Attribute '{where}' must be a number; got {show(value)}")
    if isinstance(value, str):
        return value
    raise invalid_value(f"Attribute '{where}' must be a string; got {show(value)}")


def coerce_boolean(value: Any, where: str) -> bool:
    """JSON booleans, and the strings Entra's default engine sends ("True", "false", ...)."""
    if value is True or value is False:
        return value
    if isinstance(value, str):
        lower = value.lower()
        if lower == "true":
            return True
        if lower == "false":
            return False
    raise invalid_value(f"Attribute '{where}' must be a boolean (true or false); got {show(value)}")


def _coerce_complex(attr: Attribute, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_value(f"Attribute '{where}' must be an object; got {show(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = attr.sub(key) if isinstance(key, str) else None
        if sub is None:
            # Unknown sub-attributes are dropped like unknown attributes: the client's
            # schema may be richer than ours and that is not an error.
            continue
        coerced = coerce_attribute(sub, item, f"{where}.{sub.name}")
        if coerced is not None:
            out[sub.name] = coerced
    return out


def coerce_manager(value: Any, where: str) -> dict[str, Any] | None:
    """The enterprise manager in any shape Entra uses; None when it means "no manager".

    Accepts a bare id, ``{"value": id}`` (optionally with ``$ref`` / ``displayName``) and
    the legacy one-element array ``[{"$ref": .., "value": id}]``. An empty id is removal.
    """
    if isinstance(value, list):
        items = [item for item in value if item is not None]
        if not items:
            return None
        if len(items) > 1:
            raise invalid_value(f"Attribute '{where}' takes a single manager; got {len(items)}")
        value = items[0]
    if isinstance(value, str):
        return {"value": value} if value else None
    if not isinstance(value, dict):
        raise invalid_value(f"Attribute '{where}' must be a manager id or an object with 'value'; "
                            f"got {show(value)}")
    out = _coerce_complex(MANAGER, value, where)
    if not out.get("value"):
        if out.get("$ref"):
            raise invalid_value(f"Attribute '{where}.value' is required: the id of the manager")
        return None
    return out


def dedupe_members(members: list[Any]) -> list[Any]:
    """Members without repeated ids, keeping each id's first occurrence and the order."""
    seen: set[Any] = set()
    out: list[Any] = []
    for member in members:
        key = member.get("value") if isinstance(member, dict) else member
        if key in seen:
            continue
        seen.add(key)
        out.append(member)
    return out


# --------------------------------------------------------------------------- whole resources


def normalize_resource(body: Any, rt: ResourceType) -> dict[str, Any]:
    """The canonical resource dict for a POST/PUT body.

    Client-supplied ``schemas``, ``meta`` and ``id`` are ignored (the service owns them),
    as are read-only and unknown attributes; attributes of an unknown extension schema
    are kept verbatim under that schema's URN. Raises 400 invalidSyntax for a body that
    is not an object and 400 invalidValue for a wrongly typed value or a missing
    required attribute.
    """
    if not isinstance(body, dict):
        raise invalid_syntax(f"The request body must be a JSON object describing a {rt.name}")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if value is None or not isinstance(key, str):
            continue
        if key[:4].lower() == "urn:":
            _put_urn_key(out, key, value, rt)
        else:
            _put(out, _resolve_key(rt, key, None), value, rt)
    result = {key: value for key, value in out.items() if value != {}}
    check_required(result, rt)
    return result


def check_required(resource: dict[str, Any], rt: ResourceType, keys: set[str] | None = None) -> None:
    """400 invalidValue unless every required attribute is present and not blank.

    With ``keys``, only required attributes stored under those top-level keys are
    checked (a PATCH need not re-validate what it did not touch).
    """
    for schema in rt.schemas:
        in_core = schema is rt.schema
        for attr in schema.attributes:
            if not attr.required:
                continue
            if keys is not None and (attr.name if in_core else schema.id) not in keys:
                continue
            container = resource if in_core else resource.get(schema.id)
            value = container.get(attr.name) if isinstance(container, dict) else None
            if value is None or (isinstance(value, str) and not value.strip()) or is_empty(value):
                raise invalid_value(f"{attr.name} is required")


def _put_urn_key(out: dict[str, Any], key: str, value: Any, rt: ResourceType) -> None:
    urn, rest = split_urn(key, rt)
    if urn is None:
        _put_custom(out, key, value, rt)
        return
    if rest:
        _put(out, _resolve_key(rt, rest, urn), value, rt)
        return
    if not isinstance(value, dict):
        raise invalid_value(f"Attribute '{urn}' must be an object holding that schema's attributes")
    for inner_key, inner_value in value.items():
        if inner_value is not None and isinstance(inner_key, str):
            _put(out, _resolve_key(rt, inner_key, urn), inner_value, rt)


def _put_custom(out: dict[str, Any], key: str, value: Any, rt: ResourceType) -> None:
    split = split_custom_urn(key, rt)
    if split is None:
        return
    urn, rest = split
    if rest:
        values: dict[str, Any] = {rest: value}
    elif isinstance(value, dict):
        values = value
    else:
        raise invalid_value(f"Attribute '{urn}' must be an object holding that schema's attributes")
    urn = find_key(out, urn)
    container = out.setdefault(urn, {})
    for name, item in values.items():
        item = strip_empty(item)
        if not is_empty(item):
            container[find_key(container, name)] = item


_Key = tuple[ResolvedAttribute, str] | None


def _resolve_key(rt: ResourceType, key: str, urn: str | None) -> _Key:
    """(resolution, canonical dotted name) of a body key such as ``name`` or ``name.givenName``."""
    attr, dot, sub = key.partition(".")
    resolved = rt.resolve(attr, sub if dot else None, urn)  # memoised by the resource type
    return None if resolved is None else (resolved, resolved.dotted)


def _put(out: dict[str, Any], key: _Key, value: Any, rt: ResourceType) -> None:
    if key is None:
        return
    resolved, where = key
    attr = resolved.attribute
    if attr.mutability == "readOnly":
        return
    container = out if resolved.schema in ("", rt.schema.id) else out.setdefault(resolved.schema, {})
    sub = resolved.sub_attribute
    coerced = coerce_attribute(sub or attr, value, where)
    if coerced is None:
        return
    if sub is None:
        current = container.get(attr.name)
        if isinstance(coerced, dict) and isinstance(current, dict) and attr is not MANAGER:
            current.update(coerced)
        else:
            container[attr.name] = coerced
        return
    if attr.multi_valued:
        # ``emails.value`` outside PATCH has no element to address; take it as one element.
        container[attr.name] = [{sub.name: coerced}]
        return
    current = container.get(attr.name)
    if not isinstance(current, dict):
        current = container[attr.name] = {}
    current[sub.name] = coerced


# --------------------------------------------------------------------------- value filters on elements


def element_from_filter(f: Filter, attr: Attribute) -> dict[str, Any] | None:
    """The element a filter of ``eq`` terms joined by ``and`` describes; None for any other filter."""
    if isinstance(f, Compare) and f.op == "eq" and f.value is not None:
        sub = attr.sub(f.path.attr)
        assert sub is not None
        return {sub.name: coerce_single(sub, f.value, f"{attr.name}.{sub.name}")}
    if isinstance(f, And):
        left = element_from_filter(f.left, attr)
        right = element_from_filter(f.right, attr)
        if left is None or right is None:
            return None
        return {**left, **right}
    return None
