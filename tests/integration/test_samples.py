"""Every sample applies with `kubectl apply -k` and reaches Available through the simulated node."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_registry_devcluster.simnode import SimulatedNode

from .kube import Cluster

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"


@pytest.mark.parametrize("sample", ["postgres", "mysql", "mariadb", "postgres-auto"])
def test_sample_reaches_available(cluster: Cluster, namespace: str, sim_node: SimulatedNode, sample: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-k", str(SAMPLES / sample))
    cluster.wait_condition(namespace, "modelregistry-sample", "Available", "True", "DeploymentAvailable")
    # The sample databases live in the cluster network; an operator outside it cannot probe them.
    db = cluster.condition(namespace, "modelregistry-sample", "DatabaseAvailable")
    assert db is not None
    assert db["status"] in ("True", "Unknown")
    wait = cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "mr/modelregistry-sample", "--timeout=10s"
    )
    assert "condition met" in wait.stdout
