"""The security modes and exposures rendered for every mode x option x cluster combination."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from model_registry_operator.api.validation import parse_spec
from model_registry_operator.kinds import (
    AUTHORINO_API,
    ISTIO_NETWORKING_API,
    ISTIO_SECURITY_API,
    OPTIONAL_APIS,
    ROUTE_API,
    USER_API,
)
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES, Capabilities
from model_registry_operator.render.database import DatabaseSecrets
from model_registry_operator.render.defaults import apply_runtime_defaults
from model_registry_operator.render.features import Feature, IngressService, ModeConfigurationError
from model_registry_operator.render.modelregistry import (
    RegistryRef,
    RenderInputs,
    render_features,
    render_model_registry,
)
from model_registry_operator.settings import OperatorSettings

Obj = dict[str, Any]
NAMESPACE_LABEL = "modelregistry.opendatahub.io/namespace"
CLUSTER_SCOPED = {"ClusterRoleBinding", "Group"}

DATABASES: dict[str, Obj] = {
    "postgres": {"postgres": {"host": "pg", "database": "db", "username": "u"}},
    "mysql": {"mysql": {"host": "my", "database": "db", "username": "u"}},
}
MODES: dict[str, Obj] = {
    "none": {},
    "kube-rbac-proxy": {"kubeRBACProxy": {}},
    "kube-rbac-proxy-custom": {
        "kubeRBACProxy": {
            "port": 9443,
            "serviceRoute": "disabled",
            "image": "example/krp:1",
            "domain": "custom.example",
            "tlsCertificateSecret": {"name": "my-tls", "key": "cert.pem"},
            "tlsKeySecret": {"name": "my-tls", "key": "key.pem"},
        }
    },
    "oauth-proxy": {"oauthProxy": {}},
    "oauth-proxy-custom": {"oauthProxy": {"port": 9443, "routePort": 8443, "domain": "custom.example"}},
    "istio": {"istio": {"authProvider": "authorino"}},
    "istio-gateway": {
        "istio": {
            "authProvider": "authorino",
            "tlsMode": "DISABLE",
            "audiences": ["aud1"],
            "gateway": {"domain": "gw.example", "rest": {}, "grpc": {"gatewayRoute": "disabled"}},
        }
    },
    "istio-gateway-tls": {
        "istio": {
            "authProvider": "authorino",
            "authConfigLabels": {"team": "a"},
            "gateway": {
                "domain": "gw.example",
                "istioIngress": "custom-ingress",
                "controlPlane": "basic",
                "rest": {"tls": {"credentialName": "rest-cert"}},
                "grpc": {"port": 8443, "tls": {"mode": "ISTIO_MUTUAL"}},
            },
        }
    },
}
RESTS: dict[str, Obj] = {"plain": {}, "route": {"serviceRoute": "enabled", "port": 8081}}
CLUSTERS: dict[str, Capabilities] = {
    "kubernetes": PLAIN_KUBERNETES,
    "openshift": Capabilities.from_groups({ROUTE_API, USER_API, "config.openshift.io"}, "apps.cluster.example"),
    "openshift-byoidc": Capabilities.from_groups({ROUTE_API}, "apps.cluster.example"),
    "everything": Capabilities.from_groups(set(OPTIONAL_APIS), "apps.cluster.example"),
}
INGRESS = IngressService("istio-system", "istio-ingressgateway")


def render(
    spec_raw: Obj,
    capabilities: Capabilities = PLAIN_KUBERNETES,
    settings: OperatorSettings | None = None,
    ingress: IngressService | None = INGRESS,
) -> tuple[list[Obj], Feature]:
    settings = settings or OperatorSettings()
    spec, problems = parse_spec(spec_raw)
    assert spec is not None, problems
    effective = apply_runtime_defaults(spec, settings, "reg", capabilities)
    ref = RegistryRef("reg", "ns1", "uid-1")
    inputs = RenderInputs(DatabaseSecrets(password="pw"), "", "d", "cookie-0123456789abcdef", ingress)
    features = render_features(ref, effective, settings, capabilities, inputs)
    return render_model_registry(ref, effective, settings, capabilities, inputs, features), features


def by_key(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod_spec(objects: list[Obj]) -> Obj:
    spec: Obj = by_key(objects)[("Deployment", "reg")]["spec"]["template"]
    return spec


COMBINATIONS = list(itertools.product(MODES, RESTS, CLUSTERS, DATABASES))


@pytest.mark.parametrize(("mode", "rest", "cluster", "database"), COMBINATIONS)
def test_every_combination_renders_consistent_objects(mode: str, rest: str, cluster: str, database: str) -> None:
    capabilities = CLUSTERS[cluster]
    spec = {"rest": dict(RESTS[rest]), **DATABASES[database], **MODES[mode]}
    objects, features = render(spec, capabilities)
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(set(keys)) == len(keys)
    for obj in objects:
        meta = obj["metadata"]
        assert meta["labels"]["modelregistry.opendatahub.io/registry"] == "reg"
        if obj["kind"] in CLUSTER_SCOPED or meta.get("namespace") != "ns1":
            # No owner reference can collect these: labels lead pruning and the finalizer to them.
            assert "ownerReferences" not in meta
            assert meta["labels"][NAMESPACE_LABEL] == "ns1"
            assert ("namespace" in meta) == (obj["kind"] not in CLUSTER_SCOPED)
        else:
            assert meta["ownerReferences"][0]["uid"] == "uid-1"
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    template = pod_spec(objects)
    containers = [c["name"] for c in template["spec"]["containers"]]
    service = by_key(objects)[("Service", "reg")]
    ports = [p["name"] for p in service["spec"]["ports"]]
    mounts = {m["name"] for c in template["spec"]["containers"] for m in c.get("volumeMounts", [])}
    assert mounts <= {v["name"] for v in template["spec"].get("volumes", [])}

    proxy = mode.split("-custom")[0] if mode.startswith(("kube-rbac-proxy", "oauth-proxy")) else None
    if proxy:
        assert containers == ["rest-container", proxy]
        assert ports == ["https-api"]
        assert ("ClusterRoleBinding", "reg-auth-delegator") in kinds
        route_wanted = capabilities.openshift_routes and MODES[mode][_field(proxy)].get("serviceRoute") != "disabled"
        assert (("Route", "reg-https") in kinds) == route_wanted
        assert (("NetworkPolicy", "reg-https-route") in kinds) == route_wanted
        assert features.sidecar == proxy
    else:
        assert ("ClusterRoleBinding", "reg-auth-delegator") not in kinds
        assert ports == ["http-api"]
    assert (("ConfigMap", "reg-kube-rbac-proxy-config") in kinds) == (proxy == "kube-rbac-proxy")
    assert (("Secret", "reg-oauth-cookie-secret") in kinds) == (proxy == "oauth-proxy")

    istio_served = not capabilities.missing(ISTIO_NETWORKING_API, ISTIO_SECURITY_API, AUTHORINO_API)
    if mode.startswith("istio"):
        assert features.mode == "istio"
        assert (("VirtualService", "reg") in kinds) == istio_served
        assert (("AuthConfig", "reg") in kinds) == istio_served
        assert (("Gateway", "reg") in kinds) == (istio_served and "gateway" in mode)
        assert bool(features.missing_apis) == (not istio_served)
        if istio_served:
            assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
            port = "5432" if database == "postgres" else "3306"
            assert template["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == port
    else:
        assert "sidecar.istio.io/inject" not in template["metadata"]["labels"]

    assert (("Route", "reg-http") in kinds) == (rest == "route" and capabilities.openshift_routes)
    assert (ROUTE_API in features.missing_apis) == (rest == "route" and not capabilities.openshift_routes)
    assert (("Group", "reg-users") in kinds) == capabilities.openshift_users
    assert (("RoleBinding", "reg-users") in kinds) == capabilities.openshift


def _field(proxy: str) -> str:
    return "kubeRBACProxy" if proxy == "kube-rbac-proxy" else "oauthProxy"


@pytest.mark.parametrize("proxy", ["kubeRBACProxy", "oauthProxy"])
def test_proxy_defaults_tls_from_service_ca_and_cluster_domain(proxy: str) -> None:
    mode = "kube-rbac-proxy" if proxy == "kubeRBACProxy" else "oauth-proxy"
    objects, features = render({"rest": {}, **DATABASES["postgres"], proxy: {}}, CLUSTERS["openshift"])
    service = by_key(objects)[("Service", "reg")]
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.openshift.io/serving-cert-secret-name"] == f"reg-{mode}"
    assert annotations["routing.opendatahub.io/external-address-rest"] == "reg-rest.apps.cluster.example:443"
    assert service["spec"]["ports"] == [
        {"name": "https-api", "protocol": "TCP", "appProtocol": "https", "port": 8443, "targetPort": "https-proxy"}
    ]
    route = by_key(objects)[("Route", "reg-https")]
    assert route["spec"]["host"] == "reg-rest.apps.cluster.example"
    assert route["spec"]["tls"]["termination"] == "reencrypt"
    assert features.hosts == ["reg-rest.apps.cluster.example"]
    volumes = {v["name"]: v for v in pod_spec(objects)["spec"]["volumes"]}
    assert volumes[f"{mode}-cert"]["secret"]["secretName"] == f"reg-{mode}"
    assert volumes[f"{mode}-cert"]["secret"]["defaultMode"] == 0o440


def test_user_tls_secret_means_no_service_ca_annotation_and_domain_precedence() -> None:
    spec = {"rest": {}, **DATABASES["mysql"], **MODES["kube-rbac-proxy-custom"]}
    objects, _ = render(spec, CLUSTERS["openshift"], OperatorSettings(DEFAULT_DOMAIN="default.example"))
    service = by_key(objects)[("Service", "reg")]
    assert "service.beta.openshift.io/serving-cert-secret-name" not in (service["metadata"].get("annotations") or {})
    sidecar = pod_spec(objects)["spec"]["containers"][1]
    assert sidecar["image"] == "example/krp:1"
    assert "--tls-cert-file=/etc/tls/private-cert/cert.pem" in sidecar["args"]
    assert "--secure-listen-address=0.0.0.0:9443" in sidecar["args"]
    # Domain: the spec, else DEFAULT_DOMAIN, else the cluster's.
    _, features = render(
        {"rest": {}, **DATABASES["mysql"], "kubeRBACProxy": {}},
        CLUSTERS["openshift"],
        OperatorSettings(DEFAULT_DOMAIN="default.example"),
    )
    assert features.hosts == ["reg-rest.default.example"]


def test_kube_rbac_proxy_sidecar_and_config() -> None:
    objects, _ = render({"rest": {"port": 8081}, **DATABASES["postgres"], "kubeRBACProxy": {}})
    sidecar = pod_spec(objects)["spec"]["containers"][1]
    assert sidecar["args"][:3] == [
        "--secure-listen-address=0.0.0.0:8443",
        "--upstream=http://127.0.0.1:8081/",
        "--proxy-endpoints-port=8888",
    ]
    assert sidecar["image"] == "quay.io/openshift/origin-kube-rbac-proxy:latest"
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "proxy-healthz", "scheme": "HTTPS"}
    config = by_key(objects)[("ConfigMap", "reg-kube-rbac-proxy-config")]["data"]["config-file.yaml"]
    assert "resource: services" in config
    assert 'name: "reg"' in config
    binding = by_key(objects)[("ClusterRoleBinding", "reg-auth-delegator")]
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "reg", "namespace": "ns1"}]


def test_oauth_proxy_sidecar_arguments_and_cookie_secret() -> None:
    objects, _ = render({"rest": {}, **DATABASES["postgres"], "oauthProxy": {}}, CLUSTERS["openshift"])
    sidecar = pod_spec(objects)["spec"]["containers"][1]
    args = sidecar["args"]
    assert "--provider=openshift" in args
    assert "--openshift-service-account=reg" in args
    assert "--upstream=http://127.0.0.1:8080" in args
    assert "--skip-auth-regex=(^/metrics$|^/oauth/healthz$|^/readyz/isDirty$|^/readyz/health$)" in args
    assert "--cookie-secret-file=/etc/oauth/cookie/cookie-secret.txt" in args
    delegate = next(a for a in args if a.startswith("--openshift-delegate-urls="))
    assert json.loads(delegate.partition("=")[2]) == {
        "/": {"group": "", "resource": "services", "verb": "get", "name": "reg", "namespace": "ns1"}
    }
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/oauth/healthz"
    secret = by_key(objects)[("Secret", "reg-oauth-cookie-secret")]
    assert secret["data"]["cookie-secret.txt"]
    policy = by_key(objects)[("NetworkPolicy", "reg-https-route")]
    assert len(policy["spec"]["ingress"][0]["from"]) == 1  # router only


def test_istio_objects() -> None:
    objects, features = render(
        {"rest": {}, **DATABASES["postgres"], **MODES["istio-gateway-tls"]}, CLUSTERS["everything"]
    )
    objs = by_key(objects)
    auth_config = objs[("AuthConfig", "reg")]
    assert auth_config["metadata"]["labels"]["team"] == "a"
    assert auth_config["spec"]["authentication"]["cluster-users"]["kubernetesTokenReview"]["audiences"] == [
        "https://kubernetes.default.svc"
    ]
    attributes = auth_config["spec"]["authorization"]["k8s-rbac"]["kubernetesSubjectAccessReview"]["resourceAttributes"]
    assert attributes == {
        "verb": {"value": "get"},
        "group": {"value": ""},
        "resource": {"value": "services"},
        "namespace": {"value": "ns1"},
        "name": {"value": "reg"},
    }
    policy = objs[("AuthorizationPolicy", "reg-authorino")]
    assert policy["spec"]["provider"] == {"name": "authorino"}
    assert objs[("DestinationRule", "reg")]["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    gateway = objs[("Gateway", "reg")]
    assert gateway["spec"]["selector"] == {"istio": "custom-ingress", "istio.io/rev": "basic"}
    rest, grpc = gateway["spec"]["servers"]
    assert rest["port"] == {"number": 443, "name": "https-rest", "protocol": "HTTPS"}
    assert rest["tls"] == {"mode": "SIMPLE", "credentialName": "rest-cert"}
    assert grpc["port"]["number"] == 8443
    assert grpc["tls"] == {"mode": "ISTIO_MUTUAL"}
    rest_route = next(o for o in objects if o["kind"] == "Route" and o["metadata"]["name"] == "ns1-reg-rest")
    assert rest_route["metadata"]["namespace"] == "istio-system"
    assert rest_route["spec"]["tls"]["termination"] == "passthrough"
    assert rest_route["spec"]["port"]["targetPort"] == "https"
    assert rest_route["metadata"]["labels"]["maistra.io/gateway-namespace"] == "ns1"
    assert features.hosts[:2] == ["reg-rest.gw.example", "reg-grpc.gw.example"]
    assert [r.name for r in features.routes] == ["ns1-reg-rest", "ns1-reg-grpc"]


def test_istio_defaults_from_settings() -> None:
    settings = OperatorSettings(
        DEFAULT_AUTH_PROVIDER="env-provider",
        DEFAULT_AUTH_CONFIG_LABELS="a=1,b=2",
        DEFAULT_DOMAIN="env.example",
        DEFAULT_ISTIO_INGRESS="env-ingress",
        DEFAULT_CERT="env-cert",
        DEFAULT_CONTROL_PLANE="rev1",
    )
    spec = {"rest": {}, **DATABASES["mysql"], "istio": {"gateway": {"rest": {"tls": {}}}}}
    objects, _ = render(spec, CLUSTERS["everything"], settings)
    objs = by_key(objects)
    assert objs[("AuthorizationPolicy", "reg-authorino")]["spec"]["provider"]["name"] == "env-provider"
    assert {"a": "1", "b": "2"}.items() <= objs[("AuthConfig", "reg")]["metadata"]["labels"].items()
    gateway = objs[("Gateway", "reg")]["spec"]
    assert gateway["selector"] == {"istio": "env-ingress", "istio.io/rev": "rev1"}
    assert gateway["servers"][0]["hosts"] == ["reg-rest.env.example"]
    assert gateway["servers"][0]["tls"]["credentialName"] == "env-cert"


@pytest.mark.parametrize(
    ("istio", "settings", "field"),
    [
        ({}, {}, "spec.istio.authProvider"),
        ({"authProvider": "a", "gateway": {}}, {}, "spec.istio.gateway.domain"),
        ({"authProvider": "a", "gateway": {"domain": "d.example", "rest": {"tls": {}}}}, {}, "credentialName"),
    ],
)
def test_istio_values_missing_everywhere_are_configuration_errors(istio: Obj, settings: Obj, field: str) -> None:
    no_domain = Capabilities.from_groups(set(OPTIONAL_APIS))  # and no cluster domain either
    with pytest.raises(ModeConfigurationError, match=field):
        render({"rest": {}, **DATABASES["mysql"], "istio": istio}, no_domain, OperatorSettings(**settings))


def test_istio_without_create_auth_resources_and_without_an_ingress_service() -> None:
    settings = OperatorSettings(CREATE_AUTH_RESOURCES="false")
    objects, features = render(
        {"rest": {}, **DATABASES["mysql"], **MODES["istio-gateway"]}, CLUSTERS["everything"], settings, ingress=None
    )
    kinds = {o["kind"] for o in objects}
    assert "AuthConfig" not in kinds
    assert "AuthorizationPolicy" not in kinds
    assert not [o for o in objects if o["kind"] == "Route" and o["metadata"]["name"].startswith("ns1-")]
    assert "ingress gateway Service" in features.problems["GatewayAvailable"]


def test_gateway_api_httproute_and_reference_grant() -> None:
    settings = OperatorSettings(GATEWAY_DOMAIN="gw.example", HTTPROUTE_NAMESPACE="routes", GATEWAY_NAME="gw")
    objects, features = render(
        {"rest": {}, **DATABASES["mysql"], "kubeRBACProxy": {}}, CLUSTERS["everything"], settings
    )
    route = by_key(objects)[("HTTPRoute", "model-registry-reg")]
    assert route["metadata"]["namespace"] == "routes"
    assert route["metadata"]["labels"][NAMESPACE_LABEL] == "ns1"
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/model-registry/reg/"}}]
    assert rule["filters"][0]["urlRewrite"]["path"] == {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
    assert rule["backendRefs"][0] == {"group": "", "kind": "Service", "name": "reg", "namespace": "ns1", "port": 8443}
    assert route["spec"]["parentRefs"][0]["name"] == "gw"
    grant = by_key(objects)[("ReferenceGrant", "model-registry-reg")]
    assert grant["spec"]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "routes"}]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": "reg"}]
    assert features.hosts[0] == "gw.example/model-registry/reg"
    service = by_key(objects)[("Service", "reg")]
    assert service["metadata"]["annotations"]["routing.opendatahub.io/external-address-rest"] == (
        "gw.example/model-registry/reg"
    )
    # Without the Gateway API the setting is reported, not rendered.
    objects, features = render({"rest": {}, **DATABASES["mysql"]}, PLAIN_KUBERNETES, settings)
    assert not [o for o in objects if o["kind"] == "HTTPRoute"]
    assert features.missing_apis == ["gateway.networking.k8s.io"]
