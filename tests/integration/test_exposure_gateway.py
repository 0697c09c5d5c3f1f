"""Gateway API exposure (GATEWAY_DOMAIN): the operator restarted with gateway settings for this
module, stand-in Gateway API CRDs, HTTPRoute in another namespace removed by the finalizer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kube import lookup

from . import offline, thirdparty
from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

HTTP_ROUTE = lookup("gateway.networking.k8s.io/v1", "HTTPRoute")
REFERENCE_GRANT = lookup("gateway.networking.k8s.io/v1beta1", "ReferenceGrant")
SERVICE = lookup("v1", "Service")


@pytest.fixture(scope="module")
def routes_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"routes-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def gateway_settings(routes_namespace: str) -> dict[str, str]:
    return {"GATEWAY_DOMAIN": "gateway.example.test", "HTTPROUTE_NAMESPACE": routes_namespace}


@pytest.fixture(scope="module")
def gateway_operator(
    cluster: Cluster, operator: OperatorProcess, routes_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The session's operator, restarted in place with gateway settings (and back afterwards)."""
    thirdparty.install(cluster, "gateway.networking.k8s.io")
    operator.stop()
    operator.start(tmp_path_factory.mktemp("gateway-operator"), gateway_settings(routes_namespace))
    try:
        yield operator
    finally:
        operator.stop()
        operator.start(tmp_path_factory.mktemp("operator"))
        thirdparty.uninstall(cluster, "gateway.networking.k8s.io")


def test_httproute_and_reference_grant_follow_the_registry(
    cluster: Cluster, gateway_operator: OperatorProcess, routes_namespace: str, namespace: str, sim_node: SimulatedNode
) -> None:
    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": "gw"},
        "spec": {"rest": {}, "postgres": {"generateDeployment": True}, "kubeRBACProxy": {}},
    }
    cluster.apply_yaml(yaml.safe_dump(body), namespace)
    route = wait_for(lambda: cluster.get(HTTP_ROUTE, routes_namespace, "model-registry-gw"), what="HTTPRoute")
    (rule,) = route["spec"]["rules"]
    assert rule["matches"][0]["path"] == {"type": "PathPrefix", "value": "/model-registry/gw/"}
    assert rule["backendRefs"][0]["namespace"] == namespace
    assert rule["backendRefs"][0]["port"] == 8443
    assert route["metadata"]["labels"]["modelregistry.opendatahub.io/namespace"] == namespace
    grant = cluster.get(REFERENCE_GRANT, namespace, "model-registry-gw")
    assert grant is not None
    assert grant["spec"]["from"][0]["namespace"] == routes_namespace
    cluster.wait_condition(namespace, "gw", "Available", "True")
    mr = cluster.get(MR, namespace, "gw")
    assert mr is not None
    assert mr["status"]["hosts"][0] == "gateway.example.test/model-registry/gw"
    service = cluster.get(SERVICE, namespace, "gw")
    assert service is not None
    assert service["metadata"]["annotations"]["routing.opendatahub.io/external-address-rest"] == (
        "gateway.example.test/model-registry/gw"
    )

    cluster.kubectl("delete", "-n", namespace, "mr/gw", "--wait=true", "--timeout=60s")
    assert cluster.get(HTTP_ROUTE, routes_namespace, "model-registry-gw") is None
    wait_for(lambda: cluster.get(REFERENCE_GRANT, namespace, "model-registry-gw") is None, what="grant collected")


def test_offline_render_with_the_gateway_api_names_what_the_operator_applies(
    cluster: Cluster, gateway_operator: OperatorProcess, routes_namespace: str, namespace: str, sim_node: SimulatedNode
) -> None:
    """`render --api gateway` with the operator's gateway settings: the same objects, the HTTPRoute
    and ReferenceGrant with the same spec."""
    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": "offline", "namespace": namespace},
        "spec": {"rest": {}, "postgres": {"generateDeployment": True}},
    }
    text = yaml.safe_dump(body)
    rendered = offline.render(text, "--api", "gateway", env=gateway_settings(routes_namespace))
    assert ("HTTPRoute", routes_namespace, "model-registry-offline") in rendered
    cluster.apply_yaml(text, namespace)
    offline.assert_applied(cluster, namespace, "offline", rendered, same_spec=("HTTPRoute", "ReferenceGrant"))
    cluster.kubectl("delete", "-n", namespace, "mr/offline", "--wait=true", "--timeout=60s")
