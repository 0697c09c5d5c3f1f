"""Run-time defaults: what the operator fills in without writing it to the spec.

Images and resources come from the operator's settings so that an operator upgrade rolls
registries to the new image; the difference is published as ``status.specDefaults``.
"""

from __future__ import annotations

from typing import Any

from ..api.common import ResourceRequirements, SecretKeyValue
from ..api.modelregistry import ModelRegistrySpec
from ..platform.capabilities import PLAIN_KUBERNETES, Capabilities
from ..settings import OperatorSettings
from .security.defaults import security_defaults

DEFAULT_REST_RESOURCES = ResourceRequirements(requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "256Mi"})
GENERATED_POSTGRES_USER = "modelregistry"
GENERATED_POSTGRES_DATABASE = "model_registry"


def postgres_names(registry_name: str) -> dict[str, str]:
    return {
        "name": f"{registry_name}-postgres",
        "secret_name": f"{registry_name}-postgres-credentials",
        "pvc_name": f"{registry_name}-postgres-storage",
    }


def apply_runtime_defaults(
    spec: ModelRegistrySpec,
    settings: OperatorSettings,
    registry_name: str,
    capabilities: Capabilities = PLAIN_KUBERNETES,
) -> ModelRegistrySpec:
    """The spec as the operator will act on it (pure)."""
    rest = spec.rest.model_copy(
        update={
            "image": spec.rest.image or settings.registry_image,
            "resources": spec.rest.resources or DEFAULT_REST_RESOURCES,
        }
    )
    updates: dict[str, Any] = {"rest": rest}
    pg = spec.postgres
    if pg is not None and pg.generate_deployment:
        names = postgres_names(registry_name)
        updates["postgres"] = pg.model_copy(
            update={
                "host": names["name"],
                "port": 5432,
                "username": pg.username or GENERATED_POSTGRES_USER,
                "database": pg.database or GENERATED_POSTGRES_DATABASE,
                "password_secret": SecretKeyValue(name=names["secret_name"], key="password"),
                "image": pg.image or settings.postgres_image,
            }
        )
    updates.update(security_defaults(spec, settings, registry_name, capabilities))
    return spec.model_copy(update=updates)


def spec_json(spec: ModelRegistrySpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def merge_patch(source: Any, target: Any) -> Any:
    """RFC 7386 JSON merge patch that turns source into target."""
    if not isinstance(source, dict) or not isinstance(target, dict):
        return target
    patch: dict[str, Any] = {}
    for key in source.keys() - target.keys():
        patch[key] = None
    for key, value in target.items():
        if key not in source:
            patch[key] = value
        elif source[key] != value:
            patch[key] = merge_patch(source[key], value)
    return patch
