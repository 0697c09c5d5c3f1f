"""What the cluster offers beyond plain Kubernetes; discovered at run time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..kinds import CAPABILITY


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
