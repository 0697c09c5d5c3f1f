"""Fixtures for the control-plane / simulated-node tests.

``dev_cluster`` and ``control_plane`` come from ``tests/conftest.py`` (one cluster per test
process, shared with every other folder).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from model_registry_devcluster.testing import DevCluster, wait_for


@pytest.fixture(scope="session")
def api(dev_cluster: DevCluster) -> Iterator[Any]:
    api_client = dev_cluster.api_client()
    yield api_client
    api_client.close()


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    """A fresh namespace per test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    # Pods are only admitted once the controllers have made the namespace's default ServiceAccount.
    wait_for(lambda: core.read_namespaced_service_account("default", name), message="default SA")
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
