"""What an optional feature (a security mode, an exposure) adds to a registry.

Each feature module has one pure function ``render(ctx) -> Feature``: its own objects when
enabled, an empty :class:`Feature` when disabled (pruning then removes what it made before),
plus what it contributes to the core Deployment and Service.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..api.modelregistry import ModelRegistrySpec
from ..names import NAMESPACE_LABEL
from ..platform.capabilities import Capabilities
from ..settings import OperatorSettings

if TYPE_CHECKING:
    from .modelregistry import RegistryRef

Obj = dict[str, Any]


class ModeConfigurationError(ValueError):
    """A mode lacks a value that neither the spec nor the operator settings provide."""


@dataclass(frozen=True)
class RouteWatch:
    """An OpenShift Route whose admission a condition waits for."""

    namespace: str
    name: str
    condition: str  # the condition type it feeds


@dataclass(frozen=True)
class IngressService:
    """The Istio ingress gateway's Service (gateway Routes point at it, in its namespace)."""

    namespace: str
    name: str


@dataclass
class Feature:
    """One feature's objects and its contributions to the core objects."""

    objects: list[Obj] = field(default_factory=list)
    containers: list[Obj] = field(default_factory=list)
    volumes: list[Obj] = field(default_factory=list)
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)
    service_ports: list[Obj] = field(default_factory=list)
    replaces_http_port: bool = False
    service_annotations: dict[str, str] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    missing_apis: list[str] = field(default_factory=list)
    mode: str | None = None
    sidecar: str | None = None  # container whose readiness the mode condition needs
    routes: list[RouteWatch] = field(default_factory=list)
    auth_configs: list[str] = field(default_factory=list)  # AuthConfig names whose Ready counts
    problems: dict[str, str] = field(default_factory=dict)  # condition type -> why it cannot be True

    def for_status(self) -> Feature:
        """Only what the status reads later (the rendered objects and pod parts are kept
        elsewhere, compressed): a registry's reconcile record stays small."""
        return replace(
            self,
            objects=[],
            containers=[],
            volumes=[],
            pod_labels={},
            pod_annotations={},
            service_ports=[],
            service_annotations={},
        )

    def merge(self, other: Feature) -> Feature:
        return Feature(
            objects=self.objects + other.objects,
            containers=self.containers + other.containers,
            volumes=self.volumes + other.volumes,
            pod_labels={**self.pod_labels, **other.pod_labels},
            pod_annotations={**self.pod_annotations, **other.pod_annotations},
            service_ports=self.service_ports + other.service_ports,
            replaces_http_port=self.replaces_http_port or other.replaces_http_port,
            service_annotations={**self.service_annotations, **other.service_annotations},
            hosts=self.hosts + other.hosts,
            missing_apis=self.missing_apis + [a for a in other.missing_apis if a not in self.missing_apis],
            mode=self.mode or other.mode,
            sidecar=self.sidecar or other.sidecar,
            routes=self.routes + other.routes,
            auth_configs=self.auth_configs + other.auth_configs,
            problems={**self.problems, **other.problems},
        )


@dataclass(frozen=True)
class FeatureContext:
    """Everything a feature renders from (and the template context it shares)."""

    registry: RegistryRef
    spec: ModelRegistrySpec
    settings: OperatorSettings
    capabilities: Capabilities
    labels: dict[str, str]
    selector: dict[str, str]
    owner_references: list[Obj]

    @property
    def cluster_labels(self) -> dict[str, str]:
        """Labels of cluster-scoped and cross-namespace objects: they name the registry's namespace."""
        return {**self.labels, NAMESPACE_LABEL: self.registry.namespace}

    def template_context(self, **extra: Any) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "spec": self.spec,
            "settings": self.settings,
            "labels": self.labels,
            "cluster_labels": self.cluster_labels,
            "selector": self.selector,
            "owner_references": self.owner_references,
            **extra,
        }
