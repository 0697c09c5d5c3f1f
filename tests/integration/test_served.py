"""The start-up wait for our CRDs' storage, against the real API server."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator

import pytest

from model_registry_operator.platform.served import CRD, ServedResource, wait_until_served

from .kube import Cluster

pytestmark = pytest.mark.integration


def widget_crd(group: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
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


@pytest.fixture
def group(cluster: Cluster) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}.example.com"
    yield name
    cluster.kube.request_sync("DELETE", CRD.path(None, f"widgets.{name}"))


def test_a_crd_created_a_moment_ago_is_waited_for_until_its_list_answers(
    cluster: Cluster, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    widgets = ServedResource(group, "v1", "widgets")
    cluster.kube.request_sync("POST", CRD.path(), body=widget_crd(group))
    caplog.set_level(logging.INFO, "model_registry_operator.platform.served")

    late = asyncio.run(wait_until_served(cluster.kube, [widgets], "default", patience=30))

    assert late == []
    # What kopf does next: its first LIST is answered, no 404 / 429 to retry (and log) any more.
    listed = cluster.kube.request_sync("GET", widgets.list_path("default"))
    assert listed["kind"] == "WidgetList"
    listed = cluster.kube.request_sync("GET", widgets.list_path(None))
    assert listed["items"] == []
    waited = [r.getMessage() for r in caplog.records if "waiting for the API server" in r.getMessage()]
    if waited:  # the API server may, rarely, serve it before the first LIST
        assert f"widgets.{group} is served" in caplog.text


def test_a_crd_not_installed_is_not_waited_for(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    absent = ServedResource(f"t{uuid.uuid4().hex[:8]}.example.com", "v1", "widgets")
    started = time.monotonic()

    late = asyncio.run(wait_until_served(cluster.kube, [absent], patience=30))

    assert late == []
    assert time.monotonic() - started < 5
    assert f"CRD widgets.{absent.group} is not installed" in caplog.text


def test_a_version_never_served_is_given_up_after_the_patience(
    cluster: Cluster, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.kube.request_sync("POST", CRD.path(), body=widget_crd(group))
    unserved = ServedResource(group, "v9", "widgets")  # the CRD has v1 only: 404 for ever
    started = time.monotonic()

    late = asyncio.run(wait_until_served(cluster.kube, [unserved], patience=2))

    assert late == [unserved]
    assert 2 <= time.monotonic() - started < 10
    assert f"widgets.{group} still not served after 2 s" in caplog.text
