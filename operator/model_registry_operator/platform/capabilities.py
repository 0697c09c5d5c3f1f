"""What the cluster offers beyond plain Kubernetes; discovered at run time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """Optional APIs present on the cluster (all absent on plain Kubernetes)."""

    openshift_routes: bool = False
    openshift_users: bool = False
    openshift_config: bool = False
    istio: bool = False
    authorino: bool = False
    gateway_api: bool = False
    cluster_domain: str = ""

    @property
    def openshift(self) -> bool:
        return self.openshift_routes


PLAIN_KUBERNETES = Capabilities()
