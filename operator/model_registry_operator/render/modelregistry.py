"""Render every object a ModelRegistry wants. Pure: spec and inputs in, manifests out."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..api.modelregistry import ModelRegistrySpec
from ..names import (
    APP_LABEL,
    COMPONENT_LABEL,
    CONFIG_HASH_ANNOTATION,
    COPIED_ANNOTATIONS,
    CREATED_BY_LABEL,
    DATABASE_COMPONENT,
    GROUP,
    INSTANCE_LABEL,
    KUBE_RBAC_PROXY,
    LEGACY_COMPONENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_REGISTRY_KIND,
    MODEL_REGISTRY_VERSION,
    NAME_LABEL,
    PART_OF,
    PART_OF_LABEL,
    PROXY_MODES,
    REGISTRY_COMPONENT,
    REGISTRY_LABEL,
)
from ..platform.capabilities import Capabilities
from ..settings import OperatorSettings
from .database import DatabaseSecrets, database_wiring
from .defaults import postgres_names, rest_resources
from .engine import render_template
from .exposure import gateway as gateway_exposure
from .exposure import openshift as openshift_exposure
from .features import Feature, FeatureContext, IngressService
from .security import istio as istio_mode
from .security import kube_rbac_proxy, oauth_proxy

Obj = dict[str, Any]

LOOPBACK = "127.0.0.1"
ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - no proxy: the REST port is the registry's API port

CORE_TEMPLATES = [
    "modelregistry/core/serviceaccount.yaml.j2",
    "modelregistry/core/database-secret.yaml.j2",
    "modelregistry/core/service.yaml.j2",
    "modelregistry/core/role.yaml.j2",
    "modelregistry/core/deployment.yaml.j2",
]
POSTGRES_TEMPLATES = [
    "modelregistry/postgres/secret.yaml.j2",
    "modelregistry/postgres/pvc.yaml.j2",
    "modelregistry/postgres/deployment.yaml.j2",
    "modelregistry/postgres/service.yaml.j2",
    "modelregistry/postgres/networkpolicy.yaml.j2",
]


@dataclass(frozen=True)
class RegistryRef:
    """Identity of the ModelRegistry being rendered."""

    name: str
    namespace: str
    uid: str
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderInputs:
    """What the reconcile read from the cluster: secret values and a digest of referenced data."""

    database: DatabaseSecrets = field(default_factory=DatabaseSecrets)
    generated_postgres_password: str = ""
    referenced_digest: str = ""
    oauth_cookie_secret: str = ""
    istio_ingress: IngressService | None = None


def registry_labels(name: str, component: str = REGISTRY_COMPONENT) -> dict[str, str]:
    return {
        APP_LABEL: name,
        LEGACY_COMPONENT_LABEL: component,
        NAME_LABEL: name,
        INSTANCE_LABEL: name,
        COMPONENT_LABEL: component,
        CREATED_BY_LABEL: MANAGED_BY,
        PART_OF_LABEL: PART_OF,
        MANAGED_BY_LABEL: MANAGED_BY,
        REGISTRY_LABEL: name,
    }


def registry_selector(name: str, component: str = REGISTRY_COMPONENT) -> dict[str, str]:
    return {APP_LABEL: name, LEGACY_COMPONENT_LABEL: component, NAME_LABEL: name}


def owner_references(registry: RegistryRef) -> list[Obj]:
    return [
        {
            "apiVersion": f"{GROUP}/{MODEL_REGISTRY_VERSION}",
            "kind": MODEL_REGISTRY_KIND,
            "name": registry.name,
            "uid": registry.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def render_features(
    registry: RegistryRef,
    spec: ModelRegistrySpec,
    settings: OperatorSettings,
    capabilities: Capabilities,
    inputs: RenderInputs,
) -> Feature:
    """The security mode and exposures of a registry, combined (pure)."""
    ctx = FeatureContext(
        registry,
        spec,
        settings,
        capabilities,
        registry_labels(registry.name),
        registry_selector(registry.name),
        owner_references(registry),
    )
    security = (
        kube_rbac_proxy.render(ctx)
        .merge(oauth_proxy.render(ctx, inputs.oauth_cookie_secret))
        .merge(istio_mode.render(ctx, inputs.istio_ingress))
    )
    openshift = openshift_exposure.render(ctx)
    gateway = gateway_exposure.render(ctx)
    combined = security.merge(openshift).merge(gateway)  # later annotations win: the gateway address
    combined.hosts = gateway.hosts + security.hosts + openshift.hosts
    return combined


def render_model_registry(
    registry: RegistryRef,
    spec: ModelRegistrySpec,
    settings: OperatorSettings,
    capabilities: Capabilities,
    inputs: RenderInputs,
    features: Feature | None = None,
) -> list[Obj]:
    """Every object for a validated spec with run-time defaults applied."""
    if features is None:
        features = render_features(registry, spec, settings, capabilities, inputs)
    labels = registry_labels(registry.name)
    generated = spec.postgres is not None and bool(spec.postgres.generate_deployment)
    db_secrets = inputs.database
    if generated:  # the DSN uses the password of the database we deploy
        db_secrets = DatabaseSecrets(inputs.generated_postgres_password, inputs.database.ssl_password)
    database = database_wiring(registry.name, spec, db_secrets)
    rest = _rest_listener(spec, features)
    context: dict[str, Any] = {
        "registry": registry,
        "spec": spec,
        "labels": labels,
        "selector": registry_selector(registry.name),
        "pod_labels": {**labels, **features.pod_labels},
        "args": [f"--hostname={rest.host}", f"--port={spec.rest.port}", *database.args],
        "probe_port": rest.probe_port,
        "probe_scheme": rest.probe_scheme,
        "rest_volume_mounts": database.volume_mounts,
        "owner_references": owner_references(registry),
        "database": database,
        "resources": rest_resources(spec.rest.resources).model_dump(mode="json", exclude_none=True),
        "service_annotations": {
            **{k: v for k, v in registry.annotations.items() if k in COPIED_ANNOTATIONS},
            **features.service_annotations,
        },
        "service_ports": _service_ports(spec, features),
        "sidecars": features.containers,
        "volumes": database.volumes + features.volumes,
        "pod_annotations": {
            "openshift.io/required-scc": "restricted-v2",
            **features.pod_annotations,
            # Rolls the pod when the DSN or any referenced Secret / ConfigMap changes.
            CONFIG_HASH_ANNOTATION: _digest(database.dsn, inputs.referenced_digest),
        },
    }
    objects: list[Obj] = []
    if generated and spec.postgres is not None:
        names = postgres_names(registry.name)
        pg_selector = registry_selector(names["name"], DATABASE_COMPONENT)
        pg_labels = {**registry_labels(registry.name, component=DATABASE_COMPONENT), **pg_selector}
        context["postgres"] = {
            **names,
            "labels": pg_labels,
            "selector": pg_selector,
            "pod_labels": pg_labels,
            "username": spec.postgres.username,
            "database": spec.postgres.database,
            "password": inputs.generated_postgres_password,
            "image": spec.postgres.image,
        }
        for template in POSTGRES_TEMPLATES:
            objects.extend(render_template(template, context))
    for template in CORE_TEMPLATES:
        objects.extend(render_template(template, context))
    objects.extend(features.objects)
    return objects


@dataclass(frozen=True)
class RestListener:
    """Where the REST server listens and where its probes reach it."""

    host: str
    probe_port: int | str
    probe_scheme: str


def _rest_listener(spec: ModelRegistrySpec, features: Feature) -> RestListener:
    """Behind a proxy the REST server listens on the pod's loopback only, so nothing reaches
    it around the proxy; its probes then go through the proxy, which lets only the health paths
    (:data:`.security.proxy.HEALTH_PATHS`) through unauthenticated. Without a proxy (and with Istio, whose
    sidecar forwards inbound traffic to the pod address) it listens on every address."""
    proxy = spec.kube_rbac_proxy if features.mode == KUBE_RBAC_PROXY else spec.oauth_proxy
    if features.mode in PROXY_MODES and proxy is not None:
        return RestListener(LOOPBACK, proxy.port, "HTTPS")
    return RestListener(ALL_ADDRESSES, "http-api", "HTTP")


def _service_ports(spec: ModelRegistrySpec, features: Feature) -> list[Obj]:
    http = {
        "name": "http-api",
        "protocol": "TCP",
        "appProtocol": "http",
        "port": spec.rest.port,
        "targetPort": "http-api",
    }
    return ([] if features.replaces_http_port else [http]) + features.service_ports


def digest_of(data: dict[str, Any]) -> str:
    """Stable digest of referenced Secret / ConfigMap contents (never the contents themselves)."""
    return _digest(json.dumps(data, sort_keys=True))
