"""Membership PATCHes applied to ids give exactly what the general PATCH engine gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.scim.errors import ScimError
from gateway.scim.members import apply_member_edits, member_edits
from gateway.scim.patch import apply_patch, parse_patch
from gateway.scim.schema import GROUP_RESOURCE, GROUP_SCHEMA

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
IDS = ["a1", "b2", "C3", "c3", "d4", "e5"]
member_id = st.sampled_from(IDS)
ref = st.sampled_from([None, "https://x/Users/a1"])
element = st.builds(lambda i, r, t: {"value": i, "$ref": r, **({"type": t} if t else {})},
                    member_id, ref, st.sampled_from([None, "User"]))
values = st.one_of(st.lists(element, max_size=4), element)
path = st.sampled_from(["members", "Members", f"{GROUP_SCHEMA}:members"])
operation = st.one_of(
    st.builds(lambda op, p, v: {"op": op, "path": p, "value": v}, st.sampled_from(["add", "Add", "replace"]),
              path, values),
    st.builds(lambda p, v: {"op": "Remove", "path": p, "value": v}, path,
              st.one_of(values, st.lists(member_id, max_size=3))),
    st.builds(lambda i: {"op": "remove", "path": f'members[value eq "{i}"]'}, member_id),
    st.just({"op": "remove", "path": "members"}),
)


def _group(ids: list[str]) -> dict[str, Any]:
    return {"id": "g1", "displayName": "Sales",
            "members": [{"value": i, "$ref": f"https://x/Users/{i}", "type": "User"} for i in ids]}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(current=st.lists(member_id, unique=True, max_size=5), operations=st.lists(operation, min_size=1, max_size=4))
def test_member_edits_agree_with_the_patch_engine(current: list[str], operations: list[dict[str, Any]]) -> None:
    ops = parse_patch({"schemas": [PATCH], "Operations": operations}, GROUP_RESOURCE)
    edits = member_edits(ops)
    assert edits is not None, operations
    expected = [m["value"] for m in apply_patch(_group(current), ops, GROUP_RESOURCE).get("members", [])]
    assert apply_member_edits(current, edits) == expected


@pytest.mark.parametrize("operation", [
    {"op": "add", "path": "members", "value": [{"Value": "a1"}]},  # read case-insensitively there
    {"op": "add", "path": "members", "value": [{"value": ""}]},
    {"op": "add", "path": "members", "value": [{"value": 7}]},
    {"op": "add", "path": "members", "value": [{"value": "a1", "display": 5}]},
    {"op": "add", "path": "members", "value": "a1"},
    {"op": "replace", "path": "members", "value": None},
    {"op": "remove", "path": "members", "value": [{"$ref": "x"}]},
    {"op": "remove", "path": 'members[display eq "x"]'},
    {"op": "replace", "path": 'members[value eq "a1"].value', "value": "b2"},
    {"op": "replace", "path": "displayName", "value": "Other"},
])
def test_anything_else_takes_the_general_path(operation: dict[str, Any]) -> None:
    ops = parse_patch({"schemas": [PATCH], "Operations": [operation]}, GROUP_RESOURCE)
    assert member_edits(ops) is None


def test_invalid_members_still_get_the_general_paths_error() -> None:
    ops = parse_patch({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": ""}]}]}, GROUP_RESOURCE)
    assert member_edits(ops) is None
    with pytest.raises(ScimError) as caught:
        apply_patch(_group([]), ops, GROUP_RESOURCE)
    assert caught.value.status == 400
