"""Optional APIs appearing and disappearing while the operator runs re-reconcile the registries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from model_registry_operator.devcluster.simnode import SimulatedNode

from . import thirdparty
from .conftest import OperatorProcess
from .kube import Cluster, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def no_routes(cluster: Cluster, operator: OperatorProcess) -> Iterator[None]:
    thirdparty.uninstall(cluster, "route.openshift.io")
    yield
    thirdparty.uninstall(cluster, "route.openshift.io")


def test_route_api_appearing_at_run_time_creates_the_route(
    cluster: Cluster, namespace: str, no_routes: None, sim_node: SimulatedNode
) -> None:
    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": "live"},
        "spec": {"rest": {"serviceRoute": "enabled"}, "postgres": {"generateDeployment": True}},
    }
    cluster.apply_yaml(yaml.safe_dump(body), namespace)
    degraded = cluster.wait_condition(namespace, "live", "Degraded", "True", "MissingAPI")
    assert "route.openshift.io" in degraded["message"]
    cluster.wait_condition(namespace, "live", "Available", "True")  # serving in-cluster all the same

    thirdparty.install(cluster, "route.openshift.io")  # no operator restart
    wait_for(lambda: cluster.get(thirdparty.ROUTE, namespace, "live-http"), timeout=60, what="Route live-http")
    cluster.wait_condition(namespace, "live", "Degraded", "False", "AsExpected")

    thirdparty.uninstall(cluster, "route.openshift.io")
    cluster.wait_condition(namespace, "live", "Degraded", "True", "MissingAPI", timeout=60)
