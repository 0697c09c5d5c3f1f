"""Session-wide fixtures: one local control plane and one simulated node for every suite."""

from __future__ import annotations

import pytest

from model_registry_operator.devcluster.simnode import SimulatedNode
from model_registry_operator.devcluster.testing import DevCluster
from model_registry_operator.devcluster.testing import control_plane as control_plane
from model_registry_operator.devcluster.testing import dev_cluster as dev_cluster


@pytest.fixture(scope="session")
def sim_node(dev_cluster: DevCluster) -> SimulatedNode:
    return dev_cluster.node
