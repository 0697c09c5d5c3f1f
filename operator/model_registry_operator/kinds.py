"""Every kind the operator reads or writes, in one table.

One row per kind: where it lives (group / version / plural, namespaced or cluster-scoped),
whether it belongs to an optional API the cluster may not serve (and which capability says it
does), what the operator does with it, and the API verbs it needs for that. The handlers read
the watches from it, the reconcile its prune and finalizer lists, discovery the optional API
groups, :mod:`kube` its request paths, and :mod:`rbac` generates ``config/rbac/role.yaml`` from it
(``make manifests``): adding a permission is one row here.

Flags:

- ``watched``: the CR kinds whose kopf handlers follow this kind as their children (events of
  objects labelled ours; a hand edit or deletion of a registry's child is repaired at once).
  ServiceAccounts, Roles, RoleBindings, NetworkPolicies and PVCs are repaired by the periodic
  drift check instead: watching them cluster-wide costs every operator an event stream per kind
  for objects that nobody edits in practice.
- ``prunable``: a registry may own objects of it in its own namespace; what is labelled as the
  registry's, owned by it and no longer rendered is deleted.
- ``unowned``: objects of it may be cluster-scoped or in another namespace, where no owner
  reference can collect them: they carry the registry's name and namespace as labels, pruning
  and the finalizer find them by those labels.

Pure data, no I/O: the bottom layer with :mod:`names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from .names import (
    GROUP,
    MODEL_REGISTRY_KIND,
    MODEL_REGISTRY_PLURAL,
    MODEL_REGISTRY_VERSION,
    MODEL_UPLOAD_JOB_KIND,
    MODEL_UPLOAD_JOB_PLURAL,
    MODEL_UPLOAD_JOB_VERSION,
)

# -- optional APIs: present on some clusters only, discovered at run time ------------------
ROUTE_API: Final = "route.openshift.io"
USER_API: Final = "user.openshift.io"
CONFIG_API: Final = "config.openshift.io"
ISTIO_NETWORKING_API: Final = "networking.istio.io"
ISTIO_SECURITY_API: Final = "security.istio.io"
AUTHORINO_API: Final = "authorino.kuadrant.io"
GATEWAY_API: Final = "gateway.networking.k8s.io"

CAPABILITY: Final = {
    ROUTE_API: "openshift_routes",
    USER_API: "openshift_users",
    CONFIG_API: "openshift_config",
    ISTIO_NETWORKING_API: "istio",
    ISTIO_SECURITY_API: "istio_security",
    AUTHORINO_API: "authorino",
    GATEWAY_API: "gateway_api",
}
"""Each optional API group -> the :class:`~.platform.capabilities.Capabilities` field saying it is served."""
OPTIONAL_APIS: Final = tuple(CAPABILITY)
ISTIO_MODE_APIS: Final = (ISTIO_NETWORKING_API, ISTIO_SECURITY_API, AUTHORINO_API)

# -- verbs ---------------------------------------------------------------------------------
READ: Final = ("get", "list", "watch")
MANAGE: Final = (*READ, "create", "patch", "delete")
"""What server-side apply (create or patch), pruning (list, delete) and the watches need."""


@dataclass(frozen=True)
class Kind:
    """One kind of the table (see the module's docstring for the flags)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    verbs: tuple[str, ...] = READ
    subresources: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(subresource, verbs) the operator needs beyond the kind's own verbs."""
    watched: frozenset[str] = field(default_factory=frozenset)
    prunable: bool = False
    unowned: bool = False
    why: str = ""
    """Why the operator needs a verb the flags do not explain (the generated role's comment)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def optional(self) -> bool:
        """Whether the kind belongs to an optional API (watched, listed, pruned only while served)."""
        return self.group in CAPABILITY

    @property
    def capability(self) -> str | None:
        """The Capabilities field saying the cluster serves this kind's API (None: always served)."""
        return CAPABILITY.get(self.group)

    @property
    def resource(self) -> tuple[str, str, str]:
        """(group, version, plural), as kopf's handlers name a resource."""
        return self.group, self.version, self.plural

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        """The API server path of the collection, of one object, or of one of its subresources."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


_REGISTRY = frozenset({MODEL_REGISTRY_KIND})
_UPLOAD = frozenset({MODEL_UPLOAD_JOB_KIND})
_CR_SUBRESOURCES = (("status", ("get", "patch")), ("finalizers", ("update",)))
"""Status writes, and ``finalizers`` for the children's owner references with blockOwnerDeletion."""

MODEL_REGISTRY: Final = Kind(
    GROUP,
    MODEL_REGISTRY_VERSION,
    MODEL_REGISTRY_KIND,
    MODEL_REGISTRY_PLURAL,
    verbs=(*READ, "patch"),
    subresources=_CR_SUBRESOURCES,
    why="patch: kopf's finalizer and its annotations",
)
MODEL_UPLOAD_JOB: Final = Kind(
    GROUP,
    MODEL_UPLOAD_JOB_VERSION,
    MODEL_UPLOAD_JOB_KIND,
    MODEL_UPLOAD_JOB_PLURAL,
    verbs=(*READ, "patch"),
    subresources=_CR_SUBRESOURCES,
    why="patch: kopf's progress annotations",
)
SERVICE_ACCOUNT: Final = Kind("", "v1", "ServiceAccount", "serviceaccounts", verbs=MANAGE, prunable=True)
SERVICE: Final = Kind("", "v1", "Service", "services", verbs=MANAGE, watched=_REGISTRY, prunable=True)
SECRET: Final = Kind("", "v1", "Secret", "secrets", verbs=MANAGE, prunable=True)
"""Watched too, by its own handler: a Secret a registry references changes what it renders."""
CONFIG_MAP: Final = Kind("", "v1", "ConfigMap", "configmaps", verbs=MANAGE, prunable=True)
"""Watched like :data:`SECRET`."""
PVC: Final = Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", verbs=MANAGE, prunable=True)
POD: Final = Kind("", "v1", "Pod", "pods", watched=_REGISTRY | _UPLOAD)
EVENT: Final = Kind("", "v1", "Event", "events", verbs=("create",), why="posted through kopf")
DEPLOYMENT: Final = Kind("apps", "v1", "Deployment", "deployments", verbs=MANAGE, watched=_REGISTRY, prunable=True)
JOB: Final = Kind("batch", "v1", "Job", "jobs", verbs=MANAGE, watched=_UPLOAD)
ENDPOINT_SLICE: Final = Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", watched=_REGISTRY)
NETWORK_POLICY: Final = Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", verbs=MANAGE, prunable=True)
ROLE: Final = Kind("rbac.authorization.k8s.io", "v1", "Role", "roles", verbs=MANAGE, prunable=True)
ROLE_BINDING: Final = Kind(
    "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", verbs=MANAGE, prunable=True
)
CLUSTER_ROLE_BINDING: Final = Kind(
    "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False, MANAGE, unowned=True
)
CRD: Final = Kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False)
"""Watched by the discovery's handler: an optional API's CRD installed or removed."""
# Optional APIs of the security and exposure modes.
ROUTE: Final = Kind(
    ROUTE_API,
    "v1",
    "Route",
    "routes",
    verbs=MANAGE,
    subresources=(("custom-host", ("create", "update")),),  # Routes with spec.host
    watched=_REGISTRY,
    prunable=True,
    unowned=True,  # the gateway Routes live in the ingress gateway's namespace
)
GROUP_KIND: Final = Kind(USER_API, "v1", "Group", "groups", False, MANAGE, watched=_REGISTRY, unowned=True)
INGRESS_CONFIG: Final = Kind(CONFIG_API, "v1", "Ingress", "ingresses", False)
"""``ingresses.config.openshift.io/cluster``: the cluster's apps domain (watched by the discovery's handler)."""
GATEWAY: Final = Kind(
    ISTIO_NETWORKING_API, "v1beta1", "Gateway", "gateways", verbs=MANAGE, watched=_REGISTRY, prunable=True
)
VIRTUAL_SERVICE: Final = Kind(
    ISTIO_NETWORKING_API, "v1beta1", "VirtualService", "virtualservices", verbs=MANAGE, watched=_REGISTRY, prunable=True
)
DESTINATION_RULE: Final = Kind(
    ISTIO_NETWORKING_API,
    "v1beta1",
    "DestinationRule",
    "destinationrules",
    verbs=MANAGE,
    watched=_REGISTRY,
    prunable=True,
)
AUTHORIZATION_POLICY: Final = Kind(
    ISTIO_SECURITY_API,
    "v1beta1",
    "AuthorizationPolicy",
    "authorizationpolicies",
    verbs=MANAGE,
    watched=_REGISTRY,
    prunable=True,
)
AUTH_CONFIG: Final = Kind(
    AUTHORINO_API, "v1beta3", "AuthConfig", "authconfigs", verbs=MANAGE, watched=_REGISTRY, prunable=True
)
HTTP_ROUTE: Final = Kind(GATEWAY_API, "v1", "HTTPRoute", "httproutes", verbs=MANAGE, watched=_REGISTRY, unowned=True)
REFERENCE_GRANT: Final = Kind(
    GATEWAY_API, "v1beta1", "ReferenceGrant", "referencegrants", verbs=MANAGE, watched=_REGISTRY, prunable=True
)

