"""Building blocks shared by the custom resource models.

The pydantic models in this package are the single source of the CRD schemas: field names,
defaults, ranges, enums and descriptions all come from here (see ``api/crd.py``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GROUP = "modelregistry.opendatahub.io"


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


class SecretKeyValue(ApiModel):
    """A key of a Secret or ConfigMap in the registry's namespace."""

    name: str = Field(min_length=1, description="Name of the Secret or ConfigMap.")
    key: str = Field(min_length=1, description="Key inside the Secret or ConfigMap.")


QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": (
        r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
        r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
    ),
    "x-kubernetes-int-or-string": True,
}


class ResourceRequirements(ApiModel):
    """Compute resources of a container (as in a Pod spec)."""

    limits: dict[str, int | str] | None = Field(
        default=None,
        description="Maximum amount of compute resources allowed, e.g. {memory: 256Mi}.",
        json_schema_extra={"additionalProperties": QUANTITY_SCHEMA},
    )
    requests: dict[str, int | str] | None = Field(
        default=None,
        description="Minimum amount of compute resources required, e.g. {cpu: 100m, memory: 256Mi}.",
        json_schema_extra={"additionalProperties": QUANTITY_SCHEMA},
    )


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
