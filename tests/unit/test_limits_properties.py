"""Body limits: the quick test on the JSON text never lets through what the walk refuses."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.scim.errors import ScimError
from gateway.scim.limits import MAX_ARRAY_ITEMS, MAX_JSON_DEPTH, MAX_STRING_LENGTH, check_json

# Text as orjson can write it (no lone surrogates); NUL and long runs are drawn on purpose.
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30) | st.sampled_from(
    ["\x00", "a\x00b", "x" * MAX_STRING_LENGTH, "x" * (MAX_STRING_LENGTH + 1), "é" * (MAX_STRING_LENGTH // 2 + 1)]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | texts,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(texts, children, max_size=6),
    max_leaves=40,
)


def _nested(containers: int) -> Any:
    value: Any = "leaf"
    for level in range(containers):
        value = [value] if level % 2 else {"k": value}
    return value


def _verdict(value: Any, text: bytes | None) -> str | None:
    try:
        check_json(value, text)
    except ScimError as exc:
        return f"{exc.status} {exc.scim_type}"
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
@example(_nested(MAX_JSON_DEPTH))
@example(_nested(MAX_JSON_DEPTH + 1))
@example({"members": list(range(MAX_ARRAY_ITEMS + 1))})
@example({"k\x00": 1})
def test_the_text_shortcut_agrees_with_the_walk(value: Any) -> None:
    assert _verdict(value, orjson.dumps(value)) == _verdict(value, None)


@pytest.mark.parametrize("value", [_nested(MAX_JSON_DEPTH + 1), {"title": "a\x00b"}, {"t": "x" * 16_385}])
def test_each_limit_is_still_refused_with_the_text(value: Any) -> None:
    with pytest.raises(ScimError):
        check_json(value, orjson.dumps(value))
