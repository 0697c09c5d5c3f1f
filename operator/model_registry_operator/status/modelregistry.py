"""ModelRegistry status from what was observed. Pure: observation in, conditions out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..names import (
    AS_EXPECTED,
    AVAILABLE,
    CONFIGURATION_ERROR,
    DATABASE_AVAILABLE,
    DATABASE_UNAVAILABLE,
    DEGRADED,
    DEPLOYMENT_AVAILABLE,
    DEPLOYMENT_UNAVAILABLE,
    FALSE,
    MISSING_API,
    NAME_CONFLICT,
    POD_FAILING,
    PROBE_DISABLED,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    RECONCILE_ERROR,
    ROLLING_OUT,
    ROLLOUT_COMPLETE,
    STARTING,
    TRUE,
    UNKNOWN,
)
from .conditions import Cond, find
from .security import SecurityObservation, fold_into_available, security_conditions

# Container waiting reasons that keep a container from starting at all.
START_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
# ... and those that mean "broken", as opposed to "still starting".
FAILURE_REASONS = START_FAILURES | {"CrashLoopBackOff", "PreStartHookError", "PostStartHookError"}

Obj = dict[str, Any]


@dataclass(frozen=True)
class DatabaseState:
    """Result of the live database probe: status is True, False or Unknown."""

    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    generation: int
    configuration_error: str | None = None
    reconcile_error: str | None = None
    reconcile_reason: str = RECONCILE_ERROR  # Forbidden when the API server refused a request
    deployment: Obj | None = None
    ready_endpoints: int = 0
    pods: list[Obj] = field(default_factory=list)
    database: DatabaseState | None = None
    security: SecurityObservation = field(default_factory=SecurityObservation)
    exposed_hosts: list[str] = field(default_factory=list)
    # Cluster-scoped / cross-namespace objects whose names another registry holds (messages).
    name_conflicts: list[str] = field(default_factory=list)


def pod_failure(pods: list[Obj]) -> str | None:
    """The first reason a registry pod is broken (not merely starting), as a message."""
    for pod in pods:
        meta, status = pod.get("metadata", {}), pod.get("status", {})
        if meta.get("deletionTimestamp"):
            continue
        name = meta.get("name", "?")
        if status.get("phase") == "Failed":
            return f"pod {name} failed: {status.get('reason') or ''} {status.get('message') or ''}".strip()
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == FALSE and cond.get("reason"):
                return f"pod {name} cannot be scheduled: {cond.get('message') or cond['reason']}"
        statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
        for cs in statuses:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in FAILURE_REASONS:
                detail = waiting.get("message") or ""
                last = ((cs.get("lastState") or {}).get("terminated")) or {}
                if not detail and last:
                    detail = f"last exit code {last.get('exitCode')}" + (
                        f": {last['message']}" if last.get("message") else ""
                    )
                return f"pod {name} container {cs.get('name')} is {reason}" + (f": {detail}" if detail else "")
    return None


def _deployment_condition(deployment: Obj, type_: str) -> Obj | None:
    return find((deployment.get("status") or {}).get("conditions"), type_)


def _rollout(deployment: Obj) -> tuple[bool, str]:
    """(complete, message) for the Deployment's current rollout."""
    spec_replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    st = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    if st.get("observedGeneration", 0) < generation:
        return False, "Deployment update not yet observed by its controller"
    updated = int(st.get("updatedReplicas", 0))
    available = int(st.get("availableReplicas", 0))
    total = int(st.get("replicas", 0))
    if updated < spec_replicas:
        return False, f"{updated} of {spec_replicas} replicas updated"
    if total > updated:
        return False, f"{total - updated} old replicas pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, "Deployment rollout complete"


