"""Reconcile one ModelUploadJob: resolve the registry, create the ConfigMap and Job once, follow them.

Every trigger (kopf create / update / resume, the periodic check of waiting uploads, events of
the Job, its Pods and of ModelRegistries) funnels into :meth:`UploadJobReconciler.run` (kopf's
handlers) or :meth:`UploadJobReconciler.schedule` (everything else), both serialised per object
by the uploads' :class:`.queue.WorkQueue`, which also retries failures with backoff. The Job is
created once, with server-side apply under the operator's field manager; after that only its
status and its Pods' statuses are read. Children are owned by the ModelUploadJob, so deleting it
removes the Job, its Pods and the ConfigMap.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..api.common import IMAGE_PATTERN
from ..api.modeluploadjob import ModelUploadJobSpec
from ..kinds import CONFIG_MAP, JOB, MODEL_REGISTRY, MODEL_UPLOAD_JOB, POD, PVC, SECRET
from ..kube import ApiError, Kube, Obj
from ..names import (
    AVAILABLE,
    CONFIGURATION_ERROR,
    FAILED,
    FORBIDDEN,
    JOB_CREATED,
    MODEL_UPLOAD_JOB_KIND,
    RECONCILE_ERROR,
    REGISTRY_NOT_AVAILABLE,
    REGISTRY_NOT_FOUND,
    SPEC_HASH_ANNOTATION,
    SUCCEEDED,
    TRUE,
)
from ..observability.metrics import UPLOADS_FINISHED, count_upload_bytes
from ..render.engine import RenderError
from ..render.modeluploadjob import (
    RegistryEndpoint,
    UploadJobRef,
    address_endpoint,
    config_map_name,
    job_name,
    registry_endpoint,
    render_model_upload_job,
    spec_hash,
    token_problem,
    without_userinfo,
)
from ..settings import OperatorSettings
from ..status.conditions import find, set_conditions
from ..status.modeluploadjob import (
    TERMINAL,
    Problem,
    UploadObservation,
    UploadStatus,
    upload_status,
)
from .errors import invalid_message, is_invalid, time_limit, value_problems
from .queue import Key, Wanted, WorkQueue

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.1

EventSink = Callable[[Obj, str, str, str], None]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "invalid spec: " + "; ".join(parts)


def registry_url(endpoint: RegistryEndpoint) -> str:
    """The URL the upload program will use (``address`` keeps its own port when it has one),
    without the credentials an address may carry (it goes into the status)."""
    hostport = endpoint.address.split("://", 1)[-1].split("/", 1)[0]
    port = hostport.rsplit(":", 1)[-1]
    has_port = port.isascii() and port.isdigit() and not hostport.endswith("]")  # isdigit alone takes "²"
    url = endpoint.address.rstrip("/") if has_port else f"{endpoint.address.rstrip('/')}:{endpoint.port}"
    return without_userinfo(url)


IMAGE_SETTING = "RELATED_IMAGE_MODEL_UPLOAD_JOB_IMAGE"


def image_problem(spec: ModelUploadJobSpec, default_image: str) -> Problem | None:
    """The Job's image must be an OCI reference: ``spec.job.image`` (which the CRD checks too) or
    the operator's default, named by its variable when that is the bad one."""
    given = spec.job.image if spec.job is not None and spec.job.image else None
    image, field = (given, "spec.job.image") if given else (default_image, IMAGE_SETTING)
    if re.fullmatch(IMAGE_PATTERN, image):
        return None
    shown = repr(image[:80])
    return Problem(
        CONFIGURATION_ERROR,
        f"{field}: {shown} is not an image reference ([host[:port]/]repository[:tag][@digest], ASCII)",
    )


