"""Session-wide fixtures: one local control plane and one simulated node for every suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_registry_devcluster.controlplane import ControlPlane
from model_registry_devcluster.simnode import SimulatedNode
from model_registry_devcluster.testing import DevCluster, k8s_unavailable_reason, shared_dev_cluster


def fail_without_k8s() -> None:
    """``pytest.fail`` naming the fix when the control-plane binaries are missing.

    A suite that did not run is not a suite that passed, so no skip.
    """
    reason = k8s_unavailable_reason()
    if reason is not None:
        pytest.fail(f"{reason} (run `make deps`)")


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """Session-wide control plane + simulated node (default image-name policy)."""
    fail_without_k8s()
    with shared_dev_cluster(lambda: tmp_path_factory.mktemp("dev-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def control_plane(dev_cluster: DevCluster) -> ControlPlane:
    """The session cluster's :class:`ControlPlane` (its simulated node is running too)."""
    return dev_cluster.control_plane


@pytest.fixture(scope="session")
def sim_node(dev_cluster: DevCluster) -> SimulatedNode:
    return dev_cluster.node
