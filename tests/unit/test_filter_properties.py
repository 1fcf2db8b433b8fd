"""Properties of the filter engine: render/parse round trip, total error handling, sound push-down."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.scim.errors import ScimError
from gateway.scim.filter import (
    compile_filter,
    matches,
    parse_filter,
    parse_path,
    pushdown,
    render,
    render_path,
    validate,
)
from gateway.scim.filter_ast import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath
from gateway.scim.schema import ENTERPRISE_SCHEMA, USER_RESOURCE, USER_SCHEMA

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]

# Keyword-like names are included on purpose: the grammar must keep them apart by position.
names = st.sampled_from(["userName", "title", "emails", "name", "x-y", "a_1", "A9", "not", "and", "or", "pr", "eq"])
sub_names = st.none() | st.sampled_from(["value", "givenName", "$ref", "Type"])
urns = st.none() | st.sampled_from([ENTERPRISE_SCHEMA, USER_SCHEMA, "urn:example:custom:1.0:Thing"])
literals = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    # NUL and lone surrogates are refused in any filter (gateway.scim.limits), so they cannot round-trip.
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
)


def _inner_filters() -> st.SearchStrategy[Filter]:
    plain = st.builds(AttrPath, names)
    leaf = st.builds(Compare, plain, st.sampled_from(OPS), literals) | st.builds(Present, plain)
    return st.recursive(
        leaf,
        lambda c: st.builds(And, c, c) | st.builds(Or, c, c) | st.builds(Not, c),
        max_leaves=4,
    )


def _paths() -> st.SearchStrategy[AttrPath]:
    return st.builds(AttrPath, names, sub_names, urns, st.none() | _inner_filters())


def _filters() -> st.SearchStrategy[Filter]:
    leaf = (
        st.builds(Compare, _paths(), st.sampled_from(OPS), literals)
        | st.builds(Present, _paths())
        | st.builds(ValuePath, st.builds(AttrPath, names, st.none(), urns), _inner_filters())
    )
    return st.recursive(
        leaf,
        lambda c: st.builds(And, c, c) | st.builds(Or, c, c) | st.builds(Not, c),
        max_leaves=12,
    )


@SETTINGS
@given(_filters())
def test_render_then_parse_is_identity(ast: Filter) -> None:
    assert parse_filter(render(ast)) == ast


@SETTINGS
@given(_paths())
def test_render_path_then_parse_path_is_identity(path: AttrPath) -> None:
    assert parse_path(render_path(path)) == path


FRAGMENTS = st.sampled_from(
    [
        "(", ")", "[", "]", '"', "\\", " ", ".", ":", "and", "or", "not", "eq", "pr", "gt", "userName",
        "emails", ".value", "urn:ietf:params:scim:schemas:core:2.0:User:", '"x"', "1", "-2.5e3", "true",
        "null", "\\u00", "active", "meta.created", "\t",
    ]
)
filter_like_text = st.lists(FRAGMENTS, max_size=30).map("".join)

SAMPLE_USER: dict[str, Any] = {
    "id": "1",
    "userName": "x",
    "active": True,
    "emails": [{"value": "x", "type": "work"}],
    "meta": {"created": "2024-01-01T00:00:00Z"},
}


def _only_scim_errors(text: str) -> None:
    try:
        f = parse_filter(text)
    except ScimError as e:
        assert e.status == 400 and e.scim_type == "invalidFilter"
        return
    # Anything that parses must also render, validate and evaluate without a crash.
    assert parse_filter(render(f)) == f
    try:
        validate(f, USER_RESOURCE)
        matches(f, SAMPLE_USER, USER_RESOURCE)
    except ScimError as e:
        assert e.scim_type == "invalidFilter"


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_scim_errors(text: str) -> None:
    _only_scim_errors(text)


@SETTINGS
@given(filter_like_text)
def test_filter_like_text_raises_only_scim_errors(text: str) -> None:
    _only_scim_errors(text)


@SETTINGS
@given(st.text(max_size=100) | filter_like_text)
def test_arbitrary_paths_raise_only_invalid_path(text: str) -> None:
    try:
        path = parse_path(text)
    except ScimError as e:
        assert e.scim_type == "invalidPath"
        return
    assert parse_path(render_path(path)) == path


# --- push-down soundness -----------------------------------------------------------------------

WORDS = st.sampled_from(["a", "A"])
VALUES = st.sampled_from(["a", "A", "ab"])
FILTERABLE_CHOICES = ["userName", "externalId", "active", "emails.value", "title", f"{ENTERPRISE_SCHEMA}:department"]

# A deliberately small universe, so that a fixed corpus can hold every combination of values
# that matters (case folding, caseExact, multi-valued, value filters).
STRING_PATHS = [
    AttrPath("userName"), AttrPath("externalId"), AttrPath("title"), AttrPath("emails"),
    AttrPath("department", None, ENTERPRISE_SCHEMA),
    AttrPath("emails", "value", None, Compare(AttrPath("type"), "eq", "work")),
]
# Other spellings of the same attributes, drawn less often: push-down must canonicalise them.
ALIASES = [AttrPath("USERNAME"), AttrPath("userName", None, USER_SCHEMA), AttrPath("Department")]


@st.composite
def pushdown_terms(draw: st.DrawFn) -> Filter:
    # Drawn by weight rather than st.one_of so that pushable eq terms are the majority.
    kind = draw(st.integers(0, 9))
    path = draw(st.sampled_from(ALIASES if draw(st.integers(0, 4)) == 4 else STRING_PATHS))
    if kind <= 4:
        literal = draw(st.integers(0, 1)) if draw(st.integers(0, 9)) == 9 else draw(WORDS)
        return Compare(path, "eq", literal)
    if kind == 5:
        return Compare(path, draw(st.sampled_from(OPS)), draw(WORDS))
    if kind == 6:
        return Compare(AttrPath("active"), draw(st.sampled_from(["eq", "ne"])), draw(st.booleans() | WORDS))
    if kind == 7:
        return Present(path)
    element = Compare(draw(st.sampled_from([AttrPath("type"), AttrPath("value")])), "eq", draw(WORDS))
    return ValuePath(AttrPath("emails"), element)


@st.composite
def pushdown_filters(draw: st.DrawFn, depth: int = 0) -> Filter:
    kind = draw(st.integers(0, 9)) if depth < 3 else 0
    if kind <= 4:
        return draw(pushdown_terms())
    if kind == 9:
        return Not(draw(pushdown_filters(depth + 1)))
    left, right = draw(pushdown_filters(depth + 1)), draw(pushdown_filters(depth + 1))
    return Or(left, right) if kind == 8 else And(left, right)


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    r: dict[str, Any] = {"id": "r"}
    optional = {
        "userName": VALUES,
        "externalId": VALUES,
        "title": VALUES | st.just(""),
        "active": st.booleans(),
        "emails": st.lists(
            st.fixed_dictionaries({}, optional={"value": VALUES, "type": st.sampled_from(["work", "home"])}),
            max_size=3,
        ),
        ENTERPRISE_SCHEMA: st.fixed_dictionaries({}, optional={"department": VALUES}),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 3)):
            r[key] = draw(strategy)
    return r


# Every example is checked against several backends: one that filters on all of these, and
# each one that lacks a single attribute (which exercises the partial And / Or rules).
FILTERABLE_SETS = [
    frozenset(FILTERABLE_CHOICES),
    *(frozenset(FILTERABLE_CHOICES) - {left_out} for left_out in FILTERABLE_CHOICES),
]


def _corpus() -> list[dict[str, Any]]:
    """Every combination of a few values per attribute: dense coverage without relying on luck."""
    absent = object()
    choices: dict[str, list[Any]] = {
        "userName": [absent, "a", "A", "ab"],
        "externalId": [absent, "a", "A"],
        "title": [absent, "a"],
        "active": [absent, True, False],
        "emails": [
            absent,
            [{"value": "a", "type": "work"}],
            [{"value": "A", "type": "home"}],
            [{"value": "ab", "type": "home"}, {"value": "a", "type": "work"}],
        ],
        ENTERPRISE_SCHEMA: [absent, {"department": "a"}, {"department": "A"}],
    }
    keys = list(choices)
    return [
        {"id": "r", **{k: v for k, v in zip(keys, combo, strict=True) if v is not absent}}
        for combo in itertools.product(*choices.values())
    ]


CORPUS = _corpus()


@SETTINGS
@given(pushdown_filters(), st.lists(resources(), max_size=5))
def test_pushdown_is_implied_by_the_filter(f: Filter, extra: list[dict[str, Any]]) -> None:
    selects = compile_filter(f, USER_RESOURCE)
    selected = [r for r in (*CORPUS, *extra) if selects(r)]
    for filterable in FILTERABLE_SETS:
        pushed = pushdown(f, filterable, USER_RESOURCE)
        if pushed is None:
            continue
        assert _only_eq_on(pushed, filterable)
        candidates = compile_filter(pushed, USER_RESOURCE)
        for r in selected:
            assert candidates(r), (render(f), render(pushed), r)


def _only_eq_on(f: Filter, filterable: frozenset[str]) -> bool:
    if isinstance(f, And | Or):
        return _only_eq_on(f.left, filterable) and _only_eq_on(f.right, filterable)
    if not isinstance(f, Compare) or f.op != "eq" or f.path.value_filter is not None:
        return False
    resolved = USER_RESOURCE.resolve(f.path.attr, f.path.sub_attr, f.path.urn)
    return resolved is not None and resolved.dotted in filterable and render_path(f.path) == resolved.dotted


# The single-comparison shortcut must agree with the general parser on everything it accepts, and
# refuse (fall through) rather than guess on anything else: both outcomes compared, errors included.
_fast_like = st.builds(
    lambda lead, attr, sub, op, value, trail: f"{lead}{attr}{sub}{' ' * 1}{op} \"{value}\"{trail}",
    st.sampled_from(["", " ", "  ", "\t"]),
    st.sampled_from(["userName", "externalId", "name", "emails", "x-y_z", "not", "and", "a1"]),
    st.sampled_from(["", ".givenName", ".value", ".Type", ".a-b"]),
    st.sampled_from(["eq", "EQ", "Sw", "co", "ew", "ne", "gt", "le", "pr", "xx", "e"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.sampled_from(["", " ", "  ", ")", " and x pr"]),
)


def _outcome(parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except ScimError as exc:
        return ("error", exc.status, exc.scim_type)


@given(_fast_like | st.text(max_size=40))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_agrees_with_the_general_parser(text: str) -> None:
    from gateway.scim.filter_parser import parse_filter_tokens

    assert _outcome(parse_filter, text) == _outcome(parse_filter_tokens, text)
