"""Condition logic as pure functions."""

from __future__ import annotations

from typing import Any

from model_registry_operator.status.conditions import Cond, set_condition
from model_registry_operator.status.modelregistry import (
    DatabaseState,
    Observation,
    pod_failure,
    ready_endpoint_count,
    registry_conditions,
)
from model_registry_operator.status.security import SecurityObservation


def deployment(
    available: str = "True",
    generation: int = 1,
    observed: int = 1,
    replicas: int = 1,
    updated: int = 1,
    ready: int = 1,
    progressing: str = "True",
    message: str = "",
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "conditions": [
                {"type": "Available", "status": available, "reason": "MinimumReplicas", "message": message},
                {
                    "type": "Progressing",
                    "status": progressing,
                    "reason": "NewReplicaSetAvailable" if progressing == "True" else "ProgressDeadlineExceeded",
                    "message": "deadline" if progressing == "False" else "",
                },
            ],
        },
    }


def pod(
    waiting: str | None = None, phase: str = "Running", message: str = "", deleting: bool = False
) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {}}
    meta: dict[str, Any] = {"name": "reg-abc"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "rest-container", "state": state, "lastState": {"terminated": {"exitCode": 1}}}
            ],
        },
    }


def conds(obs: Observation, previous: list[dict[str, Any]] | None = None) -> dict[str, Cond]:
    return {c.type: c for c in registry_conditions(obs, previous)}


def test_available_when_deployment_available_and_endpoints_ready() -> None:
    c = conds(
        Observation(
            generation=3,
            deployment=deployment(),
            ready_endpoints=1,
            pods=[pod()],
            database=DatabaseState("True", "Connected", "ok"),
        )
    )
    assert (c["Available"].status, c["Available"].reason) == ("True", "DeploymentAvailable")
    assert (c["Progressing"].status, c["Progressing"].reason) == ("False", "RolloutComplete")
    assert (c["Degraded"].status, c["Degraded"].reason) == ("False", "AsExpected")
    assert (c["DatabaseAvailable"].status, c["DatabaseAvailable"].reason) == ("True", "Connected")


def test_not_available_without_ready_endpoints() -> None:
    c = conds(Observation(generation=1, deployment=deployment(), ready_endpoints=0))
    assert (c["Available"].status, c["Available"].reason) == ("False", "Starting")


def test_first_rollout_is_starting_not_unavailable() -> None:
    c = conds(
        Observation(
            generation=1, deployment=deployment(available="False", ready=0), pods=[pod(waiting="ContainerCreating")]
        )
    )
    assert (c["Available"].status, c["Available"].reason) == ("False", "Starting")
    assert c["Progressing"].status == "True"
    assert c["Degraded"].status == "False"


def test_losing_a_running_registry_is_unavailable() -> None:
    previous = [{"type": "Available", "status": "True", "reason": "DeploymentAvailable"}]
    c = conds(Observation(generation=1, deployment=deployment(available="False", ready=0)), previous)
    assert (c["Available"].status, c["Available"].reason) == ("False", "DeploymentUnavailable")


def test_crash_loop_is_unavailable_with_the_pod_reason() -> None:
    c = conds(
        Observation(
            generation=1,
            deployment=deployment(available="False", ready=0),
            pods=[pod(waiting="CrashLoopBackOff", message="back-off 10s restarting")],
        )
    )
    assert (c["Available"].status, c["Available"].reason) == ("False", "DeploymentUnavailable")
    assert "CrashLoopBackOff" in c["Available"].message
    assert "reg-abc" in c["Available"].message
    assert (c["Degraded"].status, c["Degraded"].reason) == ("True", "PodFailing")


def test_terminating_pods_are_ignored() -> None:
    assert pod_failure([pod(waiting="CrashLoopBackOff", deleting=True)]) is None
    assert pod_failure([pod(waiting="ImagePullBackOff")]) is not None
    assert pod_failure([pod(phase="Failed")]) is not None


