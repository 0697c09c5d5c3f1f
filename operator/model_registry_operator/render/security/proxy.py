"""What the two proxy modes share: sidecar, Service port, auth-delegator binding, Route, NetworkPolicy."""

from __future__ import annotations

from typing import Any

from ...api.modelregistry import KubeRBACProxyConfig, OAuthProxyConfig
from ...names import (
    EXTERNAL_ADDRESS_ANNOTATION,
    GENERATED_NAMESPACE_LABEL,
    POLICY_GROUP_LABEL,
    SERVING_CERT_ANNOTATION,
)
from ..engine import render_fragment, render_template
from ..features import Feature, FeatureContext, RouteWatch
from .defaults import tls_secret_name

ROUTER_PEER: dict[str, Any] = {"namespaceSelector": {"matchLabels": {POLICY_GROUP_LABEL: "ingress"}}}
DASHBOARD_PEER: dict[str, Any] = {"namespaceSelector": {"matchLabels": {GENERATED_NAMESPACE_LABEL: "true"}}}
HEALTH_PATHS = ("/readyz/isDirty", "/readyz/health")
# The OAuth proxy's unauthenticated paths: its own metrics and health, and the probes' paths.
UNAUTHENTICATED_REGEX = "(" + "|".join(f"^{path}$" for path in ("/metrics", "/oauth/healthz", *HEALTH_PATHS)) + ")"
"""The REST server's probe paths: the only ones a proxy passes on without authentication (the
REST server listens on loopback behind a proxy, so its probes go through the proxy)."""

# The pod does not mount its ServiceAccount token (automountServiceAccountToken: false): only
# the proxy, which calls TokenReview / SubjectAccessReview (and the OAuth server), gets one,
# through the volume the ServiceAccount admission would otherwise add to every container.
TOKEN_VOLUME_NAME = "proxy-api-access"  # noqa: S105 - a volume name
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME: dict[str, Any] = {
    "name": TOKEN_VOLUME_NAME,
    "projected": {
        "defaultMode": 0o444,
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {  # OpenShift publishes its service CA here (what its admission adds too)
                "configMap": {
                    "name": "openshift-service-ca.crt",
                    "items": [{"key": "service-ca.crt", "path": "service-ca.crt"}],
                    "optional": True,
                }
            },
        ],
    },
}
TOKEN_MOUNT: dict[str, Any] = {"name": TOKEN_VOLUME_NAME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}


def render_proxy(
    ctx: FeatureContext,
    proxy: OAuthProxyConfig | KubeRBACProxyConfig,
    *,
    mode: str,
    condition: str,
    extra_objects: list[dict[str, Any]],
    peers: list[dict[str, Any]],
    **template_values: Any,
) -> Feature:
    """The objects and contributions of a proxy sidecar in front of the REST port.

    ``serviceRoute`` defaults to enabled; without the Route API (plain Kubernetes) there is
    simply no Route, as upstream.
    """
    name = ctx.registry.name
    values = ctx.template_context(
        proxy=proxy,
        peers=peers,
        health_paths=HEALTH_PATHS,
        unauthenticated_regex=UNAUTHENTICATED_REGEX,
        **template_values,
    )
    feature = Feature(mode=mode, sidecar=mode, replaces_http_port=True)
    container = render_fragment(f"modelregistry/{mode}/container.yaml.j2", values)
    container["volumeMounts"] = [*container.get("volumeMounts", []), TOKEN_MOUNT]
    feature.containers.append(container)
    feature.volumes.extend(render_fragment(f"modelregistry/{mode}/volumes.yaml.j2", values))
    feature.volumes.append(TOKEN_VOLUME)
    feature.service_ports.append(
        {
            "name": "https-api",
            "protocol": "TCP",
            "appProtocol": "https",
            "port": proxy.port,
            "targetPort": "https-proxy",
        }
    )
    cert = proxy.tls_certificate_secret  # run-time defaults fill it
    if cert is not None and cert.name == tls_secret_name(name, mode):
        # No certificate given: OpenShift's service CA issues one into the default Secret.
        feature.service_annotations[SERVING_CERT_ANNOTATION] = tls_secret_name(name, mode)
    feature.objects.extend(extra_objects)
    feature.objects.extend(render_template("modelregistry/proxy/auth-delegator.yaml.j2", values))
    if proxy.service_route == "enabled" and ctx.capabilities.openshift_routes:
        feature.objects.extend(render_template("modelregistry/proxy/https-route.yaml.j2", values))
        feature.objects.extend(render_template("modelregistry/proxy/network-policy.yaml.j2", values))
        feature.routes.append(RouteWatch(ctx.registry.namespace, f"{name}-https", condition))
        if proxy.domain:
            host = f"{name}-rest.{proxy.domain}"
            feature.hosts.append(host)
            feature.service_annotations[EXTERNAL_ADDRESS_ANNOTATION] = f"{host}:{proxy.route_port}"
    return feature
