"""SCIM schema definitions (RFC 7643 §4, §7, §8.7) as data.

One source of truth for: case-insensitive attribute-name resolution, caseExact
comparisons in filters, mutability checks in PATCH/PUT, and the /Schemas discovery
documents. Pure: no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

AttrType = Literal["string", "boolean", "decimal", "integer", "dateTime", "reference", "complex", "binary"]
Mutability = Literal["readOnly", "readWrite", "immutable", "writeOnly"]
Returned = Literal["always", "never", "default", "request"]
Uniqueness = Literal["none", "server", "global"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@dataclass(frozen=True)
class Attribute:
    name: str
    type: AttrType = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = "readWrite"
    returned: Returned = "default"
    uniqueness: Uniqueness = "none"
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    _subs_by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._subs_by_lower.update({a.name.lower(): a for a in self.sub_attributes})

    def sub(self, name: str) -> Attribute | None:
        """Sub-attribute by name, case-insensitively (RFC 7643 §2.1)."""
        return self._subs_by_lower.get(name.lower())


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    _by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({a.name.lower(): a for a in self.attributes})

    def attribute(self, name: str) -> Attribute | None:
        return self._by_lower.get(name.lower())


def _s(name: str, description: str = "", **kw: object) -> Attribute:
    return Attribute(name=name, description=description, **kw)  # type: ignore[arg-type]


def _multi(
    name: str,
    description: str,
    types: tuple[str, ...],
    value_type: AttrType = "string",
    reference_types: tuple[str, ...] = (),
) -> Attribute:
    """The common shape of RFC 7643 multi-valued attributes: value, display, type, primary."""
    return Attribute(
        name=name,
        type="complex",
        multi_valued=True,
        description=description,
        sub_attributes=(
            # Binary and reference values are case exact (RFC 7643 §2.3.6, §2.3.7).
            Attribute("value", value_type, description=f"The value of the {name} entry.",
                      case_exact=value_type in ("binary", "reference"), reference_types=reference_types),
            Attribute("display", description="A human-readable name, primarily used for display purposes."),
            Attribute("type", description="A label indicating the attribute's function.",
                      canonical_values=types),
            Attribute("primary", "boolean", description="Whether this is the preferred value."),
        ),
    )


USER = Schema(
    id=USER_SCHEMA,
    name="User",
    description="User Account",
    attributes=(
        _s("userName", "Unique identifier for the User, here the mailbox address.", required=True,
           uniqueness="server"),
        Attribute(
            "name", "complex", description="The components of the user's real name.",
            sub_attributes=(
                _s("formatted", "The full name, formatted for display."),
                _s("familyName", "The family name of the User."),
                _s("givenName", "The given name of the User."),
                _s("middleName", "The middle name(s) of the User."),
                _s("honorificPrefix", "The honorific prefix(es) of the User."),
                _s("honorificSuffix", "The honorific suffix(es) of the User."),
            ),
        ),
        _s("displayName", "The name of the User, suitable for display to end-users."),
        _s("nickName", "The casual way to address the user."),
        _s("profileUrl", "A fully qualified URL pointing to the User's online profile.", type="reference",
           reference_types=("external",), case_exact=True),
        _s("title", "The user's title, such as 'Vice President'."),
        _s("userType", "Identifies the relationship between the organization and the user."),
        _s("preferredLanguage", "The User's preferred written or spoken language."),
        _s("locale", "The User's default location for localizing values."),
        _s("timezone", "The User's time zone in the 'Olson' time zone database format."),
        _s("active", "The User's administrative status.", type="boolean"),
        _s("password", "The User's cleartext password.", case_exact=True, mutability="writeOnly",
           returned="never"),
        _multi("emails", "Email addresses for the user.", ("work", "home", "other")),
        _multi("phoneNumbers", "Phone numbers for the User.",
               ("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", "Instant messaging addresses for the User.",
               ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", "URLs of photos of the User.", ("photo", "thumbnail"), "reference", ("external",)),
        Attribute(
            "addresses", "complex", multi_valued=True,
            description="A physical mailing address for this User.",
            sub_attributes=(
                _s("formatted", "The full mailing address, formatted for display."),
                _s("streetAddress", "The full street address component."),
                _s("locality", "The city or locality component."),
                _s("region", "The state or region component."),
                _s("postalCode", "The zip code or postal code component."),
                _s("country", "The country name component."),
                _s("type", "A label indicating the attribute's function.",
                   canonical_values=("work", "home", "other")),
                _s("primary", "Whether this is the preferred mailing address.", type="boolean"),
            ),
        ),
        Attribute(
            "groups", "complex", multi_valued=True, mutability="readOnly",
            description="A list of groups to which the user belongs.",
            sub_attributes=(
                _s("value", "The identifier of the User's group.", case_exact=True, mutability="readOnly"),
                _s("$ref", "The URI of the corresponding Group resource.", type="reference",
                   reference_types=("Group",), case_exact=True, mutability="readOnly"),
                _s("display", "A human-readable name of the group.", mutability="readOnly"),
                _s("type", "How the membership was derived.", canonical_values=("direct", "indirect"),
                   mutability="readOnly"),
            ),
        ),
        _multi("entitlements", "A list of entitlements for the User.", ()),
        _multi("roles", "A list of roles for the User.", ()),
        _multi("x509Certificates", "A list of certificates issued to the User.", (), "binary"),
    ),
)

ENTERPRISE_USER = Schema(
    id=ENTERPRISE_SCHEMA,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _s("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
        _s("costCenter", "Identifies the name of a cost center."),
        _s("organization", "Identifies the name of an organization."),
        _s("division", "Identifies the name of a division."),
        _s("department", "Identifies the name of a department."),
        Attribute(
            "manager", "complex", description="The User's manager.",
            sub_attributes=(
                _s("value", "The id of the SCIM resource representing the User's manager."),
                _s("$ref", "The URI of the SCIM resource representing the User's manager.", type="reference",
                   reference_types=("User",)),
                _s("displayName", "The displayName of the User's manager.", mutability="readOnly"),
            ),
        ),
    ),
)

GROUP = Schema(
    id=GROUP_SCHEMA,
    name="Group",
    description="Group, here a distribution list",
    attributes=(
        _s("displayName", "A human-readable name for the Group.", required=True),
        Attribute(
            "members", "complex", multi_valued=True, description="A list of members of the Group.",
            sub_attributes=(
                _s("value", "Identifier of the member of this Group.", mutability="immutable"),
                _s("$ref", "The URI of the member resource.", type="reference",
                   reference_types=("User", "Group"), mutability="immutable"),
                _s("type", "The type of the member.", canonical_values=("User", "Group"),
                   mutability="immutable"),
                _s("display", "A human-readable name of the member.", mutability="readOnly"),
            ),
        ),
    ),
)

# Common attributes (RFC 7643 §3.1): present on every resource, not part of any schema document.
COMMON = Schema(
    id="",
    name="common",
    description="",
    attributes=(
        _s("id", "Unique identifier minted by the service provider.", case_exact=True, mutability="readOnly",
           returned="always", uniqueness="server"),
        _s("externalId", "Identifier of the resource as defined by the provisioning client.",
           case_exact=True),
        Attribute(
            "meta", "complex", mutability="readOnly",
            sub_attributes=(
                _s("resourceType", case_exact=True, mutability="readOnly"),
                _s("created", type="dateTime", mutability="readOnly"),
                _s("lastModified", type="dateTime", mutability="readOnly"),
                _s("location", type="reference", mutability="readOnly", case_exact=True),
                _s("version", mutability="readOnly", case_exact=True),
            ),
        ),
    ),
)


@dataclass(frozen=True)
class ResolvedAttribute:
    """An attribute path resolved against a resource type.

    ``schema`` is the URN of the schema that defines the attribute; attributes of the
    core schema and common attributes live at the top level of a resource, extension
    attributes live under their schema URN key.
    """

    schema: str
    attribute: Attribute
    sub_attribute: Attribute | None = None

    @functools.cached_property
    def is_extension(self) -> bool:
        return self.schema not in ("", USER_SCHEMA, GROUP_SCHEMA)

    @functools.cached_property
    def dotted(self) -> str:
        """Canonical spelling, e.g. ``name.givenName`` or ``urn:…:User:manager.value``."""
        base = f"{self.schema}:{self.attribute.name}" if self.is_extension else self.attribute.name
        return f"{base}.{self.sub_attribute.name}" if self.sub_attribute else base


_RESOLVE_CACHE_SIZE = 1024


@dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()
    # Every filter, PATCH path and projection resolves the same few names again and again.
    _resolved: dict[tuple[str, str | None, str | None], ResolvedAttribute | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)

    def extension(self, urn: str) -> Schema | None:
        lower = urn.lower()
        for ext in self.extensions:
            if ext.id.lower() == lower:
                return ext
        return None

    def resolve(
        self, attr: str, sub_attr: str | None = None, urn: str | None = None
    ) -> ResolvedAttribute | None:
        """Resolve ``[urn:]attr[.sub_attr]`` case-insensitively; None when unknown.

        An unqualified name is looked up in the common attributes, the core schema, then each
        extension: Entra sends ``manager`` meaning the enterprise extension's manager.
        """
        key = (attr, sub_attr, urn)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        found = self._resolve(attr, sub_attr, urn)
        if len(self._resolved) < _RESOLVE_CACHE_SIZE:  # client-chosen names: keep it bounded
            self._resolved[key] = found
        return found

    def _resolve(self, attr: str, sub_attr: str | None, urn: str | None) -> ResolvedAttribute | None:
        schemas: tuple[Schema, ...]
        if urn:
            lower = urn.lower()
            if lower == self.schema.id.lower():
                schemas = (self.schema,)
            else:
                ext = self.extension(urn)
                if ext is None:
                    return None
                schemas = (ext,)
        else:
            schemas = (COMMON, self.schema, *self.extensions)
        for schema in schemas:
            attribute = schema.attribute(attr)
            if attribute is None:
                continue
            if sub_attr is None:
                return ResolvedAttribute(schema.id, attribute)
            sub = attribute.sub(sub_attr)
            if sub is None:
                return None
            return ResolvedAttribute(schema.id, attribute, sub)
        return None


USER_RESOURCE = ResourceType("User", "/Users", "User Account (mailbox)", USER, (ENTERPRISE_USER,))
GROUP_RESOURCE = ResourceType("Group", "/Groups", "Group (distribution list)", GROUP)
RESOURCE_TYPES: dict[str, ResourceType] = {"User": USER_RESOURCE, "Group": GROUP_RESOURCE}
ALL_SCHEMAS: tuple[Schema, ...] = (USER, GROUP, ENTERPRISE_USER)


def split_urn(path: str, resource_type: ResourceType) -> tuple[str | None, str]:
    """Split a URN-qualified attribute path into (schema URN, remainder).

    ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`` →
    (the enterprise URN, ``manager.value``). A bare URN (the whole extension) returns
    (URN, ""). Unknown URN prefixes are returned as (None, path) so the caller can
    report an unknown attribute.
    """
    if not path.lower().startswith("urn:"):
        return None, path
    lower = path.lower()
    for schema in resource_type.schemas:
        sid = schema.id.lower()
        if lower == sid:
            return schema.id, ""
        if lower.startswith(sid + ":"):
            return schema.id, path[len(sid) + 1:]
    return None, path
