"""Offline rendering for ``model-registry-operator render -f CR.yaml``: no cluster needed.

Secret values are not read; placeholders stand in for them, so the output is safe to share.
What the live reconcile discovers on the cluster is given instead (:class:`OfflineCluster`):
the optional APIs served (``--platform`` / ``--api``), the cluster's ingress domain and the
Istio ingress gateway Service; the render is then the one the operator makes on such a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api import modeluploadjob as upload_api
from ..api.validation import parse_spec
from ..kinds import CONFIG_API
from ..names import MODEL_REGISTRY_KIND as KIND
from ..names import MODEL_UPLOAD_JOB_KIND
from ..platform.capabilities import API_NAMES, PLAIN_KUBERNETES, PLATFORMS, Capabilities
from ..settings import OperatorSettings
from .database import DatabaseSecrets
from .defaults import apply_runtime_defaults
from .features import IngressService
from .modelregistry import RegistryRef, RenderInputs, render_features, render_model_registry
from .modeluploadjob import (
    UploadJobRef,
    address_endpoint,
    registry_endpoint,
    render_model_upload_job,
    token_problem,
)

PLACEHOLDER_PASSWORD = "<from-secret>"  # noqa: S105 - a placeholder, not a credential
# Stands for the domain of ingresses.config.openshift.io/cluster when no --domain gives it.
PLACEHOLDER_CLUSTER_DOMAIN = "<cluster-domain>"
# Istio's default ingress gateway: the Service the gateway Routes point at on OpenShift.
DEFAULT_INGRESS_SERVICE = IngressService("istio-system", "istio-ingressgateway")


@dataclass(frozen=True)
class OfflineCluster:
    """The cluster the render assumes: what the live reconcile would discover on it."""

    capabilities: Capabilities = PLAIN_KUBERNETES
    ingress_service: IngressService = DEFAULT_INGRESS_SERVICE


def api_groups(names: Iterable[str]) -> frozenset[str]:
    """The API groups a list of API names (``API_NAMES``) stands for; ValueError naming the
    unknown ones and listing the valid names."""
    wanted = [name.strip() for name in names if name.strip()]
    unknown = [name for name in wanted if name not in API_NAMES]
    if unknown:
        raise ValueError(f"unknown API {', '.join(map(repr, unknown))}; valid names: {', '.join(API_NAMES)}")
    return frozenset(group for name in wanted for group in API_NAMES[name])


def offline_cluster(
    platform: str = "kubernetes", apis: Iterable[str] = (), domain: str | None = None
) -> OfflineCluster:
    """The cluster of a ``--platform`` preset plus the ``--api`` names; the cluster domain only
    where the operator reads it (config.openshift.io served), a placeholder when not given."""
    groups = frozenset(PLATFORMS[platform]) | api_groups(apis)
    if domain and CONFIG_API not in groups:
        raise ValueError(
            f"the operator reads the cluster domain from {CONFIG_API}, which is not served here "
            "(add --api openshift-config or use --platform openshift; DEFAULT_DOMAIN or the spec's domain "
            "work on any cluster)"
        )
    cluster_domain = (domain or PLACEHOLDER_CLUSTER_DOMAIN) if CONFIG_API in groups else ""
    return OfflineCluster(Capabilities.from_groups(groups, cluster_domain))


def render_documents(
    docs: list[Any],
    settings: OperatorSettings | None = None,
    cluster: OfflineCluster | None = None,
    notes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Every object the operator would apply on ``cluster``; what it would leave out there (an API
    not served) is added to ``notes``."""
    settings = settings or OperatorSettings()
    cluster = cluster or OfflineCluster()
    capabilities = cluster.capabilities
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            continue
        meta = doc.get("metadata") or {}
        name = meta.get("name") or "model-registry"
        spec, problems = parse_spec(doc.get("spec"))
        if spec is None:
            raise ValueError(f"{KIND} {name}: " + "; ".join(str(p) for p in problems))
        effective = apply_runtime_defaults(spec, settings, name, capabilities)
        registry = RegistryRef(name, meta.get("namespace") or "default", "<uid>", dict(meta.get("annotations") or {}))
        inputs = RenderInputs(
            DatabaseSecrets(password=PLACEHOLDER_PASSWORD, ssl_password=PLACEHOLDER_PASSWORD),
            generated_postgres_password=PLACEHOLDER_PASSWORD,
            oauth_cookie_secret=PLACEHOLDER_PASSWORD,
            # The live reconcile looks the Service up only where gateway Routes can be made.
            istio_ingress=cluster.ingress_service if capabilities.openshift_routes else None,
        )
        features = render_features(registry, effective, settings, capabilities, inputs)
        if notes is not None and features.missing_apis:
            notes.append(
                f"{KIND} {name}: left out what needs {', '.join(features.missing_apis)} (not served here: "
                "--platform / --api)"
            )
        objects.extend(render_model_registry(registry, effective, settings, capabilities, inputs, features))
    registries = {
        (doc.get("metadata") or {}).get("name"): doc.get("spec") or {}
        for doc in docs
        if isinstance(doc, dict) and doc.get("kind") == KIND
    }
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == MODEL_UPLOAD_JOB_KIND:
            objects.extend(_render_upload(doc, registries, settings))
    return objects


def _render_upload(doc: dict[str, Any], registries: dict[Any, Any], settings: OperatorSettings) -> list[dict[str, Any]]:
    """A ModelUploadJob's ConfigMap and Job; a registry by name resolves against the same input."""
    meta = doc.get("metadata") or {}
    name = meta.get("name") or "model-upload"
    namespace = meta.get("namespace") or "default"
    raw = doc.get("spec") or {}
    try:
        spec = upload_api.ModelUploadJobSpec.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{MODEL_UPLOAD_JOB_KIND} {name}: {exc}") from None
    target = spec.registry
    if target.address is not None:
        endpoint = address_endpoint(target)
    else:
        endpoint = registry_endpoint(
            str(target.name),
            namespace,
            registries.get(target.name) or {},
            allow_token_over_http=bool(target.allow_token_over_http),
        )
        problem = token_problem(target, endpoint)
        if problem:
            raise ValueError(f"{MODEL_UPLOAD_JOB_KIND} {name}: {problem}")
    ref = UploadJobRef(name, namespace, "<uid>")
    return render_model_upload_job(ref, spec, raw, endpoint, settings.upload_job_image)
