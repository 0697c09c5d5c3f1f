"""Building blocks shared by the custom resource models.

The pydantic models in this package are the single source of the CRD schemas: field names,
defaults, ranges, enums and descriptions all come from here (see ``api/crd.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..names import GROUP as GROUP  # re-exported for the upload program
from .quantity import QUANTITY_PATTERN, parse_quantity


class ApiModel(BaseModel):
    """Base for every spec model: camelCase JSON names, unknown fields rejected."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        serialize_by_alias=True,
    )


def with_rules(rules: list[dict[str, str]]) -> ConfigDict:
    """The base model config plus CEL rules for the generated CRD."""
    extra: dict[str, Any] = {"x-kubernetes-validations": rules}
    return ConfigDict(**ApiModel.model_config, json_schema_extra=extra)


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


# ---- Value rules -----------------------------------------------------------------------
# Each pattern is enforced twice: by the API server (the CRD's `pattern`, Go RE2) and by
# pydantic in the reconcile's re-check (Rust regex). Both engines read `$` as the end of the
# text, so a trailing newline never passes. RULES maps a pattern to the words of a message.

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN_PATTERN = rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$"
"""A Kubernetes object name (RFC 1123 subdomain): Secrets, ConfigMaps."""

SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a credential
"""A key of a Secret or ConfigMap, as Kubernetes allows it."""

_HOST_LABEL = r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
_IPV4 = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_H16 = r"[0-9a-fA-F]{1,4}"
_IPV6 = (
    rf"(({_H16}:){{7}}{_H16}|({_H16}:){{1,7}}:|({_H16}:){{1,6}}:{_H16}|({_H16}:){{1,5}}(:{_H16}){{1,2}}"
    rf"|({_H16}:){{1,4}}(:{_H16}){{1,3}}|({_H16}:){{1,3}}(:{_H16}){{1,4}}|({_H16}:){{1,2}}(:{_H16}){{1,5}}"
    rf"|{_H16}:(:{_H16}){{1,6}}|:((:{_H16}){{1,7}}|:)|::([fF]{{4}}(:0{{1,4}})?:)?{_IPV4}|({_H16}:){{1,4}}:{_IPV4})"
)
HOST_PATTERN = rf"^({_HOST_LABEL}(\.{_HOST_LABEL})*\.?|{_IPV6})$"
"""An RFC 1123 host name (an IPv4 address is one) or an IPv6 address, without brackets."""

NO_CONTROL_PATTERN = r"^[^\x00-\x1F\x7F]+$"
"""Any text on one line: no control characters (NUL, newline, tab, ...)."""

POSTGRES_DATABASE_PATTERN = r"^[^/\x00-\x1F\x7F][^\x00-\x1F\x7F]*$"
"""A PostgreSQL database name: one line, not starting with `/` (a URL DSN's path drops leading slashes)."""

MYSQL_USER_PATTERN = r"^[^:\x00-\x1F\x7F]+$"
"""A MySQL user name the Go driver can carry: its DSN has no escape for `:` in the user."""

MYSQL_DATABASE_PATTERN = r"^[^\x00-\x1F\x7F]*[^\x00-\x1F\x7F ]$"
"""A MySQL database name: no control characters, no trailing space (the server's rule)."""

# distribution/reference's grammar (the one every OCI tool follows), ASCII classes spelled out.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(([._]|__|[-]+){_ALNUM})*"
_DOMAIN_COMPONENT = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
IMAGE_DOMAIN = rf"({_DOMAIN_COMPONENT}(\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(:[0-9]+)?"
IMAGE_PATH = rf"{_PATH_COMPONENT}(/{_PATH_COMPONENT})*"
_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_TAG_DIGEST = rf"(:{_TAG})?(@{_DIGEST})?"
IMAGE_PATTERN = rf"^({IMAGE_DOMAIN}/)?{IMAGE_PATH}{IMAGE_TAG_DIGEST}$"
"""An OCI image reference: [registry[:port]/]path[:tag][@digest]."""

LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A Kubernetes label value (at most 63 characters)."""

LABEL_KEY_PATTERN = rf"^({SUBDOMAIN_PATTERN[1:-1]}/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
"""A Kubernetes label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters."""

NAME_PATTERN = r"^[a-zA-Z0-9]([-._a-zA-Z0-9]*[a-zA-Z0-9])?$"
"""A plain name: letters, digits, `-`, `.`, `_`, starting and ending with a letter or digit."""

CIPHER_PATTERN = r"^[A-Za-z0-9_:,+!@=. -]+$"
"""A TLS cipher list: cipher names and the list syntax (`:` `,` `+` `!` `-` `@STRENGTH`)."""

RULES: dict[str, str] = {
    SUBDOMAIN_PATTERN: "must be a Kubernetes object name (lower-case RFC 1123 subdomain: a-z, 0-9, '-', '.')",
    SECRET_KEY_PATTERN: "must be a Secret / ConfigMap key (letters, digits, '-', '_', '.')",
    HOST_PATTERN: "must be an RFC 1123 host name or an IPv4 / IPv6 address",
    NO_CONTROL_PATTERN: "must not contain control characters (newlines, tabs, NUL)",
    POSTGRES_DATABASE_PATTERN: "must not contain control characters nor start with '/'",
    MYSQL_USER_PATTERN: "must not contain ':' or control characters",
    MYSQL_DATABASE_PATTERN: "must not contain control characters nor end with a space",
    IMAGE_PATTERN: "must be an image reference ([registry[:port]/]path[:tag][@digest], ASCII)",
    LABEL_VALUE_PATTERN: "must be a label value (letters, digits, '-', '_', '.', at most 63 characters)",
    LABEL_KEY_PATTERN: "must be a label key ([prefix/]name)",
    NAME_PATTERN: "must be a name of letters, digits, '-', '.', '_', starting and ending with a letter or digit",
    CIPHER_PATTERN: "must be a cipher list (letters, digits and '_ : , + ! @ = . -' or spaces)",
}


def _max_bytes(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if len(value.encode()) > limit:
            raise ValueError(f"must be at most {limit} bytes in UTF-8")
        return value

    return AfterValidator(check)


def _optional(pattern: str) -> str:
    """The pattern that also takes `""`, where upstream treats an empty string as unset."""
    RULES[f"^$|{pattern}"] = RULES[pattern] + " (or be empty)"
    return f"^$|{pattern}"


_PG_BYTES_RULE: dict[str, Any] = cel("size(bytes(self)) <= 63", "must be at most 63 bytes in UTF-8")

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=SUBDOMAIN_PATTERN)]
OptionalObjectName = Annotated[str, Field(max_length=253, pattern=_optional(SUBDOMAIN_PATTERN))]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]
HostName = Annotated[str, Field(min_length=1, max_length=253, pattern=HOST_PATTERN)]
OptionalHostName = Annotated[str, Field(max_length=253, pattern=_optional(HOST_PATTERN))]
OptionalImage = Annotated[str, Field(max_length=512, pattern=_optional(IMAGE_PATTERN))]
"""An optional image reference: empty means the operator's default, as upstream."""
OptionalLabelValue = Annotated[str, Field(max_length=63, pattern=_optional(LABEL_VALUE_PATTERN))]
OptionalPlainName = Annotated[str, Field(max_length=253, pattern=_optional(NAME_PATTERN))]
OptionalPostgresIdentifier = Annotated[
    str,
    Field(max_length=63, pattern=_optional(NO_CONTROL_PATTERN)),
    _max_bytes(63),
    Field(json_schema_extra={"x-kubernetes-validations": [_PG_BYTES_RULE]}),
]
"""A PostgreSQL role name: at most 63 bytes (NAMEDATALEN - 1), one line."""
OptionalPostgresDatabase = Annotated[
    str,
    Field(max_length=63, pattern=_optional(POSTGRES_DATABASE_PATTERN)),
    _max_bytes(63),
    Field(json_schema_extra={"x-kubernetes-validations": [_PG_BYTES_RULE]}),
]
"""A PostgreSQL database name: at most 63 bytes (NAMEDATALEN - 1), one line."""
MySQLDatabase = Annotated[str, Field(min_length=1, max_length=64, pattern=MYSQL_DATABASE_PATTERN)]
MySQLUser = Annotated[str, Field(min_length=1, max_length=32, pattern=MYSQL_USER_PATTERN)]
OptionalCipherList = Annotated[str, Field(max_length=1024, pattern=_optional(CIPHER_PATTERN))]
Audience = Annotated[str, Field(min_length=1, max_length=1024, pattern=NO_CONTROL_PATTERN)]