def referenced_objects(spec: ModelUploadJobSpec) -> list[tuple[str, str, str]]:
    """``(kind, name, field)`` of every Secret, ConfigMap and PVC the Job mounts."""
    refs: list[tuple[str, str, str]] = []
    src, dst, reg = spec.source, spec.destination, spec.registry
    if src.s3 is not None:
        refs.append(("Secret", src.s3.credentials_secret, "spec.source.s3.credentialsSecret"))
    if src.uri is not None and src.uri.credentials_secret:
        refs.append(("Secret", src.uri.credentials_secret, "spec.source.uri.credentialsSecret"))
    if src.oci is not None and src.oci.credentials_secret:
        refs.append(("Secret", src.oci.credentials_secret, "spec.source.oci.credentialsSecret"))
    if src.pvc is not None:
        refs.append(("PersistentVolumeClaim", src.pvc.claim_name, "spec.source.pvc.claimName"))
    if dst.oci is not None and dst.oci.credentials_secret:
        refs.append(("Secret", dst.oci.credentials_secret, "spec.destination.oci.credentialsSecret"))
    if dst.s3 is not None:
        refs.append(("Secret", dst.s3.credentials_secret, "spec.destination.s3.credentialsSecret"))
    if reg.token_secret is not None:
        refs.append(("Secret", reg.token_secret.name, "spec.registry.tokenSecret"))
    if reg.ca_secret is not None:
        refs.append(("Secret", reg.ca_secret.name, "spec.registry.caSecret"))
    if reg.ca_config_map is not None:
        refs.append(("ConfigMap", reg.ca_config_map.name, "spec.registry.caConfigMap"))
    return refs


@dataclass
class UploadState:
    """What is kept about one upload between reconciles (dropped with ``queue.forget``)."""

    # Its last reconcile waited for its ModelRegistry: a registry event of its namespace retries it.
    waiting: bool = False
    phase: str = ""  # the phase last written (the metrics' count of uploads by phase)
    transferred: int | None = None  # the bytes transferred counted so far (the metrics' upload bytes)


