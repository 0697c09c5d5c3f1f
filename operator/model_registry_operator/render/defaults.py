"""Run-time defaults: what the operator fills in without writing it to the spec.

Images and resources come from the operator's settings so that an operator upgrade rolls
registries to the new image; the difference is published as ``status.specDefaults``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..api.common import ResourceRequirements, SecretKeyValue
from ..api.modelregistry import ModelRegistrySpec
from ..api.quantity import parse_quantity
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


def _quantity(value: int | str) -> Decimal | None:
    try:
        return parse_quantity(value)
    except (ValueError, ArithmeticError):  # the schema checks the format; never fail the render on it
        return None


def rest_resources(given: ResourceRequirements | None) -> ResourceRequirements:
    """The REST container's resources: what the spec gives, the defaults for whatever it leaves out.

    ``resources: {}`` (or only ``limits.cpu``, ...) no longer removes every limit: each default
    request and limit missing from the spec is added, so the container always has a memory limit.
    A default never contradicts the spec: a default limit is raised to the request given for the
    same resource, a default request lowered to the limit given.
    """
    if given is None:
        return DEFAULT_REST_RESOURCES.model_copy(deep=True)
    requests = dict(given.requests or {})
    limits = dict(given.limits or {})
    for name, default in (DEFAULT_REST_RESOURCES.limits or {}).items():
        if name not in limits:
            request = _quantity(requests[name]) if name in requests else None
            default_q = _quantity(default)
            raise_to = request is not None and default_q is not None and request > default_q
            limits[name] = requests[name] if raise_to else default
    for name, default in (DEFAULT_REST_RESOURCES.requests or {}).items():
        if name not in requests:
            limit = _quantity(limits[name]) if name in limits else None
            default_q = _quantity(default)
            lower_to = limit is not None and default_q is not None and limit < default_q
            requests[name] = limits[name] if lower_to else default
    return ResourceRequirements(requests=requests, limits=limits)


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
            "resources": rest_resources(spec.rest.resources),
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
