"""kopf's watch of an API that answers 404 (its CRD deleted while kopf still believes it served)
waits instead of stopping the operator, and resumes when the API is served again.

This drives kopf's own watch stream against the real API server: the state "kopf watches a
resource the server no longer serves" is exactly what a CRD deletion leaves behind when kopf's
rescan still saw the resource in discovery (see ``model_registry_operator.kopf_internals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import kopf
import pytest
import yaml
from kopf._cogs.clients import auth, errors, watching
from kopf._cogs.structs import credentials, references

from model_registry_operator import kopf_internals
from model_registry_operator.kube import load_api_client
from model_registry_operator.runner import connection_info

from .kube import Cluster, wait_for

pytestmark = pytest.mark.integration

GROUP = "gone.modelregistry.test"
CRD_NAME = f"things.{GROUP}"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}
THINGS = references.Resource(GROUP, "v1", "things", kind="Thing", namespaced=True)


@pytest.fixture
async def kopf_api(cluster: Cluster) -> AsyncIterator[None]:
    """kopf's API calls authenticated as the operator's would be, outside a running operator."""
    api_client = load_api_client(str(cluster.kubeconfig))
    vault = credentials.Vault()
    await vault.populate({"test": connection_info(api_client.configuration)})
    token = auth.vault_var.set(vault)
    try:
        yield
    finally:
        auth.vault_var.reset(token)
        await vault.close()
        api_client.close()


@pytest.fixture
def no_crd(cluster: Cluster) -> Iterator[None]:
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true")
    yield
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=false")


@pytest.fixture
def guard() -> Iterator[None]:
    kopf_internals.tolerate_deleted_apis(retry_seconds=0.5)
    yield
    kopf_internals.restore_kopf_watch()


def _settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 30
    settings.watching.reconnect_backoff = 0.1
    return settings


async def _drain(queue: asyncio.Queue[Any]) -> None:
    async for item in watching.infinite_watch(settings=_settings(), resource=THINGS, namespace=None):
        queue.put_nowait(item)


async def test_kopf_alone_stops_on_a_gone_api(cluster: Cluster, kopf_api: None, no_crd: None) -> None:
    """What the guard is for: without it, kopf's watch of a gone API raises (and the operator stops)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    with pytest.raises(errors.APINotFoundError):
        await asyncio.wait_for(_drain(queue), 10)


async def test_a_gone_api_is_waited_out_and_watched_again_once_served(
    cluster: Cluster, namespace: str, kopf_api: None, no_crd: None, guard: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=kopf_internals.__name__)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.get_running_loop().create_task(_drain(queue))
    try:
        await asyncio.sleep(3)  # several re-lists into 404
        assert not task.done(), task.exception() if task.done() else None
        assert f"The API of {THINGS} cluster-wide is gone (404)" in caplog.text
        assert caplog.text.count("is gone (404)") == 1  # said once, not at every retry

        # The API comes (back): the same watch lists and streams it, no restart needed.
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(CRD))
        cluster.wait_established(f"crd/{CRD_NAME}")
        name = f"thing-{uuid.uuid4().hex[:6]}"
        thing = {"apiVersion": f"{GROUP}/v1", "kind": "Thing", "metadata": {"name": name}}
        wait_for(
            lambda: cluster.apply_yaml(yaml.safe_dump(thing), namespace, check=False).returncode == 0,
            timeout=30,
            what="the new API to accept objects",
        )
        seen = await asyncio.wait_for(_first_event_of(queue, name), 30)
        assert seen["object"]["metadata"]["namespace"] == namespace
        assert "is served again" in caplog.text

        # And it goes again: the watch that was streaming survives the deletion too.
        cluster.kubectl("delete", "crd", CRD_NAME, "--wait=true")
        await asyncio.sleep(2)
        assert not task.done(), task.exception() if task.done() else None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _first_event_of(queue: asyncio.Queue[Any], name: str) -> dict[str, Any]:
    while True:
        item = await queue.get()
        if isinstance(item, dict) and item["object"].get("metadata", {}).get("name") == name:
            return item
