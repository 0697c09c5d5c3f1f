"""What the cluster offers beyond plain Kubernetes; discovered at run time."""

from __future__ import annotations

from dataclasses import dataclass

ROUTE_API = "route.openshift.io"
USER_API = "user.openshift.io"
CONFIG_API = "config.openshift.io"
ISTIO_NETWORKING_API = "networking.istio.io"
ISTIO_SECURITY_API = "security.istio.io"
AUTHORINO_API = "authorino.kuadrant.io"
GATEWAY_API = "gateway.networking.k8s.io"

OPTIONAL_APIS = (
    ROUTE_API,
    USER_API,
    CONFIG_API,
    ISTIO_NETWORKING_API,
    ISTIO_SECURITY_API,
    AUTHORINO_API,
    GATEWAY_API,
)
ISTIO_MODE_APIS = (ISTIO_NETWORKING_API, ISTIO_SECURITY_API, AUTHORINO_API)


@dataclass(frozen=True)
class Capabilities:
    """Optional APIs present on the cluster (all absent on plain Kubernetes)."""

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
        present = (
            (ROUTE_API, self.openshift_routes),
            (USER_API, self.openshift_users),
            (CONFIG_API, self.openshift_config),
            (ISTIO_NETWORKING_API, self.istio),
            (ISTIO_SECURITY_API, self.istio_security),
            (AUTHORINO_API, self.authorino),
            (GATEWAY_API, self.gateway_api),
        )
        return frozenset(group for group, there in present if there)

    def missing(self, *groups: str) -> list[str]:
        """Which of ``groups`` the cluster does not serve."""
        have = self.groups
        return [group for group in groups if group not in have]

    @classmethod
    def from_groups(cls, groups: set[str] | frozenset[str], cluster_domain: str = "") -> Capabilities:
        return cls(
            openshift_routes=ROUTE_API in groups,
            openshift_users=USER_API in groups,
            openshift_config=CONFIG_API in groups,
            istio=ISTIO_NETWORKING_API in groups,
            istio_security=ISTIO_SECURITY_API in groups,
            authorino=AUTHORINO_API in groups,
            gateway_api=GATEWAY_API in groups,
            cluster_domain=cluster_domain,
        )


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
