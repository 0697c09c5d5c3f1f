"""Model metadata read from the mounted metadata ConfigMap.

Every regular file of the directory is one key: ``RegisteredModel.name``,
``ModelVersion.author``, ``ModelArtifact.model_format_name``, ``ModelVersion.custom_properties``
(a JSON object)... camelCase field names (``customProperties``, ``modelFormatName``) are
accepted as well as snake_case. Custom property values may be plain JSON (int, float, str, bool,
list, object) or already-typed ``MetadataValue`` objects.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .config import label, parse_json_text, read_text_file, shown
from .errors import ConfigError

log = logging.getLogger(__name__)

INT32_MAX = 999_999_999  # the API pattern allows at most 9 digits
_METADATA_TYPES = {
    "MetadataIntValue": "int_value",
    "MetadataDoubleValue": "double_value",
    "MetadataStringValue": "string_value",
    "MetadataBoolValue": "bool_value",
    "MetadataStructValue": "struct_value",
    "MetadataProtoValue": "proto_value",
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def string_value(value: str) -> dict[str, Any]:
    """A string ``MetadataValue``."""
    return {"metadataType": "MetadataStringValue", "string_value": value}


def metadata_value(name: str, value: Any) -> dict[str, Any] | None:  # noqa: ANN401 - any JSON value
    """One custom property as a typed ``MetadataValue`` (None values are dropped)."""
    if value is None:
        return None
    if isinstance(value, dict) and "metadataType" in value:
        kind = value["metadataType"]
        field = _METADATA_TYPES.get(kind)
        if field is None or field not in value:
            raise ConfigError(
                f"{label('metadata_configmap_path')}: custom property {shown(name)}: invalid MetadataValue "
                f"{json.dumps(value)[:200]}"
            )
        return dict(value)
    if isinstance(value, bool):
        return {"metadataType": "MetadataBoolValue", "bool_value": value}
    if isinstance(value, int):
        if abs(value) > INT32_MAX:
            log.warning("custom property %r: %d is too large for an int value, stored as a string", name, value)
            return string_value(str(value))
        return {"metadataType": "MetadataIntValue", "int_value": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(
                f"{label('metadata_configmap_path')}: custom property {shown(name)}: {value} is not a finite number"
            )
        return {"metadataType": "MetadataDoubleValue", "double_value": value}
    if isinstance(value, str):
        return string_value(value)
    if isinstance(value, list | dict):
        return string_value(json.dumps(value, sort_keys=True))
    raise ConfigError(
        f"{label('metadata_configmap_path')}: custom property {shown(name)}: unsupported value type "
        f"{type(value).__name__}"
    )


def typed_properties(props: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in (props or {}).items():
        typed = metadata_value(key, value)
        if typed is not None:
            out[key] = typed
    return out


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RegisteredModelMeta(_Section):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    owner: str | None = None
    custom_properties: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _name_or_id(self) -> RegisteredModelMeta:
        if self.id and self.name:
            raise ValueError("cannot provide both RegisteredModel.name and RegisteredModel.id")
        return self


class ModelVersionMeta(_Section):
    name: str | None = None
    description: str | None = None
    author: str | None = None
    custom_properties: dict[str, Any] | None = None


class ModelArtifactMeta(_Section):
    name: str | None = None
    description: str | None = None
    model_format_name: str | None = None
    model_format_version: str | None = None
    storage_key: str | None = None
    storage_path: str | None = None
    service_account_name: str | None = None
    model_source_kind: str | None = None
    model_source_class: str | None = None
    model_source_group: str | None = None
    model_source_id: str | None = None
    model_source_name: str | None = None
    custom_properties: dict[str, Any] | None = None


class ModelMetadata(_Section):
    registered_model: RegisteredModelMeta = RegisteredModelMeta()
    model_version: ModelVersionMeta = ModelVersionMeta()
    model_artifact: ModelArtifactMeta = ModelArtifactMeta()


_SECTIONS = {"RegisteredModel": "registered_model", "ModelVersion": "model_version", "ModelArtifact": "model_artifact"}


def load_metadata(directory: Path | None) -> ModelMetadata:
    """Parse the ConfigMap directory (``None`` gives empty metadata)."""
    if directory is None:
        return ModelMetadata()
    param = label("metadata_configmap_path")
    sections: dict[str, dict[str, Any]] = {v: {} for v in _SECTIONS.values()}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise ConfigError(f"{param}: cannot list {directory}: {exc.strerror or exc.__class__.__name__}") from None
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file():
            continue  # ConfigMap mounts carry ..data / ..timestamp entries
        section, _, field = entry.name.partition(".")
        if section not in _SECTIONS or not field:
            log.debug("ignoring metadata key %s", entry.name)
            continue
        field = _snake(field)
        what = f"{param}: metadata key {shown(entry.name)}"
        text = read_text_file(entry, what)
        value: Any = text
        if field == "custom_properties":
            if not text:
                continue
            value = parse_json_text(text, what)
            if not isinstance(value, dict):
                raise ConfigError(f"{what}: must be a JSON object")
            current = sections[_SECTIONS[section]].get("custom_properties") or {}
            value = {**current, **value}
        elif not text:
            continue
        sections[_SECTIONS[section]][field] = value
    try:
        meta = ModelMetadata.model_validate(sections)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{param}: invalid model metadata in {directory}: {problems}") from None
    for section_meta in (meta.registered_model, meta.model_version, meta.model_artifact):
        typed_properties(section_meta.custom_properties)  # validate early
    return meta
