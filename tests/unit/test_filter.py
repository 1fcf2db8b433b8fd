"""Filter grammar, rendering, evaluation, validation and push-down (RFC 7644 §3.4.2.2, §3.5.2)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.scim.errors import ScimError
from gateway.scim.filter import (
    compile_filter,
    matches,
    matches_value,
    parse_filter,
    parse_path,
    pushdown,
    render,
    render_path,
    simple_eq,
    validate,
)
from gateway.scim.filter_ast import And, AttrPath, Compare, Not, Or, Present, ValuePath
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_RESOURCE, USER_RESOURCE, USER_SCHEMA

ENT = ENTERPRISE_SCHEMA
U = USER_RESOURCE


def cmp(attr: str, op: str, value: Any, sub: str | None = None, urn: str | None = None) -> Compare:
    return Compare(AttrPath(attr, sub, urn), op, value)  # type: ignore[arg-type]


def user(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schemas": [USER_SCHEMA, ENT],
        "id": "2441309d85324e7793ae",
        "externalId": "JYoung",
        "userName": "Test.User@Contoso.com",
        "name": {"givenName": "Jane", "familyName": "Young"},
        "displayName": "Jane Young",
        "active": True,
        "emails": [
            {"value": "jane@contoso.com", "type": "work", "primary": True},
            {"value": "jy@home.example", "type": "home"},
        ],
        "meta": {
            "resourceType": "User",
            "created": "2024-03-27T19:59:26.000Z",
            "lastModified": "2024-05-01T10:00:00+02:00",
        },
        ENT: {"department": "Sales", "manager": {"value": "boss-1"}},
    }
    base.update(overrides)
    return base


# --- grammar -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_comparison_operator(op: str) -> None:
    assert parse_filter(f'title {op} "x"') == cmp("title", op, "x")
    assert parse_filter(f'title {op.upper()} "x"') == cmp("title", op, "x")


def test_present() -> None:
    assert parse_filter("title pr") == Present(AttrPath("title"))
    assert parse_filter("title PR") == Present(AttrPath("title"))


def test_precedence_not_and_or() -> None:
    a, b, c = cmp("a", "eq", 1), cmp("b", "eq", 2), cmp("c", "eq", 3)
    assert parse_filter("a eq 1 or b eq 2 and c eq 3") == Or(a, And(b, c))
    assert parse_filter("a eq 1 and b eq 2 or c eq 3") == Or(And(a, b), c)
    assert parse_filter("(a eq 1 or b eq 2) and c eq 3") == And(Or(a, b), c)
    assert parse_filter("not (a eq 1) and b eq 2") == And(Not(a), b)
    assert parse_filter("not a eq 1 and b eq 2") == And(Not(a), b)
    assert parse_filter("a eq 1 AND b eq 2 Or c eq 3") == Or(And(a, b), c)


def test_left_associative_chains() -> None:
    a, b, c = cmp("a", "eq", 1), cmp("b", "eq", 2), cmp("c", "eq", 3)
    assert parse_filter("a eq 1 and b eq 2 and c eq 3") == And(And(a, b), c)
    assert parse_filter("a eq 1 or b eq 2 or c eq 3") == Or(Or(a, b), c)


def test_redundant_parentheses_and_whitespace() -> None:
    assert parse_filter('  ((userName  eq   "x"))  ') == cmp("userName", "eq", "x")
    assert parse_filter('not(userName eq "x")') == Not(cmp("userName", "eq", "x"))


def test_value_path() -> None:
    inner = And(cmp("type", "eq", "work"), cmp("value", "co", "@x"))
    assert parse_filter('emails[type eq "work" and value co "@x"]') == ValuePath(AttrPath("emails"), inner)


def test_value_path_with_sub_attribute_as_entra_sends_it() -> None:
    f = parse_filter('emails[type eq "work"].value eq "user@contoso.com"')
    assert f == Compare(AttrPath("emails", "value", None, cmp("type", "eq", "work")), "eq", "user@contoso.com")


def test_value_path_combined_with_other_terms() -> None:
    f = parse_filter('userType eq "Employee" and emails[type eq "work" and value co "@example.com"]')
    assert isinstance(f, And)
    assert f.right == ValuePath(AttrPath("emails"), And(cmp("type", "eq", "work"), cmp("value", "co", "@example.com")))


def test_urn_qualified_names() -> None:
    assert parse_filter(f'{ENT}:manager.value eq "x"') == cmp("manager", "eq", "x", sub="value", urn=ENT)
    assert parse_filter(f'{USER_SCHEMA}:userName eq "x"') == cmp("userName", "eq", "x", urn=USER_SCHEMA)
    assert parse_filter(f'{USER_SCHEMA}:name.familyName eq "x"') == cmp(
        "name", "eq", "x", sub="familyName", urn=USER_SCHEMA
    )
    custom = "urn:ietf:params:scim:schemas:extension:CustomExt:2.0:User"
    assert parse_filter(f'{custom}:costCode eq "7"') == cmp("costCode", "eq", "7", urn=custom)


def test_sub_attributes_and_name_case_are_kept_as_sent() -> None:
    assert parse_filter('name.FamilyName eq "x"') == cmp("name", "eq", "x", sub="FamilyName")
    assert parse_filter('DisplayName eq "x"') == cmp("DisplayName", "eq", "x")
    assert parse_filter('members.$ref eq "x"') == cmp("members", "eq", "x", sub="$ref")


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"plain"', "plain"),
        ('"a\\"b"', 'a"b'),
        ('"back\\\\slash"', "back\\slash"),
        ('"\\u00e9t\\u00E9"', "été"),
        ('"tab\\tnl\\n\\/"', "tab\tnl\n/"),
        ('""', ""),
        ('"(not) [a] keyword and or"', "(not) [a] keyword and or"),
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("3.25", 3.25),
        ("-0.5", -0.5),
        ("1e3", 1000.0),
        ("true", True),
        ("FALSE", False),
        ("Null", None),
        ("jyoung", "jyoung"),
        ("jane@contoso.com", "jane@contoso.com"),
        ("2819c223-7f76-453a-919d-413861904646", "2819c223-7f76-453a-919d-413861904646"),
    ],
)
def test_literals(literal: str, value: Any) -> None:
    f = parse_filter(f"externalId eq {literal}")
    assert isinstance(f, Compare)
    assert f.value == value
    assert type(f.value) is type(value)


def test_entra_unquoted_literal_in_a_conjunction() -> None:
    f = parse_filter("id eq 54D382A4-2050-4C03-94D1-E769F1D15682 and manager eq 2819c223-7f76-453a-919d-413861904646")
    assert f == And(
        cmp("id", "eq", "54D382A4-2050-4C03-94D1-E769F1D15682"),
        cmp("manager", "eq", "2819c223-7f76-453a-919d-413861904646"),
    )


def test_attribute_called_like_a_keyword() -> None:
    assert parse_filter('not eq "x"') == cmp("not", "eq", "x")
    assert parse_filter("not pr") == Present(AttrPath("not"))


# --- errors ------------------------------------------------------------------------------------

MALFORMED = [
    "",
    "   ",
    "userName",
    "userName eq",
    'userName "x"',
    'userName xx "x"',
    'userName eq "x',
    'userName eq "x" "y"',
    '(userName eq "x"',
    'userName eq "x")',
    "()",
    'userName eq "x" and',
    'and userName eq "x"',
    'userName eq "x" or or b pr',
    "not",
    "not ()",
    'emails[type eq "work"',
    'emails[type eq "work"]]',
    'emails[type[value eq "x"] eq "y"]',
    'emails[]',
    "[type eq 1]",
    'name.givenName[type eq "x"]',
    "a.b.c eq 1",
    "1abc eq 2",
    'userName eq "\\x41"',
    'userName eq "\\u12"',
    "userName eq and",
    "userName eq pr",
    "userName eq (1)",
    "userName eq " + "9" * 5000,
    "userName eq 1e999",
    '"userName" eq "x"',
    "userName pr pr",
    'emails[type eq "work"] .value eq "x"',
    'emails[type eq "work"].1 eq "x"',
    'urn: eq "x"',
    "(" * 60 + "a pr" + ")" * 60,
    "not " * 60 + "(a pr)",
    " or ".join(["a pr"] * 250),
    'userName eq "' + "x" * 10_001 + '"',
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_filters_are_invalid_filter(text: str) -> None:
    with pytest.raises(ScimError) as info:
        parse_filter(text)
    assert info.value.status == 400
    assert info.value.scim_type == "invalidFilter"
    assert info.value.detail.startswith("Invalid filter: ")


def test_error_detail_says_what_and_where() -> None:
    with pytest.raises(ScimError) as info:
        parse_filter('userName xx "x"')
    assert info.value.detail == (
        "Invalid filter: at character 10: expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) "
        "after 'userName', found 'xx'"
    )
    with pytest.raises(ScimError) as info:
        parse_filter('(userName eq "x"')
    assert "expected ')' to close the '(' at character 1" in info.value.detail


def test_non_string_input_is_invalid_filter() -> None:
    with pytest.raises(ScimError):
        parse_filter(None)  # type: ignore[arg-type]


# --- PATCH paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("displayName", AttrPath("displayName")),
        ("name.givenName", AttrPath("name", "givenName")),
        (f"{ENT}:employeeNumber", AttrPath("employeeNumber", None, ENT)),
        (f"{ENT}:manager.value", AttrPath("manager", "value", ENT)),
        (ENT, AttrPath("", None, ENT)),
        ('members[value eq "2819c223"]', AttrPath("members", None, None, cmp("value", "eq", "2819c223"))),
        ('emails[type eq "work"].value', AttrPath("emails", "value", None, cmp("type", "eq", "work"))),
        ('roles[primary eq "True"].value', AttrPath("roles", "value", None, cmp("primary", "eq", "True"))),
    ],
)
def test_parse_path(text: str, path: AttrPath) -> None:
    assert parse_path(text) == path
    assert parse_path(render_path(path)) == path


@pytest.mark.parametrize(
    "text", ["", "emails[", "emails[type eq]", "a b", "name.x.y", 'emails[type eq "w"]x', "(a)", '"x"', "a pr"]
)
def test_malformed_paths_are_invalid_path(text: str) -> None:
    with pytest.raises(ScimError) as info:
        parse_path(text)
    assert (info.value.status, info.value.scim_type) == (400, "invalidPath")


# --- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ast", "text"),
    [
        (Or(cmp("a", "eq", 1), And(cmp("b", "eq", 2), cmp("c", "eq", 3))), "a eq 1 or b eq 2 and c eq 3"),
        (And(Or(cmp("a", "eq", 1), cmp("b", "eq", 2)), cmp("c", "eq", 3)), "(a eq 1 or b eq 2) and c eq 3"),
        (And(cmp("a", "eq", 1), And(cmp("b", "eq", 2), cmp("c", "eq", 3))), "a eq 1 and (b eq 2 and c eq 3)"),
        (Or(cmp("a", "eq", 1), Or(cmp("b", "eq", 2), cmp("c", "eq", 3))), "a eq 1 or (b eq 2 or c eq 3)"),
        (Not(Or(cmp("a", "eq", 1), cmp("b", "eq", 2))), "not (a eq 1 or b eq 2)"),
        (cmp("a", "eq", 'q"\\'), 'a eq "q\\"\\\\"'),
        (cmp("a", "gt", 1.5), "a gt 1.5"),
        (cmp("a", "eq", None), "a eq null"),
        (cmp("a", "ne", False), "a ne false"),
        (cmp("manager", "eq", "x", "value", ENT), f'{ENT}:manager.value eq "x"'),
        (ValuePath(AttrPath("emails"), cmp("type", "eq", "work")), 'emails[type eq "work"]'),
    ],
)
def test_render(ast: Any, text: str) -> None:
    assert render(ast) == text
    assert parse_filter(text) == ast


# --- evaluation --------------------------------------------------------------------------------


def m(text: str, resource: dict[str, Any] | None = None) -> bool:
    return matches(parse_filter(text), user() if resource is None else resource, U)


def test_case_insensitive_attribute_names() -> None:
    assert m('USERNAME eq "test.user@contoso.com"')
    assert m('name.FamilyName eq "Young"')
    assert m('emails.Value eq "jane@contoso.com"')
    assert matches(parse_filter('DisplayName eq "sales"'), {"id": "g", "displayName": "Sales"}, GROUP_RESOURCE)


def test_case_exact_semantics() -> None:
    assert m('userName eq "TEST.USER@contoso.COM"')  # caseExact false
    assert m('displayName eq "jane young"')
    assert m('emails.value eq "JANE@CONTOSO.COM"')
    assert m('externalId eq "JYoung"')
    assert not m('externalId eq "jyoung"')  # caseExact true
    assert not m('id eq "2441309D85324E7793AE"')
    assert m('id eq "2441309d85324e7793ae"')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "test.user@contoso.com"', True),
        ('userName ne "test.user@contoso.com"', False),
        ('userName ne "other"', True),
        ('userName co "USER@"', True),
        ('userName sw "test."', True),
        ('userName sw "user"', False),
        ('userName ew ".COM"', True),
        ('userName gt "s"', True),
        ('userName lt "s"', False),
        ('userName ge "test.user@contoso.com"', True),
        ('userName le "test.user@contoso.com"', True),
        ("userName pr", True),
        ("nickName pr", False),
        ('nickName ne "x"', False),  # absent: no value to compare
        ("userName eq 1", False),  # wrong literal type never matches
        ("userName eq null", False),
        ("userName eq true", False),
        ("active eq true", True),
        ("active eq false", False),
        ("active ne false", True),
        ('active eq "True"', True),
        ('active eq "yes"', False),
        ("active pr", True),
        ('title eq "x" or userName pr', True),
        ('not (userName pr)', False),
        ('not (title eq "x")', True),
        ('customThing eq "x"', False),
        ("customThing pr", False),
        ('urn:ietf:params:scim:schemas:extension:Other:2.0:User:x eq "y"', False),
    ],
)
def test_operators(text: str, expected: bool) -> None:
    assert m(text) is expected


def test_multi_valued_matching() -> None:
    assert m('emails.value eq "jy@home.example"')
    assert m('emails eq "jy@home.example"')  # complex without sub-attribute: compares value
    assert m('emails co "@HOME"')
    assert m('emails.type eq "home"')
    assert not m('emails.type eq "other"')
    assert m("emails pr")
    assert not m("emails pr", user(emails=[]))
    assert not m("phoneNumbers pr")


def test_value_path_requires_one_element_to_satisfy_everything() -> None:
    assert m('emails[type eq "work" and value co "contoso"]')
    assert not m('emails[type eq "home" and value co "contoso"]')
    assert m('emails[type eq "home" or primary eq true]')
    assert m('emails[not (type eq "work")]')
    assert not m('emails[bogus eq "x"]')


def test_value_filter_with_sub_attribute() -> None:
    assert m('emails[type eq "work"].value eq "jane@contoso.com"')
    assert not m('emails[type eq "home"].value eq "jane@contoso.com"')
    assert m('emails[type eq "work"].value pr')
    assert not m('emails[type eq "other"].value pr')
    assert m('emails[type eq "work"] eq "JANE@contoso.com"')


def test_enterprise_extension() -> None:
    assert m('manager eq "boss-1"')
    assert m('manager.value eq "boss-1"')
    assert m(f'{ENT}:manager.value eq "boss-1"')
    assert m(f'{ENT.upper()}:Department eq "sales"')
    assert m('department eq "Sales"')
    assert not m('manager eq "boss-2"')
    assert m(f"{ENT} pr")
    assert not m(f"{ENT} pr", user(**{ENT: {}}))
    assert not m("department pr", {"id": "x", "userName": "u"})


def test_core_urn_qualified() -> None:
    assert m(f'{USER_SCHEMA}:userName eq "TEST.USER@CONTOSO.COM"')
    assert m(f'{USER_SCHEMA}:name.givenName eq "jane"')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('meta.created gt "2024-03-27T19:59:25Z"', True),
        ('meta.created gt "2024-03-27T19:59:26Z"', False),
        ('meta.created eq "2024-03-27T19:59:26Z"', True),  # same instant, different spelling
        ('meta.created eq "2024-03-27T21:59:26+02:00"', True),
        ('meta.created ge "2024-03-27T19:59:26.000Z"', True),
        ('meta.lastModified lt "2024-05-01T08:00:01Z"', True),  # 10:00+02:00 is 08:00Z
        ('meta.lastModified gt "2024-05-01T08:00:01Z"', False),
        ('meta.lastModified le "2024-05-01T08:00:00Z"', True),
        ('meta.lastModified ne "2024-05-01T08:00:00Z"', False),
        ('meta.lastModified gt "2024-05-01T07:00:00"', True),  # no offset: UTC
        ('meta.created sw "2024-03"', True),
        ("meta.created gt 5", False),
    ],
)
def test_datetime_comparisons(text: str, expected: bool) -> None:
    assert m(text) is expected


def test_boolean_ordering_is_invalid_filter() -> None:
    for op in ("gt", "ge", "lt", "le", "co", "sw", "ew"):
        with pytest.raises(ScimError) as info:
            m(f"active {op} true")
        assert info.value.scim_type == "invalidFilter"
        with pytest.raises(ScimError):
            validate(parse_filter(f"emails[primary {op} true]"), U)


def test_bad_resource_data_never_raises() -> None:
    odd = {"id": 5, "userName": None, "emails": "not-a-list", "name": "flat", "meta": {"created": "garbage"}, ENT: 3}
    for text in [
        'userName eq "x"', "userName pr", 'emails.value eq "x"', 'emails[type eq "work"]', 'name.givenName eq "x"',
        'meta.created gt "2020-01-01T00:00:00Z"', 'id eq "5"', 'department eq "x"', "manager pr",
    ]:
        assert m(text, odd) is False


def test_compile_filter_is_reusable() -> None:
    test = compile_filter(parse_filter('userName sw "a"'), U)
    assert [test({"userName": n}) for n in ("alice", "Bob", "ANN")] == [True, False, True]


def test_matches_value_evaluates_one_element() -> None:
    emails = U.resolve("emails")
    assert emails is not None
    f = parse_filter('type eq "work" and primary eq "True"')
    assert matches_value(f, {"type": "WORK", "primary": True}, emails.attribute)
    assert not matches_value(f, {"type": "home", "primary": True}, emails.attribute)


def test_group_members() -> None:
    group = {"id": "g1", "displayName": "Sales", "members": [{"value": "u1"}, {"value": "u2", "type": "User"}]}
    assert matches(parse_filter('members[value eq "u2"]'), group, GROUP_RESOURCE)
    assert matches(parse_filter('members eq "u1"'), group, GROUP_RESOURCE)
    assert not matches(parse_filter('members.value eq "u3"'), group, GROUP_RESOURCE)


# --- validate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "active gt true",
        "emails.primary lt false",
        'meta.created gt "yesterday"',
        "meta.created eq 5",
        'name eq "x"',
        'userName[value eq "x"]',
    ],
)
def test_validate_rejects(text: str) -> None:
    with pytest.raises(ScimError) as info:
        validate(parse_filter(text), U)
    assert info.value.scim_type == "invalidFilter"


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "x"',
        'customAttribute eq "x"',
        'urn:ietf:params:scim:schemas:extension:Custom:2.0:User:thing gt 3',
        "active eq true",
        'meta.lastModified gt "2024-01-01T00:00:00Z"',
        'emails[type eq "work"].value eq "x"',
        'manager eq "x"',
        "name pr",
    ],
)
def test_validate_accepts(text: str) -> None:
    validate(parse_filter(text), U)


# --- push-down ---------------------------------------------------------------------------------

FILTERABLE = frozenset({"userName", "externalId", "name.givenName", "emails.value", "active", f"{ENT}:department"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('USERNAME eq "x"', 'userName eq "x"'),
        (f'{USER_SCHEMA}:userName eq "x"', 'userName eq "x"'),
        ('Name.GivenName eq "x"', 'name.givenName eq "x"'),
        ('emails eq "x"', 'emails.value eq "x"'),
        ('emails[type eq "work"].value eq "x"', 'emails.value eq "x"'),
        ('department eq "x"', f'{ENT}:department eq "x"'),
        ('active eq "True"', "active eq true"),
        ('userName eq "x" and title eq "y"', 'userName eq "x"'),
        ('title eq "y" and userName eq "x"', 'userName eq "x"'),
        ('userName eq "x" and externalId eq "y"', 'userName eq "x" and externalId eq "y"'),
        ('userName eq "x" or externalId eq "y"', 'userName eq "x" or externalId eq "y"'),
        ('(userName eq "a" or userName eq "b") and not (active eq false)', 'userName eq "a" or userName eq "b"'),
        ('userName eq "x" or title eq "y"', None),
        ('userName co "x"', None),
        ('not (userName eq "x")', None),
        ('emails[value eq "x"]', None),
        ("userName pr", None),
        ('displayName eq "x"', None),
        ("userName eq 5", None),
        ('customThing eq "x"', None),
    ],
)
def test_pushdown(text: str, expected: str | None) -> None:
    pushed = pushdown(parse_filter(text), FILTERABLE, U)
    assert (render(pushed) if pushed is not None else None) == expected


def test_pushdown_is_a_superset_on_examples() -> None:
    resources = [user(), user(userName="other@x"), user(emails=[{"value": "x", "type": "home"}]), {"id": "bare"}]
    for text in ['emails[type eq "work"].value eq "jane@contoso.com"', 'userName eq "OTHER@X" and title pr']:
        f = parse_filter(text)
        pushed = pushdown(f, FILTERABLE, U)
        assert pushed is not None
        for r in resources:
            assert not matches(f, r, U) or matches(pushed, r, U)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "x"', ("userName", "x")),
        ('UserName EQ "x"', ("userName", "x")),
        ("externalId eq jyoung", ("externalId", "jyoung")),
        ('emails eq "x"', ("emails.value", "x")),
        ('manager eq "m"', (f"{ENT}:manager.value", "m")),
        ('displayName eq "Sales"', ("displayName", "Sales")),
        ('active eq "False"', ("active", False)),
        ('userName ne "x"', None),
        ('emails[type eq "work"].value eq "x"', None),
        ('userName eq "x" and id eq "y"', None),
        ('customThing eq "x"', None),
    ],
)
def test_simple_eq(text: str, expected: tuple[str, Any] | None) -> None:
    assert simple_eq(parse_filter(text)) == expected


def test_simple_eq_with_resource_type() -> None:
    assert simple_eq(parse_filter(f'{USER_SCHEMA}:userName eq "x"'), U) == ("userName", "x")
    assert simple_eq(parse_filter('members eq "x"'), U) is None
    assert simple_eq(parse_filter('members eq "x"'), GROUP_RESOURCE) == ("members.value", "x")