ALL: Final = (
    MODEL_REGISTRY,
    MODEL_UPLOAD_JOB,
    SERVICE_ACCOUNT,
    SERVICE,
    SECRET,
    CONFIG_MAP,
    PVC,
    POD,
    EVENT,
    DEPLOYMENT,
    JOB,
    ENDPOINT_SLICE,
    NETWORK_POLICY,
    ROLE,
    ROLE_BINDING,
    CLUSTER_ROLE_BINDING,
    CRD,
    ROUTE,
    GROUP_KIND,
    INGRESS_CONFIG,
    GATEWAY,
    VIRTUAL_SERVICE,
    DESTINATION_RULE,
    AUTHORIZATION_POLICY,
    AUTH_CONFIG,
    HTTP_ROUTE,
    REFERENCE_GRANT,
)
"""The table."""

KINDS: Final = {(k.api_version, k.kind): k for k in ALL}

PRUNABLE: Final = tuple(k for k in ALL if k.prunable)
UNOWNED: Final = tuple(k for k in ALL if k.unowned)


def watched_by(owner_kind: str) -> tuple[Kind, ...]:
    """The kinds whose events the handlers of ``owner_kind`` follow as its children."""
    return tuple(k for k in ALL if owner_kind in k.watched)


def served(kinds: tuple[Kind, ...], groups: frozenset[str] | set[str]) -> list[Kind]:
    """Those of ``kinds`` the cluster serves: always for a plain API, for an optional one when
    its group is among ``groups`` (the optional groups discovered)."""
    return [k for k in kinds if not k.optional or k.group in groups]


