"""Every name the operator shares with the cluster and its users, defined once.

The API group and versions of our custom resources, the labels and annotations on what the
operator creates, its finalizer and field manager, the condition types and reasons clients
match on, and the ids of the security modes. Each is a contract with someone outside this
package (kubectl users, scripts waiting on a condition, the upstream operator's objects), so
each is spelled here only: the rest of the package imports it, the templates receive it as a
value. This module imports nothing of the package (the bottom layer, see pyproject.toml).
"""

from __future__ import annotations

from typing import Final

# -- our API ------------------------------------------------------------------------------
GROUP: Final = "modelregistry.opendatahub.io"

MODEL_REGISTRY_KIND: Final = "ModelRegistry"
MODEL_REGISTRY_PLURAL: Final = "modelregistries"
MODEL_REGISTRY_SINGULAR: Final = "modelregistry"
MODEL_REGISTRY_SHORT_NAMES: Final = ("mr",)
MODEL_REGISTRY_VERSION: Final = "v1beta1"
"""The storage version (upstream's)."""
MODEL_REGISTRY_DEPRECATED_VERSION: Final = "v1alpha1"

MODEL_UPLOAD_JOB_KIND: Final = "ModelUploadJob"
MODEL_UPLOAD_JOB_PLURAL: Final = "modeluploadjobs"
MODEL_UPLOAD_JOB_SINGULAR: Final = "modeluploadjob"
MODEL_UPLOAD_JOB_SHORT_NAMES: Final = ("muj",)
MODEL_UPLOAD_JOB_VERSION: Final = "v1alpha1"

# -- who we are to the API server ---------------------------------------------------------
OPERATOR: Final = "model-registry-operator"
FIELD_MANAGER: Final = OPERATOR
"""The field manager of every server-side apply, and the reporting component of our Events."""
FINALIZER: Final = f"{GROUP}/finalizer"
"""Set by kopf on every registry; its delete handler removes what owner references cannot collect."""
KOPF_PREFIX: Final = GROUP
"""kopf's own annotations (handler progress, diff base) go under our group, not kopf.zalando.org."""
KOPF_DIFFBASE_KEY: Final = "last-handled-configuration"

# -- labels -------------------------------------------------------------------------------
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
CREATED_BY_LABEL: Final = "app.kubernetes.io/created-by"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = OPERATOR
"""The value of ``app.kubernetes.io/managed-by`` on everything we create (the children's watches select it)."""
PART_OF: Final = "model-registry"
# The upstream operator's selector labels (kept: upstream's objects and dashboards select them).
APP_LABEL: Final = "app"
LEGACY_COMPONENT_LABEL: Final = "component"
REGISTRY_COMPONENT: Final = "model-registry"
DATABASE_COMPONENT: Final = "database"
UPLOAD_COMPONENT: Final = "model-upload"

REGISTRY_LABEL: Final = f"{GROUP}/registry"
"""The name of the registry an object belongs to."""
NAMESPACE_LABEL: Final = f"{GROUP}/namespace"
"""... and its namespace, on cluster-scoped and cross-namespace objects (no owner reference)."""
UPLOAD_JOB_LABEL: Final = f"{GROUP}/upload-job"
"""The (first 63 characters of the) name of the ModelUploadJob a Job, Pod or ConfigMap belongs to."""

SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
"""Kubernetes' label naming an EndpointSlice's Service."""
ISTIO_INJECT_LABEL: Final = "sidecar.istio.io/inject"
POLICY_GROUP_LABEL: Final = "network.openshift.io/policy-group"
"""OpenShift's label of the router's namespace (``ingress``): the proxies' NetworkPolicies let it in."""
GENERATED_NAMESPACE_LABEL: Final = "opendatahub.io/generated-namespace"
"""Open Data Hub's label of its dashboard's namespaces, let in by the kube-rbac-proxy NetworkPolicy."""

# -- annotations --------------------------------------------------------------------------
RETAIN_ANNOTATION: Final = f"{GROUP}/retain"
"""``"true"``: never pruned (data that outlives a configuration switch: PVC, generated credentials)."""
CONFIG_HASH_ANNOTATION: Final = f"{GROUP}/config-hash"
"""On the pod template: a digest of the referenced Secrets / ConfigMaps, so a change rolls the pod."""
SPEC_HASH_ANNOTATION: Final = f"{GROUP}/spec-hash"
UPLOAD_JOB_NAME_ANNOTATION: Final = f"{GROUP}/upload-job-name"
"""The full name of the ModelUploadJob (the label holds at most 63 characters of it)."""
COPIED_ANNOTATIONS: Final = ("openshift.io/display-name", "openshift.io/description")
"""Copied from a registry to its Service (upstream's dashboard reads them there)."""
SERVING_CERT_ANNOTATION: Final = "service.beta.openshift.io/serving-cert-secret-name"
EXTERNAL_ADDRESS_ANNOTATION: Final = "routing.opendatahub.io/external-address-rest"
ISTIO_EXCLUDE_OUTBOUND_ANNOTATION: Final = "traffic.sidecar.istio.io/excludeOutboundPorts"
ISTIO_NATIVE_SIDECAR_ANNOTATION: Final = "sidecar.istio.io/nativeSidecar"

