"""Hard limits on what a request may contain, checked before any of it reaches the store,
the backend or the logs. Pure: no I/O.

A SCIM body is small and shallow (Entra's largest are group PATCHes with a few hundred
members); these bounds leave room for that many times over while keeping every request's
memory and work finite.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.scim.errors import ScimError, invalid_syntax, invalid_value

MAX_JSON_DEPTH = 32
"""Nesting of objects and arrays in a body (a SCIM resource needs 4)."""
MAX_STRING_LENGTH = 16_384
"""Characters in one string value or key."""
MAX_ARRAY_ITEMS = 10_000
"""Items in one array (e.g. the members of one PATCH operation)."""
MAX_ATTRIBUTE_NAMES = 100
"""Names in ``attributes`` / ``excludedAttributes``."""
MAX_START_INDEX = 2**31 - 1
"""A startIndex beyond it is read as it: every page past the end is empty anyway."""

_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
"""NUL, and the surrogate code points, which in a Python str are always unpaired."""


def check_unicode(text: str, where: str) -> str:
    """``text`` unchanged, or 400 invalidValue when it holds a NUL or a lone surrogate."""
    if _clean(text):
        return text
    found = _FORBIDDEN.search(text)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else f"a lone surrogate (U+{ord(found.group()):04X})"
        raise invalid_value(f"{where} contains {what} at character {found.start() + 1}; send valid Unicode text")
    return text


def _clean(text: str) -> bool:
    # Most strings are ASCII, where only NUL can be wrong: a plain substring test, no regex.
    return "\x00" not in text if text.isascii() else _FORBIDDEN.search(text) is None


def _breaks_a_limit(value: Any) -> bool:
    """Whether anything in ``value`` breaks a limit: one quick walk, with no paths built on the way."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if len(item) > MAX_STRING_LENGTH or not _clean(item):
                return True
        elif isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                return True
            for key, child in item.items():
                if len(key) > MAX_STRING_LENGTH or not _clean(key):
                    return True
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH or len(item) > MAX_ARRAY_ITEMS:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def check_json(value: Any, text: bytes | None = None) -> None:
    """Raise ScimError when a parsed body breaks a limit; walks iteratively (no recursion to exhaust).

    ``text``, the JSON that orjson parsed ``value`` from, lets most bodies skip the walk.
    """
    if text is not None and _text_cannot_break_a_limit(text):
        return
    if _breaks_a_limit(value):
        _raise_first_violation(value)


def _text_cannot_break_a_limit(text: bytes) -> bool:
    """A sufficient test on the JSON text alone: a few scans in C instead of a walk in Python
    (the walk was 6 % of a POST's instructions, measured). A string over MAX_STRING_LENGTH
    characters or an array over MAX_ARRAY_ITEMS items (an item and a comma each) cannot fit
    in fewer bytes; nesting needs a bracket per level; and orjson refuses raw control
    characters and lone surrogates, so a NUL can only come from the escape ``\\u0000``.
    """
    return (len(text) <= min(MAX_STRING_LENGTH, 2 * MAX_ARRAY_ITEMS) and b"\\u0000" not in text
            and text.count(b"{") + text.count(b"[") <= MAX_JSON_DEPTH)


def _raise_first_violation(value: Any) -> None:
    """The walk that says where: only run for a body known to break a limit."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item, where or "the body")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise invalid_syntax(f"the body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels "
                                     f"(at {where or '/'})")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key, f"the key {where}/{key[:40]!r}")
                    stack.append((child, f"{where}/{key[:40]}", depth + 1))
            else:
                if len(item) > MAX_ARRAY_ITEMS:
                    raise ScimError(400, f"{where or 'the body'} holds {len(item)} items; at most {MAX_ARRAY_ITEMS} "
                                         "are accepted in one request: send them in several", "tooMany")
                stack.extend((child, f"{where}/{i}", depth + 1) for i, child in enumerate(item))


def _check_string(text: str, where: str) -> None:
    if len(text) > MAX_STRING_LENGTH:
        raise invalid_value(f"{where} is {len(text)} characters long; at most {MAX_STRING_LENGTH} are accepted")
    check_unicode(text, where)
