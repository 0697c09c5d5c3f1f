"""Render the objects of a ModelUploadJob: its metadata ConfigMap and its Job. Pure.

The Job runs ``model-registry-operator upload`` configured only through ``MODEL_SYNC_*``
environment variables and mounted files: credentials Secrets are mounted at the paths given in
the ``*_CREDENTIALS_PATH`` variables (the upload program reads the files), the registry token
and CA as files, the metadata ConfigMap as a directory. No secret value passes through the
operator.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..api.common import GROUP
from ..api.modeluploadjob import KIND, VERSION, ModelUploadJobSpec, RegistryTarget, S3Location
from ..upload.status_report import NAME_ENV as PROGRESS_NAME_ENV
from ..upload.status_report import NAMESPACE_ENV as PROGRESS_NAMESPACE_ENV
from .engine import render_template

Obj = dict[str, Any]

MANAGED_BY = "model-registry-operator"
UPLOAD_JOB_LABEL = f"{GROUP}/upload-job"
SPEC_HASH_ANNOTATION = f"{GROUP}/spec-hash"
NAME_ANNOTATION = f"{GROUP}/upload-job-name"
CONTAINER_NAME = "upload"
COMMAND = ["model-registry-operator", "upload"]

# Where things are mounted in the upload container.
MOUNT_ROOT = "/var/run/model-upload"
METADATA_PATH = f"{MOUNT_ROOT}/metadata"
SCRATCH_PATH = f"{MOUNT_ROOT}/scratch"
TOKEN_DIR = f"{MOUNT_ROOT}/registry-token"
CA_DIR = f"{MOUNT_ROOT}/registry-ca"
TOKEN_PATH_ENV = "MODEL_REGISTRY_TOKEN_PATH"  # noqa: S105 - a variable name
DOCKERCONFIG = ".dockerconfigjson"

DEFAULT_REST_PORT = 8080
DEFAULT_PROXY_PORT = 8443
DEFAULT_SECURE_PORT = 443

DEFAULT_RESOURCES: Obj = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
# Configuration errors of the upload program (exit code 2) never succeed on a retry.
CONFIG_ERROR_EXIT_CODE = 2


@dataclass(frozen=True)
class UploadJobRef:
    """Identity of the ModelUploadJob being rendered."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class RegistryEndpoint:
    """Where the Job reaches the model registry (resolved by the reconcile)."""

    address: str
    port: int
    is_secure: bool


def registry_endpoint(name: str, namespace: str, registry_spec: Obj) -> RegistryEndpoint:
    """How a Job in the registry's namespace reaches a ModelRegistry through its Service.

    Behind kube-rbac-proxy / oauth-proxy: HTTPS on the proxy port with a token (the Job's
    service account token unless ``tokenSecret`` is given; give ``caConfigMap`` for the
    serving certificate's CA). With Istio: the REST port, with a token. Otherwise plain HTTP.
    """
    host = f"{name}.{namespace}.svc.cluster.local"
    for mode in ("kubeRBACProxy", "oauthProxy"):
        proxy = registry_spec.get(mode)
        if isinstance(proxy, dict):
            return RegistryEndpoint(f"https://{host}", int(proxy.get("port") or DEFAULT_PROXY_PORT), True)
    port = int((registry_spec.get("rest") or {}).get("port") or DEFAULT_REST_PORT)
    return RegistryEndpoint(f"http://{host}", port, registry_spec.get("istio") is not None)


def address_endpoint(target: RegistryTarget) -> RegistryEndpoint:
    """An explicitly given registry address (secure unless told otherwise, as upstream)."""
    assert target.address is not None
    secure = True if target.is_secure is None else target.is_secure
    return RegistryEndpoint(target.address, target.port or DEFAULT_SECURE_PORT, secure)


def child_name(name: str, suffix: str) -> str:
    """``<name>-<suffix>``, shortened with a hash when longer than a label value allows (63)."""
    full = f"{name}-{suffix}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 63 - len(suffix) - 10]}-{digest}-{suffix}"


def job_name(name: str) -> str:
    return child_name(name, "upload")


def config_map_name(name: str) -> str:
    return child_name(name, "metadata")