class SecretKeyValue(ApiModel):
    """A key of a Secret or ConfigMap in the registry's namespace."""

    name: ObjectName = Field(description="Name of the Secret or ConfigMap.")
    key: SecretKey = Field(description="Key inside the Secret or ConfigMap.")


QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    # No sign: Kubernetes refuses negative resource quantities (negative integers: the reconcile).
    "pattern": QUANTITY_PATTERN,
    "x-kubernetes-int-or-string": True,
}

CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
"""The resources a registry or upload container may name: its servers need no extended resources."""
_RESOURCE_NAMES_RULE: dict[str, Any] = cel(
    "self.all(k, k in " + json.dumps(list(CONTAINER_RESOURCES)) + ")",
    "keys must be one of " + ", ".join(CONTAINER_RESOURCES),
)
_RESOURCE_LIST: dict[str, Any] = {
    "additionalProperties": QUANTITY_SCHEMA,
    "maxProperties": len(CONTAINER_RESOURCES),
    "x-kubernetes-validations": [_RESOURCE_NAMES_RULE],
}


def _resource_list(resources: dict[str, int | str] | None) -> dict[str, int | str] | None:
    for name, value in (resources or {}).items():
        if name not in CONTAINER_RESOURCES:
            raise ValueError(f"key {name!r}: {_RESOURCE_NAMES_RULE['message']}")
        try:
            parse_quantity(value)
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"{name}: {exc}") from None
    return resources


class ResourceRequirements(ApiModel):
    """Compute resources of a container (as in a Pod spec)."""

    limits: Annotated[dict[str, int | str] | None, AfterValidator(_resource_list)] = Field(
        default=None,
        description="Maximum amount of compute resources allowed, e.g. {memory: 256Mi}.",
        json_schema_extra=_RESOURCE_LIST,
    )
    requests: Annotated[dict[str, int | str] | None, AfterValidator(_resource_list)] = Field(
        default=None,
        description="Minimum amount of compute resources required, e.g. {cpu: 100m, memory: 256Mi}.",
        json_schema_extra=_RESOURCE_LIST,
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceRequirements:
        # Kubernetes refuses a Pod whose request exceeds its limit; say so on the spec instead.
        for name, request in (self.requests or {}).items():
            limit = (self.limits or {}).get(name)
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise ValueError(f"requests.{name} ({request}) must not exceed limits.{name} ({limit})")
        return self


class Condition(BaseModel):
    """A status condition, following the Kubernetes conventions (metav1.Condition)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    type: str = Field(description="Type of condition in CamelCase, e.g. Available.")
    status: str = Field(description="True, False or Unknown.", json_schema_extra={"enum": ["True", "False", "Unknown"]})
    reason: str = Field(description="Machine-readable reason for the last transition, in CamelCase.")
    message: str = Field(default="", description="Human-readable details about the last transition.")
    last_transition_time: str = Field(
        alias="lastTransitionTime",
        description="When the condition last changed status.",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The .metadata.generation the condition was computed from.",
    )
