"""An operator (re)started with many registries already there reconciles every one of them.

Guards against a start-up deadlock: with a cap on kopf's per-object workers below the number of
registries, the workers that indexed the first registries waited for the index to be complete
while the rest could never be indexed, and nothing was reconciled.
"""

from __future__ import annotations

import pytest

from model_registry_devcluster.simnode import SimulatedNode

from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

REGISTRIES = 80


def test_start_with_many_existing_registries(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    sim_node: SimulatedNode,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    operator.stop()
    try:
        for i in range(REGISTRIES):
            cluster.kube.request_sync(
                "POST",
                MR.path(namespace),
                body={
                    "apiVersion": "modelregistry.opendatahub.io/v1beta1",
                    "kind": "ModelRegistry",
                    "metadata": {"name": f"r{i}"},
                    # A closed loopback port: the database probe answers at once.
                    "spec": {
                        "rest": {},
                        "postgres": {"host": "127.0.0.1", "port": 1, "database": "d", "username": "u"},
                    },
                },
            )
    finally:
        operator.start(tmp_path_factory.mktemp("operator-restarted"))

    def reconciled() -> int | None:
        items = cluster.list(MR, namespace)
        done = sum(1 for item in items if (item.get("status") or {}).get("observedGeneration"))
        return done if done == REGISTRIES else None

    wait_for(reconciled, timeout=180, interval=1, what=f"all {REGISTRIES} registries reconciled after a restart")
    wait_for(
        lambda: all(
            any(c["type"] == "Available" and c["status"] == "True" for c in (m.get("status") or {})["conditions"])
            for m in cluster.list(MR, namespace)
        ),
        timeout=180,
        interval=1,
        what="all registries available",
    )
