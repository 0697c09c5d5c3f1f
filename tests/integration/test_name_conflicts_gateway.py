"""The Gateway API HTTPRoute `model-registry-<name>` lives in HTTPROUTE_NAMESPACE: registries of the
same name in two namespaces want the same one. The first owns it; the second gets NameConflict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode

from .conftest import OperatorProcess
from .kube import Cluster, wait_for
from .test_exposure_gateway import HTTP_ROUTE
from .test_exposure_gateway import gateway_operator as gateway_operator  # the fixtures
from .test_exposure_gateway import routes_namespace as routes_namespace

pytestmark = pytest.mark.integration


@pytest.fixture
def other_namespace(cluster: Cluster, gateway_operator: OperatorProcess) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "modelregistries", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def registry(name: str) -> str:
    body = {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry", "metadata": {"name": name}}
    return yaml.safe_dump({**body, "spec": {"rest": {}, "postgres": {"generateDeployment": True}}})


def owner(obj: dict[str, object] | None) -> tuple[object, object]:
    labels: dict[str, str] = ((obj or {}).get("metadata") or {}).get("labels") or {}  # type: ignore[attr-defined]
    return labels.get("modelregistry.opendatahub.io/namespace"), labels.get("modelregistry.opendatahub.io/registry")


def test_httproutes_of_same_named_registries_in_two_namespaces_are_claimed_not_shared(
    cluster: Cluster,
    gateway_operator: OperatorProcess,
    routes_namespace: str,
    namespace: str,
    other_namespace: str,
    sim_node: SimulatedNode,
) -> None:
    name = f"gw-{namespace[2:8]}"
    route_name = f"model-registry-{name}"
    cluster.apply_yaml(registry(name), namespace)
    route = wait_for(lambda: cluster.get(HTTP_ROUTE, routes_namespace, route_name), what="the first's HTTPRoute")
    assert owner(route) == (namespace, name)

    cluster.apply_yaml(registry(name), other_namespace)
    available = cluster.wait_condition(other_namespace, name, "Available", "False", "NameConflict")
    assert f"HTTPRoute {routes_namespace}/{route_name} already exists" in available["message"]
    assert f"ModelRegistry {namespace}/{name}" in available["message"]
    now = cluster.get(HTTP_ROUTE, routes_namespace, route_name)
    assert now is not None
    assert now["metadata"]["uid"] == route["metadata"]["uid"]
    assert owner(now) == (namespace, name)
    assert now["spec"]["rules"][0]["backendRefs"][0]["namespace"] == namespace

    cluster.kubectl("delete", "-n", other_namespace, f"mr/{name}", "--wait=true", "--timeout=60s")
    assert owner(cluster.get(HTTP_ROUTE, routes_namespace, route_name)) == (namespace, name)

    cluster.apply_yaml(registry(name), other_namespace)
    cluster.wait_condition(other_namespace, name, "Available", "False", "NameConflict")
    cluster.kubectl("delete", "-n", namespace, f"mr/{name}", "--wait=true", "--timeout=60s")
    wait_for(
        lambda: owner(cluster.get(HTTP_ROUTE, routes_namespace, route_name)) == (other_namespace, name),
        timeout=30,
        what="the second registry to take the HTTPRoute",
    )
    taken = cluster.get(HTTP_ROUTE, routes_namespace, route_name)
    assert taken is not None
    assert taken["spec"]["rules"][0]["backendRefs"][0]["namespace"] == other_namespace
