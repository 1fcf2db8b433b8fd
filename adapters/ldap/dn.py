"""Distinguished names: one canonical spelling, so that a DN can serve as a key.

slapd hands a DN back in its own spelling, which is not always the one it was given:
``uid=a\\+b@x.org`` comes back as ``uid=a\\2Bb@x.org``, and an entry below
``ou=People`` added as ``ou=people`` is returned with the container's stored case. Member
values of groups are rewritten by the refint overlay in yet another spelling. Every DN the
adapter compares or hands to the gateway therefore goes through ``normalize``: attribute
types and values lower-cased, values unescaped and escaped again one way.

Lower-casing values is right for the naming attributes mail directories use (``uid``,
``mail``, ``cn``, ``ou``, ``dc``, ``o``): all of them match case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX_PAIR = re.compile(r"\\([0-9A-Fa-f]{2})")
_SPECIAL = frozenset(',+"\\<>;=')


class DnError(ValueError):
    """A string that is not a distinguished name."""


@dataclass(frozen=True)
class Ava:
    """One ``type=value`` of an RDN, with the value unescaped."""

    type: str
    value: str


def _unescape(raw: str) -> str:
    """An RFC 4514 attribute value without its escapes (``\\2B`` and ``\\+`` both give ``+``)."""
    out = bytearray()
    i = 0
    while i < len(raw):
        char = raw[i]
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        pair = _HEX_PAIR.match(raw, i)
        if pair is not None:
            out.append(int(pair.group(1), 16))
            i += 3
        elif i + 1 < len(raw):
            out += raw[i + 1].encode()
            i += 2
        else:
            raise DnError(f"a DN value ends with a lone backslash: {raw!r}")
    try:
        return out.decode()
    except UnicodeDecodeError as err:
        raise DnError(f"a DN value is not UTF-8: {raw!r}") from err


def escape_value(value: str) -> str:
    """``value`` escaped for an RDN (RFC 4514 §2.4)."""
    escaped = []
    for i, char in enumerate(value):
        if char in _SPECIAL or (char == "#" and i == 0) or (char == " " and i in (0, len(value) - 1)):
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or char == "\x7f":
            escaped.append(f"\\{ord(char):02x}")
        else:
            escaped.append(char)
    return "".join(escaped)


def split(dn: str) -> list[list[Ava]]:
    """``dn`` as RDNs (leftmost first), each a list of AVAs (more than one for ``a=1+b=2``)."""
    rdns: list[list[Ava]] = [[]]
    text = dn.strip()
    if not text:
        return []
    if not any(c in text for c in '\\+;"'):
        return _split_plain(text, dn)
    i = 0
    while i <= len(text):
        equals = text.find("=", i)
        if equals < 0:
            raise DnError(f"not a DN: {dn!r}")
        attribute = text[i:equals].strip()
        if not attribute:
            raise DnError(f"not a DN (empty attribute type): {dn!r}")
        j = equals + 1
        while j < len(text) and text[j] not in ",+;":
            j += 2 if text[j] == "\\" else 1
        raw = text[equals + 1 : j].strip()
        if raw.endswith("\\") and text[j - 1 : j] == " ":
            raw += " "  # an escaped trailing space
        rdns[-1].append(Ava(attribute.lower(), _unescape(raw)))
        if j >= len(text):
            break
        if text[j] != "+":
            rdns.append([])
        i = j + 1
    return rdns


def _split_plain(text: str, dn: str) -> list[list[Ava]]:
    """``split`` for the common DN without escapes or multi-valued RDNs."""
    rdns = []
    for part in text.split(","):
        attribute, equals, value = part.partition("=")
        attribute = attribute.strip()
        if not equals or not attribute:
            raise DnError(f"not a DN: {dn!r}")
        rdns.append([Ava(attribute.lower(), value.strip())])
    return rdns


def join(rdns: list[list[Ava]]) -> str:
    return ",".join("+".join(f"{ava.type}={escape_value(ava.value)}" for ava in rdn) for rdn in rdns)


def normalize(dn: str) -> str:
    """The canonical spelling of ``dn`` (see the module's docstring)."""
    return join([[Ava(ava.type, ava.value.lower()) for ava in rdn] for rdn in split(dn)])


def rdn(attribute: str, value: str) -> str:
    """One single-valued RDN, escaped: ``rdn("uid", "a+b")`` → ``uid=a\\+b``."""
    return f"{attribute}={escape_value(value)}"


def first_value(dn: str) -> str:
    """The value of the first AVA of the leftmost RDN, unescaped (a group's name from its DN)."""
    rdns = split(dn)
    if not rdns or not rdns[0]:
        raise DnError(f"not a DN: {dn!r}")
    return rdns[0][0].value


def parent(dn: str) -> str:
    """``dn`` without its leftmost RDN (escaped one way, case kept)."""
    return join(split(dn)[1:])


def is_below(dn: str, container: str) -> bool:
    """Whether the (canonical) ``dn`` lies strictly below the (canonical) ``container``."""
    return dn.endswith("," + container) and len(dn) > len(container) + 1
