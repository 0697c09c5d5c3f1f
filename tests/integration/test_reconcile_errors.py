"""Failures of the reconcile: a condition with its reason (never only a traceback), the traceback in
the log once (not every 5 s), retries with backoff, and convergence once the spec is fixed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from model_registry_devcluster.simnode import SimulatedNode
from model_registry_operator.kinds import JOB
from model_registry_operator.kube import Kube, load_api_client
from model_registry_operator.platform.capabilities import PLAIN_KUBERNETES
from model_registry_operator.reconcile import errors
from model_registry_operator.reconcile import modeluploadjob as upload_module
from model_registry_operator.reconcile.modelregistry import RegistryReconciler
from model_registry_operator.reconcile.modeluploadjob import UploadJobReconciler
from model_registry_operator.reconcile.steps import render as reconcile_module
from model_registry_operator.render.modeluploadjob import job_name
from model_registry_operator.settings import OperatorSettings

from .conftest import OperatorProcess
from .kube import MR, Cluster, wait_for

pytestmark = pytest.mark.integration

MR_CRD = "modelregistries.modelregistry.opendatahub.io"
MUJ_CRD = "modeluploadjobs.modelregistry.opendatahub.io"
MUJ = ("modelregistry.opendatahub.io/v1alpha1", "ModelUploadJob")


def _clean(crd: dict[str, Any]) -> dict[str, Any]:
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        crd["metadata"].pop(key, None)
    crd.pop("status", None)
    return crd


@contextlib.contextmanager
def unvalidated(cluster: Cluster, crd_name: str) -> Iterator[None]:
    """The CRD with no schema for ``spec`` (as a CRD of an older install, or one edited by hand,
    would let through): whatever is created meanwhile is stored as it is."""
    crd = yaml.safe_load(cluster.kubectl("get", "crd", crd_name, "-o", "yaml").stdout)
    original = yaml.safe_dump(crd)
    for version in crd["spec"]["versions"]:
        props = version["schema"]["openAPIV3Schema"]["properties"]
        props["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        version["schema"]["openAPIV3Schema"].pop("x-kubernetes-validations", None)
    try:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(_clean(crd)))
        yield
    finally:
        restored = _clean(yaml.safe_load(original))
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(restored))


def registry(name: str, spec: dict[str, Any]) -> str:
    body = {"apiVersion": "modelregistry.opendatahub.io/v1beta1", "kind": "ModelRegistry"}
    return yaml.safe_dump({**body, "metadata": {"name": name}, "spec": spec})


def test_issue_example_emoji_image_is_a_condition_not_a_traceback_every_5_seconds(
    cluster: Cluster, namespace: str, operator: OperatorProcess, sim_node: SimulatedNode
) -> None:
    """`rest.image: "quay.io/x:🚀"` stored through a CRD that does not refuse it raised a render error
    that the operator logged as a traceback every 5 s, with no condition. Now: a condition naming the
    field, at most one traceback over 30 s, and a fixed spec converges."""
    start = len(operator.text())
    spec = {"rest": {"image": "quay.io/x:🚀"}, "postgres": {"generateDeployment": True}}
    with unvalidated(cluster, MR_CRD):
        cluster.apply_yaml(registry("emoji", spec), namespace)
    available = cluster.wait_condition(namespace, "emoji", "Available", "False")
    assert available["reason"] in ("ConfigurationError", "ReconcileError"), available
    if available["reason"] == "ConfigurationError":
        assert "spec.rest.image" in available["message"], available
    degraded = cluster.condition(namespace, "emoji", "Degraded")
    assert degraded is not None
    assert (degraded["status"], degraded["reason"]) == ("True", available["reason"])

    time.sleep(30)
    log = operator.text()[start:]
    assert log.count("Traceback") <= 1, log
    assert log.count(f"{namespace}/emoji: reconcile failed") <= 1, log
    assert "\\ud83d" not in (cluster.condition(namespace, "emoji", "Available") or {}).get("message", "")
    assert operator.alive

    cluster.kubectl("patch", "-n", namespace, "mr/emoji", "--type=merge", "-p", '{"spec":{"rest":{"image":null}}}')
    cluster.wait_condition(namespace, "emoji", "Available", "True", timeout=90)
    cluster.wait_condition(namespace, "emoji", "Degraded", "False", "AsExpected")


def test_issue_example_emoji_job_image_is_a_condition_naming_the_field(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """The same for a ModelUploadJob's `job.image`: a condition naming the field, no traceback,
    and a fixed one creates its Job."""
    start = len(operator.text())
    body: dict[str, Any] = {
        "apiVersion": "/".join(MUJ[:1]),
        "kind": MUJ[1],
        "metadata": {"name": "emoji"},
        "spec": {
            "registry": {"address": "https://registry.example:8443"},
            "intent": "create_model",
            "source": {"uri": {"uri": "https://example.com/model.onnx"}},
            "destination": {"oci": {"uri": "quay.io/example/model:v1"}},
            "model": {"registeredModel": {"name": "m"}, "modelVersion": {"name": "v1"}},
            "job": {"image": "quay.io/x:🚀"},
        },
    }
    with unvalidated(cluster, MUJ_CRD):
        cluster.apply_yaml(yaml.safe_dump(body), namespace)

    def started() -> dict[str, Any] | None:
        result = cluster.kubectl("get", "-n", namespace, "modeluploadjob/emoji", "-o", "yaml")
        status = yaml.safe_load(result.stdout).get("status") or {}
        cond = next((c for c in status.get("conditions") or [] if c["type"] == "Started"), None)
        return cond if cond and cond["reason"] in ("ConfigurationError", "ReconcileError") else None

    cond = wait_for(started, timeout=60, what="Started=False with the failure's reason")
    assert cond["status"] == "False"
    if cond["reason"] == "ConfigurationError":
        assert "spec.job.image" in cond["message"], cond
    time.sleep(10)
    log = operator.text()[start:]
    assert log.count("Traceback") <= 1, log

    # A ModelUploadJob's spec is immutable: the fix is a new one.
    fixed = {**body, "metadata": {"name": "fixed"}, "spec": {**body["spec"], "job": {}}}
    cluster.apply_yaml(yaml.safe_dump(fixed), namespace)
    wait_for(lambda: cluster.get(JOB, namespace, job_name("fixed")), timeout=60, what="the upload Job")
    assert cluster.get(JOB, namespace, job_name("emoji")) is None


@pytest.fixture
def reconciler(
    cluster: Cluster, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryReconciler]:
    """A reconciler in-process against the real API server (the operator is stopped meanwhile, so
    only this one reconciles)."""
    operator.stop()
    try:
        kube = Kube(load_api_client(str(cluster.kubeconfig)))
        yield RegistryReconciler(kube, OperatorSettings(), lambda: PLAIN_KUBERNETES)
    finally:
        operator.start(tmp_path_factory.mktemp("operator-restarted"))


async def test_an_unexpected_error_is_a_reconcile_error_logged_once_and_retried_with_backoff(
    cluster: Cluster,
    namespace: str,
    reconciler: RegistryReconciler,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The injected fault is a bug in the render, which no real server can produce: its message
    quotes the database password. The registry gets ReconcileError (no password in it), the log the
    traceback once (no password in it), the retries come further and further apart, and a spec
    change cuts the backoff short and converges."""
    password = f"pw-{uuid.uuid4().hex}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": password},
    }
    cluster.apply_yaml(yaml.safe_dump(secret), namespace)
    spec = {
        "rest": {},
        "postgres": {
            "host": "db.invalid",
            "database": "mr",
            "username": "mr",
            "passwordSecret": {"name": "db", "key": "password"},
        },
    }
    cluster.apply_yaml(registry("buggy", spec), namespace)

    calls: list[float] = []
    original = reconcile_module.render_model_registry  # type: ignore[attr-defined]

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        raise RuntimeError(f"cannot build postgres://mr:{password}@db.invalid/mr")

    monkeypatch.setattr(reconcile_module, "render_model_registry", broken)
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 0.5)
    monkeypatch.setattr(errors, "BACKOFF_CAP_SECONDS", 3.0)
    caplog.set_level(logging.DEBUG, logger="model_registry_operator")

    body = cluster.get(MR, namespace, "buggy")
    assert body is not None
    reconciler.registry_event(None, body)  # as the watch delivers it
    await asyncio.to_thread(wait_for, lambda: len(calls) >= 6, 30, what="six failed attempts")

    available = cluster.condition(namespace, "buggy", "Available")
    assert available is not None
    assert (available["status"], available["reason"]) == ("False", "ReconcileError")
    assert "RuntimeError: cannot build postgres://<redacted>@db.invalid/mr" in available["message"]
    assert "retrying in" in available["message"]
    degraded = cluster.condition(namespace, "buggy", "Degraded")
    assert degraded is not None
    assert (degraded["status"], degraded["reason"]) == ("True", "ReconcileError")
    status = yaml.safe_dump(cluster.get(MR, namespace, "buggy"))
    assert password not in status

    tracebacks = [r for r in caplog.records if "Traceback (most recent call last)" in r.getMessage()]
    assert len(tracebacks) == 1, [r.getMessage()[:200] for r in caplog.records]
    assert tracebacks[0].levelno == logging.ERROR
    assert "RuntimeError: cannot build" in tracebacks[0].getMessage()
    assert password not in caplog.text

    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[1] > gaps[0] * 1.5, gaps  # 0.5 s, 1 s, 2 s, then the cap
    assert max(gaps) < 3.0 + 1.5, gaps

    # The next retry 10 minutes away; then the bug goes away and the spec changes: no waiting.
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 600.0)
    monkeypatch.setattr(errors, "BACKOFF_CAP_SECONDS", 600.0)
    seen = len(calls)
    await asyncio.to_thread(wait_for, lambda: len(calls) > seen, 10, what="one more failed attempt")
    await asyncio.sleep(0.5)
    assert "retrying in 600 s" in (cluster.condition(namespace, "buggy", "Available") or {})["message"]
    monkeypatch.setattr(reconcile_module, "render_model_registry", original)
    cluster.kubectl("patch", "-n", namespace, "mr/buggy", "--type=merge", "-p", '{"spec":{"rest":{"port":8081}}}')
    changed = cluster.get(MR, namespace, "buggy")
    assert changed is not None
    reconciler.registry_event("MODIFIED", changed)

    def converged() -> bool:
        cond = cluster.condition(namespace, "buggy", "Available")
        return cond is not None and cond["reason"] != "ReconcileError"

    await asyncio.to_thread(wait_for, converged, 20, what="the ReconcileError to go")
    degraded = cluster.condition(namespace, "buggy", "Degraded")
    assert degraded is not None
    assert degraded["reason"] != "ReconcileError"
    reconciler.forget(namespace, "buggy")


