"""ModelUploadJob status from its Job and Pods. Pure: observation in, status fields out.

Phase follows the Job: ``Pending`` until a Pod runs (or when it cannot start, e.g. the image
cannot be pulled: the Job keeps trying, the reason is in ``Started`` and ``message``),
``Running`` while a Pod runs or a failed attempt is being retried, then ``Succeeded`` or
``Failed`` for good. The ids and the artifact URI come from the JSON termination message of the
upload program; a failure message from the failed Pod's termination message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_registry_upload_contract import EXIT_CONFIG, EXIT_REGISTRY, EXIT_TRANSFER, parse_result

from ..names import (
    COMPLETE,
    CONFIGURATION_ERROR,
    DEADLINE_EXCEEDED,
    FAILED,
    FAILED_CONDITION,
    FALSE,
    JOB_CREATED,
    JOB_FAILED,
    NOT_FINISHED,
    OOM_KILLED,
    PENDING,
    POD_RUNNING,
    REGISTRY_ERROR,
    REGISTRY_NOT_AVAILABLE,
    REGISTRY_NOT_FOUND,
    REGISTRY_RESOLVED,
    RESOLVED,
    RETRYING,
    RUNNING,
    SPEC_CHANGED,
    SPEC_IMMUTABLE,
    SPEC_UNCHANGED,
    STARTED,
    SUCCEEDED,
    TRANSFER_FAILED,
    TRUE,
    UPLOADED,
    WAITING,
)
from .conditions import Cond, find
from .modelregistry import START_FAILURES

Obj = dict[str, Any]

TERMINAL = frozenset({SUCCEEDED, FAILED})

# Exit codes of the upload program -> failure reason.
EXIT_REASONS = {EXIT_TRANSFER: TRANSFER_FAILED, EXIT_CONFIG: CONFIGURATION_ERROR, EXIT_REGISTRY: REGISTRY_ERROR}
MAX_MESSAGE = 1024
WRAPPER_ROOM = 128
"""Kept free in a log-tail failure message for the words put around it ("attempt 2 failed: ...",
"...; last attempt: ..."), so that its newest line is not cut off."""


@dataclass(frozen=True)
class Problem:
    """Why no Job could be created yet (reason is one of the constants above)."""

    reason: str
    message: str


@dataclass(frozen=True)
class UploadObservation:
    generation: int
    job_name: str
    config_map_name: str
    registry_url: str | None = None
    problem: Problem | None = None
    spec_changed: bool = False
    job: Obj | None = None
    pods: list[Obj] = field(default_factory=list)


@dataclass(frozen=True)
class UploadStatus:
    phase: str
    conditions: list[Cond]
    fields: Obj

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def _last_lines(text: str, limit: int) -> str:
    """The last lines of a log tail that fit in ``limit`` characters, oldest first."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    kept: list[str] = []
    size = 4  # "... "
    for line in reversed(lines):
        if size + len(line) + 3 > limit:
            break
        kept.insert(0, line)
        size += len(line) + 3
    if not kept:
        return "..." + lines[-1][-(limit - 3) :]
    return ("... " if len(kept) < len(lines) else "") + " | ".join(kept)


def _job_condition(job: Obj | None, type_: str) -> Obj | None:
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == TRUE:
            return dict(cond)
    return None


def _container(pod: Obj) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return dict(statuses[0]) if statuses else {}


