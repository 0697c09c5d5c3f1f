"""Session-wide fixtures: one local control plane and one simulated node for every suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_registry_operator.devcluster.controlplane import ControlPlane, missing_binaries
from model_registry_operator.devcluster.simnode import SimulatedNode


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    missing = missing_binaries()
    if missing:
        pytest.fail(f"control plane binaries missing ({', '.join(missing)}): run `make deps`")
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane")).start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def sim_node(control_plane: ControlPlane) -> Iterator[SimulatedNode]:
    node = SimulatedNode(str(control_plane.kubeconfig)).start()
    try:
        yield node
    finally:
        node.stop()
