"""Istio + Authorino mode (spec.istio): mesh routing, an external authorizer and an ingress gateway.

Renders the VirtualService, DestinationRule, AuthorizationPolicy (CUSTOM, authProvider),
Authorino AuthConfig (TokenReview + SubjectAccessReview on `get services/<name>`), and with
``gateway`` an Istio Gateway plus, on OpenShift, Routes in the ingress gateway's namespace.
The pod gets the sidecar injection label and keeps database traffic out of the mesh.
"""

from __future__ import annotations

from typing import Any

from ...api.modelregistry import IstioConfig, ServerConfig
from ...kinds import ISTIO_MODE_APIS
from ...names import GATEWAY_AVAILABLE, ISTIO, ISTIO_EXCLUDE_OUTBOUND_ANNOTATION, ISTIO_INJECT_LABEL
from ..engine import render_template
from ..features import Feature, FeatureContext, IngressService, ModeConfigurationError, RouteWatch

SIDECAR = "istio-proxy"


def _required(value: Any, field: str, variable: str) -> None:
    if not value:
        raise ModeConfigurationError(f"{field}: missing, and the operator environment variable {variable} is not set")


def check(istio: IstioConfig) -> None:
    """Values that must come from the spec or the operator settings."""
    _required(istio.auth_provider, "spec.istio.authProvider", "DEFAULT_AUTH_PROVIDER")
    gateway = istio.gateway
    if gateway is None:
        return
    _required(gateway.domain, "spec.istio.gateway.domain", "DEFAULT_DOMAIN")
    for key, server in (("rest", gateway.rest), ("grpc", gateway.grpc)):
        if server is not None and server.tls is not None and server.tls.mode != "ISTIO_MUTUAL":
            _required(server.tls.credential_name, f"spec.istio.gateway.{key}.tls.credentialName", "DEFAULT_CERT")


def _server(key: str, server: ServerConfig, host: str) -> dict[str, Any]:
    tls = server.tls
    plain_protocol = "GRPC" if key == "grpc" else "HTTP"
    entry: dict[str, Any] = {
        "name": key,
        "port": {
            "number": server.port,
            "name": f"{'https' if tls else plain_protocol.lower()}-{key}",
            "protocol": "HTTPS" if tls else plain_protocol,
        },
        "hosts": [host],
    }
    if tls is not None:
        entry["tls"] = {"mode": tls.mode}
        if tls.credential_name:
            entry["tls"]["credentialName"] = tls.credential_name
    return entry


def render(ctx: FeatureContext, ingress: IngressService | None = None) -> Feature:
    istio = ctx.spec.istio
    if istio is None:
        return Feature()
    missing = ctx.capabilities.missing(*ISTIO_MODE_APIS)
    if missing:
        return Feature(mode=ISTIO, missing_apis=missing)
    check(istio)
    name, namespace = ctx.registry.name, ctx.registry.namespace
    service_host = f"{name}.{namespace}.svc.cluster.local"
    feature = Feature(mode=ISTIO, sidecar=SIDECAR, pod_labels={ISTIO_INJECT_LABEL: "true"})
    database = ctx.spec.postgres or ctx.spec.mysql
    if database is not None:  # the database is outside the mesh
        feature.pod_annotations[ISTIO_EXCLUDE_OUTBOUND_ANNOTATION] = str(database.port)
    gateway = istio.gateway
    hosts: dict[str, str] = {}
    if gateway is not None:
        for key, server in (("rest", gateway.rest), ("grpc", gateway.grpc)):
            if server is not None:
                hosts[key] = f"{name}-{key}.{gateway.domain}"
    grpc_port = ctx.spec.grpc.port if ctx.spec.grpc is not None else 9090
    values = ctx.template_context(
        istio=istio,
        service_host=service_host,
        vs_hosts=[service_host, *hosts.values()],
        vs_gateways=["mesh", name] if gateway is not None else ["mesh"],
        grpc_host=hosts.get("grpc", ""),
        grpc_port=grpc_port,
        auth_hosts=[service_host, f"{name}.{namespace}", name, *hosts.values()],
        auth_config_labels={**ctx.labels, **(istio.auth_config_labels or {})},
    )
    for template in ("virtual-service", "destination-rule"):
        feature.objects.extend(render_template(f"modelregistry/istio/{template}.yaml.j2", values))
    if ctx.settings.create_auth_resources:
        feature.objects.extend(render_template("modelregistry/istio/authorization-policy.yaml.j2", values))
        feature.objects.extend(render_template("modelregistry/istio/authconfig.yaml.j2", values))
        feature.auth_configs.append(name)
    if gateway is None:
        return feature
    selector = {"istio": gateway.istio_ingress or "ingressgateway"}
    if gateway.control_plane:
        selector["istio.io/rev"] = gateway.control_plane
    servers = [
        _server(key, server, hosts[key])
        for key, server in (("rest", gateway.rest), ("grpc", gateway.grpc))
        if server is not None
    ]
    feature.objects.extend(
        render_template(
            "modelregistry/istio/gateway.yaml.j2", {**values, "gateway_selector": selector, "servers": servers}
        )
    )
    feature.hosts.extend(hosts.values())
    feature.mode = ISTIO
    routes_wanted = [
        (key, server)
        for key, server in (("rest", gateway.rest), ("grpc", gateway.grpc))
        if server is not None and server.gateway_route == "enabled"
    ]
    if not routes_wanted or not ctx.capabilities.openshift_routes:
        return feature
    if ingress is None:
        feature.problems[GATEWAY_AVAILABLE] = (
            "no unique ingress gateway Service labelled "
            + ",".join(f"{k}={v}" for k, v in selector.items())
            + " found for the gateway Routes"
        )
        return feature
    for key, server in routes_wanted:
        route_name = f"{namespace}-{name}-{key}"
        route: dict[str, Any] = {
            "name": route_name,
            "namespace": ingress.namespace,
            "labels": {
                **ctx.cluster_labels,
                "maistra.io/gateway-name": name,
                "maistra.io/gateway-namespace": namespace,
            },
            "host": hosts[key],
            "service": ingress.name,
            "target_port": "https" if server.tls is not None else "http2",
            "passthrough": server.tls is not None,
        }
        feature.objects.extend(render_template("modelregistry/istio/gateway-route.yaml.j2", {**values, "route": route}))
        feature.routes.append(RouteWatch(ingress.namespace, route_name, GATEWAY_AVAILABLE))
    return feature
