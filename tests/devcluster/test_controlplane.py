"""The local control plane and the simulated node behave like a real cluster where it matters.

Statuses of Deployments, ReplicaSets, Jobs and Endpoints are computed by the real controllers
from what the simulated node writes into Pod status; the tests never patch them.
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from model_registry_devcluster import simnode as sn
from model_registry_devcluster.controlplane import ControlPlane
from model_registry_devcluster.simnode import (
    ContainerBehaviour,
    ContainerContext,
    ContainerExit,
    IPAllocator,
    SimulatedNode,
)
from model_registry_devcluster.testing import DevCluster, wait_for

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------- helpers
def deployment(name: str, image: str, replicas: int = 1, port: int = 8080) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": port}]}]},
            },
        },
    }


def job(name: str, image: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image}]},
            },
        },
    }


def condition(obj: Any, ctype: str) -> Any:
    for cond in (obj.status.conditions or []) if obj.status else []:
        if cond.type == ctype:
            return cond
    return None


def pods_of(api: Any, namespace: str, selector: str) -> list[Any]:
    return list(client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items)


def gone(read: Any, *args: Any) -> bool:
    try:
        read(*args)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


# ------------------------------------------------------------------------------------ unit tests
def test_ip_allocator_is_deterministic_and_unique() -> None:
    ips = IPAllocator("127.1.0.0/16")
    first = [ips.allocate(f"pod-{i}") for i in range(300)]
    assert first[:3] == ["127.1.0.1", "127.1.0.2", "127.1.0.3"]
    assert len(set(first)) == 300
    assert all(ip.split(".")[-1] not in ("0", "255") for ip in first)
    assert ips.allocate("pod-7") == first[7]  # stable for a live pod
    ips.release("pod-7")
    assert ips.allocate("new") not in first  # no immediate reuse: continues after the last one
    assert ips.reserve("adopted", first[7])
    assert not ips.reserve("other", first[7])
    with pytest.raises(ValueError, match="127.0.0.0/8"):
        IPAllocator("10.0.0.0/24")


def test_missing_binaries_error_tells_how_to_build(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "cp", bin_dir=tmp_path / "nothing-here")
    with pytest.raises(RuntimeError, match="make k8s"):
        cp.start()


# ----------------------------------------------------------------------------- control plane
def test_control_plane_basics(dev_cluster: DevCluster, api: Any) -> None:
    cp = dev_cluster.control_plane
    assert cp.server_url.startswith("https://127.0.0.1:")
    assert f"server: {cp.server_url}" in cp.kubeconfig.read_text()
    version = client.VersionApi(api).get_code()
    assert version.git_version.startswith("v1.3")
    core = client.CoreV1Api(api)
    assert core.read_namespace("default").status.phase == "Active"
    wait_for(lambda: core.read_namespaced_service_account("default", "default"), message="default SA")
    node = core.read_node(dev_cluster.node.node_name)
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert node.status.allocatable["pods"]


def test_crd_cel_validation_rejects_bad_object(api: Any) -> None:
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    crd = {
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
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "min": {"type": "integer"},
                                        "max": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {"rule": "self.min <= self.max", "message": "min must not exceed max"}
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd)
    try:
        wait_for(
            lambda: condition(ext.read_custom_resource_definition(f"widgets.{group}"), "Established"),
            message="CRD established",
        )
        custom = client.CustomObjectsApi(api)

        def create(name: str, lo: int, hi: int) -> Any:
            body = {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": {"min": lo, "max": hi},
            }
            return custom.create_namespaced_custom_object(group, "v1", "default", "widgets", body)

        # Discovery of a brand-new CRD can lag a moment behind "Established".
        wait_for(lambda: create("good", 1, 2), message="valid Widget accepted")
        with pytest.raises(client.ApiException) as err:
            create("bad", 3, 2)
        assert err.value.status == 422
        assert "min must not exceed max" in (err.value.body or "")
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


# ---------------------------------------------------------------------------- workloads
def test_deployment_becomes_available_and_endpoints_get_pod_ips(api: Any, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", "registry.example/web:1", replicas=2))
    core.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )

    def available() -> Any:
        d = apps.read_namespaced_deployment("web", namespace)
        cond = condition(d, "Available")
        return d if cond is not None and cond.status == "True" and d.status.ready_replicas == 2 else None

    d = wait_for(available, message="Deployment web Available")
    assert d.status.available_replicas == 2
    assert d.status.updated_replicas == 2

    pods = pods_of(api, namespace, "app=web")
    assert len(pods) == 2
    pod_ips = {p.status.pod_ip for p in pods}
    assert len(pod_ips) == 2
    for p in pods:
        assert p.spec.node_name == "sim-node"
        assert p.status.phase == "Running"
        assert ipaddress.ip_address(p.status.pod_ip).is_loopback
        assert p.status.container_statuses[0].ready is True

    def endpoint_ips() -> set[str] | None:
        ep = core.read_namespaced_endpoints("web", namespace)
        ips = {a.ip for s in ep.subsets or [] for a in s.addresses or []}
        return ips if ips == pod_ips else None

    wait_for(endpoint_ips, message="Endpoints list both pod IPs as ready")
    ep = core.read_namespaced_endpoints("web", namespace)
    assert [p.port for p in ep.subsets[0].ports] == [8080]

    def slice_ips() -> set[str] | None:
        slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        )
        ready = {a for s in slices.items for e in s.endpoints or [] if e.conditions.ready for a in e.addresses}
        return ready if ready == pod_ips else None

    wait_for(slice_ips, message="EndpointSlice lists both pod IPs as ready")


def test_crashloop_pod_keeps_deployment_unavailable(api: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("crash", "example/sim-crashloop:1"))

    def crashlooping() -> Any:
        for p in pods_of(api, namespace, "app=crash"):
            cs = (p.status.container_statuses or [None])[0]
            if cs and cs.state.waiting and cs.state.waiting.reason == "CrashLoopBackOff" and cs.restart_count >= 1:
                return p
        return None

    pod = wait_for(crashlooping, message="CrashLoopBackOff with restarts")
    cs = pod.status.container_statuses[0]
    assert cs.last_state.terminated.exit_code == 1
    assert cs.ready is False
    assert pod.status.phase == "Running"
    first = cs.restart_count
    wait_for(
        lambda: pods_of(api, namespace, "app=crash")[0].status.container_statuses[0].restart_count > first,
        message="restartCount increasing",
    )
    d = apps.read_namespaced_deployment("crash", namespace)
    assert not d.status.available_replicas
    assert condition(d, "Available").status == "False"


def test_image_pull_failure_and_unready(api: Any, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("pull", "example/sim-imagepull:1"))
    apps.create_namespaced_deployment(namespace, deployment("unready", "example/sim-unready:1"))

    def waiting_reason() -> str | None:
        pods = pods_of(api, namespace, "app=pull")
        cs = pods[0].status.container_statuses if pods and pods[0].status else None
        return cs[0].state.waiting.reason if cs and cs[0].state.waiting else None

    assert wait_for(waiting_reason, message="image pull error") in ("ErrImagePull", "ImagePullBackOff")
    assert pods_of(api, namespace, "app=pull")[0].status.phase == "Pending"

    def running_unready() -> Any:
        pods = pods_of(api, namespace, "app=unready")
        return pods[0] if pods and pods[0].status.phase == "Running" else None

    pod = wait_for(running_unready, message="unready pod running")
    assert condition(pod, "Ready").status == "False"
    assert pod.status.container_statuses[0].state.running is not None
    d = apps.read_namespaced_deployment("unready", namespace)
    assert not d.status.ready_replicas


def test_job_completes_and_ttl_removes_it(api: Any, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    created = batch.create_namespaced_job(namespace, job("ok", "busybox", ttlSecondsAfterFinished=1))
    # Watched, not polled: the TTL may delete the Job within a poll interval of its completion.
    j = None
    events = watch.Watch()
    for event in events.stream(
        batch.list_namespaced_job,
        namespace,
        field_selector="metadata.name=ok",
        resource_version=created.metadata.resource_version,
        timeout_seconds=30,
    ):
        cond = condition(event["object"], "Complete")
        if cond is not None and cond.status == "True":
            j = event["object"]
            events.stop()
    assert j is not None, "Job ok never Complete within 30 s"
    assert j.status.succeeded == 1
    assert not j.status.failed
    wait_for(lambda: gone(batch.read_namespaced_job, "ok", namespace), message="Job removed by its TTL")


def test_failing_job_fails(api: Any, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, job("bad", "example/sim-fail:1"))

    def failed() -> Any:
        j = batch.read_namespaced_job("bad", namespace)
        cond = condition(j, "Failed")
        return j if cond is not None and cond.status == "True" else None

    j = wait_for(failed, message="Job bad Failed")
    assert condition(j, "Failed").reason == "BackoffLimitExceeded"
    pods = pods_of(api, namespace, "job-name=bad")
    assert pods
    assert pods[0].status.phase == "Failed"
    term = pods[0].status.container_statuses[0].state.terminated
    assert term.exit_code == 1


# ---------------------------------------------------------------------------- deletion
def test_garbage_collection_removes_dependents(api: Any, namespace: str) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "dependent", "ownerReferences": [ref]}})
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(lambda: gone(core.read_namespaced_secret, "dependent", namespace), message="dependent Secret GC'd")

    apps.create_namespaced_deployment(namespace, deployment("web", "example/web:1", replicas=2))
    wait_for(lambda: len(pods_of(api, namespace, "app=web")) == 2, message="two pods")
    apps.delete_namespaced_deployment("web", namespace)
    wait_for(
        lambda: not pods_of(api, namespace, "app=web") and not apps.list_namespaced_replica_set(namespace).items,
        message="ReplicaSet and Pods removed with their Deployment",
    )


def test_namespace_deletion_completes(api: Any) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    name = f"t-del-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
    apps.create_namespaced_deployment(name, deployment("web", "example/web:1"))
    wait_for(
        lambda: any(p.status.phase == "Running" for p in pods_of(api, name, "app=web")),
        message="a running pod in the namespace",
    )
    core.delete_namespace(name)
    wait_for(lambda: gone(core.read_namespace, name), timeout=60, message=f"namespace {name} deleted")


# ---------------------------------------------------------------------- custom behaviour hook
class FakeProcess:
    """Stands in for a local process: ready at once, exits when told to."""

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx
        self.exit: ContainerExit | None = None
        self.stopped = threading.Event()

    def poll(self) -> ContainerExit | None:
        return self.exit

    def is_ready(self) -> bool:
        return True

    def stop(self) -> None:
        self.stopped.set()


class FakeRunner:
    def __init__(self) -> None:
        self.started: list[FakeProcess] = []

    def start(self, ctx: ContainerContext) -> FakeProcess:
        proc = FakeProcess(ctx)
        self.started.append(proc)
        return proc


def test_custom_behaviour_and_runner_hook(dev_cluster: DevCluster, api: Any, namespace: str) -> None:
    runner = FakeRunner()

    def policy(pod: Obj, container: Obj) -> ContainerBehaviour | None:
        return ContainerBehaviour.run_with(runner) if container["name"] == "proc" else None

    core = client.CoreV1Api(api)
    wait_for(lambda: core.read_namespaced_service_account("default", namespace), message="default SA")
    with SimulatedNode(api, "sim-node-2", policy, bind_unscheduled=False, runner_poll_interval=0.1):
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": "p"},
                "spec": {
                    "nodeName": "sim-node-2",
                    "restartPolicy": "Never",
                    "containers": [{"name": "proc", "image": "anything"}],
                },
            },
        )
        wait_for(lambda: runner.started, message="runner started")
        proc = runner.started[0]
        assert proc.ctx.pod_name == "p"
        assert proc.ctx.container["image"] == "anything"
        assert ipaddress.ip_address(proc.ctx.pod_ip).is_loopback
        wait_for(lambda: condition(core.read_namespaced_pod("p", namespace), "Ready").status == "True")
        proc.exit = ContainerExit(3, message="boom")
        pod = wait_for(
            lambda: (p := core.read_namespaced_pod("p", namespace)).status.phase == "Failed" and p,
            message="pod Failed after the runner exited",
        )
        term = pod.status.container_statuses[0].state.terminated
        assert (term.exit_code, term.reason, term.message) == (3, "Error", "boom")
        assert pod.status.pod_ip == proc.ctx.pod_ip


def test_node_recovers_from_expired_and_broken_watches(
    dev_cluster: DevCluster, api: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = dev_cluster.node
    real_stream = node._rest.stream
    calls = {"n": 0}

    def expiring_stream(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:  # the next two watches answer 410 Gone
            raise sn._Gone()
        return real_stream(*args, **kwargs)

    monkeypatch.setattr(node._rest, "stream", expiring_stream)
    before = node.relists
    node.restart_watch()
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("churn", "example/web:1", replicas=5))
    for _ in range(3):
        node.restart_watch()
    wait_for(
        lambda: apps.read_namespaced_deployment("churn", namespace).status.available_replicas == 5,
        message="Deployment available across re-lists",
    )
    assert node.relists >= before + 3
    assert calls["n"] > 2
    apps.patch_namespaced_deployment_scale("churn", namespace, {"spec": {"replicas": 1}})
    wait_for(lambda: len(pods_of(api, namespace, "app=churn")) == 1, message="scaled down to one pod")