def _sorted_pods(pods: list[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"].get("name", "")))


def parse_termination(message: str) -> Obj | None:
    """The success JSON of the upload program, or None."""
    return parse_result(message)


def _result_fields(data: Obj) -> Obj:
    out: Obj = {}
    for section, key in (
        ("RegisteredModel", "registeredModelId"),
        ("ModelVersion", "modelVersionId"),
        ("ModelArtifact", "modelArtifactId"),
    ):
        entry = data.get(section)
        if isinstance(entry, dict) and entry.get("id") is not None:
            out[key] = str(entry["id"])
    uri = data.get("uri") or (data.get("ModelArtifact") or {}).get("uri")
    if uri:
        out["artifactURI"] = str(uri)
    if data.get("digest"):
        out["digest"] = str(data["digest"])
    for key in ("bytes", "files"):
        if isinstance(data.get(key), int):
            out[key] = data[key]
    return out


def _failure(pod: Obj) -> tuple[str, str] | None:
    """(reason, message) of a Pod whose upload container failed."""
    state = (_container(pod).get("state") or {}).get("terminated")
    if not state or int(state.get("exitCode", 0)) == 0:
        return None
    code = int(state["exitCode"])
    text = (state.get("message") or "").strip()
    reason = OOM_KILLED if state.get("reason") == "OOMKilled" else EXIT_REASONS.get(code, TRANSFER_FAILED)
    prefix = f"exit code {code}"
    if not text:
        return reason, f"{prefix} ({state.get('reason') or 'Error'})"
    if code not in EXIT_REASONS:
        # Killed (137 / 143) or crashed before writing its message: the runtime's message is the
        # log tail (FallbackToLogsOnError), whose last lines tell what it was doing.
        return reason, f"{prefix}: {_last_lines(text, MAX_MESSAGE - WRAPPER_ROOM - len(prefix) - 2)}"
    return reason, _one_line(f"{prefix}: {text}")


def _waiting(pod: Obj) -> tuple[str, str] | None:
    waiting = (_container(pod).get("state") or {}).get("waiting")
    if waiting and waiting.get("reason") in START_FAILURES:
        return str(waiting["reason"]), _one_line(str(waiting.get("message") or waiting["reason"]))
    return None


def _started_at(pods: list[Obj]) -> str | None:
    for pod in pods:
        state = _container(pod).get("state") or {}
        for key in ("running", "terminated"):
            if state.get(key, {}).get("startedAt"):
                return str(state[key]["startedAt"])
    return None


def _finished_at(pods: list[Obj]) -> str | None:
    for pod in reversed(pods):
        finished = ((_container(pod).get("state") or {}).get("terminated") or {}).get("finishedAt")
        if finished:
            return str(finished)
    return None


def _completed(progress: Obj | None, total: int) -> Obj:
    """``status.progress`` of a successful upload: every byte, whatever the Pod last reported."""
    done: Obj = {"stage": "Completed", "bytesTransferred": total, "bytesTotal": total, "percent": 100}
    return {**(progress or {}), **done}


def upload_status(obs: UploadObservation, previous: Obj) -> UploadStatus:
    """The status of an upload; values learnt earlier (ids, times) are kept when Pods are gone."""
    fields: Obj = {
        "observedGeneration": obs.generation,
        "jobName": obs.job_name,
        "configMapName": obs.config_map_name,
    }
    for key in (
        "registryURL",
        "startTime",
        "completionTime",
        "attempts",
        "registeredModelId",
        "modelVersionId",
        "modelArtifactId",
        "artifactURI",
        "digest",
        "bytes",
        "files",
    ):
        if previous.get(key) is not None:
            fields[key] = previous[key]
    if obs.registry_url:
        fields["registryURL"] = obs.registry_url
    conds: list[Cond] = []
    spec_cond = (
        Cond(
            SPEC_CHANGED,
            TRUE,
            SPEC_IMMUTABLE,
            "the spec changed after the upload was started; the change is ignored: create a new ModelUploadJob",
        )
        if obs.spec_changed
        else Cond(SPEC_CHANGED, FALSE, SPEC_UNCHANGED, "")
    )
    previous_phase = previous.get("phase")

    if obs.job is None:
        if previous_phase in TERMINAL:  # the Job went away after the end (TTL, deleted): keep the outcome
            return UploadStatus(previous_phase, [spec_cond], {**fields, "message": previous.get("message") or ""})
        if obs.problem is not None:
            conds = []
            if obs.problem.reason in (REGISTRY_NOT_FOUND, REGISTRY_NOT_AVAILABLE):
                conds.append(Cond(REGISTRY_RESOLVED, FALSE, obs.problem.reason, obs.problem.message))
            conds += [
                Cond(STARTED, FALSE, obs.problem.reason, obs.problem.message),
                Cond(COMPLETE, FALSE, NOT_FINISHED, ""),
                Cond(FAILED_CONDITION, FALSE, NOT_FINISHED, ""),
                spec_cond,
            ]
            return UploadStatus(PENDING, conds, {**fields, "message": _one_line(obs.problem.message)})
        conds = [
            Cond(STARTED, FALSE, WAITING, "creating the Job"),
            Cond(COMPLETE, FALSE, NOT_FINISHED, ""),
            Cond(FAILED_CONDITION, FALSE, NOT_FINISHED, ""),
            spec_cond,
        ]
        return UploadStatus(PENDING, conds, {**fields, "message": ""})

    resolved_cond = Cond(REGISTRY_RESOLVED, TRUE, RESOLVED, fields.get("registryURL", ""))
    pods = _sorted_pods(obs.pods)
    job_status = obs.job.get("status") or {}
    if pods:
        fields["attempts"] = max(len(pods), int(fields.get("attempts") or 0))
    started_at = _started_at(pods) or job_status.get("startTime")
    if started_at and not fields.get("startTime"):
        fields["startTime"] = started_at

    succeeded_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
    for pod in succeeded_pods:
        terminated = (_container(pod).get("state") or {}).get("terminated") or {}
        data = parse_termination(terminated.get("message") or "")
        if data is not None:
            fields.update(_result_fields(data))

    complete = _job_condition(obs.job, "Complete") or _job_condition(obs.job, "SuccessCriteriaMet")
    failed = _job_condition(obs.job, "Failed") or _job_condition(obs.job, "FailureTarget")
    failures = [f for f in (_failure(p) for p in pods) if f is not None]

    if complete is not None or (succeeded_pods and failed is None):
        finished = (
            job_status.get("completionTime")
            or (complete or {}).get("lastTransitionTime")
            or _finished_at(succeeded_pods)
        )
        if finished and not fields.get("completionTime"):
            fields["completionTime"] = finished
        uri = fields.get("artifactURI", "")
        message = f"uploaded to {uri}" if uri else "uploaded"
        if isinstance(fields.get("bytes"), int):  # the last report of the Pod may have been lost
            fields["progress"] = _completed(previous.get("progress"), fields["bytes"])
        conds = [
            resolved_cond,
            Cond(STARTED, TRUE, POD_RUNNING, ""),
            Cond(COMPLETE, TRUE, UPLOADED, message),
            Cond(FAILED_CONDITION, FALSE, UPLOADED, ""),
            spec_cond,
        ]
        return UploadStatus(SUCCEEDED, conds, {**fields, "message": ""})

    if failed is not None:
        if failed.get("reason") == "DeadlineExceeded":
            reason, message = DEADLINE_EXCEEDED, _one_line(str(failed.get("message") or "deadline exceeded"))
            if failures:
                message = _one_line(f"{message}; last attempt: {failures[-1][1]}")
        elif failures:
            reason, message = failures[-1]
        else:
            waiting = next((w for w in (_waiting(p) for p in reversed(pods)) if w), None)
            reason = waiting[0] if waiting else JOB_FAILED
            message = _one_line(
                f"{failed.get('reason') or 'Failed'}: {failed.get('message') or ''}"
                + (f"; {waiting[1]}" if waiting else "")
            )
        finished = failed.get("lastTransitionTime") or job_status.get("completionTime") or _finished_at(pods)
        if finished and not fields.get("completionTime"):
            fields["completionTime"] = finished
        conds = [
            resolved_cond,
            Cond(STARTED, TRUE if started_at else FALSE, POD_RUNNING if started_at else reason, ""),
            Cond(COMPLETE, FALSE, reason, ""),
            Cond(FAILED_CONDITION, TRUE, reason, message),
            spec_cond,
        ]
        return UploadStatus(FAILED, conds, {**fields, "message": message})

    latest = pods[-1] if pods else None
    waiting = _waiting(latest) if latest is not None else None
    running = latest is not None and bool((_container(latest).get("state") or {}).get("running"))
    if running or (failures and not waiting):
        if failures:
            reason, message = RETRYING, f"attempt {len(failures)} failed: {failures[-1][1]}"
        else:
            reason, message = POD_RUNNING, ""
        conds = [
            resolved_cond,
            Cond(STARTED, TRUE, reason, message),
            Cond(COMPLETE, FALSE, NOT_FINISHED, ""),
            Cond(FAILED_CONDITION, FALSE, NOT_FINISHED, ""),
            spec_cond,
        ]
        return UploadStatus(RUNNING, conds, {**fields, "message": _one_line(message)})
    reason, message = waiting if waiting else (JOB_CREATED, "waiting for the Pod to start")
    conds = [
        resolved_cond,
        Cond(STARTED, FALSE, reason, message),
        Cond(COMPLETE, FALSE, NOT_FINISHED, ""),
        Cond(FAILED_CONDITION, FALSE, NOT_FINISHED, ""),
        spec_cond,
    ]
    return UploadStatus(PENDING, conds, {**fields, "message": message if waiting else ""})


def is_terminal(status: Obj | None) -> bool:
    return (status or {}).get("phase") in TERMINAL


def previous_condition(status: Obj | None, type_: str) -> Obj | None:
    return find((status or {}).get("conditions"), type_)
