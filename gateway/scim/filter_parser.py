"""Syntax of the SCIM filter language (RFC 7644 §3.4.2.2, §3.5.2): tokens, literals, parser.

The lexer is deliberately context-free: it only separates punctuation, quoted strings and
"words". Whether a word is an attribute path, an operator, a keyword or an unquoted literal
depends on where it appears, so that decision belongs to the recursive-descent parser.
Public entry points live in gateway.scim.filter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import NamedTuple

from gateway.scim.errors import ScimError, invalid_filter, invalid_path
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
from gateway.scim.limits import check_unicode
from gateway.scim.schema import ALL_SCHEMAS

OPERATORS: frozenset[str] = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"})
# A bare word in value position is taken as a string only if it is none of these: otherwise
# `externalId eq and` would silently become a comparison with the text "and".
KEYWORDS: frozenset[str] = OPERATORS | {"and", "or", "not"}

MAX_FILTER_LENGTH = 10_000
MAX_DEPTH = 50
# Evaluation and rendering recurse once per tree level; a long and/or chain is a deep
# left-leaning tree, so bounding it keeps every walk far from the interpreter's recursion limit.
MAX_LOGICAL_OPERATORS = 200

class Token(NamedTuple):
    """``kind`` is one of ``( ) [ ]``, ``str``, ``word`` or ``eof``."""

    kind: str
    text: str
    start: int
    end: int


_TOKEN_RE = re.compile(
    r'\s*(?:(?P<punct>[()\[\]])|(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[^\s()\[\]"]+)|(?P<open>"))',
    re.DOTALL,
)
_NAME = r"\$?[A-Za-z][A-Za-z0-9_\-]*"
_NAME_RE = re.compile(_NAME)
_PLAIN_PATH_RE = re.compile(rf"({_NAME})(?:\.({_NAME}))?")
_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_KNOWN_URNS: frozenset[str] = frozenset(s.id.lower() for s in ALL_SCHEMAS)

ErrorFactory = Callable[[str], ScimError]


def excerpt(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tokenize(text: str, error: ErrorFactory) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(text)
    match = _TOKEN_RE.match
    while True:
        m = match(text, pos)
        if m is None:
            # Only trailing whitespace is left (every non-space character starts some token).
            break
        kind = m.lastgroup
        if kind is None:
            break
        start = m.start(kind)
        if kind == "open":
            raise error(f"unterminated string starting at character {start + 1}: add the closing '\"'")
        text_ = m.group(kind)
        tokens.append(Token(text_ if kind == "punct" else kind, text_, start, m.end()))
        pos = m.end()
    tokens.append(Token("eof", "", end, end))
    return tokens


def decode_string(token: Token, error: ErrorFactory) -> str:
    raw = token.text
    if "\\" not in raw:
        return raw[1:-1]
    try:
        value = json.loads(raw, strict=False)
    except ValueError:
        raise error(
            f"invalid escape sequence in the string starting at character {token.start + 1}; "
            'allowed escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX'
        ) from None
    assert isinstance(value, str)
    # An escape can spell what the text itself may not carry: \u0000, a lone \ud800.
    return check_unicode(value, f"the string starting at character {token.start + 1}")


def decode_word(token: Token, error: ErrorFactory) -> Literal_:
    """A word in value position: number, true/false/null, or (lenient) an unquoted string."""
    word = token.text
    lower = word.lower()
    if lower == "true":
        return True
    if lower == "false":
        return False
    if lower == "null":
        return None
    m = _NUMBER_RE.fullmatch(word)
    if m is not None:
        try:
            number: int | float = float(word) if m.group(1) or m.group(2) else int(word)
        except ValueError:
            raise error(f"number at character {token.start + 1} has too many digits") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise error(f"number at character {token.start + 1} is out of range")
        return number
    if lower in KEYWORDS:
        raise error(
            f"at character {token.start + 1}: expected a value (a quoted string, number, true, false or "
            f"null), found the keyword '{word}'"
        )
    return word


def parse_name(text: str) -> str | None:
    return text if _NAME_RE.fullmatch(text) else None


def parse_path_word(token: Token, error: ErrorFactory) -> AttrPath:
    """``[urn:]attr[.sub]`` or a bare schema URN, as one lexer word."""
    word = token.text
    m = _PLAIN_PATH_RE.fullmatch(word)
    if m is not None:
        return AttrPath(m.group(1), m.group(2))
    if word[:4].lower() == "urn:":
        if word.lower() in _KNOWN_URNS:
            return AttrPath("", urn=word)
        urn, sep, rest = word.rpartition(":")
        m = _PLAIN_PATH_RE.fullmatch(rest)
        if sep and len(urn) > 4 and m is not None:
            return AttrPath(m.group(1), m.group(2), urn)
    raise error(
        f"'{excerpt(word)}' at character {token.start + 1} is not an attribute path; expected "
        "attr, attr.subAttr or a schema URN followed by ':attr', e.g. userName, name.familyName, "
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    )


_COMPARE_OPS: dict[str, CompareOp] = {
    "eq": "eq", "ne": "ne", "co": "co", "sw": "sw", "ew": "ew",
    "gt": "gt", "ge": "ge", "lt": "lt", "le": "le",
}


def as_compare_op(word: str) -> CompareOp | None:
    return _COMPARE_OPS.get(word.lower())


def filter_error(msg: str) -> ScimError:
    return invalid_filter(f"Invalid filter: {msg}")


def path_error(msg: str) -> ScimError:
    return invalid_path(f"Invalid path: {msg}")


def _describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "the end of the text"
    if tok.kind == "str":
        return f"the string {excerpt(tok.text)}"
    return f"'{excerpt(tok.text)}'"


class Parser:
    __slots__ = ("depth", "error", "i", "in_value_filter", "logical", "tokens")

    def __init__(self, text: str, error: ErrorFactory) -> None:
        self.error = error
        self.tokens = tokenize(text, error)
        self.i = 0
        self.depth = 0
        self.logical = 0
        self.in_value_filter = False

    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def unexpected(self, tok: Token, expected: str) -> ScimError:
        return self.error(f"at character {tok.start + 1}: expected {expected}, found {_describe(tok)}")

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"nesting deeper than {MAX_DEPTH} levels at character {tok.start + 1}; simplify the filter"
            )

    def keyword(self, tok: Token, word: str) -> bool:
        return tok.kind == "word" and tok.text.lower() == word

    def logical_operator(self, tok: Token) -> None:
        self.logical += 1
        if self.logical > MAX_LOGICAL_OPERATORS:
            raise self.error(
                f"more than {MAX_LOGICAL_OPERATORS} 'and'/'or' operators (at character {tok.start + 1}); "
                "split the query"
            )

    def parse_or(self) -> Filter:
        left = self.parse_and()
        while self.keyword(self.peek(), "or"):
            self.logical_operator(self.advance())
            left = Or(left, self.parse_and())
        return left

    def parse_and(self) -> Filter:
        left = self.parse_unary()
        while self.keyword(self.peek(), "and"):
            self.logical_operator(self.advance())
            left = And(left, self.parse_unary())
        return left

    def parse_unary(self) -> Filter:
        tok = self.peek()
        if tok.kind == "(":
            self.advance()
            self.enter(tok)
            inner = self.parse_or()
            close = self.advance()
            if close.kind != ")":
                raise self.unexpected(close, f"')' to close the '(' at character {tok.start + 1}")
            self.depth -= 1
            return inner
        if self.keyword(tok, "not"):
            nxt = self.tokens[self.i + 1]
            # `not eq "x"` compares an attribute called "not"; anything else is negation.
            if nxt.kind == "(" or (nxt.kind == "word" and nxt.text.lower() not in OPERATORS):
                self.advance()
                self.enter(tok)
                inner = self.parse_unary()
                self.depth -= 1
                return Not(inner)
            if nxt.kind in ("eof", ")", "]"):
                raise self.unexpected(nxt, "'(' after 'not'")
        return self.parse_attribute_expression()

    def parse_attribute_expression(self) -> Filter:
        tok = self.advance()
        if tok.kind != "word":
            raise self.unexpected(tok, "an attribute name, '(' or 'not'")
        path = parse_path_word(tok, self.error)
        if self.peek().kind == "[":
            path = self.parse_value_filter(path, tok)
            if path.sub_attr is None and as_compare_op(self.peek().text) is None and not self.keyword(
                self.peek(), "pr"
            ):
                assert path.value_filter is not None
                return ValuePath(AttrPath(path.attr, None, path.urn), path.value_filter)
        op_tok = self.advance()
        if op_tok.kind == "word":
            if op_tok.text.lower() == "pr":
                return Present(path)
            op = as_compare_op(op_tok.text)
            if op is not None:
                return Compare(path, op, self.parse_value())
        raise self.unexpected(
            op_tok, f"an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) after '{excerpt(tok.text)}'"
        )

    def parse_value_filter(self, path: AttrPath, tok: Token) -> AttrPath:
        open_tok = self.advance()
        if self.in_value_filter:
            raise self.error(f"value filters cannot be nested (the '[' at character {open_tok.start + 1})")
        if not path.attr or path.sub_attr is not None:
            raise self.error(
                f"a value filter '[…]' must follow a plain attribute name such as emails, "
                f"not '{excerpt(tok.text)}' (character {tok.start + 1})"
            )
        self.enter(open_tok)
        self.in_value_filter = True
        inner = self.parse_or()
        close = self.advance()
        if close.kind != "]":
            raise self.unexpected(close, f"']' to close the '[' at character {open_tok.start + 1}")
        self.in_value_filter = False
        self.depth -= 1
        sub: str | None = None
        nxt = self.peek()
        if nxt.kind == "word" and nxt.start == close.end and nxt.text.startswith("."):
            self.advance()
            sub = parse_name(nxt.text[1:])
            if sub is None:
                raise self.error(
                    f"'{excerpt(nxt.text)}' at character {nxt.start + 1} is not a sub-attribute; "
                    "expected e.g. .value"
                )
        return AttrPath(path.attr, sub, path.urn, inner)

    def parse_value(self) -> Literal_:
        tok = self.advance()
        if tok.kind == "str":
            return decode_string(tok, self.error)
        if tok.kind == "word":
            return decode_word(tok, self.error)
        raise self.unexpected(tok, "a value (a quoted string, number, true, false or null)")


def check_text(text: object, what: str, error: ErrorFactory) -> str:
    if not isinstance(text, str):
        raise error(f"the {what} must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise error(f"the {what} is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are accepted")
    if not text.strip():
        raise error(f'the {what} is empty; expected e.g. userName eq "bjensen@example.com"')
    return text


def parse_filter_tokens(text: str) -> Filter:
    """The general filter parser; ``text`` has passed check_text."""
    parser = Parser(text, filter_error)
    result = parser.parse_or()
    tok = parser.peek()
    if tok.kind != "eof":
        raise parser.unexpected(tok, "'and', 'or' or the end of the filter")
    return result


def parse_attribute_path(text: str) -> AttrPath:
    check_text(text, "path", path_error)
    parser = Parser(text, path_error)
    tok = parser.advance()
    if tok.kind != "word":
        raise parser.unexpected(tok, "an attribute name")
    path = parse_path_word(tok, path_error)
    if parser.peek().kind == "[":
        path = parser.parse_value_filter(path, tok)
    end = parser.peek()
    if end.kind != "eof":
        raise parser.unexpected(end, "the end of the path")
    return path