class UploadJobReconciler:
    """The work queue, per-upload state and the reconcile of ModelUploadJobs."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        emit: EventSink | None = None,
        openshift: Callable[[], bool] | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.openshift = openshift or (lambda: False)
        """Whether the cluster is OpenShift (its SCCs assign the Pods' fsGroup)."""
        self.emit = emit or (lambda body, type_, reason, message: None)
        self.queue: WorkQueue[UploadState] = WorkQueue(
            self._work,
            UploadState,
            resource=MODEL_UPLOAD_JOB_KIND,
            describe=lambda key: f"upload {key[0]}/{key[1]}",
            debounce=DEBOUNCE_SECONDS,
        )

    # -- scheduling ----------------------------------------------------------------------
    async def run(self, namespace: str, name: str) -> UploadStatus | None:
        """Reconcile now; returns the status written (None when the object is gone or it failed).

        A failure never escapes: it is reported (a condition while no Job exists, the log once)
        and retried with backoff.
        """
        key = (namespace, name)
        async with self.queue.serialised(key):
            status, retry_in = await self._attempt(key)
        if retry_in is not None:
            self.queue.schedule(key, delay=retry_in)
        return status

    async def _work(self, key: Key, wanted: Wanted) -> float | None:
        """One run of the queue; the delay of a retry."""
        return (await self._attempt(key))[1]

    async def _attempt(self, key: Key) -> tuple[UploadStatus | None, float | None]:
        try:
            async with time_limit(self.settings.reconcile_timeout, f"the reconcile of upload {key[0]}/{key[1]}"):
                status = await self._reconcile(*key)
        except Exception as exc:  # API trouble, a bug, a time limit or an input nobody foresaw
            try:
                return None, await self._reconcile_failed(key, exc)
            except Exception as report_exc:  # the API server is in trouble: retried anyway
                log.debug("upload %s/%s: the failure could not be reported: %s", *key, report_exc)
                return None, self._note_failure(key, None, exc)[0]
        self.queue.succeeded(key)
        return status, None

    def _note_failure(self, key: Key, body: Obj | None, exc: Exception) -> tuple[float, str, str]:
        """Count a failure and log it (its traceback once): the delay, the condition's message and reason."""
        delay, failure = self.queue.failed(key, body, exc)
        return delay, f"{failure.message} (retrying in {delay:.0f} s)", failure.reason

    async def _reconcile_failed(self, key: Key, exc: Exception) -> float | None:
        """Report a failure (a condition while no Job exists); the delay of the retry."""
        body = await self.kube.get(MODEL_UPLOAD_JOB, *key)
        if body is None:
            self.forget(*key)
            return None
        delay, message, reason = self._note_failure(key, body, exc)
        previous: Obj = body.get("status") or {}
        if previous.get("phase") in TERMINAL or await self.kube.get(JOB, key[0], job_name(key[1])) is not None:
            return delay  # the Job's own status stays what the status says; the log has the failure
        observation = UploadObservation(
            generation=int(body["metadata"].get("generation", 0)),
            job_name=job_name(key[1]),
            config_map_name=config_map_name(key[1]),
            problem=Problem(reason, message),
        )
        await self._write_status(body, upload_status(observation, previous))
        return delay

    def schedule(self, namespace: str, name: str) -> None:
        """Reconcile soon; bursts of child events collapse into one run."""
        self.queue.schedule((namespace, name))

    def schedule_waiting(self, namespace: str) -> None:
        """A ModelRegistry changed: retry the uploads of its namespace that wait for one."""
        for key in sorted(key for key, state in self.queue.items() if key[0] == namespace and state.waiting):
            self.queue.schedule(key)

    def forget(self, namespace: str, name: str) -> None:
        self.queue.forget((namespace, name))

    async def stop(self) -> None:
        await self.queue.stop()

    # -- the reconcile -------------------------------------------------------------------
    async def _reconcile(self, namespace: str, name: str) -> UploadStatus | None:
        body = await self.kube.get(MODEL_UPLOAD_JOB, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return None
        meta = body["metadata"]
        raw_spec: Obj = body.get("spec") or {}
        previous: Obj = body.get("status") or {}
        ref = UploadJobRef(name, namespace, meta["uid"])
        jname, cmname = job_name(name), config_map_name(name)

        job = await self.kube.get(JOB, namespace, jname)
        problem: Problem | None = None
        url: str | None = None
        if job is not None and not _owned_by(job, meta["uid"]):
            job = None
            problem = Problem(CONFIGURATION_ERROR, f"a Job {jname!r} not owned by this ModelUploadJob already exists")
        elif job is None and previous.get("phase") not in TERMINAL:
            job, problem, url = await self._create(ref, raw_spec, body)

        spec_changed = job is not None and (job["metadata"].get("annotations") or {}).get(
            SPEC_HASH_ANNOTATION
        ) != spec_hash(raw_spec)
        pods: list[Obj] = []
        if job is not None:
            selector = f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"
            pods = await self.kube.list(POD, namespace, selector)
        observation = UploadObservation(
            generation=int(meta.get("generation", 0)),
            job_name=jname,
            config_map_name=cmname,
            registry_url=url,
            problem=problem,
            spec_changed=spec_changed,
            job=job,
            pods=pods,
        )
        status = upload_status(observation, previous)
        state = self.queue.peek((namespace, name))
        if state is not None:  # (None: forgotten meanwhile)
            state.waiting = problem is not None and problem.reason in _REGISTRY_WAITS
            state.phase = status.phase
            progress = status.fields.get("progress") or previous.get("progress") or {}
            state.transferred = count_upload_bytes(state.transferred, progress.get("bytesTransferred"))
        await self._write_status(body, status)
        return status

    async def _create(
        self, ref: UploadJobRef, raw_spec: Obj, body: Obj
    ) -> tuple[Obj | None, Problem | None, str | None]:
        """Create the ConfigMap and the Job; or say why not yet."""
        try:
            spec = ModelUploadJobSpec.model_validate(raw_spec)
        except ValidationError as exc:
            return None, Problem(CONFIGURATION_ERROR, _problems(exc)), None
        problem = image_problem(spec, self.settings.upload_job_image)
        if problem is not None:
            return None, problem, None
        endpoint, problem = await self._resolve_registry(ref.namespace, spec)
        if problem is not None or endpoint is None:
            return None, problem, None
        problem = await self._check_references(ref.namespace, spec)
        if problem is not None:
            return None, problem, None
        try:
            objects = render_model_upload_job(
                ref, spec, raw_spec, endpoint, self.settings.upload_job_image, openshift=self.openshift()
            )
        except RenderError:
            problems = value_problems(raw_spec)  # a value no template can hold: name its field
            if problems:
                return None, Problem(CONFIGURATION_ERROR, "; ".join(problems)), None
            raise
        applied: Obj | None = None
        try:
            for obj in objects:  # the ConfigMap first: the Pod mounts it
                applied = await self.kube.apply(obj)
        except ApiError as exc:
            if is_invalid(exc):
                return None, Problem(CONFIGURATION_ERROR, invalid_message(exc)), None
            raise
        self.emit(body, "Normal", JOB_CREATED, f"Created Job {objects[-1]['metadata']['name']}")
        return applied, None, registry_url(endpoint)

    async def _resolve_registry(
        self, namespace: str, spec: ModelUploadJobSpec
    ) -> tuple[RegistryEndpoint | None, Problem | None]:
        target = spec.registry
        if target.address is not None:
            return address_endpoint(target), None
        assert target.name is not None  # exactly one of name / address (CEL and the model)
        registry = await self.kube.get(MODEL_REGISTRY, namespace, target.name)
        if registry is None:
            return None, Problem(
                REGISTRY_NOT_FOUND, f"ModelRegistry {target.name!r} not found in namespace {namespace}"
            )
        available = find((registry.get("status") or {}).get("conditions"), AVAILABLE)
        if available is None or available.get("status") != TRUE:
            detail = f": {available.get('message')}" if available and available.get("message") else ""
            return None, Problem(REGISTRY_NOT_AVAILABLE, f"ModelRegistry {target.name!r} is not Available{detail}")
        endpoint = registry_endpoint(
            target.name, namespace, registry.get("spec") or {}, allow_token_over_http=bool(target.allow_token_over_http)
        )
        problem = token_problem(target, endpoint)
        return (None, Problem(CONFIGURATION_ERROR, problem)) if problem else (endpoint, None)

    async def _check_references(self, namespace: str, spec: ModelUploadJobSpec) -> Problem | None:
        refs = referenced_objects(spec)
        kinds = {"Secret": SECRET, "ConfigMap": CONFIG_MAP, "PersistentVolumeClaim": PVC}
        found = await asyncio.gather(*(self.kube.get(kinds[kind], namespace, name) for kind, name, _ in refs))
        missing = [
            f"{kind} {name!r} ({field})" for (kind, name, field), obj in zip(refs, found, strict=True) if not obj
        ]
        if missing:
            return Problem(CONFIGURATION_ERROR, f"not found in namespace {namespace}: " + ", ".join(missing))
        return None

    async def _write_status(self, body: Obj, status: UploadStatus) -> None:
        meta = body["metadata"]
        old: Obj = body.get("status") or {}
        previous_conditions = old.get("conditions") or []
        generation = int(meta.get("generation", 0))
        conditions = set_conditions(previous_conditions, status.conditions, _now(), generation)
        new: Obj = {**status.fields, "phase": status.phase, "conditions": conditions}
        if all(old.get(k) == v for k, v in new.items()):
            return
        try:
            await self.kube.merge_patch(MODEL_UPLOAD_JOB, meta["namespace"], meta["name"], {"status": new}, "status")
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        if old.get("phase") != status.phase:
            if status.phase in TERMINAL:
                UPLOADS_FINISHED.labels(status.phase).inc()
            if status.phase == SUCCEEDED:
                self.emit(body, "Normal", "Succeeded", f"Uploaded to {status.fields.get('artifactURI', '')}")
            elif status.phase == FAILED:
                self.emit(body, "Warning", "Failed", str(status.fields.get("message") or "upload failed"))
        problem_reason = next((c.reason for c in status.conditions if c.reason in _WAIT_REASONS), None)
        old_reasons = {c.get("reason") for c in previous_conditions}
        if problem_reason and problem_reason not in old_reasons:
            self.emit(body, "Warning", problem_reason, str(status.fields.get("message") or ""))


_WAIT_REASONS = frozenset({REGISTRY_NOT_FOUND, REGISTRY_NOT_AVAILABLE, CONFIGURATION_ERROR, RECONCILE_ERROR, FORBIDDEN})
_REGISTRY_WAITS = frozenset({REGISTRY_NOT_FOUND, REGISTRY_NOT_AVAILABLE})


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def is_finished(status: dict[str, Any] | None) -> bool:
    """Whether an upload has ended for good (nothing left to follow)."""
    return (status or {}).get("phase") in TERMINAL