def _available(obs: Observation, previous: Obj | None) -> Cond:
    if obs.configuration_error:
        return Cond(AVAILABLE, FALSE, CONFIGURATION_ERROR, obs.configuration_error)
    if obs.reconcile_error:
        return Cond(AVAILABLE, FALSE, obs.reconcile_reason, obs.reconcile_error)
    if obs.name_conflicts:
        return Cond(AVAILABLE, FALSE, NAME_CONFLICT, "; ".join(obs.name_conflicts))
    failure = pod_failure(obs.pods)
    if failure:
        return Cond(AVAILABLE, FALSE, DEPLOYMENT_UNAVAILABLE, f"Deployment is unavailable: {failure}")
    deployment = obs.deployment
    if deployment is None:
        return Cond(AVAILABLE, FALSE, STARTING, "Deployment not created yet")
    progressing = _deployment_condition(deployment, "Progressing")
    if progressing and progressing.get("status") == FALSE:
        return Cond(
            AVAILABLE,
            FALSE,
            DEPLOYMENT_UNAVAILABLE,
            f"Deployment is unavailable: {progressing.get('message') or progressing.get('reason')}",
        )
    available = _deployment_condition(deployment, "Available")
    # Once a registry has been up, losing it is a fault; before that, it is still starting.
    was_up = previous is not None and (
        previous.get("status") == TRUE or previous.get("reason") == DEPLOYMENT_UNAVAILABLE
    )
    down_reason = DEPLOYMENT_UNAVAILABLE if was_up else STARTING
    if not available or available.get("status") != TRUE:
        message = (available or {}).get("message") or "waiting for the first replica to become ready"
        prefix = "Deployment is unavailable" if was_up else "Deployment is starting"
        return Cond(AVAILABLE, FALSE, down_reason, f"{prefix}: {message}")
    if obs.ready_endpoints < 1:
        return Cond(AVAILABLE, FALSE, down_reason, "Service has no ready endpoints yet")
    return Cond(AVAILABLE, TRUE, DEPLOYMENT_AVAILABLE, "Deployment is available")


def _progressing(obs: Observation) -> Cond:
    if obs.configuration_error:
        return Cond(PROGRESSING, FALSE, CONFIGURATION_ERROR, obs.configuration_error)
    if obs.reconcile_error:
        return Cond(PROGRESSING, FALSE, obs.reconcile_reason, obs.reconcile_error)
    if obs.deployment is None:
        return Cond(PROGRESSING, TRUE, ROLLING_OUT, "Creating deployment")
    progressing = _deployment_condition(obs.deployment, "Progressing")
    if progressing and progressing.get("status") == FALSE:
        return Cond(
            PROGRESSING,
            FALSE,
            PROGRESS_DEADLINE_EXCEEDED,
            progressing.get("message") or "Deployment exceeded its progress deadline",
        )
    complete, message = _rollout(obs.deployment)
    if complete:
        return Cond(PROGRESSING, FALSE, ROLLOUT_COMPLETE, message)
    return Cond(PROGRESSING, TRUE, ROLLING_OUT, message)


def _degraded(obs: Observation) -> Cond:
    if obs.configuration_error:
        return Cond(DEGRADED, TRUE, CONFIGURATION_ERROR, obs.configuration_error)
    if obs.reconcile_error:
        return Cond(DEGRADED, TRUE, obs.reconcile_reason, obs.reconcile_error)
    if obs.name_conflicts:
        return Cond(DEGRADED, TRUE, NAME_CONFLICT, "; ".join(obs.name_conflicts))
    failure = pod_failure(obs.pods)
    if failure:
        return Cond(DEGRADED, TRUE, POD_FAILING, failure)
    if obs.database is not None and obs.database.status == FALSE:
        return Cond(DEGRADED, TRUE, DATABASE_UNAVAILABLE, obs.database.message)
    if obs.security.missing_apis:
        return Cond(
            DEGRADED,
            TRUE,
            MISSING_API,
            "the spec or the operator settings need API group(s) the cluster does not serve: "
            + ", ".join(obs.security.missing_apis),
        )
    return Cond(DEGRADED, FALSE, AS_EXPECTED, "No faults detected")


def _database(obs: Observation) -> Cond:
    if obs.configuration_error:
        return Cond(DATABASE_AVAILABLE, UNKNOWN, CONFIGURATION_ERROR, "database settings are incomplete")
    if obs.reconcile_error:
        return Cond(DATABASE_AVAILABLE, UNKNOWN, obs.reconcile_reason, "not probed: the reconcile failed")
    if obs.database is None:
        return Cond(DATABASE_AVAILABLE, UNKNOWN, PROBE_DISABLED, "the operator does not probe the database")
    return Cond(DATABASE_AVAILABLE, obs.database.status, obs.database.reason, obs.database.message)


def registry_conditions(obs: Observation, previous: list[Obj] | None) -> list[Cond]:
    """All conditions of a ModelRegistry for one observation."""
    modes = [] if obs.configuration_error else security_conditions(obs.security, obs.pods)
    return [
        fold_into_available(_available(obs, find(previous, AVAILABLE)), modes),
        _progressing(obs),
        _degraded(obs),
        _database(obs),
        *modes,
    ]


def registry_hosts(name: str, namespace: str, exposed: list[str] | None = None) -> list[str]:
    """Exposed hosts (gateway, Routes) first, then the Service names."""
    return [*(exposed or []), f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}", name]


def ready_endpoint_count(slices: list[Obj]) -> int:
    return sum(
        1
        for s in slices
        for ep in s.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready", True) and ep.get("addresses")
    )
