"""The SCIM filter / attribute-path AST (RFC 7644 §3.4.2.2, §3.5.2).

Shared by the filter engine, the PATCH engine and adapters (which receive the
pushed-down part of a filter as this AST). Nodes are frozen, hashable dataclasses so
that ``parse(render(ast)) == ast`` can be asserted directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CompareOp = Literal["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
Literal_ = str | int | float | bool | None


@dataclass(frozen=True)
class AttrPath:
    """``[urn:]attr[\\[valueFilter\\]][.subAttr]`` as written by the client.

    Inside a value filter, ``attr`` names a sub-attribute of the filtered element.
    ``urn`` keeps the schema URN exactly as sent (resolution is case-insensitive and
    happens against a ResourceType, see gateway.scim.schema).
    """

    attr: str
    sub_attr: str | None = None
    urn: str | None = None
    value_filter: Filter | None = None


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: CompareOp
    value: Literal_


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    expr: Filter


@dataclass(frozen=True)
class ValuePath:
    """``emails[type eq "work" and value co "@x"]`` used as a filter: some element matches."""

    path: AttrPath
    filter: Filter


Filter = Compare | Present | And | Or | Not | ValuePath