async def test_an_unexpected_error_of_an_upload_is_a_reconcile_error_logged_once(
    cluster: Cluster,
    namespace: str,
    reconciler: RegistryReconciler,  # only for the operator to be stopped meanwhile
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same for a ModelUploadJob (the injected fault again a render bug, which no real server
    can produce): `Started=False` with ReconcileError, one traceback, retries with backoff, and the
    Job once the bug is gone."""
    uploads = UploadJobReconciler(Kube(load_api_client(str(cluster.kubeconfig))), OperatorSettings())
    body = {
        "apiVersion": "/".join(MUJ[:1]),
        "kind": MUJ[1],
        "metadata": {"name": "buggy"},
        "spec": {
            "registry": {"address": "https://registry.example:8443"},
            "intent": "create_model",
            "source": {"uri": {"uri": "https://example.com/model.onnx"}},
            "destination": {"oci": {"uri": "quay.io/example/model:v1"}},
            "model": {"registeredModel": {"name": "m"}, "modelVersion": {"name": "v1"}},
        },
    }
    cluster.apply_yaml(yaml.safe_dump(body), namespace)
    calls: list[float] = []
    original = upload_module.render_model_upload_job  # type: ignore[attr-defined]

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        raise KeyError("job")

    monkeypatch.setattr(upload_module, "render_model_upload_job", broken)
    monkeypatch.setattr(errors, "BACKOFF_BASE_SECONDS", 0.5)
    monkeypatch.setattr(errors, "BACKOFF_CAP_SECONDS", 1.0)
    caplog.set_level(logging.DEBUG, logger="model_registry_operator")

    assert await uploads.run(namespace, "buggy") is None  # reported, not raised
    await asyncio.to_thread(wait_for, lambda: len(calls) >= 4, 20, what="four failed attempts")
    result = cluster.kubectl("get", "-n", namespace, "modeluploadjob/buggy", "-o", "yaml")
    status = yaml.safe_load(result.stdout)["status"]
    started = next(c for c in status["conditions"] if c["type"] == "Started")
    assert (started["status"], started["reason"]) == ("False", "ReconcileError")
    assert "KeyError: 'job'" in started["message"]
    assert status["phase"] == "Pending"
    tracebacks = [r for r in caplog.records if "Traceback (most recent call last)" in r.getMessage()]
    assert len(tracebacks) == 1, [r.getMessage()[:200] for r in caplog.records]

    monkeypatch.setattr(upload_module, "render_model_upload_job", original)
    await asyncio.to_thread(
        wait_for, lambda: cluster.get(JOB, namespace, job_name("buggy")), 20, what="the Job after the bug is gone"
    )
    uploads.forget(namespace, "buggy")
