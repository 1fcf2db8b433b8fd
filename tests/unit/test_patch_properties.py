"""Properties of PATCH: total error handling, no mutation of the input, canonical and clean output."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.scim.errors import ScimError
from gateway.scim.filter_ast import And, AttrPath, Compare, Not, Or, Present, ValuePath
from gateway.scim.patch import PatchOperation, apply_patch, parse_patch
from gateway.scim.resources import normalize_resource, strip_empty
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_RESOURCE, USER_RESOURCE

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENT = ENTERPRISE_SCHEMA
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"

words = st.text(alphabet="abcXYZ@.-_ 09", min_size=1, max_size=8).filter(lambda s: s.strip() != "")
kinds = st.sampled_from(["work", "home", "other", "mobile", "Work"])


def _elements(**extra: st.SearchStrategy[Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    element = st.fixed_dictionaries({"value": words}, optional={"type": kinds, "primary": st.booleans(), **extra})
    return st.lists(element, min_size=1, max_size=3)


users = st.fixed_dictionaries(
    {"id": st.just("u1"), "userName": words},
    optional={
        "active": st.booleans(),
        "displayName": words,
        "title": words,
        "externalId": words,
        "name": st.fixed_dictionaries({"givenName": words}, optional={"familyName": words, "formatted": words}),
        "emails": _elements(display=words),
        "phoneNumbers": _elements(),
        "addresses": st.lists(st.fixed_dictionaries({"type": kinds, "streetAddress": words},
                                                    optional={"locality": words}), min_size=1, max_size=2),
        "roles": _elements(),
        ENT: st.fixed_dictionaries({"department": words}, optional={
            "manager": st.builds(lambda v: {"value": v}, words), "costCenter": words}),
        CUSTOM: st.fixed_dictionaries({"tag": words}),
    },
)

PATHS = [
    'emails[type eq "work"].value', "userName", "displayName", "title", "nickName", "externalId", "name",
    "name.givenName",
    "NAME.familyName", "emails", "active", 'emails[type eq "work"]',
    'emails[type eq "home"].primary', 'emails[value co "@"]', 'emails[not (type eq "work")].display',
    "emails.value", "phoneNumbers", 'phoneNumbers[type eq "mobile"].value', 'addresses[type eq "work"].streetAddress',
    'addresses[type eq "work" and locality pr]', "roles", 'roles[primary eq "True"].value', "manager",
    f"{ENT}:manager", f"{ENT}:manager.value", 'manager[value eq "m1"]', f"{ENT}:department", ENT,
    "id", "meta", "meta.version", "groups", f"{CUSTOM}:tag", f"{CUSTOM}:tag.sub", CUSTOM,
    "urn:ietf:params:scim:schemas:extension:Foo:2.0:User:x", "urn:ietf:params:scim:schemas:core:2.0:User:title",
    "unknownAttr", "emails[type eq", "emails[type eq \"work\"]].value", "name.unknown", "members",
]
VALUE_KEYS = ["value", "Value", "type", "primary", "display", "givenName", "$ref", "department", "manager",
              "displayName", "name.givenName", f"{ENT}:department", "active", "emails", "id", "schemas"]

scalars = (st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False)
           | st.sampled_from(["", "True", "false", "work", "m1", "x@y"]) | st.text(max_size=4))
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(VALUE_KEYS) | st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
# Mostly well-formed operations, so that most examples get past parsing and exercise apply.
op_names = st.sampled_from(["add", "Add", "REPLACE", "replace", "remove", "Remove"] * 4 + ["bogus"])
paths = st.one_of(*[st.sampled_from(PATHS)] * 6, st.text(max_size=12))
likely_values = st.one_of(words, words, words, st.sampled_from(["True", "false", "", "m1"]), values)
raw_ops = st.one_of(
    *[st.fixed_dictionaries({"op": op_names, "path": paths, "value": likely_values})] * 6,
    st.fixed_dictionaries({"op": op_names}, optional={"path": paths, "value": values}),
)
bodies = st.fixed_dictionaries({"Operations": st.lists(raw_ops, min_size=1, max_size=3)})


def _patched(resource: dict[str, Any], body: Any) -> dict[str, Any] | None:
    snapshot = copy.deepcopy(resource)
    try:
        result = apply_patch(resource, parse_patch(body, USER_RESOURCE), USER_RESOURCE)
    except ScimError as err:
        assert err.status == 400
        result = None
    assert resource == snapshot, "apply_patch modified its input"
    return result


@SETTINGS
@given(users, bodies)
def test_random_patches_raise_only_scim_errors_and_never_mutate(user: dict[str, Any], body: Any) -> None:
    _patched(user, body)


attr_names = st.sampled_from(["emails", "name", "active", "manager", "members", "roles", "addresses", "id",
                              "tag", "value", "type", "primary", "", "Emails", "nope"])
element_paths = st.builds(AttrPath, attr_names, st.none() | attr_names, st.none() | st.sampled_from([ENT]))
element_filters = st.recursive(
    st.builds(Compare, element_paths, st.sampled_from(["eq", "ne", "co", "sw", "gt", "le"]), scalars)
    | st.builds(Present, element_paths)
    | st.builds(ValuePath, element_paths, st.builds(Present, element_paths)),
    lambda c: st.builds(And, c, c) | st.builds(Or, c, c) | st.builds(Not, c),
    max_leaves=3,
)
hand_built_paths = st.none() | st.builds(
    AttrPath, attr_names, st.none() | attr_names,
    st.none() | st.sampled_from([ENT, CUSTOM, "urn:ietf:params:scim:schemas:core:2.0:User", "urn:x:y"]),
    st.none() | element_filters,
)
hand_built_ops = st.lists(st.builds(PatchOperation, st.sampled_from(["add", "remove", "replace"]),
                                    hand_built_paths, likely_values), min_size=1, max_size=3)


@SETTINGS
@given(users, hand_built_ops)
def test_hand_built_operations_raise_only_scim_errors(user: dict[str, Any], operations: list[Any]) -> None:
    snapshot = copy.deepcopy(user)
    try:
        apply_patch(user, operations, USER_RESOURCE)
    except ScimError as err:
        assert err.status == 400
    assert user == snapshot


@SETTINGS
@given(users, bodies)
def test_successful_patch_output_is_clean_and_canonical(user: dict[str, Any], body: Any) -> None:
    result = _patched(user, body)
    if result is None:
        return
    assert strip_empty(result) is result, "PATCH left an empty value behind"
    assert result["id"] == "u1"
    # The output is what a POST of the same attributes would store: PATCH and POST agree.
    without_id = {k: v for k, v in result.items() if k != "id"}
    assert normalize_resource(without_id, USER_RESOURCE) == without_id


@SETTINGS
@given(users, st.sampled_from(["displayName", "title", "name.givenName", f"{ENT}:department",
                               'emails[type eq "work"].value', 'phoneNumbers[type eq "mobile"].value',
                               f"{ENT}:manager", f"{CUSTOM}:tag", "active"]),
       words | st.sampled_from(["True", "false"]), st.sampled_from(["add", "replace"]))
def test_add_and_replace_are_idempotent(user: dict[str, Any], path: str, value: str, op: str) -> None:
    if path == "active":
        value = "True" if len(value) % 2 else "false"
    body = {"Operations": [{"op": op, "path": path, "value": value}]}
    once = _patched(user, body)
    assert once is not None
    assert _patched(once, body) == once


member_ids = st.lists(st.sampled_from([f"m{i}" for i in range(8)]), max_size=6)


@SETTINGS
@given(member_ids, member_ids, member_ids, st.booleans())
def test_member_add_and_remove_by_value(start: list[str], added: list[str], removed: list[str],
                                        filter_form: bool) -> None:
    initial = list(dict.fromkeys(start))
    group: dict[str, Any] = {"id": "g1", "displayName": "G"}
    if initial:
        group["members"] = [{"value": m} for m in initial]
    operations: list[dict[str, Any]] = [{"op": "Add", "path": "members", "value": [{"value": m} for m in added]}]
    if filter_form:
        operations += [{"op": "remove", "path": f'members[value eq "{m}"]'} for m in removed]
    else:
        operations.append({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": m}
                                                                        for m in removed]})
    snapshot = copy.deepcopy(group)
    result = apply_patch(group, parse_patch({"Operations": operations}, GROUP_RESOURCE), GROUP_RESOURCE)
    assert group == snapshot
    expected = [m for m in dict.fromkeys(initial + added) if m not in removed]
    assert [m["value"] for m in result.get("members", [])] == expected
