"""The committed CRDs' ``openAPIV3Schema`` as JSON Schema that ``hypothesis-jsonschema`` can draw from.

Kubernetes' structural-schema extensions have no JSON Schema meaning; they are translated:
``x-kubernetes-int-or-string`` becomes ``anyOf: [integer, string]``, a free-form object
(``x-kubernetes-preserve-unknown-fields``) gets scalar values, and an object with ``properties``
admits no other keys (the API server's strict field validation refuses them; the hostile
mutations add unknown fields on purpose). CEL rules are not translated: the generated objects
break them as often as chance says, and the API server must refuse those with the field named.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
MODEL_REGISTRY_CRD = CRDS / "modelregistry.opendatahub.io_modelregistries.yaml"
MODEL_UPLOAD_JOB_CRD = CRDS / "modelregistry.opendatahub.io_modeluploadjobs.yaml"

_DROPPED = {
    "description",
    "default",
    "format",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource",
}
_SCALAR: dict[str, Any] = {"type": ["string", "integer", "boolean"]}


def to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "x-kubernetes-int-or-string":
            if "anyOf" not in node and "type" not in node:
                out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        elif key == "x-kubernetes-preserve-unknown-fields":
            if "properties" not in node:
                out["additionalProperties"] = _SCALAR
                out["maxProperties"] = 4
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _version(path: Path, version: str | None = None) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    versions = crd["spec"]["versions"]
    chosen = next(v for v in versions if (v["name"] == version if version else v.get("storage")))
    return dict(chosen)


@functools.cache
def spec_schema(path: Path) -> dict[str, Any]:
    """JSON Schema of ``spec`` in the storage version of the CRD at ``path``."""
    schema = _version(path)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return to_json_schema(schema)


@functools.cache
def api_version(path: Path) -> str:
    crd = yaml.safe_load(path.read_text())
    return f"{crd['spec']['group']}/{_version(path)['name']}"


def max_length(path: Path, *fields: str) -> int | None:
    """``maxLength`` of a spec field (``None`` when the CRD sets none)."""
    node: dict[str, Any] = spec_schema(path)
    for field in fields:
        node = node["properties"][field]
    value = node.get("maxLength")
    return int(value) if value is not None else None