def progress_rbac_name(name: str) -> str:
    """Role and RoleBinding letting the upload Pod write this upload's ``status.progress``."""
    return child_name(name, "upload-progress")


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "model-upload",
        "app.kubernetes.io/instance": name[:63],
        "app.kubernetes.io/component": "model-upload",
        "app.kubernetes.io/part-of": "model-registry",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        UPLOAD_JOB_LABEL: name[:63],
    }


def owner_references(job: UploadJobRef) -> list[Obj]:
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": job.name,
            "uid": job.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def spec_hash(raw_spec: Obj) -> str:
    """Digest of the spec as stored: a changed spec gives another hash."""
    text = json.dumps(raw_spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------- metadata


def _properties(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, sort_keys=True) if value else None


def metadata_data(spec: ModelUploadJobSpec, job: UploadJobRef) -> dict[str, str]:
    """ConfigMap keys the upload program reads (as the upstream async-upload job)."""
    model = spec.model
    rm = model.registered_model if model else None
    mv = model.model_version if model else None
    ma = model.model_artifact if model else None
    values: dict[str, str | None] = {}
    if rm is not None:
        values.update(
            {
                "RegisteredModel.id": rm.id,
                "RegisteredModel.name": rm.name,
                "RegisteredModel.description": rm.description,
                "RegisteredModel.owner": rm.owner,
                "RegisteredModel.custom_properties": _properties(rm.custom_properties),
            }
        )
    if mv is not None:
        values.update(
            {
                "ModelVersion.name": mv.name,
                "ModelVersion.description": mv.description,
                "ModelVersion.author": mv.author,
                "ModelVersion.custom_properties": _properties(mv.custom_properties),
            }
        )
    if ma is not None:
        values.update(
            {
                "ModelArtifact.name": ma.name,
                "ModelArtifact.description": ma.description,
                "ModelArtifact.model_format_name": ma.model_format_name,
                "ModelArtifact.model_format_version": ma.model_format_version,
                "ModelArtifact.storage_key": ma.storage_key,
                "ModelArtifact.storage_path": ma.storage_path,
                "ModelArtifact.service_account_name": ma.service_account_name,
                "ModelArtifact.custom_properties": _properties(ma.custom_properties),
            }
        )
    # Links the artifact back to this upload (the upstream UI reads these).
    values.update(
        {
            "ModelArtifact.model_source_kind": "transfer_job",
            "ModelArtifact.model_source_class": "async-upload",
            "ModelArtifact.model_source_group": job.namespace,
            "ModelArtifact.model_source_name": job.name,
        }
    )
    return {k: v for k, v in values.items() if v is not None}


# ---------------------------------------------------------------------------------- the Job


class _Wiring:
    """Accumulates env, volumes and mounts of the upload container."""

    def __init__(self) -> None:
        self.env: list[Obj] = []
        self.volumes: list[Obj] = []
        self.mounts: list[Obj] = []

    def set(self, name: str, value: str | int | bool | None) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            value = "true" if value else "false"
        self.env.append({"name": name, "value": str(value)})

    def secret_dir(self, volume: str, secret: str, path: str, items: list[Obj] | None = None) -> None:
        source: Obj = {"secretName": secret}
        if items:
            source["items"] = items
        self.volumes.append({"name": volume, "secret": source})
        self.mounts.append({"name": volume, "mountPath": path, "readOnly": True})


def _s3(w: _Wiring, side: str, s3: S3Location) -> None:
    prefix = f"MODEL_SYNC_{side.upper()}"
    path = f"{MOUNT_ROOT}/{side}-s3"
    w.set(f"{prefix}_AWS_BUCKET", s3.bucket)
    w.set(f"{prefix}_AWS_KEY", s3.key)
    w.set(f"{prefix}_AWS_REGION", s3.region)
    w.set(f"{prefix}_AWS_ENDPOINT", s3.endpoint)
    w.secret_dir(f"{side}-s3-credentials", s3.credentials_secret, path)
    w.set(f"{prefix}_S3_CREDENTIALS_PATH", path)


def _dockerconfig(w: _Wiring, side: str, secret: str | None) -> None:
    if not secret:
        return
    path = f"{MOUNT_ROOT}/{side}-oci"
    w.secret_dir(f"{side}-oci-credentials", secret, path, [{"key": DOCKERCONFIG, "path": DOCKERCONFIG}])
    w.set(f"MODEL_SYNC_{side.upper()}_OCI_CREDENTIALS_PATH", f"{path}/{DOCKERCONFIG}")


def _source(w: _Wiring, spec: ModelUploadJobSpec) -> None:
    src = spec.source
    w.set("MODEL_SYNC_SOURCE_TYPE", src.kind)
    if src.s3 is not None:
        _s3(w, "source", src.s3)
    elif src.uri is not None:
        w.set("MODEL_SYNC_SOURCE_URI", src.uri.uri)
        if src.uri.credentials_secret:
            path = f"{MOUNT_ROOT}/source-uri"
            w.secret_dir("source-uri-credentials", src.uri.credentials_secret, path, [{"key": "URI", "path": "URI"}])
            w.set("MODEL_SYNC_SOURCE_URI_CREDENTIALS_PATH", path)
    elif src.oci is not None:
        w.set("MODEL_SYNC_SOURCE_OCI_URI", src.oci.uri)
        w.set("MODEL_SYNC_SOURCE_OCI_REGISTRY", src.oci.registry)
        w.set("MODEL_SYNC_SOURCE_OCI_ENABLE_TLS_VERIFY", src.oci.enable_tls_verify)
        _dockerconfig(w, "source", src.oci.credentials_secret)
    elif src.pvc is not None:
        path = f"{MOUNT_ROOT}/source-pvc"
        w.volumes.append({"name": "source-pvc", "persistentVolumeClaim": {"claimName": src.pvc.claim_name}})
        w.mounts.append({"name": "source-pvc", "mountPath": path, "readOnly": True})
        w.set("MODEL_SYNC_SOURCE_PATH", f"{path}/{src.pvc.path}".rstrip("/"))


def _destination(w: _Wiring, spec: ModelUploadJobSpec) -> None:
    dst = spec.destination
    w.set("MODEL_SYNC_DESTINATION_TYPE", dst.kind)
    if dst.oci is not None:
        w.set("MODEL_SYNC_DESTINATION_OCI_URI", dst.oci.uri.removeprefix("oci://"))
        w.set("MODEL_SYNC_DESTINATION_OCI_REGISTRY", dst.oci.registry)
        w.set("MODEL_SYNC_DESTINATION_OCI_BASE_IMAGE", dst.oci.base_image)
        w.set("MODEL_SYNC_DESTINATION_OCI_ENABLE_TLS_VERIFY", dst.oci.enable_tls_verify)
        _dockerconfig(w, "destination", dst.oci.credentials_secret)
    elif dst.s3 is not None:
        _s3(w, "destination", dst.s3)


def _registry(w: _Wiring, spec: ModelUploadJobSpec, endpoint: RegistryEndpoint) -> None:
    reg = spec.registry
    w.set("MODEL_SYNC_REGISTRY_SERVER_ADDRESS", endpoint.address)
    w.set("MODEL_SYNC_REGISTRY_PORT", endpoint.port)
    w.set("MODEL_SYNC_REGISTRY_IS_SECURE", endpoint.is_secure)
    w.set("MODEL_SYNC_REGISTRY_AUTHOR", reg.author)
    if reg.token_secret is not None:
        items = [{"key": reg.token_secret.key, "path": "token"}]
        w.secret_dir("registry-token", reg.token_secret.name, TOKEN_DIR, items)
        w.set(TOKEN_PATH_ENV, f"{TOKEN_DIR}/token")
        w.set("MODEL_SYNC_REGISTRY_USER_TOKEN_ENVVAR", TOKEN_PATH_ENV)
    ca = reg.ca_secret or reg.ca_config_map
    if ca is not None:
        items = [{"key": ca.key, "path": "ca.crt"}]
        if reg.ca_secret is not None:
            w.secret_dir("registry-ca", ca.name, CA_DIR, items)
        else:
            w.volumes.append({"name": "registry-ca", "configMap": {"name": ca.name, "items": items}})
            w.mounts.append({"name": "registry-ca", "mountPath": CA_DIR, "readOnly": True})
        w.set("MODEL_SYNC_REGISTRY_CUSTOM_CA", f"{CA_DIR}/ca.crt")


def _model_ids(w: _Wiring, spec: ModelUploadJobSpec) -> None:
    w.set("MODEL_SYNC_MODEL_UPLOAD_INTENT", spec.intent)
    model = spec.model
    if model is None:
        return
    w.set("MODEL_SYNC_MODEL_ID", model.registered_model.id if model.registered_model else None)
    w.set("MODEL_SYNC_MODEL_VERSION_ID", model.model_version.id if model.model_version else None)
    w.set("MODEL_SYNC_MODEL_ARTIFACT_ID", model.model_artifact.id if model.model_artifact else None)


def container_wiring(
    job: UploadJobRef, spec: ModelUploadJobSpec, endpoint: RegistryEndpoint
) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """``(env, volumes, volumeMounts)`` of the upload container."""
    w = _Wiring()
    _source(w, spec)
    _destination(w, spec)
    _registry(w, spec, endpoint)
    _model_ids(w, spec)
    w.volumes.append({"name": "metadata", "configMap": {"name": config_map_name(job.name)}})
    w.mounts.append({"name": "metadata", "mountPath": METADATA_PATH, "readOnly": True})
    w.set("MODEL_SYNC_METADATA_CONFIGMAP_PATH", METADATA_PATH)
    scratch: Obj = {}
    if spec.job is not None and spec.job.scratch_size is not None:
        scratch["sizeLimit"] = spec.job.scratch_size
    w.volumes.append({"name": "scratch", "emptyDir": scratch})
    w.mounts.append({"name": "scratch", "mountPath": SCRATCH_PATH})
    w.set("MODEL_SYNC_STORAGE_PATH", SCRATCH_PATH)
    # Where the upload program reports its progress (upload/status_report.py).
    w.set(PROGRESS_NAME_ENV, job.name)
    w.set(PROGRESS_NAMESPACE_ENV, job.namespace)
    return w.env, w.volumes, w.mounts


def render_model_upload_job(
    job: UploadJobRef,
    spec: ModelUploadJobSpec,
    raw_spec: Obj,
    endpoint: RegistryEndpoint,
    default_image: str,
) -> list[Obj]:
    """The metadata ConfigMap, the progress Role and RoleBinding, and the Job, in the order they
    must be created (the Pod mounts the ConfigMap and reports progress from its first second)."""
    env, volumes, mounts = container_wiring(job, spec, endpoint)
    options = spec.job
    resources = DEFAULT_RESOURCES
    if options is not None and options.resources is not None:
        resources = options.resources.model_dump(mode="json", exclude_none=True)
    job_spec: Obj = {"backoffLimit": options.backoff_limit if options else 3}
    if options is not None and options.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = options.active_deadline_seconds
    if options is not None and options.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = options.ttl_seconds_after_finished
    context: Obj = {
        "job": job,
        "labels": labels(job.name),
        "owner_references": owner_references(job),
        "config_map_name": config_map_name(job.name),
        "progress_rbac_name": progress_rbac_name(job.name),
        "group": GROUP,
        "job_name": job_name(job.name),
        "metadata_data": metadata_data(spec, job),
        "annotations": {SPEC_HASH_ANNOTATION: spec_hash(raw_spec), NAME_ANNOTATION: job.name},
        "pod_annotations": {NAME_ANNOTATION: job.name},
        "job_spec": job_spec,
        "config_error_exit_code": CONFIG_ERROR_EXIT_CODE,
        "container_name": CONTAINER_NAME,
        "image": (options.image if options and options.image else default_image),
        "command": COMMAND,
        "env": env,
        "volumes": volumes,
        "mounts": mounts,
        "resources": resources,
        "service_account_name": options.service_account_name if options else None,
    }
    objects = render_template("modeluploadjob/configmap.yaml.j2", context)
    objects.extend(render_template("modeluploadjob/progress-rbac.yaml.j2", context))
    objects.extend(render_template("modeluploadjob/job.yaml.j2", context))
    return objects
