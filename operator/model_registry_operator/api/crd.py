"""Generate CustomResourceDefinitions from the pydantic models.

The API server wants a *structural* schema: every node typed, no `$ref`, no nullable
unions, no titles. Pydantic's JSON schema is close; this module inlines references,
collapses `X | None` to `X` and keeps only the keywords Kubernetes understands.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from ..names import (
    AVAILABLE,
    GROUP,
    MODEL_REGISTRY_DEPRECATED_VERSION,
    MODEL_REGISTRY_KIND,
    MODEL_REGISTRY_PLURAL,
    MODEL_REGISTRY_SHORT_NAMES,
    MODEL_REGISTRY_SINGULAR,
    MODEL_REGISTRY_VERSION,
    MODEL_UPLOAD_JOB_KIND,
    MODEL_UPLOAD_JOB_PLURAL,
    MODEL_UPLOAD_JOB_SHORT_NAMES,
    MODEL_UPLOAD_JOB_SINGULAR,
    MODEL_UPLOAD_JOB_VERSION,
)
from . import modelregistry, modeluploadjob

# Keywords that OpenAPI v3 structural schemas accept (others are dropped).
_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "anyOf",
    "x-kubernetes-validations",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        # A description next to the reference describes the field, not the type.
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **extra}, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(variants) == 1:
            return _resolve({**variants[0], **rest}, defs)
        if all("$ref" not in v and v.get("type") in ("integer", "string") for v in variants):
            return _resolve({**rest, **_INT_OR_STRING}, defs)
        raise ValueError(f"cannot express union {variants!r} in a structural schema")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _resolve(value, defs)
        elif key == "additionalProperties":
            # `false` is implied by pruning; structural schemas forbid it beside properties.
            continue
        elif key == "default" and value is None:
            continue
        else:
            out[key] = copy.deepcopy(value)
    if "const" in node:
        out["enum"] = [node["const"]]
    return out


_INT_OR_STRING = {"x-kubernetes-int-or-string": True}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of a pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _resolve(raw, defs)
    return schema


def _quantity_fix(node: Any) -> Any:
    """Int-or-string nodes must not also carry `anyOf` types with a type of their own."""
    if isinstance(node, list):
        return [_quantity_fix(n) for n in node]
    if not isinstance(node, dict):
        return node
    fixed = {k: _quantity_fix(v) for k, v in node.items()}
    if fixed.get("x-kubernetes-int-or-string"):
        fixed.pop("type", None)
    return fixed


def _status_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = structural_schema(model)
    return dict(_quantity_fix(schema))


def _object_schema(description: str, spec_schema: dict[str, Any], status_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this representation."},
            "kind": {"type": "string", "description": "REST resource this object represents."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "required": ["spec"],
    }


def _crd(
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
    versions: list[tuple[str, bool, str | None]],
) -> dict[str, Any]:
    """A namespaced CRD with a status subresource; versions are (name, storage, deprecation warning)."""
    entries = []
    for name, storage, deprecation in versions:
        entry: dict[str, Any] = {
            "name": name,
            "served": True,
            "storage": storage,
            "schema": {"openAPIV3Schema": copy.deepcopy(schema)},
            "subresources": {"status": {}},
            "additionalPrinterColumns": copy.deepcopy(columns),
        }
        if deprecation:
            entry["deprecated"] = True
            entry["deprecationWarning"] = deprecation
        entries.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
            },
            "scope": "Namespaced",
            "versions": entries,
        },
    }


def model_registry_crd() -> dict[str, Any]:
    """The ModelRegistry CRD with both served versions sharing one schema."""
    schema = _object_schema(
        "ModelRegistry deploys a Model Registry REST server backed by PostgreSQL or MySQL.",
        _quantity_fix(structural_schema(modelregistry.ModelRegistrySpec)),
        _status_schema(modelregistry.ModelRegistryStatus),
    )
    schema["x-kubernetes-validations"] = [modelregistry.name_limit_rule()]
    available = f'.status.conditions[?(@.type=="{AVAILABLE}")]'
    columns: list[dict[str, Any]] = [
        {"name": AVAILABLE, "type": "string", "jsonPath": f"{available}.status"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Hosts", "type": "string", "jsonPath": ".status.hostsStr", "priority": 1},
        {"name": "Status", "type": "string", "jsonPath": f"{available}.message", "priority": 1},
    ]
    return _crd(
        MODEL_REGISTRY_KIND,
        MODEL_REGISTRY_PLURAL,
        MODEL_REGISTRY_SINGULAR,
        MODEL_REGISTRY_SHORT_NAMES,
        schema,
        columns,
        [
            (MODEL_REGISTRY_VERSION, True, None),
            (MODEL_REGISTRY_DEPRECATED_VERSION, False, modelregistry.DEPRECATION_WARNING),
        ],
    )


def model_upload_job_crd() -> dict[str, Any]:
    """The ModelUploadJob CRD: one served version, an immutable spec."""
    spec_schema = _quantity_fix(structural_schema(modeluploadjob.ModelUploadJobSpec))
    spec_schema["x-kubernetes-validations"] = [
        *spec_schema.get("x-kubernetes-validations", []),
        *modeluploadjob.IMMUTABLE_RULES,
    ]
    schema = _object_schema(
        "ModelUploadJob copies a model to an OCI image or S3 and registers it in a model registry.",
        spec_schema,
        _status_schema(modeluploadjob.ModelUploadJobStatus),
    )
    schema["x-kubernetes-validations"] = list(modeluploadjob.NAME_RULES)
    columns: list[dict[str, Any]] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Model", "type": "string", "jsonPath": ".spec.model.registeredModel.name"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.model.modelVersion.name"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Progress", "type": "integer", "jsonPath": ".status.progress.percent", "priority": 1},
        {"name": "Intent", "type": "string", "jsonPath": ".spec.intent", "priority": 1},
        {"name": "URI", "type": "string", "jsonPath": ".status.artifactURI", "priority": 1},
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
    ]
    return _crd(
        MODEL_UPLOAD_JOB_KIND,
        MODEL_UPLOAD_JOB_PLURAL,
        MODEL_UPLOAD_JOB_SINGULAR,
        MODEL_UPLOAD_JOB_SHORT_NAMES,
        schema,
        columns,
        [(MODEL_UPLOAD_JOB_VERSION, True, None)],
    )


def all_crds() -> list[dict[str, Any]]:
    """Every CRD the operator owns, in a stable order."""
    return [model_registry_crd(), model_upload_job_crd()]
