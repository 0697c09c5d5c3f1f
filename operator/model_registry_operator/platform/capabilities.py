"""What the cluster offers beyond plain Kubernetes; discovered at run time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..kinds import (
    AUTHORINO_API,
    CAPABILITY,
    CONFIG_API,
    GATEWAY_API,
    ISTIO_MODE_APIS,
    ISTIO_NETWORKING_API,
    ISTIO_SECURITY_API,
    OPTIONAL_APIS,
    ROUTE_API,
    USER_API,
)


@dataclass(frozen=True)
class Capabilities:
    """Optional APIs present on the cluster (all absent on plain Kubernetes).

    One flag per optional API group, named in ``kinds.CAPABILITY``.
    """

    openshift_routes: bool = False
    openshift_users: bool = False
    openshift_config: bool = False
    istio: bool = False
    istio_security: bool = False
    authorino: bool = False
    gateway_api: bool = False
    cluster_domain: str = ""

    @property
    def openshift(self) -> bool:
        return self.openshift_routes

    @property
    def groups(self) -> frozenset[str]:
        """The optional API groups present."""
        return frozenset(group for group, flag in CAPABILITY.items() if getattr(self, flag))

    def missing(self, *groups: str) -> list[str]:
        """Which of ``groups`` the cluster does not serve."""
        have = self.groups
        return [group for group in groups if group not in have]

    @classmethod
    def from_groups(cls, groups: set[str] | frozenset[str], cluster_domain: str = "") -> Capabilities:
        fields: dict[str, Any] = {flag: group in groups for group, flag in CAPABILITY.items()}
        return cls(**fields, cluster_domain=cluster_domain)


PLAIN_KUBERNETES = Capabilities()

# Short names of the optional APIs (``render --api``), each standing for the groups it serves.
# Istio always serves both of its groups; an API group's own name is accepted too.
API_NAMES: dict[str, tuple[str, ...]] = {
    "openshift": (ROUTE_API, USER_API, CONFIG_API),
    "openshift-routes": (ROUTE_API,),
    "openshift-users": (USER_API,),
    "openshift-config": (CONFIG_API,),
    "istio": (ISTIO_NETWORKING_API, ISTIO_SECURITY_API),
    "authorino": (AUTHORINO_API,),
    "gateway": (GATEWAY_API,),
    **{group: (group,) for group in OPTIONAL_APIS},
}
# The optional APIs of common kinds of cluster (``render --platform``).
PLATFORMS: dict[str, tuple[str, ...]] = {
    "kubernetes": (),
    "openshift": API_NAMES["openshift"],
    "istio": ISTIO_MODE_APIS,
    "openshift-istio": (*API_NAMES["openshift"], *ISTIO_MODE_APIS),
}
