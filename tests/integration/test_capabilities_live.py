"""Optional APIs appearing and disappearing while the operator runs re-reconcile the registries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kinds import ROUTE_API
from model_registry_operator.kube import Kube, load_api_client
from model_registry_operator.names import FINALIZER
from model_registry_operator.platform.capabilities import Capabilities
from model_registry_operator.platform.discovery import CapabilityWatcher
from model_registry_operator.reconcile.modelregistry import RegistryReconciler
from model_registry_operator.settings import OperatorSettings

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
    alone treats as fatal (see model_registry_operator.kopf_internals)."""
    log_before = len(operator.text())
    for _ in range(3):
        thirdparty.install(cluster, *ALL_OPTIONAL)
        thirdparty.uninstall(cluster, *ALL_OPTIONAL)
    assert operator.alive, operator.tail()
    during = operator.text()[log_before:]
    assert "has failed" not in during, operator.tail()
    # New CRDs answer 429 "storage is (re)initializing" at first: retried, and no error.
    errors = [line for line in during.splitlines() if " ERROR " in line]
    assert errors == [], errors

    body = {
        "apiVersion": "modelregistry.opendatahub.io/v1beta1",
        "kind": "ModelRegistry",
        "metadata": {"name": "after"},
        "spec": {"rest": {}, "postgres": {"generateDeployment": True}},
    }
    cluster.apply_yaml(yaml.safe_dump(body), namespace)  # still reconciling
    cluster.wait_condition(namespace, "after", "Available", "True")
    assert operator.alive, operator.tail()


@pytest.fixture
def stale_discovery(
    cluster: Cluster, no_routes: None, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RegistryReconciler, CapabilityWatcher]]:
    """A reconciler in-process, against the real API server, whose discovery still lists the
    Route API that was uninstalled a moment ago (the injected fault: a real watcher seeded with
    what discovery said before). The operator is stopped meanwhile, so only this one reconciles."""
    operator.stop()
    try:
        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        watcher = CapabilityWatcher(kube, interval=3600)
        watcher.current = Capabilities.from_groups({ROUTE_API})
        yield RegistryReconciler(kube, OperatorSettings(), watcher, rediscover=watcher.soon), watcher
    finally:
        operator.start(tmp_path_factory.mktemp("operator-restarted"))


ROUTED = {
    "apiVersion": "modelregistry.opendatahub.io/v1beta1",
    "kind": "ModelRegistry",
    "metadata": {"name": "stale", "finalizers": [FINALIZER]},  # kopf's, while it is stopped
    "spec": {"rest": {"serviceRoute": "enabled"}, "postgres": {"generateDeployment": True}},
}


async def test_an_api_gone_since_the_last_discovery_is_no_reconcile_error(
    cluster: Cluster, namespace: str, stale_discovery: tuple[RegistryReconciler, CapabilityWatcher]
) -> None:
    """The reconcile that applies a Route meets 404: no error of the registry (no Available=False
    / ReconcileError, no traceback); discovery runs again and the next reconcile reports the API
    as missing."""
    reconciler, watcher = stale_discovery
    cluster.apply_yaml(yaml.safe_dump(ROUTED), namespace)

    await reconciler.run(namespace, "stale")  # raised ApiError 404 before

    available = cluster.condition(namespace, "stale", "Available")
    assert available is None or available["reason"] != "ReconcileError", available

    def missing_api() -> bool:
        degraded = cluster.condition(namespace, "stale", "Degraded")
        return degraded is not None and degraded["reason"] == "MissingAPI"

    # The retry, after the fresh discovery; polled from a thread: the reconciler runs on this loop.
    await asyncio.to_thread(wait_for, missing_api, 30, what="Degraded=True / MissingAPI")
    degraded = cluster.condition(namespace, "stale", "Degraded")
    assert degraded is not None
    assert degraded["status"] == "True"
    assert ROUTE_API in degraded["message"]
    assert ROUTE_API not in watcher.current.groups
    available = cluster.condition(namespace, "stale", "Available")
    assert available is not None
    assert available["reason"] != "ReconcileError", available


async def test_cleanup_after_an_api_gone_since_the_last_discovery_succeeds(
    cluster: Cluster, namespace: str, stale_discovery: tuple[RegistryReconciler, CapabilityWatcher]
) -> None:
    """The finalizer's listing of the registry's Routes meets 404: the API's deletion took its
    objects with it, so there is nothing to clean there and the cleanup goes on (it failed, and
    was retried with an error logged, before)."""
    reconciler, watcher = stale_discovery
    cluster.apply_yaml(yaml.safe_dump(ROUTED), namespace)

    await reconciler.finalize(namespace, "stale")  # raised ApiError 404 before

    await asyncio.to_thread(wait_for, lambda: ROUTE_API not in watcher.current.groups, 30, what="discovery")