def lookup(api_version: str, kind: str) -> Kind:
    return KINDS[(api_version, kind)]


def kind_of(obj: Mapping[str, Any]) -> Kind:
    key = (str(obj["apiVersion"]), str(obj["kind"]))
    try:
        return KINDS[key]
    except KeyError:
        raise ValueError(f"unknown kind {key[1]} in {key[0]}") from None


@dataclass(frozen=True)
class Rule:
    """A permission the operator needs for no kind of the table: one row of the generated role."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    """Said in the generated role's comment and in docs/operations.md."""
    resource_names: tuple[str, ...] = ()


EXTRA_RULES: Final = (
    Rule(
        ("authentication.k8s.io",),
        ("tokenreviews",),
        ("create",),
        "the metrics endpoint authenticates its callers; holding what system:auth-delegator grants lets the "
        "operator bind it to the proxies' ServiceAccounts (ClusterRoleBinding <name>-auth-delegator) without bind",
    ),
    Rule(
        ("authorization.k8s.io",),
        ("subjectaccessreviews",),
        ("create",),
        "the metrics endpoint authorizes its callers; the other half of system:auth-delegator (as above)",
    ),
    Rule(
        ("",),
        ("endpoints",),
        ("get",),
        "not used by the operator: the Role registry-user-<name> grants it, and the API server lets the "
        "operator create a Role only for what it holds itself (no escalate)",
    ),
    Rule(
        ("admissionregistration.k8s.io",),
        ("validatingwebhookconfigurations",),
        ("get", "patch"),
        "the admission webhooks' own certificate (ENABLE_WEBHOOKS, WEBHOOK_CERT_SOURCE=operator): its CA bundle "
        "patched into config/webhook's configuration, by name (the Secret holding it is covered by the Secret row)",
        resource_names=("model-registry-operator-validating-webhook-configuration",),
    ),
    Rule(
        ("admissionregistration.k8s.io",),
        ("mutatingwebhookconfigurations",),
        ("get", "patch"),
        "as above, for the mutating webhook's configuration",
        resource_names=("model-registry-operator-mutating-webhook-configuration",),
    ),
)
"""Permissions the operator holds for no kind of the table (the API server lets it create a Role
or a binding only for what it holds itself, so holding them spares ``escalate`` and ``bind``)."""

LEADER_ELECTION_RULES: Final = (
    Rule(
        ("coordination.k8s.io",),
        ("leases",),
        ("get", "create", "update"),
        "leader election (--leader-elect): the Lease the active replica holds and renews",
    ),
)
"""The namespaced Role ``leader-election-role`` in the operator's own namespace
(``config/rbac/leader_election_role.yaml``): what one replica needs to take the lead."""
