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


ALL_OPTIONAL = (*thirdparty.OPENSHIFT, *thirdparty.ISTIO, "gateway.networking.k8s.io")


def test_optional_apis_removed_under_the_operator_do_not_stop_it(
    cluster: Cluster, operator: OperatorProcess, namespace: str, sim_node: SimulatedNode
) -> None:
    """Uninstalling Istio, Authorino, the OpenShift APIs or Gateway API while the operator watches
    them leaves it running: kopf's watch of a just-deleted API can reconnect into 404, which kopf
    alone treats as fatal (see model_registry_operator.watch_guard)."""
    log_before = len(operator.text())
    for _ in range(3):
        thirdparty.install(cluster, *ALL_OPTIONAL)
        thirdparty.uninstall(cluster, *ALL_OPTIONAL)
    assert operator.alive, operator.tail()
    assert "has failed" not in operator.text()[log_before:], operator.tail()

    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": "after"},
        "spec": {"rest": {}, "postgres": {"generateDeployment": True}},
    }
    cluster.apply_yaml(yaml.safe_dump(body), namespace)  # still reconciling
    cluster.wait_condition(namespace, "after", "Available", "True")
    assert operator.alive, operator.tail()