def test_progress_deadline_exceeded() -> None:
    c = conds(Observation(generation=1, deployment=deployment(available="False", ready=0, progressing="False")))
    assert (c["Available"].reason, c["Progressing"].reason) == ("DeploymentUnavailable", "ProgressDeadlineExceeded")
    assert c["Progressing"].status == "False"


def test_progressing_tracks_the_rollout() -> None:
    assert (
        conds(Observation(generation=1, deployment=deployment(generation=2, observed=1)))["Progressing"].status
        == "True"
    )
    rolling = conds(Observation(generation=1, deployment=deployment(replicas=2, updated=1), ready_endpoints=1))
    assert (rolling["Progressing"].status, rolling["Progressing"].reason) == ("True", "RollingOut")
    assert rolling["Available"].status == "True"  # the old pod still serves


def test_configuration_error_everywhere() -> None:
    c = conds(Observation(generation=1, configuration_error="Secret 'x' not found"))
    assert {k: (v.status, v.reason) for k, v in c.items()} == {
        "Available": ("False", "ConfigurationError"),
        "Progressing": ("False", "ConfigurationError"),
        "Degraded": ("True", "ConfigurationError"),
        "DatabaseAvailable": ("Unknown", "ConfigurationError"),
    }
    assert "Secret 'x' not found" in c["Available"].message


def test_database_down_degrades_but_unknown_does_not() -> None:
    down = conds(
        Observation(
            generation=1,
            deployment=deployment(),
            ready_endpoints=1,
            database=DatabaseState("False", "AuthenticationFailed", "password rejected"),
        )
    )
    assert (down["Degraded"].status, down["Degraded"].reason) == ("True", "DatabaseUnavailable")
    assert (down["DatabaseAvailable"].status, down["DatabaseAvailable"].reason) == ("False", "AuthenticationFailed")
    unknown = conds(
        Observation(
            generation=1,
            deployment=deployment(),
            ready_endpoints=1,
            database=DatabaseState("Unknown", "Unknown", "cannot resolve"),
        )
    )
    assert unknown["Degraded"].status == "False"
    assert conds(Observation(generation=1))["DatabaseAvailable"].reason == "ProbeDisabled"


def test_missing_apis_are_reported() -> None:
    security = SecurityObservation(missing_apis=["route.openshift.io"])
    c = conds(Observation(generation=1, deployment=deployment(), ready_endpoints=1, security=security))
    assert (c["Degraded"].status, c["Degraded"].reason) == ("True", "MissingAPI")
    assert "route.openshift.io" in c["Degraded"].message


def test_set_condition_keeps_transition_time_unless_status_flips() -> None:
    first = set_condition([], Cond("Available", "False", "Starting", "a"), "t1", 1)
    assert first == [
        {
            "type": "Available",
            "status": "False",
            "reason": "Starting",
            "message": "a",
            "lastTransitionTime": "t1",
            "observedGeneration": 1,
        }
    ]
    same = set_condition(first, Cond("Available", "False", "DeploymentUnavailable", "b"), "t2", 2)
    assert same[0]["lastTransitionTime"] == "t1"
    assert (same[0]["reason"], same[0]["message"], same[0]["observedGeneration"]) == ("DeploymentUnavailable", "b", 2)
    flipped = set_condition(same, Cond("Available", "True", "DeploymentAvailable"), "t3", 2)
    assert flipped[0]["lastTransitionTime"] == "t3"
    assert first[0]["reason"] == "Starting", "input is not mutated"


def test_ready_endpoint_count() -> None:
    slices = [
        {
            "endpoints": [
                {"addresses": ["127.1.0.2"], "conditions": {"ready": True}},
                {"addresses": ["127.1.0.3"], "conditions": {"ready": False}},
            ]
        },
        {"endpoints": None},
    ]
    assert ready_endpoint_count(slices) == 1