# -- security modes -----------------------------------------------------------------------
KUBE_RBAC_PROXY: Final = "kube-rbac-proxy"
OAUTH_PROXY: Final = "oauth-proxy"
ISTIO: Final = "istio"
PROXY_MODES: Final = (KUBE_RBAC_PROXY, OAUTH_PROXY)

# -- condition statuses -------------------------------------------------------------------
TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"

# -- ModelRegistry conditions -------------------------------------------------------------
AVAILABLE: Final = "Available"
PROGRESSING: Final = "Progressing"
DEGRADED: Final = "Degraded"
DATABASE_AVAILABLE: Final = "DatabaseAvailable"
KUBE_RBAC_PROXY_AVAILABLE: Final = "KubeRBACProxyAvailable"
OAUTH_PROXY_AVAILABLE: Final = "OAuthProxyAvailable"
ISTIO_AVAILABLE: Final = "IstioAvailable"
GATEWAY_AVAILABLE: Final = "GatewayAvailable"
MODE_CONDITIONS: Final = (KUBE_RBAC_PROXY_AVAILABLE, OAUTH_PROXY_AVAILABLE, ISTIO_AVAILABLE, GATEWAY_AVAILABLE)
MODE_CONDITION: Final = {
    KUBE_RBAC_PROXY: KUBE_RBAC_PROXY_AVAILABLE,
    OAUTH_PROXY: OAUTH_PROXY_AVAILABLE,
    ISTIO: ISTIO_AVAILABLE,
}
"""The condition of each security mode."""

# Reasons (constant strings: clients match on them).
STARTING: Final = "Starting"
DEPLOYMENT_AVAILABLE: Final = "DeploymentAvailable"
DEPLOYMENT_UNAVAILABLE: Final = "DeploymentUnavailable"
CONFIGURATION_ERROR: Final = "ConfigurationError"
RECONCILE_ERROR: Final = "ReconcileError"
FORBIDDEN: Final = "Forbidden"
"""The API server refused the operator a request (403): its RBAC lacks a permission, or a quota."""
NAME_CONFLICT: Final = "NameConflict"
ROLLING_OUT: Final = "RollingOut"
ROLLOUT_COMPLETE: Final = "RolloutComplete"
PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
AS_EXPECTED: Final = "AsExpected"
POD_FAILING: Final = "PodFailing"
DATABASE_UNAVAILABLE: Final = "DatabaseUnavailable"
PROBE_DISABLED: Final = "ProbeDisabled"
RESOURCES_AVAILABLE: Final = "ResourcesAvailable"
RESOURCES_UNAVAILABLE: Final = "ResourcesUnavailable"
MISSING_API: Final = "MissingAPI"
# DatabaseAvailable's reasons (the live probe's outcomes; UNKNOWN above when it cannot tell).
CONNECTED: Final = "Connected"
AUTHENTICATION_FAILED: Final = "AuthenticationFailed"
UNREACHABLE: Final = "Unreachable"
DATABASE_MISSING: Final = "DatabaseMissing"
TLS_ERROR: Final = "TLSError"

# -- ModelUploadJob phases and conditions -------------------------------------------------
PENDING: Final = "Pending"
RUNNING: Final = "Running"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"

REGISTRY_RESOLVED: Final = "RegistryResolved"
STARTED: Final = "Started"
COMPLETE: Final = "Complete"
FAILED_CONDITION: Final = "Failed"
SPEC_CHANGED: Final = "SpecChanged"

RESOLVED: Final = "Resolved"
REGISTRY_NOT_FOUND: Final = "RegistryNotFound"
REGISTRY_NOT_AVAILABLE: Final = "RegistryNotAvailable"
WAITING: Final = "Waiting"
JOB_CREATED: Final = "JobCreated"
POD_RUNNING: Final = "PodRunning"
RETRYING: Final = "Retrying"
UPLOADED: Final = "Uploaded"
NOT_FINISHED: Final = "NotFinished"
TRANSFER_FAILED: Final = "TransferFailed"
REGISTRY_ERROR: Final = "RegistryError"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
OOM_KILLED: Final = "OOMKilled"
JOB_FAILED: Final = "JobFailed"
SPEC_IMMUTABLE: Final = "SpecImmutable"
SPEC_UNCHANGED: Final = "AsCreated"

# -- conditions of other objects we read --------------------------------------------------
ROUTE_ADMITTED: Final = "Admitted"
"""An OpenShift Route's ingress condition, written by the router."""
AUTH_CONFIG_READY: Final = "Ready"
"""An Authorino AuthConfig's condition."""
