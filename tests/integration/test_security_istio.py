"""Istio + Authorino mode with stand-in CRDs (the tests play Authorino and the OpenShift router)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kube import lookup

from . import offline, thirdparty
from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

DEPLOYMENT = lookup("apps/v1", "Deployment")
GATEWAY = lookup("networking.istio.io/v1beta1", "Gateway")
VIRTUAL_SERVICE = lookup("networking.istio.io/v1beta1", "VirtualService")
DESTINATION_RULE = lookup("networking.istio.io/v1beta1", "DestinationRule")
AUTHORIZATION_POLICY = lookup("security.istio.io/v1beta1", "AuthorizationPolicy")
AUTH_CONFIG = thirdparty.AUTH_CONFIG
ROUTE = thirdparty.ROUTE


@pytest.fixture(scope="module")
def istio(cluster: Cluster, operator: OperatorProcess) -> Iterator[None]:
    thirdparty.install(cluster, *thirdparty.ISTIO, "route.openshift.io")
    yield
    thirdparty.uninstall(cluster, *thirdparty.ISTIO, "route.openshift.io")


def registry(name: str, istio_spec: dict[str, object]) -> str:
    spec = {"rest": {}, "postgres": {"generateDeployment": True}, "istio": istio_spec}
    body = {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry", "metadata": {"name": name}}
    return yaml.safe_dump({**body, "spec": spec})


def test_istio_objects_and_conditions(cluster: Cluster, namespace: str, istio: None, sim_node: SimulatedNode) -> None:
    istio_spec = {
        "authProvider": "odh-auth",
        "authConfigLabels": {"security.opendatahub.io/authorization-group": "default"},
        "tlsMode": "ISTIO_MUTUAL",
        "gateway": {
            "domain": "apps.example.test",
            "rest": {"gatewayRoute": "disabled", "tls": {"mode": "SIMPLE", "credentialName": "rest-cert"}},
        },
    }
    cluster.apply_yaml(registry("mesh", istio_spec), namespace)
    auth_config = wait_for(lambda: cluster.get(AUTH_CONFIG, namespace, "mesh"), what="AuthConfig")
    assert auth_config["metadata"]["labels"]["security.opendatahub.io/authorization-group"] == "default"
    review = auth_config["spec"]["authorization"]["k8s-rbac"]["kubernetesSubjectAccessReview"]
    assert review["resourceAttributes"]["name"] == {"value": "mesh"}
    assert "mesh-rest.apps.example.test" in auth_config["spec"]["hosts"]
    policy = cluster.get(AUTHORIZATION_POLICY, namespace, "mesh-authorino")
    assert policy is not None
    assert (policy["spec"]["action"], policy["spec"]["provider"]["name"]) == ("CUSTOM", "odh-auth")
    rule = cluster.get(DESTINATION_RULE, namespace, "mesh")
    assert rule is not None
    assert rule["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    assert cluster.get(VIRTUAL_SERVICE, namespace, "mesh") is not None
    gateway = cluster.get(GATEWAY, namespace, "mesh")
    assert gateway is not None
    (server,) = gateway["spec"]["servers"]
    assert server["port"] == {"number": 443, "name": "https-rest", "protocol": "HTTPS"}
    assert server["tls"] == {"mode": "SIMPLE", "credentialName": "rest-cert"}
    deployment = cluster.get(DEPLOYMENT, namespace, "mesh")
    assert deployment is not None
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == "5432"

    thirdparty.wait_message(cluster, namespace, "mesh", "IstioAvailable", "False", "AuthConfig mesh")
    thirdparty.ready_auth_config(cluster, namespace, "mesh")
    cluster.wait_condition(namespace, "mesh", "IstioAvailable", "True", "ResourcesAvailable")
    cluster.wait_condition(namespace, "mesh", "GatewayAvailable", "True", "ResourcesAvailable")
    cluster.wait_condition(namespace, "mesh", "Available", "True", "DeploymentAvailable")
    mr = cluster.get(MR, namespace, "mesh")
    assert mr is not None
    assert mr["status"]["hosts"][0] == "mesh-rest.apps.example.test"


def test_gateway_routes_live_in_the_ingress_namespace_and_go_with_the_registry(
    cluster: Cluster, namespace: str, istio: None, sim_node: SimulatedNode
) -> None:
    with thirdparty.ingress_gateway(cluster, namespace) as (ingress_ns, selector):
        istio_spec = {
            "authProvider": "odh-auth",
            "gateway": {"domain": "apps.example.test", "istioIngress": selector, "rest": {}},
        }
        cluster.apply_yaml(registry("gw", istio_spec), namespace)
        route_name = f"{namespace}-gw-rest"
        route = wait_for(lambda: cluster.get(ROUTE, ingress_ns, route_name), what="gateway Route")
        assert route["spec"]["to"]["name"] == "istio-ingressgateway"
        assert route["spec"]["host"] == "gw-rest.apps.example.test"
        assert route["metadata"]["labels"]["modelregistry.opendatahub.io/namespace"] == namespace
        thirdparty.ready_auth_config(cluster, namespace, "gw")
        thirdparty.wait_message(cluster, namespace, "gw", "GatewayAvailable", "False", route_name)
        thirdparty.admit_route(cluster, ingress_ns, route_name)
        cluster.wait_condition(namespace, "gw", "GatewayAvailable", "True")
        cluster.wait_condition(namespace, "gw", "Available", "True")

        # Disabling the gateway Route prunes it from the other namespace.
        istio_spec["gateway"]["rest"] = {"gatewayRoute": "disabled"}  # type: ignore[index]
        cluster.apply_yaml(registry("gw", istio_spec), namespace)
        wait_for(lambda: cluster.get(ROUTE, ingress_ns, route_name) is None, what="gateway Route pruned")
        istio_spec["gateway"]["rest"] = {}  # type: ignore[index]
        cluster.apply_yaml(registry("gw", istio_spec), namespace)
        wait_for(lambda: cluster.get(ROUTE, ingress_ns, route_name), what="gateway Route back")

        # Switching to kube-rbac-proxy removes every Istio object.
        switched = {"rest": {}, "postgres": {"generateDeployment": True}, "kubeRBACProxy": {"serviceRoute": "disabled"}}
        body = yaml.safe_load(registry("gw", {}))
        body["spec"] = switched
        cluster.apply_yaml(yaml.safe_dump(body), namespace)
        for kind, name in [
            (GATEWAY, "gw"),
            (VIRTUAL_SERVICE, "gw"),
            (AUTH_CONFIG, "gw"),
            (AUTHORIZATION_POLICY, "gw-authorino"),
        ]:
            wait_for(lambda k=kind, n=name: cluster.get(k, namespace, n) is None, what=f"{kind.kind} pruned")
        assert cluster.get(ROUTE, ingress_ns, route_name) is None
        cluster.wait_condition(namespace, "gw", "KubeRBACProxyAvailable", "True")
        assert cluster.condition(namespace, "gw", "IstioAvailable") is None

        # Back to Istio, then delete: the finalizer removes the Route in the ingress namespace.
        cluster.apply_yaml(registry("gw", istio_spec), namespace)
        wait_for(lambda: cluster.get(ROUTE, ingress_ns, route_name), what="gateway Route again")
        cluster.kubectl("delete", "-n", namespace, "mr/gw", "--wait=true", "--timeout=60s")
        assert cluster.get(ROUTE, ingress_ns, route_name) is None


def test_offline_render_with_these_apis_names_what_the_operator_applies(
    cluster: Cluster, namespace: str, istio: None, sim_node: SimulatedNode
) -> None:
    """`render --api` with the APIs this module serves (Istio, Authorino, Routes) and the ingress
    gateway Service the operator finds: the same objects, and the same Istio and Route specs."""
    with thirdparty.ingress_gateway(cluster, namespace) as (ingress_ns, selector):
        try:
            istio_spec = {
                "authProvider": "odh-auth",
                "tlsMode": "ISTIO_MUTUAL",
                "gateway": {
                    "domain": "apps.example.test",
                    "istioIngress": selector,
                    "rest": {"tls": {"mode": "SIMPLE", "credentialName": "rest-cert"}},
                    "grpc": {},
                },
            }
            body = yaml.safe_load(registry("offline", istio_spec))
            body["metadata"]["namespace"] = namespace
            text = yaml.safe_dump(body)
            rendered = offline.render(
                text,
                "--api",
                "istio,authorino,openshift-routes",
                "--ingress-service",
                f"{ingress_ns}/istio-ingressgateway",
            )
            assert {kind for kind, _, _ in rendered} >= {
                "Gateway",
                "VirtualService",
                "AuthConfig",
                "Route",
                "Deployment",
            }
            cluster.apply_yaml(text, namespace)
            offline.assert_applied(
                cluster,
                namespace,
                "offline",
                rendered,
                same_spec=(
                    "VirtualService",
                    "DestinationRule",
                    "AuthorizationPolicy",
                    "AuthConfig",
                    "Gateway",
                    "Route",
                ),
            )
        finally:
            cluster.kubectl("delete", "-n", namespace, "mr/offline", "--wait=true", "--timeout=60s", check=False)
