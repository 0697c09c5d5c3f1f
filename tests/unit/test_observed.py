"""The compact copies the watches keep give the same conditions as the full objects."""

from __future__ import annotations

from typing import Any

import pytest

from model_registry_operator.reconcile.observed import ObservedChildren
from model_registry_operator.status.modelregistry import Observation, registry_conditions
from model_registry_operator.status.security import SecurityObservation

Obj = dict[str, Any]
KEY = ("ns", "reg")
LABELS = {"modelregistry.opendatahub.io/registry": "reg", "component": "model-registry", "app": "reg"}


def full_pod(name: str, phase: str, containers: list[Obj], conditions: list[Obj], **meta: Any) -> Obj:
    """A pod as the API server sends it: times, images, ids and all."""
    statuses = [
        {
            "name": "placeholder",
            "ready": False,
            "restartCount": 3,
            "image": "quay.io/opendatahub/model-registry:latest",
            "imageID": "quay.io/opendatahub/model-registry@sha256:" + "a" * 64,
            "containerID": "containerd://" + "b" * 64,
            "started": False,
            **c,
        }
        for c in containers
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": LABELS, "uid": "u-" + name, **meta},
        "spec": {"containers": [{"name": c["name"], "image": "img"} for c in containers]},
        "status": {
            "phase": phase,
            "hostIP": "10.0.0.1",
            "podIP": "10.1.0.7",
            "startTime": "2026-11-23T10:00:00Z",
            "qosClass": "Burstable",
            "conditions": [
                {"lastProbeTime": None, "lastTransitionTime": "2026-11-23T10:00:01Z", **c} for c in conditions
            ],
            "containerStatuses": statuses,
        },
    }


READY = [{"type": t, "status": "True"} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
RUNNING = {"running": {"startedAt": "2026-11-23T10:00:02Z"}}
CRASHING = {
    "name": "rest-container",
    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
    "lastState": {
        "terminated": {
            "exitCode": 2,
            "reason": "Error",
            "message": "dial tcp: connection refused",
            "startedAt": "2026-11-23T10:00:02Z",
            "finishedAt": "2026-11-23T10:00:03Z",
        }
    },
}

PODS: dict[str, list[Obj]] = {
    "ready with its proxy": [
        full_pod(
            "reg-1",
            "Running",
            [
                {"name": "rest-container", "ready": True, "state": RUNNING},
                {"name": "kube-rbac-proxy", "ready": True, "state": RUNNING},
            ],
            READY,
        )
    ],
    "proxy still starting": [
        full_pod(
            "reg-1",
            "Pending",
            [
                {"name": "rest-container", "ready": True, "state": RUNNING},
                {"name": "kube-rbac-proxy", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ],
            [{"type": "PodScheduled", "status": "True"}],
        )
    ],
    "crash looping": [full_pod("reg-1", "Running", [CRASHING], [{"type": "Ready", "status": "False"}])],
    "crash looping, told by the last exit": [
        full_pod(
            "reg-1",
            "Running",
            [{**CRASHING, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
            [{"type": "Ready", "status": "False"}],
        )
    ],
    "unschedulable": [
        full_pod(
            "reg-1",
            "Pending",
            [],
            [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient memory.",
                }
            ],
        )
    ],
    "failed": [
        {
            **full_pod("reg-1", "Failed", [], []),
            "status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on memory."},
        }
    ],
    "old one terminating": [
        full_pod("reg-0", "Running", [CRASHING], READY, deletionTimestamp="2026-11-23T10:05:00Z"),
        full_pod("reg-1", "Running", [{"name": "rest-container", "ready": True, "state": RUNNING}], READY),
    ],
}


def full_deployment(available: str, progressing: Obj) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "reg", "namespace": "ns", "labels": LABELS, "generation": 4, "uid": "d"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "rest-container"}]}}},
        "status": {
            "observedGeneration": 4,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1 if available == "True" else 0,
            "availableReplicas": 1 if available == "True" else 0,
            "unavailableReplicas": 0 if available == "True" else 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": available,
                    "reason": "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": "2026-11-23T10:00:03Z",
                    "lastTransitionTime": "2026-11-23T10:00:03Z",
                },
                {"lastUpdateTime": "2026-11-23T10:00:03Z", "lastTransitionTime": "2026-11-23T10:00:00Z", **progressing},
            ],
        },
    }


DEPLOYMENTS = {
    "available": full_deployment("True", {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}),
    "deadline exceeded": full_deployment(
        "False",
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "reg-7d9" has timed out progressing.',
        },
    ),
}


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS), ids=str)
@pytest.mark.parametrize("pods", list(PODS), ids=str)
def test_conditions_from_compact_copies_equal_those_from_full_objects(pods: str, deployment: str) -> None:
    observed = ObservedChildren()
    for body in PODS[pods]:
        assert observed.update("MODIFIED", body) == KEY
    assert observed.update("MODIFIED", DEPLOYMENTS[deployment]) == KEY
    security = SecurityObservation(mode="kube-rbac-proxy", sidecar="kube-rbac-proxy")

    def conditions(deployment_body: Obj, pod_bodies: list[Obj]) -> list[tuple[str, str, str, str]]:
        obs = Observation(
            generation=1, deployment=deployment_body, ready_endpoints=1, pods=pod_bodies, security=security
        )
        return [(c.type, c.status, c.reason, c.message) for c in registry_conditions(obs, None)]

    compact_deployment = observed.deployment(KEY)
    assert compact_deployment is not None
    assert conditions(compact_deployment, observed.pods(KEY)) == conditions(DEPLOYMENTS[deployment], PODS[pods])


def test_a_deleted_pod_is_forgotten() -> None:
    observed = ObservedChildren()
    body = PODS["crash looping"][0]
    observed.update("ADDED", body)
    assert [p["metadata"]["name"] for p in observed.pods(KEY)] == ["reg-1"]
    observed.update("DELETED", body)
    assert observed.pods(KEY) == []
